//! A small chat API for the demo and the end-to-end tests; not a product. It serves the
//! default catalog's routes from memory and accepts only callers whose bearer token the
//! Kubernetes API server confirms (TokenReview) for the chat API's audience.
//!
//! Environment: LISTEN (default 0.0.0.0:8080), CHAT_API_AUDIENCE (default chat-api),
//! and TLS_CERT_FILE with TLS_KEY_FILE (PEM: the certificate chain, its private key) to
//! serve https instead of http.

mod auth;
mod routes;
mod store;
mod tls;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use auth::Authenticator;
use store::Store;

type Reply = Response<Full<Bytes>>;

struct App {
    auth: Authenticator,
    store: Store,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "0.0.0.0:8080".into());
    let audience = std::env::var("CHAT_API_AUDIENCE").unwrap_or_else(|_| "chat-api".into());
    let client = kube::Client::try_default().await?;
    let app = Arc::new(App {
        auth: Authenticator::new(client, audience),
        store: Store::with_sample_data(),
    });
    let tls = tls::acceptor_from_env()?;
    let listener = TcpListener::bind(&listen).await?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!(
        "{}",
        serde_json::json!({"msg": "sample chat API listening", "address": listen, "scheme": scheme})
    );
    loop {
        let (stream, peer) = listener.accept().await?;
        let app = app.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve(stream, app).await,
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(stream) => serve(stream, app).await,
                    Err(error) => println!(
                        "{}",
                        serde_json::json!({"msg": "TLS handshake failed", "peer": peer.to_string(), "error": error.to_string()})
                    ),
                },
            }
        });
    }
}

/// Serves HTTP/1.1 on one connection, plain or TLS.
async fn serve(io: impl AsyncRead + AsyncWrite + Unpin + Send + 'static, app: Arc<App>) {
    let service = service_fn(move |request| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(handle(&app, request).await) }
    });
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .await;
}

async fn handle(app: &App, request: Request<Incoming>) -> Reply {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    if path == "/healthz" {
        return json(StatusCode::OK, serde_json::json!({"status": "ok"}));
    }
    let caller = match app.auth.authenticate(request.headers()).await {
        Ok(caller) => caller,
        Err(reason) => {
            log(&method, &path, "-", 401);
            return json(
                StatusCode::UNAUTHORIZED,
                serde_json::json!({"error": "unauthenticated", "reason": reason}),
            );
        }
    };
    let body = match Limited::new(request.into_body(), 1 << 20).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return json(
                StatusCode::PAYLOAD_TOO_LARGE,
                serde_json::json!({"error": "too large"}),
            );
        }
    };
    let (status, reply) = routes::route(&app.store, &caller, &method, &path, &body);
    log(&method, &path, &caller.plugin_segment, status.as_u16());
    json(status, reply)
}

fn log(method: &hyper::Method, path: &str, caller: &str, status: u16) {
    println!(
        "{}",
        serde_json::json!({"msg": "request", "method": method.as_str(), "path": path, "caller": caller, "status": status})
    );
}

fn json(status: StatusCode, value: serde_json::Value) -> Reply {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(value.to_string())))
        .expect("a JSON response is valid")
}

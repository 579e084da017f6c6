//! `chat-stand-in`: a chat API that misbehaves, for the hostile-plugin tests. It checks
//! no credential and serves on PLUGIN_PORT:
//!
//! - `GET /api/v1/files/endless`: 200, then a body that never ends (1 KiB every 10 ms);
//! - `GET /api/v1/files/stalled`: 200 promising 1 MiB, then 1 KiB and nothing more;
//! - `GET /stats`: connections open now and the most at once, as this server counts
//!   them (it notices a close only when it next runs) and as the kernel does
//!   (`established`: from peers off this pod, every 10 ms, with a socket dump as `ss`
//!   takes it, see `sockets.rs`; a new peak only when the next dump bears it out);
//!   requests served and how many carried a method or path override (a header or
//!   `_method`);
//! - anything else: 200 with a small JSON body.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;

static OPEN: AtomicU64 = AtomicU64::new(0);
static PEAK: AtomicU64 = AtomicU64::new(0);
static ACCEPTED: AtomicU64 = AtomicU64::new(0);
static REQUESTS: AtomicU64 = AtomicU64::new(0);
static OVERRIDES: AtomicU64 = AtomicU64::new(0);
static ESTABLISHED: AtomicU64 = AtomicU64::new(0);
static PEAK_ESTABLISHED: AtomicU64 = AtomicU64::new(0);

const OVERRIDE_HEADERS: [&str; 5] = [
    "x-http-method-override",
    "x-method-override",
    "x-http-method",
    "x-original-url",
    "x-rewrite-url",
];

type Body = BoxBody<Bytes, Infallible>;

/// The kernel's count of established connections to `port`: the count now, and a new
/// peak only when a second dump, taken at once, sees it too. One dump is one pass over
/// the kernel's table, not a snapshot: a connection that closes behind the pass and its
/// successor opening ahead of it are both counted, and a close that is still on its way
/// to this pod (its FIN handled on another CPU) lets a connection opened after it show
/// beside it for a few microseconds. A count that truly ran over stays over for the
/// second dump.
fn count_established(counter: &mut crate::sockets::Counter, port: u16) -> std::io::Result<()> {
    let now = counter.established_from_elsewhere(port)?;
    ESTABLISHED.store(now, Ordering::Relaxed);
    if now > PEAK_ESTABLISHED.load(Ordering::Relaxed) {
        let again = counter.established_from_elsewhere(port)?;
        PEAK_ESTABLISHED.fetch_max(now.min(again), Ordering::Relaxed);
    }
    Ok(())
}

pub async fn serve() {
    let port = std::env::var("PLUGIN_PORT").unwrap_or_else(|_| "8080".into());
    let listener = TcpListener::bind(format!("0.0.0.0:{port}"))
        .await
        .expect("the port is free");
    println!("{{\"msg\":\"chat stand-in listening\",\"port\":{port}}}");
    let number = port.parse::<u16>().unwrap_or(8080);
    let mut counter = crate::sockets::Counter::new().expect("a socket-diagnostics socket");
    std::thread::spawn(move || {
        loop {
            if let Err(error) = count_established(&mut counter, number) {
                eprintln!("counting connections: {error}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        ACCEPTED.fetch_add(1, Ordering::Relaxed);
        let open = OPEN.fetch_add(1, Ordering::Relaxed) + 1;
        PEAK.fetch_max(open, Ordering::Relaxed);
        tokio::spawn(async move {
            let service = service_fn(|request| async { Ok::<_, Infallible>(handle(request)) });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
            OPEN.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

fn handle(request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_string();
    if path == "/stats" {
        return small(json!({
            "open": OPEN.load(Ordering::Relaxed),
            "peak": PEAK.load(Ordering::Relaxed),
            "accepted": ACCEPTED.load(Ordering::Relaxed),
            "requests": REQUESTS.load(Ordering::Relaxed),
            "overrides": OVERRIDES.load(Ordering::Relaxed),
            "established": ESTABLISHED.load(Ordering::Relaxed),
            "peakEstablished": PEAK_ESTABLISHED.load(Ordering::Relaxed),
        }));
    }
    REQUESTS.fetch_add(1, Ordering::Relaxed);
    let query = request
        .uri()
        .query()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if OVERRIDE_HEADERS
        .iter()
        .any(|h| request.headers().contains_key(*h))
        || query.contains("_method")
    {
        OVERRIDES.fetch_add(1, Ordering::Relaxed);
    }
    match path.as_str() {
        "/api/v1/files/endless" => {
            let chunks = futures::stream::unfold((), |()| async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                Some((Ok(Frame::data(Bytes::from(vec![b'x'; 1024]))), ()))
            });
            Response::new(StreamBody::new(chunks).boxed())
        }
        "/api/v1/files/stalled" => {
            let first =
                futures::stream::once(async { Ok(Frame::data(Bytes::from(vec![b'x'; 1024]))) });
            let chunks = futures::StreamExt::chain(first, futures::stream::pending());
            Response::builder()
                .header("content-length", 1 << 20)
                .body(StreamBody::new(chunks).boxed())
                .expect("a valid response")
        }
        _ => small(json!({"standIn": true, "path": path})),
    }
}

fn small(value: serde_json::Value) -> Response<Body> {
    Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(value.to_string())).boxed())
        .expect("a valid response")
}

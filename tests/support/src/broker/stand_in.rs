//! A recording HTTP server on loopback that stands in for the chat API or the plugin.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// One request as the stand-in server saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: Method,
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A loopback HTTP server that records every request and answers 200 `upstream ok`.
/// A `sleep_ms=N` query makes it wait N ms before answering; `close=1` makes it close
/// the connection after answering.
#[derive(Clone)]
pub struct StandIn {
    pub addr: SocketAddr,
    /// Connections accepted so far.
    pub connections: Arc<AtomicUsize>,
    /// Connections open now, and the most that were open at once.
    pub open: Arc<AtomicUsize>,
    pub max_open: Arc<AtomicUsize>,
    pub recorded: Arc<Mutex<Vec<Recorded>>>,
    pub in_flight: Arc<AtomicUsize>,
    pub max_in_flight: Arc<AtomicUsize>,
}

impl StandIn {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Self {
            addr: listener.local_addr().unwrap(),
            connections: Arc::default(),
            open: Arc::default(),
            max_open: Arc::default(),
            recorded: Arc::default(),
            in_flight: Arc::default(),
            max_in_flight: Arc::default(),
        };
        let shared = server.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let open = shared.open.fetch_add(1, Ordering::SeqCst) + 1;
                shared.max_open.fetch_max(open, Ordering::SeqCst);
                let shared = shared.clone();
                tokio::spawn(async move {
                    let counts = shared.open.clone();
                    let service = service_fn(move |request| shared.clone().answer(request));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                    counts.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        server
    }

    async fn answer(self, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let (parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let sleep_ms = parts
            .uri
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("sleep_ms=")))
            .and_then(|ms| ms.parse().ok());
        let close = parts
            .uri
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv == "close=1"));
        self.recorded.lock().unwrap().push(Recorded {
            method: parts.method,
            uri: parts.uri.to_string(),
            headers: parts.headers,
            body,
        });
        if let Some(ms) = sleep_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let mut response = Response::new(Full::new(Bytes::from_static(b"upstream ok")));
        response
            .headers_mut()
            .insert("x-upstream", "yes".parse().unwrap());
        response
            .headers_mut()
            .insert("keep-alive", "timeout=5".parse().unwrap());
        if close {
            response
                .headers_mut()
                .insert("connection", "close".parse().unwrap());
        }
        Ok(response)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.recorded.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.recorded.lock().unwrap().len()
    }

    /// How many connections were accepted so far.
    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

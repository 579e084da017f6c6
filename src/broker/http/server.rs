//! The accept loop shared by the three listeners: HTTP/1.1 with a header read timeout
//! (against slowloris), a cap on header size, an optional cap on open connections, and
//! graceful shutdown that lets requests in flight finish.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::body::ProxyBody;

/// Largest request head (request line and headers) accepted; larger ones get 431.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Tells every listener and connection to stop: `true` once shutdown began.
pub type ShutdownSignal = watch::Receiver<bool>;

/// A cap on a listener's open connections. At the cap the listener stops accepting
/// until a connection closes; connections beyond it wait in the kernel's accept queue.
#[derive(Clone, Debug)]
pub struct ConnectionCap {
    slots: Arc<Semaphore>,
    /// Connections open now.
    open: Gauge,
    /// Times the listener found every slot taken.
    reached: Counter,
}

impl ConnectionCap {
    pub fn new(max: usize, open: Gauge, reached: Counter) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max)),
            open,
            reached,
        }
    }

    /// A free slot, waiting for one if every slot is taken.
    async fn slot(&self) -> OwnedSemaphorePermit {
        match self.slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                self.reached.inc();
                self.slots
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed")
            }
        }
    }
}

/// A connection's place under its listener's [`ConnectionCap`], held by the connection
/// and by whatever it opens on its own behalf (its connection to the chat API); the
/// place is free again once the last clone is dropped. Without a cap, it holds nothing.
#[derive(Clone, Debug, Default)]
pub struct Slot {
    _held: Option<Arc<Taken>>,
}

#[derive(Debug)]
struct Taken {
    _permit: OwnedSemaphorePermit,
    open: Gauge,
}

impl Drop for Taken {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// What the three listeners share: the header read timeout and the shutdown signal.
#[derive(Debug)]
pub struct Listen {
    pub header_read_timeout: Duration,
    pub shutdown: ShutdownSignal,
}

impl Listen {
    /// Spawns the task that [`serve`]s `listener`.
    pub fn spawn<M, H, F>(
        &self,
        name: &'static str,
        listener: TcpListener,
        cap: Option<ConnectionCap>,
        handler_for_connection: M,
    ) -> JoinHandle<()>
    where
        M: Fn(Slot) -> H + Send + 'static,
        H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Response<ProxyBody>> + Send + 'static,
    {
        tokio::spawn(serve(
            name,
            listener,
            cap,
            handler_for_connection,
            self.header_read_timeout,
            self.shutdown.clone(),
        ))
    }
}

/// Serves `listener` until `shutdown` turns true, then waits for open connections to
/// finish their current request. `handler_for_connection` makes the request handler of
/// each new connection from its [`Slot`] (so a handler can keep state for its
/// connection). With a `cap`, at most that many connections are open at once.
pub async fn serve<M, H, F>(
    name: &'static str,
    listener: TcpListener,
    cap: Option<ConnectionCap>,
    handler_for_connection: M,
    header_read_timeout: Duration,
    mut shutdown: ShutdownSignal,
) where
    M: Fn(Slot) -> H + Send + 'static,
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_buf_size(MAX_HEADER_BYTES);
    let mut connections = JoinSet::new();
    loop {
        let permit = match &cap {
            Some(cap) => tokio::select! {
                permit = cap.slot() => Some(permit),
                () = stopped(&mut shutdown) => break,
            },
            None => None,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped(&mut shutdown) => break,
        };
        while connections.try_join_next().is_some() {}
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(listener = name, %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let slot = Slot {
            _held: cap.as_ref().zip(permit).map(|(cap, permit)| {
                cap.open.inc();
                Arc::new(Taken {
                    _permit: permit,
                    open: cap.open.clone(),
                })
            }),
        };
        let handler = handler_for_connection(slot);
        let service = service_fn(move |request| {
            let handler = handler.clone();
            async move { Ok::<_, Infallible>(handler(request).await) }
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let mut shutdown = shutdown.clone();
        connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = stopped(&mut shutdown) => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = result {
                tracing::debug!(listener = name, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Resolves once shutdown began (or the signal's sender is gone).
async fn stopped(signal: &mut ShutdownSignal) {
    let _ = signal.wait_for(|stopping| *stopping).await;
}

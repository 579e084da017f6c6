//! Shared by the broker's integration tests: a recording HTTP server on loopback that
//! stands in for the chat API or the plugin, a broker started in-process on port-0
//! listeners, and a policy directory laid out like a mounted ConfigMap.

#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use plugin_operator::broker::AuditDestination;
use plugin_operator::broker::{self, BrokerArgs, Listeners, RunningBroker};
use plugin_operator::policy::{
    BrokerPolicy, EnforcementMode, InboundLimits, POLICY_FILE_NAME, ScopeGrant, default_catalog,
};
use plugin_operator::telemetry::LogFormat;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const TOKEN: &str = "broker-token-one";
pub const PLUGIN_ID: &str = "team-a/weather";
pub const SELF_SEGMENT: &str = "team-a.weather";

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
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| shared.clone().answer(request));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
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
}

/// A scratch directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "broker-{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes files the way the kubelet updates a ConfigMap or projected volume: into a
/// fresh timestamped directory, then an atomic swap of the `..data` symlink.
pub fn write_like_kubelet(dir: &Path, file_name: &str, content: &[u8]) {
    static VERSION: AtomicUsize = AtomicUsize::new(0);
    let version = format!("..v{}", VERSION.fetch_add(1, Ordering::SeqCst));
    let version_dir = dir.join(&version);
    std::fs::create_dir_all(&version_dir).unwrap();
    std::fs::write(version_dir.join(file_name), content).unwrap();
    let staged = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&staged);
    std::os::unix::fs::symlink(&version, &staged).unwrap();
    let old = std::fs::read_link(dir.join("..data")).ok();
    std::fs::rename(&staged, dir.join("..data")).unwrap();
    let link = dir.join(file_name);
    if std::fs::symlink_metadata(&link).is_err() {
        std::os::unix::fs::symlink(Path::new("..data").join(file_name), &link).unwrap();
    }
    if let Some(old) = old {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
}

pub fn policy(grants: &[(&str, &[&str])]) -> BrokerPolicy {
    BrokerPolicy {
        plugin_id: PLUGIN_ID.into(),
        mode: EnforcementMode::Enforce,
        grants: grants
            .iter()
            .map(|(scope, channels)| ScopeGrant {
                scope: (*scope).into(),
                channels: channels.iter().map(|c| (*c).into()).collect(),
            })
            .collect(),
        rate_limits: vec![],
        max_request_bytes: 64 * 1024,
        kv_max_value_bytes: None,
        inbound: InboundLimits {
            request_timeout_seconds: 5,
            max_in_flight: 8,
            max_body_bytes: 64 * 1024,
        },
        catalog: default_catalog(),
    }
}

/// A broker started in-process against a stand-in chat API and a stand-in plugin.
pub struct Fixture {
    pub broker: Option<RunningBroker>,
    pub chat_api: StandIn,
    pub plugin: StandIn,
    pub policy_dir: TempDir,
    pub token_dir: TempDir,
    pub client: Client<HttpConnector, Full<Bytes>>,
    /// The audit lines the broker wrote.
    pub audit: Arc<Mutex<Vec<u8>>>,
}

/// A response read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

pub fn args(
    policy_dir: &Path,
    token_dir: &Path,
    chat_api: SocketAddr,
    plugin_port: u16,
) -> BrokerArgs {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    BrokerArgs {
        policy_file: policy_dir.join(POLICY_FILE_NAME),
        chat_api_url: format!("http://{chat_api}"),
        token_file: token_dir.join("token"),
        chat_api_ca_file: None,
        plugin_id: Some(PLUGIN_ID.into()),
        plugin_port,
        inbound_bind: loopback,
        outbound_bind: loopback,
        admin_bind: loopback,
        upstream_timeout: Duration::from_secs(2),
        header_read_timeout: Duration::from_secs(1),
        policy_poll_interval: Duration::from_millis(100),
        token_poll_interval: Duration::from_millis(100),
        shutdown_grace: Duration::from_secs(5),
        log_format: LogFormat::Json,
        audit_destination: AuditDestination::Memory(Arc::default()),
    }
}

impl Fixture {
    pub async fn start(policy: &BrokerPolicy) -> Self {
        Self::start_with(policy, |_| {}).await
    }

    pub async fn start_with(policy: &BrokerPolicy, adjust: impl FnOnce(&mut BrokerArgs)) -> Self {
        let chat_api = StandIn::start().await;
        let plugin = StandIn::start().await;
        let policy_dir = TempDir::new("policy");
        let token_dir = TempDir::new("token");
        write_like_kubelet(
            &policy_dir.0,
            POLICY_FILE_NAME,
            &serde_json::to_vec(policy).unwrap(),
        );
        write_like_kubelet(&token_dir.0, "token", format!("{TOKEN}\n").as_bytes());
        let mut args = args(
            &policy_dir.0,
            &token_dir.0,
            chat_api.addr,
            plugin.addr.port(),
        );
        adjust(&mut args);
        let audit = match &args.audit_destination {
            AuditDestination::Memory(lines) => lines.clone(),
            AuditDestination::Stdout => Arc::default(),
        };
        let listeners = Listeners::bind(&args).await.unwrap();
        let broker = broker::start(&args, listeners).await.unwrap();
        let client = Client::builder(TokioExecutor::new()).build_http();
        Self {
            broker: Some(broker),
            chat_api,
            plugin,
            policy_dir,
            token_dir,
            client,
            audit,
        }
    }

    /// Every audit line written so far, parsed; waits up to a second for the writer.
    pub async fn audit_lines(&self) -> Vec<serde_json::Value> {
        let parse = |bytes: &[u8]| -> Vec<serde_json::Value> {
            String::from_utf8_lossy(bytes)
                .lines()
                .map(|line| serde_json::from_str(line).expect("an audit line is JSON"))
                .collect()
        };
        let mut lines = parse(&self.audit.lock().unwrap());
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let now = parse(&self.audit.lock().unwrap());
            if !now.is_empty() && now.len() == lines.len() {
                break;
            }
            lines = now;
        }
        lines
    }

    pub fn broker(&self) -> &RunningBroker {
        self.broker.as_ref().unwrap()
    }

    pub fn write_policy(&self, policy: &BrokerPolicy) {
        self.write_policy_bytes(&serde_json::to_vec(policy).unwrap());
    }

    pub fn write_policy_bytes(&self, content: &[u8]) {
        write_like_kubelet(&self.policy_dir.0, POLICY_FILE_NAME, content);
    }

    pub fn write_token(&self, token: &str) {
        write_like_kubelet(&self.token_dir.0, "token", token.as_bytes());
    }

    /// Sends a request to the outbound listener.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Answer {
        self.send(self.broker().outbound_addr, method, path, headers, body)
            .await
    }

    /// Sends a request to the inbound listener.
    pub async fn invoke(&self, method: &str, path: &str, body: &[u8]) -> Answer {
        self.send(self.broker().inbound_addr, method, path, &[], body)
            .await
    }

    pub async fn admin(&self, path: &str) -> Answer {
        self.send(self.broker().admin_addr, "GET", path, &[], b"")
            .await
    }

    pub async fn send(
        &self,
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::copy_from_slice(body)))
            .unwrap();
        let response = self.client.request(request).await.expect("broker answered");
        let (parts, body) = response.into_parts();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
        }
    }

    /// Waits up to `limit` for `check` to hold, polling every 50 ms.
    pub async fn eventually<F, Fut>(&self, limit: Duration, mut check: F) -> bool
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if check().await {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Writes `request` on a fresh connection and reads until the server closes it or
/// `wait` passes; returns what came back.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8], wait: Duration) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(wait, stream.read_to_end(&mut answer)).await;
    answer
}

/// The status code of a raw HTTP/1.1 answer.
pub fn raw_status(answer: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(answer.get(..12)?).ok()?;
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

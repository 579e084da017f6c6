//! A broker started in-process on port-0 listeners, against a stand-in chat API and a
//! stand-in plugin, with its policy and token in directories laid out like mounted
//! volumes.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use plugin_operator::broker::{self, AuditDestination, BrokerArgs, Listeners, RunningBroker};
use plugin_operator::policy::{BrokerPolicy, POLICY_FILE_NAME};
use plugin_operator::telemetry::LogFormat;

use super::{PLUGIN_ID, StandIn, TOKEN, TempDir, write_like_kubelet};

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

    /// Asserts a refusal's status and the `reason` in its body; `context` names the case.
    #[track_caller]
    pub fn assert_refused(&self, status: StatusCode, reason: &str, context: &str) {
        assert_eq!(self.status, status, "{context}");
        assert_eq!(self.json()["reason"], reason, "{context}");
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
        max_outbound_connections: 256,
        header_read_timeout: Duration::from_secs(1),
        policy_poll_interval: Duration::from_millis(100),
        token_poll_interval: Duration::from_millis(100),
        shutdown_grace: Duration::from_secs(5),
        log_format: LogFormat::Json,
        audit_destination: AuditDestination::Memory(Arc::default()),
    }
}

/// A client that opens a fresh connection for every request. A pooled connection left
/// idle can be closed by the broker (its header read timeout also ends idle
/// connections) just as the client reuses it, which fails the request with
/// `IncompleteMessage`; tests that are about keep-alive drive one connection by hand.
pub fn fresh_connection_client<B>() -> Client<HttpConnector, B>
where
    B: hyper::body::Body + Send,
    B::Data: Send,
{
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http()
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
        let client = fresh_connection_client();
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

    /// A GET on the outbound listener, without headers.
    pub async fn get(&self, path: &str) -> Answer {
        self.call("GET", path, &[], b"").await
    }

    /// A POST of `body` on the outbound listener, without headers.
    pub async fn post(&self, path: &str, body: &[u8]) -> Answer {
        self.call("POST", path, &[], body).await
    }

    /// The admin listener's /metrics, as text.
    pub async fn metrics(&self) -> String {
        let answer = self.admin("/metrics").await;
        assert_eq!(answer.status, StatusCode::OK);
        String::from_utf8(answer.body.to_vec()).expect("metrics are UTF-8")
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

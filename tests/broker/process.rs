//! The real `plugin-operator broker` process: flags and environment, JSON audit lines
//! without secrets, and a graceful stop on SIGTERM.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use plugin_operator::policy::POLICY_FILE_NAME;
use plugin_operator_test_support::broker::{StandIn, TOKEN, TempDir, policy, write_like_kubelet};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const PLUGIN_SECRET: &str = "plugin-secret-aaa";
const COOKIE_SECRET: &str = "cookie-secret-bbb";
const QUERY_SECRET: &str = "query-secret-ccc";

struct BrokerProcess {
    child: Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl BrokerProcess {
    fn spawn(
        policy_dir: &TempDir,
        token_dir: &TempDir,
        chat_api: SocketAddr,
        plugin: SocketAddr,
    ) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_plugin-operator"))
            .arg("broker")
            .args(["--chat-api-url", &format!("http://{chat_api}")])
            .args(["--inbound-bind", "127.0.0.1:0"])
            .args(["--outbound-bind", "127.0.0.1:0"])
            .args(["--admin-bind", "127.0.0.1:0"])
            .args(["--log-format", "json"])
            .env("BROKER_POLICY_FILE", policy_dir.0.join(POLICY_FILE_NAME))
            .env("BROKER_TOKEN_FILE", token_dir.0.join("token"))
            .env("BROKER_PLUGIN_PORT", plugin.port().to_string())
            .env("BROKER_PLUGIN_ID", "team-a/weather")
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the binary starts");
        let (sender, lines) = tokio::sync::mpsc::unbounded_channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        for stream in [
            Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
            Box::new(stderr),
        ] {
            let sender = sender.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    let _ = sender.send(line);
                }
            });
        }
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads log lines until one has `message`; returns it as JSON.
    async fn wait_for_message(&mut self, message: &str) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.recv())
                .await
                .unwrap_or_else(|_| panic!("no {message:?} in the log: {:#?}", self.seen))
                .expect("log stream open");
            self.seen.push(line.clone());
            if let Ok(json) = serde_json::from_str::<serde_json::Value>(&line)
                && json["message"] == message
            {
                return json;
            }
        }
    }

    fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
    }
}

fn addr(json: &serde_json::Value, field: &str) -> SocketAddr {
    json[field].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_process_audits_without_secrets_and_drains_on_sigterm() {
    let chat_api = StandIn::start().await;
    let plugin = StandIn::start().await;
    let policy_dir = TempDir::new("process-policy");
    let token_dir = TempDir::new("process-token");
    let p = policy(&[("users:read", &[])]);
    write_like_kubelet(
        &policy_dir.0,
        POLICY_FILE_NAME,
        &serde_json::to_vec(&p).unwrap(),
    );
    write_like_kubelet(&token_dir.0, "token", TOKEN.as_bytes());

    let mut broker = BrokerProcess::spawn(&policy_dir, &token_dir, chat_api.addr, plugin.addr);
    let listening = broker.wait_for_message("broker listening").await;
    let (outbound, inbound, admin) = (
        addr(&listening, "outbound_addr"),
        addr(&listening, "inbound_addr"),
        addr(&listening, "admin_addr"),
    );
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let get = |url: String, headers: Vec<(&'static str, String)>| {
        let client = client.clone();
        async move {
            let mut request = http::Request::get(url);
            for (name, value) in headers {
                request = request.header(name, value);
            }
            let response = client
                .request(request.body(Full::new(Bytes::new())).unwrap())
                .await
                .unwrap();
            let status = response.status();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, body)
        }
    };

    assert_eq!(
        get(format!("http://{admin}/readyz"), vec![]).await.0,
        StatusCode::OK
    );
    let secrets = vec![
        ("authorization", format!("Bearer {PLUGIN_SECRET}")),
        ("cookie", format!("sid={COOKIE_SECRET}")),
    ];
    let allowed = get(
        format!("http://{outbound}/api/v1/users?token={QUERY_SECRET}"),
        secrets.clone(),
    )
    .await;
    assert_eq!(allowed.0, StatusCode::OK);
    let denied = get(format!("http://{outbound}/api/v1/files/F1"), secrets).await;
    assert_eq!(denied.0, StatusCode::FORBIDDEN);
    assert_eq!(
        chat_api.requests()[0].headers["authorization"],
        format!("Bearer {TOKEN}")
    );

    let audit = broker.wait_for_message("decision").await;
    for field in [
        "decision_id",
        "plugin",
        "scope",
        "method",
        "path",
        "outcome",
        "latency_ms",
    ] {
        assert!(
            audit.get(field).is_some(),
            "audit line lacks {field}: {audit}"
        );
    }
    assert_eq!(audit["plugin"], "team-a/weather");
    assert_eq!(audit["scope"], "users:read");
    assert_eq!(audit["path"], "/api/v1/users");
    assert_eq!(audit["outcome"], "allowed");
    let denial = broker.wait_for_message("decision").await;
    assert_eq!(denial["outcome"], "denied");
    assert_eq!(denial["reason"], "ScopeNotGranted");
    assert_eq!(denial["scope"], "files:read");
    let denied_body: serde_json::Value = serde_json::from_slice(&denied.1).unwrap();
    assert_eq!(denied_body["decisionId"], denial["decision_id"]);

    // An invocation in flight when SIGTERM arrives still completes.
    let slow = tokio::spawn(get(format!("http://{inbound}/work?sleep_ms=1500"), vec![]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = broker.child.id().unwrap().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let (status, body) = slow.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "upstream ok");
    let exit = tokio::time::timeout(Duration::from_secs(10), broker.child.wait())
        .await
        .expect("the broker exits after SIGTERM")
        .unwrap();
    assert!(exit.success(), "exit status {exit}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    broker.drain();

    let log = broker.seen.join("\n");
    assert!(log.contains("shutting down"), "{log}");
    for secret in [TOKEN, PLUGIN_SECRET, COOKIE_SECRET, QUERY_SECRET] {
        assert!(!log.contains(secret), "the log reveals {secret}:\n{log}");
    }
}

#[tokio::test]
async fn broker_refuses_an_outbound_listener_off_loopback() {
    let output = Command::new(env!("CARGO_BIN_EXE_plugin-operator"))
        .args([
            "broker",
            "--chat-api-url",
            "http://127.0.0.1:1",
            "--plugin-port",
            "8080",
        ])
        .args(["--outbound-bind", "0.0.0.0:0"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("loopback"), "{stderr}");
}

//! The real `plugin-operator broker` process: flags and environment, JSON audit lines
//! without secrets, and a graceful stop on SIGTERM.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use plugin_operator::policy::POLICY_FILE_NAME;
use plugin_operator_test_support::broker::{
    StandIn, TOKEN, TempDir, fresh_connection_client, policy, write_like_kubelet,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const PLUGIN_SECRET: &str = "plugin-secret-aaa";
const COOKIE_SECRET: &str = "cookie-secret-bbb";
const QUERY_SECRET: &str = "query-secret-ccc";

/// The broker binary with its flags and environment for a test: listeners on
/// `127.0.0.1:0` (it logs the addresses in its `broker listening` line), JSON logs.
pub(crate) fn broker_command(
    policy_dir: &TempDir,
    token_dir: &TempDir,
    chat_api: SocketAddr,
    plugin: SocketAddr,
) -> Command {
    broker_command_to(policy_dir, token_dir, &format!("http://{chat_api}"), plugin)
}

/// [`broker_command`] with the chat API at `chat_api_url`.
pub(crate) fn broker_command_to(
    policy_dir: &TempDir,
    token_dir: &TempDir,
    chat_api_url: &str,
    plugin: SocketAddr,
) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_plugin-operator"));
    command
        .arg("broker")
        .args(["--chat-api-url", chat_api_url])
        .args(["--inbound-bind", "127.0.0.1:0"])
        .args(["--outbound-bind", "127.0.0.1:0"])
        .args(["--admin-bind", "127.0.0.1:0"])
        .args(["--log-format", "json"])
        .env("BROKER_POLICY_FILE", policy_dir.0.join(POLICY_FILE_NAME))
        .env("BROKER_TOKEN_FILE", token_dir.0.join("token"))
        .env("BROKER_PLUGIN_PORT", plugin.port().to_string())
        .env("BROKER_PLUGIN_ID", "team-a/weather")
        .kill_on_drop(true);
    command
}

/// A policy and token in fresh directories, as the kubelet mounts them.
pub(crate) fn mounted_files(scopes: &[(&str, &[&str])]) -> (TempDir, TempDir) {
    let policy_dir = TempDir::new("process-policy");
    let token_dir = TempDir::new("process-token");
    let p = policy(scopes);
    write_like_kubelet(
        &policy_dir.0,
        POLICY_FILE_NAME,
        &serde_json::to_vec(&p).unwrap(),
    );
    write_like_kubelet(&token_dir.0, "token", TOKEN.as_bytes());
    (policy_dir, token_dir)
}

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
        let mut child = broker_command(policy_dir, token_dir, chat_api, plugin)
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
    let (policy_dir, token_dir) = mounted_files(&[("users:read", &[])]);
    let mut broker = BrokerProcess::spawn(&policy_dir, &token_dir, chat_api.addr, plugin.addr);
    let listening = broker.wait_for_message("broker listening").await;
    let (outbound, inbound, admin) = (
        addr(&listening, "outbound_addr"),
        addr(&listening, "inbound_addr"),
        addr(&listening, "admin_addr"),
    );
    let client = fresh_connection_client::<Full<Bytes>>();
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
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while plugin.count() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the invocation never reached the plugin"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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

/// Standard output is a pipe that nobody reads after the first lines, as when a
/// log collector stalls. The broker must go on answering on every listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_whose_stdout_nobody_reads_keeps_serving_and_counts_dropped_lines() {
    let chat_api = StandIn::start().await;
    let plugin = StandIn::start().await;
    let (policy_dir, token_dir) = mounted_files(&[("users:read", &[])]);
    let mut child = broker_command(&policy_dir, &token_dir, chat_api.addr, plugin.addr)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let next_line = async |stdout: &mut tokio::io::Lines<_>| {
        tokio::time::timeout(Duration::from_secs(10), stdout.next_line())
            .await
            .ok()
            .and_then(Result::ok)
            .flatten()
    };
    let listening = loop {
        let line = next_line(&mut stdout).await.expect("the broker logs");
        let json: serde_json::Value = serde_json::from_str(&line).unwrap();
        if json["message"] == "broker listening" {
            break json;
        }
    };
    let (outbound, inbound, admin) = (
        addr(&listening, "outbound_addr"),
        addr(&listening, "inbound_addr"),
        addr(&listening, "admin_addr"),
    );
    // From here on nobody reads: 8 KiB paths make 8 KiB audit and log lines, so the
    // pipe (64 KiB) and the broker's buffer (1 MiB) fill within a few hundred calls.
    let client = fresh_connection_client::<Full<Bytes>>();
    let status = |url: String| {
        let client = client.clone();
        async move {
            let request = http::Request::get(url)
                .body(Full::new(Bytes::new()))
                .unwrap();
            let answer = tokio::time::timeout(Duration::from_secs(5), client.request(request))
                .await
                .expect("the broker answers while its stdout is not read")
                .unwrap();
            let status = answer.status();
            answer.into_body().collect().await.unwrap();
            status
        }
    };
    let long = "a".repeat(8 * 1024);
    for _ in 0..200 {
        let denied = status(format!("http://{outbound}/{long}")).await;
        assert_eq!(denied, StatusCode::FORBIDDEN);
        let invoked = status(format!("http://{inbound}/{long}")).await;
        assert_eq!(invoked, StatusCode::OK);
    }
    assert_eq!(
        status(format!("http://{admin}/healthz")).await,
        StatusCode::OK
    );
    let allowed = status(format!("http://{outbound}/api/v1/users")).await;
    assert_eq!(allowed, StatusCode::OK);
    let metrics = client
        .request(
            http::Request::get(format!("http://{admin}/metrics"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes();
    let metrics = String::from_utf8(metrics.to_vec()).unwrap();
    for counter in [
        "broker_audit_lines_dropped_total",
        "broker_log_lines_dropped_total",
    ] {
        let dropped: f64 = metrics
            .lines()
            .find_map(|line| line.strip_prefix(counter)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {counter} in {metrics}"));
        assert!(dropped > 0.0, "{counter} {dropped}");
    }

    // Read again: what was kept comes out in whole lines.
    let mut read = 0;
    while let Some(line) = next_line(&mut stdout).await {
        serde_json::from_str::<serde_json::Value>(&line).expect("a whole JSON line");
        read += 1;
        if read == 100 {
            break;
        }
    }
    assert!(read >= 100, "only {read} lines came out once read again");
}

/// SIGTERM while standard output is blocked and the buffer full: the broker gives what
/// is left at most 2 s, twice (the drained calls' lines, its last log lines), and exits
/// 0 anyway, well within the pod's grace period (30 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_whose_stdout_is_blocked_still_stops_promptly_on_sigterm() {
    let chat_api = StandIn::start().await;
    let plugin = StandIn::start().await;
    let (policy_dir, token_dir) = mounted_files(&[("users:read", &[])]);
    let mut child = broker_command(&policy_dir, &token_dir, chat_api.addr, plugin.addr)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let listening = loop {
        let line = tokio::time::timeout(Duration::from_secs(10), stdout.next_line())
            .await
            .expect("the broker logs")
            .unwrap()
            .expect("a line");
        let json: serde_json::Value = serde_json::from_str(&line).unwrap();
        if json["message"] == "broker listening" {
            break json;
        }
    };
    let outbound = addr(&listening, "outbound_addr");
    // Nobody reads from here on: 8 KiB audit lines fill the pipe and the 1 MiB buffer.
    let client = fresh_connection_client::<Full<Bytes>>();
    let long = "a".repeat(8 * 1024);
    for _ in 0..300 {
        let request = http::Request::get(format!("http://{outbound}/{long}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let answer = client.request(request).await.unwrap();
        assert_eq!(answer.status(), StatusCode::FORBIDDEN);
        answer.into_body().collect().await.unwrap();
    }
    let pid = child.id().unwrap().to_string();
    let stopping = std::time::Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap()
            .success()
    );
    let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the broker exits although its stdout is blocked")
        .unwrap();
    let took = stopping.elapsed();
    eprintln!("stopped {took:?} after SIGTERM with standard output blocked");
    assert!(exit.success(), "exit status {exit}");
    assert!(took < Duration::from_secs(6), "took {took:?}");
    drop(stdout);
}

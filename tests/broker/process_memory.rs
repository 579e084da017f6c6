//! What an open plugin connection costs the broker process in memory: its resident
//! set with no connection, then with 1,000 connections that each made one call (so
//! each also holds a connection to the chat API). A measurement, not a check; run it
//! with `cargo test --test broker process_memory -- --ignored --nocapture`.

use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use plugin_operator::policy::POLICY_FILE_NAME;
use plugin_operator_test_support::broker::{StandIn, TOKEN, TempDir, policy, write_like_kubelet};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const CONNECTIONS: usize = 1000;

fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: prints the broker's memory per connection"]
async fn process_memory_per_plugin_connection() {
    let chat_api = StandIn::start().await;
    let policy_dir = TempDir::new("memory-policy");
    let token_dir = TempDir::new("memory-token");
    let p = policy(&[("users:read", &[])]);
    write_like_kubelet(
        &policy_dir.0,
        POLICY_FILE_NAME,
        &serde_json::to_vec(&p).unwrap(),
    );
    write_like_kubelet(&token_dir.0, "token", TOKEN.as_bytes());
    let mut child = Command::new(env!("CARGO_BIN_EXE_plugin-operator"))
        .arg("broker")
        .args(["--chat-api-url", &format!("http://{}", chat_api.addr)])
        .args([
            "--inbound-bind",
            "127.0.0.1:0",
            "--admin-bind",
            "127.0.0.1:0",
        ])
        .args(["--outbound-bind", "127.0.0.1:0", "--plugin-port", "1"])
        .args(["--max-outbound-connections", "2000"])
        .args(["--header-read-timeout", "300s"])
        .env("BROKER_POLICY_FILE", policy_dir.0.join(POLICY_FILE_NAME))
        .env("BROKER_TOKEN_FILE", token_dir.0.join("token"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let outbound = loop {
        let line = lines.next_line().await.unwrap().expect("the broker logs");
        let json: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if json["message"] == "broker listening" {
            break json["outbound_addr"].as_str().unwrap().to_owned();
        }
    };
    // Audit lines must be read, or the broker would drop them.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = resident_kib(pid);

    let mut held = Vec::new();
    for _ in 0..CONNECTIONS {
        let stream = tokio::net::TcpStream::connect(&outbound).await.unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(connection);
        let request = http::Request::get("/api/v1/users")
            .header("host", "broker")
            .body(Empty::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        response.into_body().collect().await.unwrap();
        held.push(sender);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = resident_kib(pid);
    println!(
        "broker RSS: {before} KiB with no connection, {after} KiB with {CONNECTIONS} \
         (each with its chat-API connection): {:.1} KiB per connection",
        (after - before) as f64 / CONNECTIONS as f64
    );
    drop(held);
}

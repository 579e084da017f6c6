//! What an open plugin connection costs the broker process in memory: its resident
//! set with no connection, then with 1,000 connections that each made one call (so
//! each also holds a connection to the chat API). A measurement, not a check; run it
//! with `cargo test --test broker process_memory -- --ignored --nocapture`.

use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use plugin_operator_test_support::broker::StandIn;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::process::{broker_command, mounted_files};

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
    let (policy_dir, token_dir) = mounted_files(&[("users:read", &[])]);
    let mut child = broker_command(&policy_dir, &token_dir, chat_api.addr, chat_api.addr)
        .args(["--max-outbound-connections", "2000"])
        .args(["--header-read-timeout", "300s"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
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

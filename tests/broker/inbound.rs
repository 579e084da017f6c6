//! The inbound listener: invocations reach the plugin within the policy's limits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use plugin_operator_test_support::broker::{Fixture, policy, raw_exchange};

#[tokio::test]
async fn invocation_reaches_the_plugin_with_its_path_and_body() {
    let fixture = Fixture::start(&policy(&[])).await;
    let answer = fixture
        .invoke("POST", "/commands/weather?city=Paris", b"{\"q\":1}")
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, "upstream ok");
    let seen = fixture.plugin.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri, "/commands/weather?city=Paris");
    assert_eq!(seen[0].body, "{\"q\":1}");
    assert_eq!(fixture.chat_api.count(), 0);
}

#[tokio::test]
async fn slow_invocation_times_out_with_504() {
    let mut p = policy(&[]);
    p.inbound.request_timeout_seconds = 1;
    let fixture = Fixture::start(&p).await;
    let started = Instant::now();
    let answer = fixture.invoke("POST", "/slow?sleep_ms=4000", b"").await;
    let took = started.elapsed();
    assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(answer.json()["reason"], "InvocationTimedOut");
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(3),
        "answered after {took:?}"
    );
    let fast = fixture.invoke("POST", "/fast", b"").await;
    assert_eq!(fast.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invocations_over_the_in_flight_cap_get_503() {
    let mut p = policy(&[]);
    p.inbound.max_in_flight = 2;
    let fixture = Arc::new(Fixture::start(&p).await);
    let mut calls = Vec::new();
    for _ in 0..10 {
        let fixture = fixture.clone();
        calls.push(tokio::spawn(async move {
            fixture.invoke("POST", "/work?sleep_ms=3000", b"").await
        }));
    }
    let mut ok = 0;
    let mut unavailable = 0;
    for call in calls {
        let answer = call.await.unwrap();
        match answer.status {
            StatusCode::OK => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(answer.json()["reason"], "TooManyInFlight");
                assert!(answer.headers.contains_key("retry-after"));
                unavailable += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((ok, unavailable), (2, 8));
    assert_eq!(
        fixture
            .plugin
            .max_in_flight
            .load(std::sync::atomic::Ordering::SeqCst),
        2
    );
    // The permits come back once the responses are done.
    let again = fixture.invoke("POST", "/work", b"").await;
    assert_eq!(again.status, StatusCode::OK);
}

#[tokio::test]
async fn oversized_invocation_gets_413_and_never_reaches_the_plugin() {
    let mut p = policy(&[]);
    p.inbound.max_body_bytes = 16;
    let fixture = Fixture::start(&p).await;
    let answer = fixture.invoke("POST", "/commands", &[b'z'; 17]).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.json()["reason"], "BodyTooLarge");
    assert_eq!(fixture.plugin.count(), 0);
    let fits = fixture.invoke("POST", "/commands", &[b'z'; 16]).await;
    assert_eq!(fits.status, StatusCode::OK);
}

#[tokio::test]
async fn plugin_not_listening_gives_502() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = closed.local_addr().unwrap().port();
    drop(closed);
    let fixture = Fixture::start_with(&policy(&[]), |args| args.plugin_port = dead_port).await;
    let answer = fixture.invoke("GET", "/", b"").await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(answer.json()["reason"], "PluginUnavailable");
}

#[tokio::test]
async fn plugin_that_stalls_mid_body_is_cut_off_at_the_deadline() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stalling = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = stalling.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = stalling.accept().await {
            tokio::spawn(async move {
                let mut head = [0u8; 4096];
                let _ = stream.read(&mut head).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nfirst bytes")
                    .await;
                tokio::time::sleep(Duration::from_secs(10)).await;
            });
        }
    });
    let mut p = policy(&[]);
    p.inbound.request_timeout_seconds = 1;
    let fixture = Fixture::start_with(&p, |args| args.plugin_port = port).await;
    let started = Instant::now();
    let request = "GET /stream HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    let answer = raw_exchange(
        fixture.broker().inbound_addr,
        request.as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("first bytes"), "{text}");
    // The deadline is 1 s; the plugin would hold the connection for 10 s.
    assert!(
        took < Duration::from_secs(4),
        "connection held for {took:?}"
    );
}

//! Hostile bytes on real sockets: each is refused without a crash, and the broker
//! keeps serving afterwards.

use std::time::{Duration, Instant};

use http::StatusCode;
use plugin_operator::policy::KV_READ_SCOPE;
use plugin_operator_test_support::broker::{
    Fixture, assert_raw_status, policy, raw_exchange, raw_status,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn still_serves(fixture: &Fixture) {
    let answer = fixture.get("/api/v1/users").await;
    assert_eq!(answer.status, StatusCode::OK, "the broker stopped serving");
}

/// Writes `bytes` to the outbound listener; what came back within 3 s.
async fn to_outbound(fixture: &Fixture, bytes: &[u8]) -> Vec<u8> {
    raw_exchange(
        fixture.broker().outbound_addr,
        bytes,
        Duration::from_secs(3),
    )
    .await
}

async fn fixture() -> Fixture {
    Fixture::start(&policy(&[("users:read", &[]), (KV_READ_SCOPE, &[])])).await
}

#[tokio::test]
async fn garbage_bytes_are_refused() {
    let fixture = fixture().await;
    let outbound = fixture.broker().outbound_addr;
    let inbound = fixture.broker().inbound_addr;
    let garbage: &[&[u8]] = &[
        b"\x00\x01\x02\x03\xff\xfe\r\n\r\n",
        b"HELLO\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /api/v1/users HTTP/1.1\r\nno-colon-here\r\n\r\n",
        b"POST /api/v1/users HTTP/1.1\r\ncontent-length: -5\r\n\r\n",
        b"POST /api/v1/users HTTP/1.1\r\ncontent-length: 5\r\ncontent-length: 7\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        &[
            0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03,
        ],
    ];
    for bytes in garbage {
        for addr in [outbound, inbound] {
            let answer = raw_exchange(addr, bytes, Duration::from_secs(3)).await;
            let status = raw_status(&answer);
            assert!(
                status.is_none_or(|s| (400..500).contains(&s)),
                "{:?} got {:?}",
                String::from_utf8_lossy(bytes),
                String::from_utf8_lossy(&answer)
            );
        }
    }
    assert_eq!(fixture.chat_api.count(), 0);
    assert_eq!(fixture.plugin.count(), 0);
    still_serves(&fixture).await;
}

#[tokio::test]
async fn huge_headers_are_refused_with_431() {
    let fixture = fixture().await;
    let huge = format!(
        "GET /api/v1/users HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(200 * 1024)
    );
    for addr in [
        fixture.broker().outbound_addr,
        fixture.broker().inbound_addr,
    ] {
        let answer = raw_exchange(addr, huge.as_bytes(), Duration::from_secs(3)).await;
        assert_raw_status(&answer, &[431], "huge header");
    }
    let many: String = (0..500).map(|i| format!("x-h{i}: v\r\n")).collect();
    let request = format!("GET /api/v1/users HTTP/1.1\r\nhost: x\r\n{many}\r\n");
    let answer = to_outbound(&fixture, request.as_bytes()).await;
    assert_raw_status(&answer, &[431, 400], "many headers");
    assert_eq!(fixture.chat_api.count(), 0);
    still_serves(&fixture).await;
}

#[tokio::test]
async fn slowloris_connections_are_closed_after_the_header_timeout() {
    let fixture = fixture().await;
    let mut idle = Vec::new();
    for _ in 0..50 {
        let mut stream = TcpStream::connect(fixture.broker().outbound_addr)
            .await
            .unwrap();
        stream
            .write_all(b"GET /api/v1/users HTTP/1.1\r\nhost: x\r\nx-slow: ")
            .await
            .unwrap();
        idle.push(stream);
    }
    // Fifty half-sent requests do not keep others out.
    still_serves(&fixture).await;

    let started = Instant::now();
    for stream in &mut idle {
        let mut buffer = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(6), stream.read_to_end(&mut buffer)).await;
        assert!(read.is_ok(), "a half-sent request kept its connection open");
    }
    // The header read timeout is 1 s in the tests; without it they would stay open.
    assert!(started.elapsed() < Duration::from_secs(6));
    assert_eq!(fixture.chat_api.count(), 1);
    still_serves(&fixture).await;
}

#[tokio::test]
async fn invalid_utf8_and_raw_non_ascii_paths_are_refused() {
    let fixture = fixture().await;
    let requests: &[&[u8]] = &[
        b"GET /api/v1/kv/team-a.weather/\xff\xfe HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        b"GET /api/v1/kv/team-a.weather/\xc3\x28 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        "GET /api/v1/kv/team-a.weather/caf\u{e9} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
            .as_bytes(),
        b"GET /api/v1/kv/team-a.weather/%C3%28 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        b"GET /api/v1/kv/team-a.weather/%ED%A0%80 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    ];
    for request in requests {
        let answer = to_outbound(&fixture, request).await;
        let context = format!("{:?}", String::from_utf8_lossy(request));
        assert_raw_status(&answer, &[400], &context);
    }
    let encoded = fixture.get("/api/v1/kv/team-a.weather/caf%C3%A9").await;
    assert_eq!(encoded.status, StatusCode::OK, "a well-encoded key is fine");
    assert_eq!(fixture.chat_api.count(), 1);
    still_serves(&fixture).await;
}

#[tokio::test]
async fn path_traversal_on_the_wire_is_refused() {
    let fixture = fixture().await;
    for path in [
        "/api/v1/kv/../other",
        "/api/v1/kv/team-a.weather/../../kv/team-b.weather/secret",
        "/api/v1/kv/%2e%2e/other",
        "/api/v1/kv/%2E%2E/other",
        "/api/v1/kv/.%2e/other",
        "/api/v1/kv/team-a.weather%2F..%2Fteam-b.weather/secret",
        "/api/v1/kv/team-a.weather%5C..%5Cteam-b.weather/secret",
        "/api/v1//kv/team-a.weather",
        "/api/v1/kv/team-a.weather\\..\\team-b.weather",
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        let answer = to_outbound(&fixture, request.as_bytes()).await;
        assert_raw_status(&answer, &[400], path);
    }
    assert_eq!(fixture.chat_api.count(), 0);
    still_serves(&fixture).await;
}

#[tokio::test]
async fn absolute_form_and_connect_cannot_redirect_the_broker() {
    let fixture = fixture().await;
    let absolute = b"GET http://attacker.invalid/api/v1/users HTTP/1.1\r\nhost: attacker.invalid\r\nconnection: close\r\n\r\n";
    let answer = to_outbound(&fixture, absolute).await;
    assert_raw_status(&answer, &[200], "absolute form");
    let seen = fixture.chat_api.requests();
    assert_eq!(
        seen.len(),
        1,
        "the call must go to the chat API, nowhere else"
    );
    assert_eq!(seen[0].uri, "/api/v1/users");
    assert_ne!(seen[0].headers["host"], "attacker.invalid");

    let connect = b"CONNECT attacker.invalid:443 HTTP/1.1\r\nhost: attacker.invalid:443\r\n\r\n";
    let answer = to_outbound(&fixture, connect).await;
    assert_raw_status(&answer, &[400, 403], "CONNECT");
    assert_eq!(fixture.chat_api.count(), 1);
    still_serves(&fixture).await;
}

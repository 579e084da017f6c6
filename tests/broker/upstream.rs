//! The chat API side of outbound calls through real sockets: an unreachable or slow
//! chat API, a response body that stalls or never ends, a base path, and the one
//! chat-API connection each plugin connection keeps.

use std::time::Duration;

use http::StatusCode;
use plugin_operator_test_support::broker::{Fixture, policy};

#[tokio::test]
async fn unreachable_chat_api_gives_502_and_slow_one_504() {
    let p = policy(&[("users:read", &[])]);
    let fixture = Fixture::start_with(&p, |args| {
        args.upstream_timeout = Duration::from_millis(300);
    })
    .await;
    let slow = fixture.get("/api/v1/users?sleep_ms=1500").await;
    assert_eq!(slow.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(slow.json()["reason"], "UpstreamTimedOut");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = closed.local_addr().unwrap();
    drop(closed);
    let dead = Fixture::start_with(&p, |args| {
        args.chat_api_url = format!("http://{dead_addr}");
    })
    .await;
    let answer = dead.get("/api/v1/users").await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(answer.json()["reason"], "UpstreamUnavailable");
}

#[tokio::test]
async fn chat_api_base_path_is_put_before_the_plugins_path() {
    let p = policy(&[("users:read", &[])]);
    let fixture = Fixture::start_with(&p, |_| {}).await;
    let base = format!("http://{}/chat/", fixture.chat_api.addr);
    let prefixed = Fixture::start_with(&p, |args| args.chat_api_url = base).await;
    let answer = prefixed.get("/api/v1/users/U1?x=1").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        fixture.chat_api.requests()[0].uri,
        "/chat/api/v1/users/U1?x=1"
    );
}

/// A broker whose header read timeout (which also ends idle connections) is far longer
/// than any gap between calls on one plugin connection, even on a loaded machine.
async fn fixture_keeping_idle_connections() -> Fixture {
    Fixture::start_with(&policy(&[("users:read", &[])]), |args| {
        args.header_read_timeout = Duration::from_secs(60);
    })
    .await
}

/// Sends `paths` one after another over one connection to the outbound listener, as a
/// plugin with a keep-alive client does; returns the statuses.
async fn calls_on_one_connection(fixture: &Fixture, paths: &[&str]) -> Vec<StatusCode> {
    use http_body_util::{BodyExt, Empty};
    let stream = tokio::net::TcpStream::connect(fixture.broker().outbound_addr)
        .await
        .unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let mut statuses = vec![];
    for path in paths {
        sender.ready().await.unwrap();
        let request = http::Request::get(*path)
            .header("host", "broker")
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        statuses.push(response.status());
        response.into_body().collect().await.unwrap();
    }
    statuses
}

#[tokio::test]
async fn calls_on_one_plugin_connection_share_one_chat_api_connection() {
    let fixture = fixture_keeping_idle_connections().await;
    let statuses = calls_on_one_connection(&fixture, &["/api/v1/users"; 3]).await;
    assert_eq!(statuses, [StatusCode::OK; 3]);
    assert_eq!(fixture.chat_api.count(), 3);
    assert_eq!(fixture.chat_api.connection_count(), 1);
}

#[tokio::test]
async fn a_chat_api_connection_closed_between_calls_is_replaced() {
    let fixture = fixture_keeping_idle_connections().await;
    let statuses = calls_on_one_connection(
        &fixture,
        &["/api/v1/users?close=1", "/api/v1/users", "/api/v1/users"],
    )
    .await;
    assert_eq!(statuses, [StatusCode::OK; 3]);
    assert_eq!(fixture.chat_api.count(), 3);
    assert_eq!(fixture.chat_api.connection_count(), 2);
}

/// A chat API on loopback that answers every request with `head` and then `rest`:
/// stalls after a part of the body, or streams chunks forever.
async fn scripted_chat_api(head: &'static str, rest: Rest) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                match rest {
                    Rest::Stall => tokio::time::sleep(Duration::from_secs(60)).await,
                    Rest::Endless => {
                        while stream.write_all(b"5\r\nhello\r\n").await.is_ok() {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            });
        }
    });
    addr
}

#[derive(Clone, Copy)]
enum Rest {
    Stall,
    Endless,
}

/// The plugin gets the head, then its body breaks off at the deadline, and the decision
/// gets a second audit line saying why.
async fn response_body_is_cut_off_at_the_deadline(head: &'static str, rest: Rest) {
    use http_body_util::{BodyExt, Full};
    let chat_api = scripted_chat_api(head, rest).await;
    let fixture = Fixture::start_with(&policy(&[("users:read", &[])]), |args| {
        args.chat_api_url = format!("http://{chat_api}");
        args.upstream_timeout = Duration::from_millis(500);
    })
    .await;
    let request = http::Request::get(format!(
        "http://{}/api/v1/users",
        fixture.broker().outbound_addr
    ))
    .body(Full::new(bytes::Bytes::new()))
    .unwrap();
    let response = fixture.client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = tokio::time::timeout(Duration::from_secs(10), response.into_body().collect())
        .await
        .expect("the body was cut off, not left hanging");
    assert!(body.is_err(), "the body ended as if complete");

    let lines = fixture.audit_lines().await;
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_eq!(lines[0]["outcome"], "allowed");
    assert_eq!(lines[1]["decision_id"], lines[0]["decision_id"]);
    assert_eq!(lines[1]["outcome"], "failed");
    assert_eq!(lines[1]["reason"], "UpstreamBodyTimedOut");
    assert_eq!(lines[1]["status"], 200);
    assert_eq!(lines[1]["scope"], "users:read");
    let metrics = fixture.metrics().await;
    assert!(
        metrics.contains("broker_responses_cut_off_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_response_body_that_stalls_midway_is_cut_off_at_the_deadline() {
    response_body_is_cut_off_at_the_deadline(
        "HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n{\"users\":[",
        Rest::Stall,
    )
    .await;
}

#[tokio::test]
async fn a_response_body_that_never_ends_is_cut_off_at_the_deadline() {
    response_body_is_cut_off_at_the_deadline(
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
        Rest::Endless,
    )
    .await;
}

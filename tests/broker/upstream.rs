//! The chat API side of outbound calls through real sockets: an unreachable or slow
//! chat API, a base path, and the one chat-API connection each plugin connection keeps.

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
    let slow = fixture
        .call("GET", "/api/v1/users?sleep_ms=1500", &[], b"")
        .await;
    assert_eq!(slow.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(slow.json()["reason"], "UpstreamTimedOut");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = closed.local_addr().unwrap();
    drop(closed);
    let dead = Fixture::start_with(&p, |args| {
        args.chat_api_url = format!("http://{dead_addr}");
    })
    .await;
    let answer = dead.call("GET", "/api/v1/users", &[], b"").await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(answer.json()["reason"], "UpstreamUnavailable");
}

#[tokio::test]
async fn chat_api_base_path_is_put_before_the_plugins_path() {
    let p = policy(&[("users:read", &[])]);
    let fixture = Fixture::start_with(&p, |_| {}).await;
    let base = format!("http://{}/chat/", fixture.chat_api.addr);
    let prefixed = Fixture::start_with(&p, |args| args.chat_api_url = base).await;
    let answer = prefixed.call("GET", "/api/v1/users/U1?x=1", &[], b"").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        fixture.chat_api.requests()[0].uri,
        "/chat/api/v1/users/U1?x=1"
    );
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
    let fixture = Fixture::start(&policy(&[("users:read", &[])])).await;
    let statuses = calls_on_one_connection(&fixture, &["/api/v1/users"; 3]).await;
    assert_eq!(statuses, [StatusCode::OK; 3]);
    assert_eq!(fixture.chat_api.count(), 3);
    assert_eq!(
        fixture
            .chat_api
            .connections
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

#[tokio::test]
async fn a_chat_api_connection_closed_between_calls_is_replaced() {
    let fixture = Fixture::start(&policy(&[("users:read", &[])])).await;
    let statuses = calls_on_one_connection(
        &fixture,
        &["/api/v1/users?close=1", "/api/v1/users", "/api/v1/users"],
    )
    .await;
    assert_eq!(statuses, [StatusCode::OK; 3]);
    assert_eq!(fixture.chat_api.count(), 3);
    assert_eq!(
        fixture
            .chat_api
            .connections
            .load(std::sync::atomic::Ordering::SeqCst),
        2
    );
}

//! The outbound listener's cap on open plugin connections, and so on the connections
//! to the chat API: beyond it, new connections wait until one closes.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use plugin_operator_test_support::broker::{Fixture, policy};
use tokio::task::JoinHandle;

const CAP: usize = 8;
const BEYOND: usize = 50;

/// A plugin connection that sent one call and, once answered, stays open and idle.
struct PluginConnection {
    call: JoinHandle<()>,
    driver: JoinHandle<()>,
}

async fn connect_and_call(fixture: &Fixture) -> PluginConnection {
    let stream = tokio::net::TcpStream::connect(fixture.broker().outbound_addr)
        .await
        .unwrap();
    let (sender, connection): (SendRequest<Empty<Bytes>>, _) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let call = tokio::spawn(async move {
        let mut sender = sender;
        sender.ready().await.unwrap();
        let request = http::Request::get("/api/v1/users")
            .header("host", "broker")
            .body(Empty::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.into_body().collect().await.unwrap();
        // The connection stays open (idle, keep-alive) until the test aborts this task.
        std::future::pending::<()>().await;
    });
    PluginConnection { call, driver }
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[tokio::test]
async fn plugin_connections_beyond_the_cap_wait_and_never_reach_the_chat_api() {
    let fixture = Fixture::start_with(&policy(&[("users:read", &[])]), |args| {
        args.max_outbound_connections = u32::try_from(CAP).unwrap();
        args.header_read_timeout = Duration::from_secs(60);
    })
    .await;
    let mut connections = Vec::new();
    for _ in 0..CAP + BEYOND {
        connections.push(connect_and_call(&fixture).await);
    }
    let chat_api = &fixture.chat_api;
    assert!(
        fixture
            .eventually(Duration::from_secs(10), || async {
                chat_api.count() >= CAP
            })
            .await,
        "the calls within the cap were not forwarded"
    );
    // Give the broker time to (wrongly) take on more.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        chat_api.count(),
        CAP,
        "calls beyond the cap reached the chat API"
    );
    assert_eq!(chat_api.open.load(Ordering::SeqCst), CAP);
    assert_eq!(chat_api.max_open.load(Ordering::SeqCst), CAP);
    let metrics = fixture.metrics().await;
    assert_eq!(metric(&metrics, "broker_outbound_connections"), CAP as f64);
    assert!(metric(&metrics, "broker_outbound_connection_cap_reached_total") >= 1.0);

    for connection in connections {
        connection.call.abort();
        connection.driver.abort();
    }
    let fresh = tokio::time::timeout(Duration::from_secs(20), fixture.get("/api/v1/users"))
        .await
        .expect("a fresh connection is served once others closed");
    assert_eq!(fresh.status, StatusCode::OK);
    let metrics = fixture.metrics().await;
    assert!(metric(&metrics, "broker_outbound_connections") <= CAP as f64);
}

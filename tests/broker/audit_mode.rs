//! Audit mode relaxes the scope and channel grants only. Through the real listeners:
//! what it forwards, and the isolation it keeps as Enforce mode does (malformed paths,
//! routes outside the catalog, another plugin's key-value data, body sizes, rate
//! limits). Overrides are in `overrides`.

use http::StatusCode;
use plugin_operator::policy::{EnforcementMode, KV_WRITE_SCOPE};
use plugin_operator_test_support::broker::{Fixture, PolicyBuilder, SELF_SEGMENT, TOKEN};

fn audit() -> PolicyBuilder {
    PolicyBuilder::new().mode(EnforcementMode::Audit)
}

#[tokio::test]
async fn audit_mode_forwards_a_call_outside_the_grants_and_records_the_would_be_denial() {
    let fixture = Fixture::start(&audit().grant("messages:write", &["C1"]).build()).await;
    let plugins_credential = [("authorization", "Bearer mine")];
    for path in [
        "/api/v1/channels/C2/messages",
        "/api/v1/channels/C1/messages",
    ] {
        let answer = fixture.call("POST", path, &plugins_credential, b"{}").await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
    }
    let unlisted = fixture.get("/api/v1/users").await;
    assert_eq!(unlisted.status, StatusCode::OK);
    let seen = fixture.chat_api.requests();
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter()
            .all(|r| r.headers["authorization"] == format!("Bearer {TOKEN}").as_str())
    );
    let lines = fixture.audit_lines().await;
    let summary: Vec<_> = lines
        .iter()
        .map(|l| (l["outcome"].as_str(), l["reason"].as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (Some("audited"), Some("ChannelNotGranted")),
            (Some("allowed"), Some("")),
            (Some("audited"), Some("ScopeNotGranted")),
        ]
    );
}

#[tokio::test]
async fn audit_mode_refuses_routes_outside_the_catalog() {
    let fixture = Fixture::start(&audit().build()).await;
    for (method, path) in [
        ("GET", "/api/v1/admin/tokens"),
        ("DELETE", "/api/v1/channels/C1/messages"),
        ("GET", "/api/v1/kv/team-a.weather/city/extra"),
        ("GET", "/internal/metrics"),
    ] {
        let answer = fixture.call(method, path, &[], b"").await;
        answer.assert_refused(StatusCode::FORBIDDEN, "UnknownRoute", path);
    }
    assert_eq!(fixture.chat_api.count(), 0);
    let lines = fixture.audit_lines().await;
    assert!(lines.iter().all(|l| l["outcome"] == "denied"), "{lines:?}");
}

#[tokio::test]
async fn audit_mode_refuses_another_plugins_key_value_data() {
    // Granted or not, the `{self}` segment must be this plugin's.
    for builder in [
        audit(),
        audit().grant("kv:read", &[]).grant("kv:write", &[]),
    ] {
        let fixture = Fixture::start(&builder.build()).await;
        for (method, path) in [
            ("GET", "/api/v1/kv/team-b.weather"),
            ("GET", "/api/v1/kv/team-b.weather/city"),
            ("PUT", "/api/v1/kv/team-b.weather/city"),
            ("DELETE", "/api/v1/kv/team-a.weather2/city"),
            ("GET", "/api/v1/kv/team-a/city"),
        ] {
            let answer = fixture.call(method, path, &[], b"x").await;
            answer.assert_refused(StatusCode::FORBIDDEN, "OtherPluginData", path);
        }
        assert_eq!(fixture.chat_api.count(), 0);
        let own = format!("/api/v1/kv/{SELF_SEGMENT}/city");
        let answer = fixture.call("PUT", &own, &[], b"x").await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(fixture.chat_api.count(), 1);
    }
}

#[tokio::test]
async fn audit_mode_refuses_malformed_paths() {
    let fixture = Fixture::start(&audit().build()).await;
    for path in [
        "/api/v1/kv/../x",
        "/api/v1/kv/team-a.weather/../../kv/team-b.weather/x",
        "/api/v1/kv/team-b.weather%2fx",
        "/api/v1//users",
    ] {
        let answer = fixture.get(path).await;
        answer.assert_refused(StatusCode::BAD_REQUEST, "MalformedPath", path);
    }
    assert_eq!(fixture.chat_api.count(), 0);
}

#[tokio::test]
async fn audit_mode_enforces_body_sizes() {
    let fixture = Fixture::start(&audit().kv_max_value_bytes(16).build()).await;
    let own = format!("/api/v1/kv/{SELF_SEGMENT}/city");
    let value = fixture.call("PUT", &own, &[], &[b'v'; 17]).await;
    value.assert_refused(StatusCode::PAYLOAD_TOO_LARGE, "BodyTooLarge", "kv value");
    assert_eq!(value.json()["scope"], KV_WRITE_SCOPE);
    // 64 KiB for every call (PolicyBuilder's maxRequestBytes), granted or not.
    let message = fixture
        .post("/api/v1/channels/C1/messages", &vec![b'm'; 64 * 1024 + 1])
        .await;
    message.assert_refused(StatusCode::PAYLOAD_TOO_LARGE, "BodyTooLarge", "message");
    assert_eq!(fixture.chat_api.count(), 0);
    let small = fixture.call("PUT", &own, &[], &[b'v'; 16]).await;
    assert_eq!(small.status, StatusCode::OK);
}

#[tokio::test]
async fn audit_mode_enforces_rate_limits() {
    let policy = audit().rate_limit("users:read", 1, 2).build();
    let fixture = Fixture::start(&policy).await;
    for _ in 0..2 {
        assert_eq!(fixture.get("/api/v1/users").await.status, StatusCode::OK);
    }
    let limited = fixture.get("/api/v1/users/U1").await;
    limited.assert_refused(StatusCode::TOO_MANY_REQUESTS, "RateLimited", "third");
    assert!(limited.headers.contains_key("retry-after"));
    assert_eq!(fixture.chat_api.count(), 2);
}

//! The outbound listener through real sockets: what is forwarded, with which
//! credential, and how each denial looks to the plugin.

use std::time::Duration;

use http::StatusCode;
use plugin_operator::policy::{CatalogRoute, KV_READ_SCOPE, KV_WRITE_SCOPE};
use plugin_operator_test_support::broker::{
    Fixture, SELF_SEGMENT, TOKEN, assert_raw_status, policy, raw_exchange,
};

#[tokio::test]
async fn broker_forwards_allowed_call_with_its_own_credential_never_the_plugins() {
    let fixture = Fixture::start(&policy(&[("messages:write", &[])])).await;
    let answer = fixture
        .call(
            "POST",
            "/api/v1/channels/C1/messages?thread=t1",
            &[
                ("authorization", "Bearer plugin-stolen-token"),
                ("cookie", "session=plugin"),
                ("proxy-authorization", "Basic cGx1Z2luOng="),
                ("x-forwarded-for", "203.0.113.9"),
                ("content-type", "application/json"),
            ],
            br#"{"text":"hi"}"#,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, "upstream ok");
    assert_eq!(answer.headers["x-upstream"], "yes");
    assert!(
        answer.headers.get("keep-alive").is_none(),
        "hop-by-hop header leaked back"
    );

    let seen = fixture.chat_api.requests();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.uri, "/api/v1/channels/C1/messages?thread=t1");
    let authorizations: Vec<_> = request.headers.get_all("authorization").iter().collect();
    assert_eq!(authorizations, [format!("Bearer {TOKEN}").as_str()]);
    for stripped in ["cookie", "proxy-authorization", "x-forwarded-for"] {
        assert!(
            request.headers.get(stripped).is_none(),
            "{stripped} was forwarded"
        );
    }
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(request.body, r#"{"text":"hi"}"#);
    assert!(request.headers.contains_key("x-broker-decision-id"));
}

#[tokio::test]
async fn broker_denies_unlisted_scope_with_a_403_naming_the_scope() {
    let fixture = Fixture::start(&policy(&[("messages:read", &[])])).await;
    let answer = fixture.post("/api/v1/channels/C1/messages", b"{}").await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let body = answer.json();
    assert_eq!(body["error"], "forbidden");
    assert_eq!(body["reason"], "ScopeNotGranted");
    assert_eq!(body["scope"], "messages:write");
    assert!(body["decisionId"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(fixture.chat_api.count(), 0);
}

#[tokio::test]
async fn broker_denies_a_channel_outside_the_grant() {
    let fixture = Fixture::start(&policy(&[("messages:write", &["C1"])])).await;
    let allowed = fixture.post("/api/v1/channels/C1/messages", b"{}").await;
    assert_eq!(allowed.status, StatusCode::OK);
    let denied = fixture.post("/api/v1/channels/C2/messages", b"{}").await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.json()["reason"], "ChannelNotGranted");
    assert_eq!(denied.json()["scope"], "messages:write");
    assert_eq!(fixture.chat_api.count(), 1);
}

#[tokio::test]
async fn broker_denies_another_plugins_key_value_data() {
    let fixture = Fixture::start(&policy(&[(KV_READ_SCOPE, &[]), (KV_WRITE_SCOPE, &[])])).await;
    let own = fixture
        .call(
            "PUT",
            &format!("/api/v1/kv/{SELF_SEGMENT}/city"),
            &[],
            b"Paris",
        )
        .await;
    assert_eq!(own.status, StatusCode::OK);
    for path in [
        "/api/v1/kv/team-b.weather/city",
        "/api/v1/kv/team-a.other/city",
        "/api/v1/kv/team-b.weather",
    ] {
        let answer = fixture.get(path).await;
        answer.assert_refused(StatusCode::FORBIDDEN, "OtherPluginData", path);
        assert_eq!(answer.json()["scope"], KV_READ_SCOPE);
    }
    assert_eq!(fixture.chat_api.count(), 1);
}

#[tokio::test]
async fn broker_denies_routes_missing_from_the_catalog() {
    let fixture = Fixture::start(&policy(&[("messages:read", &[]), ("users:read", &[])])).await;
    for (method, path) in [
        ("GET", "/api/v1/admin/users"),
        ("DELETE", "/api/v1/users/U1"),
        ("GET", "/api/v2/users"),
        ("GET", "/metrics"),
    ] {
        let answer = fixture.call(method, path, &[], b"").await;
        answer.assert_refused(
            StatusCode::FORBIDDEN,
            "UnknownRoute",
            &format!("{method} {path}"),
        );
        assert!(answer.json().get("scope").is_none());
    }
    assert_eq!(fixture.chat_api.count(), 0);
}

#[tokio::test]
async fn broker_refuses_bodies_over_the_limit_with_413() {
    let mut p = policy(&[("messages:write", &[]), (KV_WRITE_SCOPE, &[])]);
    p.max_request_bytes = 1000;
    p.kv_max_value_bytes = Some(10);
    let fixture = Fixture::start(&p).await;

    let big = vec![b'x'; 1001];
    let answer = fixture.post("/api/v1/channels/C1/messages", &big).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.json()["reason"], "BodyTooLarge");
    assert_eq!(answer.json()["scope"], "messages:write");

    let fits = fixture
        .post("/api/v1/channels/C1/messages", &big[..1000])
        .await;
    assert_eq!(fits.status, StatusCode::OK);

    let kv_path = format!("/api/v1/kv/{SELF_SEGMENT}/city");
    let too_long_value = fixture.call("PUT", &kv_path, &[], b"01234567890").await;
    assert_eq!(too_long_value.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_long_value.json()["scope"], KV_WRITE_SCOPE);
    let short_value = fixture.call("PUT", &kv_path, &[], b"0123456789").await;
    assert_eq!(short_value.status, StatusCode::OK);
    assert_eq!(fixture.chat_api.count(), 2);
}

#[tokio::test]
async fn broker_refuses_a_chunked_body_over_the_limit_with_413() {
    let mut p = policy(&[("messages:write", &[])]);
    p.max_request_bytes = 100;
    let fixture = Fixture::start(&p).await;
    let chunk = format!("{:x}\r\n{}\r\n", 150, "y".repeat(150));
    let request = format!(
        "POST /api/v1/channels/C1/messages HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\
         connection: close\r\n\r\n{chunk}0\r\n\r\n"
    );
    let answer = raw_exchange(
        fixture.broker().outbound_addr,
        request.as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert_raw_status(&answer, &[413], "chunked body over the limit");
    assert_eq!(fixture.chat_api.count(), 0);
}

#[tokio::test]
async fn broker_refuses_traversal_and_ambiguous_paths_with_400() {
    let fixture = Fixture::start(&policy(&[(KV_READ_SCOPE, &[])])).await;
    for path in [
        "/api/v1/kv/../other",
        "/api/v1/kv/team-a.weather/../../kv/team-b.weather/x",
        "/api/v1/kv/%2e%2e/other",
        "/api/v1/kv/team-a.weather%2fx",
        "/api/v1/kv//team-a.weather",
        "/api/v1/kv/team-a.weather/",
        "/api/v1/kv/team-a.weather/%FF",
        "/api/v1/kv/team-a.weather/%00",
        "/api/v1/./kv/team-a.weather",
    ] {
        let answer = fixture.get(path).await;
        answer.assert_refused(StatusCode::BAD_REQUEST, "MalformedPath", path);
    }
    assert_eq!(fixture.chat_api.count(), 0);
}

#[tokio::test]
async fn replaced_catalog_decides_instead_of_the_default_one() {
    let mut p = policy(&[("tickets:write", &["C9"])]);
    p.catalog = vec![CatalogRoute {
        method: "POST".into(),
        path: "/v2/rooms/{channel}/tickets".into(),
        scope: "tickets:write".into(),
    }];
    let fixture = Fixture::start(&p).await;
    let allowed = fixture.post("/v2/rooms/C9/tickets", b"{}").await;
    assert_eq!(allowed.status, StatusCode::OK);
    let old_route = fixture.get("/api/v1/channels/C9/messages").await;
    assert_eq!(old_route.json()["reason"], "UnknownRoute");
}

#[tokio::test]
async fn decisions_are_counted_in_metrics_per_scope() {
    let fixture = Fixture::start(&policy(&[("users:read", &[])])).await;
    fixture.get("/api/v1/users").await;
    fixture.post("/api/v1/channels/C1/messages", b"").await;
    let text = fixture.metrics().await;
    assert!(
        text.contains(r#"broker_decisions_total{scope="users:read",outcome="allowed"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"broker_decisions_total{scope="messages:write",outcome="denied"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"broker_decision_duration_seconds_count{scope="users:read"} 1"#));
}

#[tokio::test]
async fn every_decision_gets_one_audit_line_with_its_id_and_never_the_query() {
    let fixture = Fixture::start(&policy(&[("messages:read", &[])])).await;
    let allowed = fixture
        .get("/api/v1/channels/C1/messages?token=secret-in-query")
        .await;
    assert_eq!(allowed.status, StatusCode::OK);
    let denied = fixture.post("/api/v1/channels/C1/messages", b"{}").await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);

    let lines = fixture.audit_lines().await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    let (first, second) = (&lines[0], &lines[1]);
    assert_eq!(first["outcome"], "allowed");
    assert_eq!(first["scope"], "messages:read");
    assert_eq!(first["path"], "/api/v1/channels/C1/messages");
    assert_eq!(first["status"], 200);
    let forwarded_id = &fixture.chat_api.requests()[0].headers["x-broker-decision-id"];
    assert_eq!(first["decision_id"], forwarded_id.to_str().unwrap());
    assert_eq!(second["outcome"], "denied");
    assert_eq!(second["reason"], "ScopeNotGranted");
    assert_eq!(second["scope"], "messages:write");
    assert_eq!(second["status"], 403);
    assert_eq!(second["decision_id"], denied.json()["decisionId"]);
    let text = String::from_utf8(fixture.audit.lock().unwrap().clone()).unwrap();
    assert!(!text.contains("secret-in-query"), "the query was audited");
}

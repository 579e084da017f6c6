//! Headers and a query parameter that would make the chat API take a call for another
//! method or path than the one the broker decided on: refused with 400, never forwarded.

use http::StatusCode;
use plugin_operator::policy::EnforcementMode;
use plugin_operator_test_support::broker::{Fixture, PolicyBuilder, policy};

const OVERRIDE_HEADERS: [&str; 5] = [
    "X-HTTP-Method-Override",
    "X-Method-Override",
    "X-HTTP-Method",
    "X-Original-URL",
    "X-Rewrite-URL",
];

#[tokio::test]
async fn each_override_header_is_refused_and_audited_without_reaching_the_chat_api() {
    let fixture = Fixture::start(&policy(&[("users:read", &[])])).await;
    for header in OVERRIDE_HEADERS {
        let value = if header.ends_with("URL") {
            "/api/v1/kv/other/key"
        } else {
            "DELETE"
        };
        let answer = fixture
            .call("GET", "/api/v1/users", &[(header, value)], b"")
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{header}");
        let body = answer.json();
        assert_eq!(body["reason"], "MethodOrPathOverride", "{header}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(&header.to_ascii_lowercase()), "{message}");
    }
    assert_eq!(
        fixture.chat_api.count(),
        0,
        "an override reached the chat API"
    );

    let lines = fixture.audit_lines().await;
    assert_eq!(lines.len(), OVERRIDE_HEADERS.len());
    for line in lines {
        assert_eq!(line["outcome"], "denied");
        assert_eq!(line["reason"], "MethodOrPathOverride");
        assert_eq!(line["status"], 400);
        assert_eq!(line["scope"], "users:read");
    }

    let plain = fixture.get("/api/v1/users").await;
    assert_eq!(plain.status, StatusCode::OK);
}

#[tokio::test]
async fn a_method_query_parameter_is_refused_in_any_spelling() {
    let fixture = Fixture::start(&policy(&[("users:read", &[])])).await;
    for query in ["_method=DELETE", "limit=5&_method=PUT", "%5Fmethod=DELETE"] {
        let answer = fixture
            .call("GET", &format!("/api/v1/users?{query}"), &[], b"")
            .await;
        answer.assert_refused(StatusCode::BAD_REQUEST, "MethodOrPathOverride", query);
    }
    assert_eq!(fixture.chat_api.count(), 0);
    let other = fixture.get("/api/v1/users?method=x").await;
    assert_eq!(other.status, StatusCode::OK);
}

#[tokio::test]
async fn audit_mode_refuses_an_override_too() {
    let fixture = Fixture::start(&PolicyBuilder::new().mode(EnforcementMode::Audit).build()).await;
    let override_header = [("x-http-method-override", "DELETE")];
    let answer = fixture
        .call(
            "POST",
            "/api/v1/channels/C1/messages",
            &override_header,
            b"{}",
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(fixture.chat_api.count(), 0);
}

//! Claims 3, 6 and 7: the broker allows granted calls with its own credential, refuses
//! the rest, enforces the invocation time limit, and follows grant changes without a
//! restart; Audit mode relaxes the grants, never the isolation between plugins.

use std::time::Duration;

use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::support::{CHAT_API, Invoker, Scene, eventually, exec_json, sample_plugin_image};

/// The sample plugin granted only `messages:read`.
fn read_only_spec() -> Value {
    json!({
        "image": sample_plugin_image(), "port": 8080,
        "permissions": {"chatApi": [{"scope": "messages:read"}]}
    })
}

#[tokio::test]
async fn granted_call_passes_ungranted_is_refused_and_the_chat_api_wants_the_brokers_token() {
    let scene = Scene::new("e2e-grants").await;
    scene.create_ready("reader", read_only_spec()).await;
    let pod = scene.pod("reader").await;

    // The plugin sends a forged bearer token; only the broker's own gets past TokenReview.
    let (status, body) = exec_json(
        &pod,
        "plugin",
        &["call", "GET", "/api/v1/channels/C123/messages"],
    );
    assert_eq!(status, 200, "a granted call goes through: {body}");
    assert!(body["messages"].is_array(), "{body}");

    let (status, body) = exec_json(
        &pod,
        "plugin",
        &[
            "call",
            "POST",
            "/api/v1/channels/C123/messages",
            r#"{"text":"hi"}"#,
        ],
    );
    assert_eq!(status, 403, "an ungranted call is refused: {body}");
    assert_eq!(
        body["scope"], "messages:write",
        "the refusal names the missing scope: {body}"
    );

    let (status, body) = exec_json(
        &pod,
        "plugin",
        &["http", "GET", &format!("{CHAT_API}/api/v1/channels")],
    );
    assert_eq!(
        status, 401,
        "the chat API refuses a call without the broker's credential: {body}"
    );
}

#[tokio::test]
async fn invocation_slower_than_the_time_limit_gets_504() {
    let scene = Scene::new("e2e-timeout").await;
    scene
        .create_ready(
            "slow",
            json!({"image": sample_plugin_image(), "port": 8080, "timeouts": {"requestSeconds": 1}}),
        )
        .await;
    let invoker = Invoker::new(&scene).await;
    let url = |ms: u32| format!("http://plugin-slow.{}.svc/sleep?ms={ms}", scene.ns.name);

    let (status, body) = exec_json(&invoker.pod, "main", &["http", "GET", &url(10)]);
    assert_eq!(status, 200, "a quick invocation passes: {body}");
    let (status, body) = exec_json(&invoker.pod, "main", &["http", "GET", &url(3000)]);
    assert_eq!(status, 504, "a 3 s invocation with a 1 s limit: {body}");
}

#[tokio::test]
async fn changing_the_grants_changes_decisions_without_restarting_the_pod() {
    let scene = Scene::new("e2e-regrant").await;
    scene.create_ready("writer", read_only_spec()).await;
    let pod = scene.pod("writer").await;
    let post = [
        "call",
        "POST",
        "/api/v1/channels/C123/messages",
        r#"{"text":"hello"}"#,
    ];
    let (status, _) = exec_json(&pod, "plugin", &post);
    assert_eq!(status, 403);

    let grant = json!({"spec": {"permissions": {"chatApi": [{"scope": "messages:read"}, {"scope": "messages:write"}]}}});
    scene
        .plugins()
        .patch("writer", &PatchParams::default(), &Patch::Merge(&grant))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    eventually(
        "the new grant to reach the broker",
        Duration::from_secs(120),
        || async {
            let (status, _) = exec_json(&pod, "plugin", &post);
            (status == 201).then_some(())
        },
    )
    .await;
    eprintln!("grant change took effect after {:?}", started.elapsed());

    let now = scene.pod("writer").await;
    assert_eq!(now.metadata.uid, pod.metadata.uid, "the same pod");
    let restarts = |p: &k8s_openapi::api::core::v1::Pod| {
        let status = p.status.clone().unwrap();
        status
            .container_statuses
            .iter()
            .chain(status.init_container_statuses.iter())
            .flatten()
            .map(|c| c.restart_count)
            .sum::<i32>()
    };
    assert_eq!(restarts(&now), restarts(&pod), "no container restarted");
}

#[tokio::test]
async fn audit_mode_relaxes_grants_but_another_plugins_key_value_data_stays_403() {
    let scene = Scene::new("e2e-audit").await;
    let owner_spec = json!({
        "image": sample_plugin_image(), "port": 8080,
        "permissions": {"database": {"access": "ReadWrite"}}
    });
    // Audit mode, nothing granted: every scope of the catalog goes through, audited.
    let auditor_spec = json!({
        "image": sample_plugin_image(), "port": 8080,
        "permissions": {"mode": "Audit"}
    });
    scene.create("owner", owner_spec).await;
    scene.create("auditor", auditor_spec).await;
    scene.ready("owner").await;
    scene.ready("auditor").await;
    let (owner, auditor) = (scene.pod("owner").await, scene.pod("auditor").await);
    let ns = &scene.ns.name;
    let owners_key = format!("/api/v1/kv/{ns}.owner/secret");

    let (status, body) = exec_json(&owner, "plugin", &["call", "PUT", &owners_key, "s3cret"]);
    assert_eq!(status, 200, "the owner writes its own data: {body}");

    let (status, body) = exec_json(
        &auditor,
        "plugin",
        &[
            "call",
            "POST",
            "/api/v1/channels/C123/messages",
            r#"{"text":"hi"}"#,
        ],
    );
    assert_eq!(
        status, 201,
        "Audit mode lets an ungranted scope through: {body}"
    );
    let own_key = format!("/api/v1/kv/{ns}.auditor/notes");
    let (status, body) = exec_json(&auditor, "plugin", &["call", "PUT", &own_key, "mine"]);
    assert_eq!(
        status, 200,
        "and the auditor's own (ungranted) data: {body}"
    );

    for method in ["GET", "PUT", "DELETE"] {
        let (status, body) = exec_json(&auditor, "plugin", &["call", method, &owners_key, "x"]);
        assert_eq!(status, 403, "{method} on another plugin's data: {body}");
        assert_eq!(
            body["reason"], "OtherPluginData",
            "the broker refused it, not the chat API: {body}"
        );
    }
    let (status, body) = exec_json(&auditor, "plugin", &["call", "GET", "/api/v1/admin"]);
    assert_eq!(status, 403, "a route outside the catalog: {body}");
    assert_eq!(body["reason"], "UnknownRoute", "{body}");

    let (status, body) = exec_json(&owner, "plugin", &["call", "GET", &owners_key]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["value"], "s3cret",
        "the owner's data is untouched: {body}"
    );
}

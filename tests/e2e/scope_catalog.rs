//! The ScopeCatalog on real pods: changing the catalog changes a running broker's
//! decisions within seconds, without a restart.

use std::time::Duration;

use plugin_operator::api::sample_scope_catalog;
use plugin_operator_test_support::cluster::TestCatalog;
use serde_json::json;

use crate::support::{CHAT_API, Scene, eventually, exec_json, restarts, sample_plugin_image};

#[tokio::test]
async fn a_changed_catalog_reaches_the_running_broker_without_a_restart() {
    let scene = Scene::without_operator("e2e-catalog").await;
    let catalog = TestCatalog::named(&scene.client, &scene.ns.name);
    let sample = serde_json::to_value(sample_scope_catalog()).unwrap();
    catalog.set(sample.clone()).await;
    let scene = scene
        .with_operator(&["--chat-api-url", CHAT_API, "--scope-catalog", &catalog.name])
        .await;
    scene
        .create_ready(
            "reader",
            json!({"image": sample_plugin_image(), "port": 8080,
                   "permissions": {"chatApi": [{"scope": "messages:read"}]}}),
        )
        .await;
    let pod = scene.pod("reader").await;
    let read = ["call", "GET", "/api/v1/channels/C123/messages"];
    let (status, body) = exec_json(&pod, "plugin", &read);
    assert_eq!(status, 200, "the sample catalog routes the call: {body}");

    // messages:read no longer allows reading messages: only a channel's pins.
    let mut narrowed = sample;
    for scope in narrowed["scopes"].as_array_mut().unwrap() {
        if scope["name"] == "messages:read" {
            scope["routes"] = json!([{"method": "GET", "path": "/api/v1/channels/{channel}/pins"}]);
        }
    }
    catalog.set(narrowed).await;
    let started = std::time::Instant::now();
    let body = eventually(
        "the changed catalog to reach the running broker",
        Duration::from_secs(120),
        || async {
            let (status, body) = exec_json(&pod, "plugin", &read);
            (status == 403).then_some(body)
        },
    )
    .await;
    eprintln!(
        "the catalog change took effect after {:?}",
        started.elapsed()
    );
    assert_eq!(body["reason"], "UnknownRoute", "{body}");
    let now = scene.pod("reader").await;
    assert_eq!(now.metadata.uid, pod.metadata.uid, "the same pod");
    for container in ["plugin", "broker"] {
        let (count, _) = restarts(&scene.client, &now, container).await;
        assert_eq!(count, 0, "{container} did not restart");
    }
}

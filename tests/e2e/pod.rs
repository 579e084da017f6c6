//! The pod around the plugin: the broker serves before the plugin starts (a native
//! sidecar whose postStart hook waits for its /readyz), and a /scratch filled beyond its
//! size gets the pod evicted and the Plugin says so.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::json;

use crate::support::{Scene, eventually, exec, exec_json, sample_plugin_image};

#[tokio::test]
async fn the_plugins_first_call_at_start_finds_its_broker_serving() {
    let scene = Scene::new("e2e-first-call").await;
    let spec = json!({
        "image": sample_plugin_image(), "port": 8080,
        "env": [{"name": "CALL_AT_START", "value": "GET /api/v1/channels/C123/messages"}],
        "permissions": {"chatApi": [{"scope": "messages:read"}]}
    });
    scene.create_ready("early", spec).await;
    let pod = scene.pod("early").await;

    // The plugin made its call before it listened, so before any probe of its own; the
    // answer it got is what it serves at /call-at-start.
    let (status, answer) = exec_json(
        &pod,
        "plugin",
        &["http", "GET", "http://127.0.0.1:8080/call-at-start"],
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["status"], 200,
        "the first call at start went through the broker: {answer}"
    );
    assert!(answer["body"]["messages"].is_array(), "{answer}");
}

#[tokio::test]
async fn scratch_filled_beyond_its_size_gets_the_pod_evicted_and_the_plugin_says_so() {
    let scene = Scene::new("e2e-scratch").await;
    let spec = json!({
        "image": sample_plugin_image(), "port": 8080,
        "permissions": {"filesystem": {"scratch": {"sizeLimit": "4Mi"}}}
    });
    scene.create_ready("filler", spec).await;
    let pod = scene.pod("filler").await;

    let (done, out) = exec(&pod, "plugin", &["fill", "/scratch", "16"]);
    assert!(done && out.contains("\"written_mib\":16"), "{out}");
    let started = std::time::Instant::now();

    let message = scene.degraded("filler", "Evicted").await;
    eprintln!("evicted and reported after {:?}", started.elapsed());
    assert!(
        message.contains("EmptyDir volume \"scratch\"")
            && message.contains("permissions.filesystem.scratch.sizeLimit"),
        "{message}"
    );
    let pods: Api<Pod> = Api::namespaced(scene.client.clone(), &scene.ns.name);
    let evicted = pods
        .get(pod.metadata.name.as_deref().unwrap())
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(evicted.phase.as_deref(), Some("Failed"));
    assert_eq!(evicted.reason.as_deref(), Some("Evicted"));

    // A replacement serves again; the eviction stays on Degraded until the pod is gone.
    scene.ready("filler").await;
    pods.delete(pod.metadata.name.as_deref().unwrap(), &Default::default())
        .await
        .unwrap();
    eventually(
        "Degraded to clear once the evicted pod is deleted",
        Duration::from_secs(60),
        || async {
            let plugin = scene.plugins().get("filler").await.ok()?;
            let degraded = plugin
                .status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Degraded")?;
            (degraded.status == "False").then_some(())
        },
    )
    .await;
}

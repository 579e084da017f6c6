//! Claim 5: what goes wrong in the pods shows on the Plugin's status, with the reason.

use serde_json::{Value, json};

use crate::support::{Scene, sample_plugin_image};

/// Creates the Plugin `name` from `spec` in a namespace of its own and waits for its
/// Degraded condition with `reason`; returns the condition's message.
async fn degraded_message(prefix: &str, name: &str, spec: Value, reason: &str) -> String {
    let scene = Scene::new(prefix).await;
    scene.create(name, spec).await;
    scene.degraded(name, reason).await
}

#[tokio::test]
async fn plugin_over_its_memory_limit_shows_oom_killed() {
    let spec = json!({
        "image": sample_plugin_image(), "port": 8080,
        "resources": {"limits": {"memory": "32Mi"}},
        "env": [{"name": "ALLOCATE_MB", "value": "256"}]
    });
    let message = degraded_message("e2e-oom", "hungry", spec, "OOMKilled").await;
    assert!(message.contains("memory limit"), "{message}");
}

#[tokio::test]
async fn missing_image_shows_the_image_pull_reason() {
    let spec = json!({"image": "localhost/no-such-plugin:1", "port": 8080});
    let message = degraded_message("e2e-pull", "ghost", spec, "ImagePullBackOff").await;
    assert!(message.contains("localhost/no-such-plugin:1"), "{message}");
}

#[tokio::test]
async fn crashing_plugin_shows_crash_loop_back_off() {
    let spec = json!({
        "image": sample_plugin_image(), "port": 8080,
        "env": [{"name": "EXIT_AT_START", "value": "3"}]
    });
    let message = degraded_message("e2e-crash", "crashy", spec, "CrashLoopBackOff").await;
    assert!(message.contains("exit code 3"), "{message}");
}

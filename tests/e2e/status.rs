//! Claim 5: what goes wrong in the pods shows on the Plugin's status, with the reason.

use serde_json::json;

use crate::support::{SAMPLE_PLUGIN_IMAGE, Scene};

#[tokio::test]
async fn plugin_over_its_memory_limit_shows_oom_killed() {
    let scene = Scene::new("e2e-oom").await;
    scene
        .create(
            "hungry",
            json!({
                "image": SAMPLE_PLUGIN_IMAGE, "port": 8080,
                "resources": {"limits": {"memory": "32Mi"}},
                "env": [{"name": "ALLOCATE_MB", "value": "256"}]
            }),
        )
        .await;
    let message = scene.degraded("hungry", "OOMKilled").await;
    assert!(message.contains("memory limit"), "{message}");
}

#[tokio::test]
async fn missing_image_shows_the_image_pull_reason() {
    let scene = Scene::new("e2e-pull").await;
    scene
        .create(
            "ghost",
            json!({"image": "localhost/no-such-plugin:1", "port": 8080}),
        )
        .await;
    let message = scene.degraded("ghost", "ImagePullBackOff").await;
    assert!(message.contains("localhost/no-such-plugin:1"), "{message}");
}

#[tokio::test]
async fn crashing_plugin_shows_crash_loop_back_off() {
    let scene = Scene::new("e2e-crash").await;
    scene
        .create("crashy", json!({"image": SAMPLE_PLUGIN_IMAGE, "port": 8080, "env": [{"name": "EXIT_AT_START", "value": "3"}]}))
        .await;
    let message = scene.degraded("crashy", "CrashLoopBackOff").await;
    assert!(message.contains("exit code 3"), "{message}");
}

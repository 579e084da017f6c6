//! Claim 2: the plugin container cannot read the broker's credential and has no
//! ServiceAccount token.

use crate::support::{Scene, exec, sample_spec};

#[tokio::test]
async fn plugin_container_cannot_read_the_brokers_credential_or_any_token() {
    let scene = Scene::new("e2e-cred").await;
    scene.create_ready("hello", sample_spec()).await;
    let pod = scene.pod("hello").await;

    // The plugin's own binary works in its container: the attempts below are real.
    let (can_read_own, output) = exec(&pod, "plugin", &["read-file", "/sample-plugin"]);
    assert!(can_read_own, "the probe itself must work: {output}");

    for path in [
        "/var/run/secrets/chat-api/token",
        "/var/run/secrets/kubernetes.io/serviceaccount/token",
        "/proc/1/root/var/run/secrets/chat-api/token",
    ] {
        let (read, output) = exec(&pod, "plugin", &["read-file", path]);
        assert!(!read, "the plugin container read {path}: {output}");
    }

    // The broker does hold the credential: it is ready only once the token is loaded.
    let statuses = pod.status.unwrap().init_container_statuses.unwrap();
    assert!(statuses[0].ready, "the broker loaded its token");
    let spec = pod.spec.unwrap();
    let plugin = &spec.containers[0];
    assert!(
        plugin
            .volume_mounts
            .iter()
            .flatten()
            .all(|m| !m.mount_path.contains("secrets"))
    );
}

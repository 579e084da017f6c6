//! Claim 4: NetworkPolicy. The plugin's port is reachable only through the broker;
//! another plugin's pod cannot reach it; undeclared in-cluster egress is blocked; a
//! declared CIDR is reachable.

use serde_json::json;

use crate::support::{
    Invoker, Scene, TestNamespace, exec, helper_pod, ip, sample_plugin_image, sample_spec,
};

#[tokio::test]
async fn network_policy_confines_plugin_traffic() {
    let scene = Scene::new("e2e-net").await;
    let outside = TestNamespace::new(&scene.client, "e2e-net-outside", &[]).await;
    let (client, outside_ns) = (&scene.client, &outside.name);
    let helper =
        |role| async move { helper_pod(client, outside_ns, role, &[("role", role)]).await };
    let declared = helper("declared").await;
    let undeclared = helper("undeclared").await;
    let invoker = Invoker::new(&scene).await;

    let guarded_spec = json!({
        "image": sample_plugin_image(), "port": 8080,
        "permissions": {"network": {"egress": [{"cidr": format!("{}/32", ip(&declared)), "ports": [8080]}]}}
    });
    scene.create("guarded", guarded_spec).await;
    scene.create("neighbour", sample_spec()).await;
    scene.ready("guarded").await;
    scene.ready("neighbour").await;
    let guarded = scene.pod("guarded").await;
    let neighbour = scene.pod("neighbour").await;
    let at = |pod, port: u16| format!("{}:{port}", ip(pod));

    // The plugin really serves on 8080 (from inside its own pod).
    let (ok, out) = exec(&guarded, "plugin", &["connect", "127.0.0.1:8080"]);
    assert!(ok, "the plugin listens on 8080: {out}");
    // The chat system reaches the broker's inbound port, never the plugin's own.
    let (ok, out) = exec(&invoker.pod, "main", &["connect", &at(&guarded, 9080)]);
    assert!(ok, "the invoker reaches the broker's inbound port: {out}");
    let (ok, out) = exec(&invoker.pod, "main", &["connect", &at(&guarded, 8080)]);
    assert!(!ok, "the invoker reached the plugin's port directly: {out}");
    // Another plugin's pod reaches neither.
    let (ok, out) = exec(&neighbour, "plugin", &["connect", &at(&guarded, 9080)]);
    assert!(!ok, "another plugin reached the broker: {out}");
    let (ok, out) = exec(&neighbour, "plugin", &["connect", &at(&guarded, 8080)]);
    assert!(!ok, "another plugin reached the plugin: {out}");
    // Egress: the declared address is reachable, an undeclared one is not.
    let (ok, out) = exec(&guarded, "plugin", &["connect", &at(&declared, 8080)]);
    assert!(ok, "the declared CIDR is reachable: {out}");
    let (ok, out) = exec(&guarded, "plugin", &["connect", &at(&undeclared, 8080)]);
    assert!(!ok, "an undeclared in-cluster address was reachable: {out}");
    // Without any policy in its way, the undeclared pod is reachable: the block above is the policy's.
    let (ok, out) = exec(&invoker.pod, "main", &["connect", &at(&undeclared, 8080)]);
    assert!(ok, "control: the undeclared pod serves: {out}");
}

//! The shipped ValidatingAdmissionPolicy (charts/plugin-operator/files/
//! plugin-policy-admission.yaml) on the real API server: one Plugin per bound of a
//! PluginPolicy, each refused with a message naming the excess and what the policy
//! allows. The policy and its binding are installed under a name of this test's own and
//! bound to its namespace only, so nobody else's Plugins are refused meanwhile.

use std::time::Duration;

use kube::api::Api;
use plugin_operator::api::Plugin;
use plugin_operator_test_support::cluster::{
    ShippedAdmission, TEST_POLICY_LABEL, TestNamespace, TestPolicy, client, dry_run, eventually,
    install_crd, together,
};
use serde_json::{Value, json};

/// The local cluster's ranges (cluster/up.sh): pods, services, the API server.
const POD_RANGE: &str = "10.244.0.0/16";
const SERVICE_RANGE: &str = "10.96.0.0/12";
const API_SERVER: &str = "10.201.0.1/32";

fn digest_image(repository: &str) -> String {
    format!("{repository}@sha256:{}", "a".repeat(64))
}

/// A Plugin within the test's policy, with `change` merged into its spec.
fn plugin(name: &str, change: Value) -> Plugin {
    let mut spec = json!({"image": digest_image("registry.example/team-a/weather"), "port": 8080});
    spec.as_object_mut()
        .unwrap()
        .extend(change.as_object().unwrap().clone());
    Plugin::new(name, serde_json::from_value(spec).unwrap())
}

fn egress(cidr: &str) -> Value {
    json!({"permissions": {"network": {"egress": [{"cidr": cidr}]}}})
}

fn env_from(kind: &str, name: &str) -> Value {
    json!({"env": [{"name": "VALUE", "valueFrom": {kind: {"name": name, "key": "k"}}}]})
}

#[tokio::test]
async fn each_bound_of_a_plugin_policy_is_refused_at_admission_with_its_message() {
    let _cluster = together().await;
    let client = client().await;
    install_crd(&client).await;
    // Only the test's own policy selects the namespace: the API server names the first
    // policy that refuses, and this test wants it to be that one.
    let ns = TestNamespace::new(
        &client,
        "op-policy-admission",
        &[(TEST_POLICY_LABEL.0, "none")],
    )
    .await;
    let policy = TestPolicy::apply(
        &client,
        &ns.name,
        json!({
            "chatApi": [{"scope": "messages:read"}, {"scope": "messages:write", "channels": ["C1"]}],
            "database": {"access": "ReadOnly", "maxValueBytes": 1024},
            "egress": {"allowed": ["0.0.0.0/0"], "denied": [
                "127.0.0.0/8", "169.254.0.0/16", POD_RANGE, SERVICE_RANGE, API_SERVER
            ]},
            "images": {"repositories": ["registry.example/team-a/"], "requireDigest": true},
            "maxResources": {"cpu": "1", "memory": "256Mi", "ephemeralStorage": "256Mi"},
            "maxReplicas": 2,
            "envSources": {"secrets": {"names": ["shared"]}, "configMaps": {"names": ["settings"]}}
        }),
    )
    .await;
    let _admission = ShippedAdmission::install(&client, &ns.name).await;
    let plugins: Api<Plugin> = ns.api();
    let allows = format!("PluginPolicy {} allows", policy.name);
    let cases: Vec<(&str, Value, String)> = vec![
        (
            "scope",
            json!({"permissions": {"chatApi": [{"scope": "files:write"}]}}),
            format!(
                "permissions.chatApi asks for files:write: {allows} the scopes [messages:read, messages:write]"
            ),
        ),
        (
            "channels",
            json!({"permissions": {"chatApi": [{"scope": "messages:write"}]}}),
            format!(
                "permissions.chatApi asks for messages:write beyond the allowed channels: {allows} messages:write on [C1]"
            ),
        ),
        (
            "audit",
            json!({"permissions": {"mode": "Audit"}}),
            format!("permissions.mode asks for Audit: {allows} only Enforce"),
        ),
        (
            "kv-write",
            json!({"permissions": {"database": {"access": "ReadWrite"}}}),
            format!("permissions.database.access asks for ReadWrite: {allows} ReadOnly"),
        ),
        (
            "kv-size",
            json!({"permissions": {"database": {"access": "ReadOnly", "maxValueBytes": 4096}}}),
            format!("permissions.database.maxValueBytes asks for 4096: {allows} at most 1024"),
        ),
        (
            "loopback",
            egress("127.0.0.1/32"),
            "permissions.network.egress asks for 127.0.0.1/32, which overlaps a denied range"
                .into(),
        ),
        (
            "link-local",
            egress("169.254.169.254/32"),
            "permissions.network.egress asks for 169.254.169.254/32, which overlaps a denied range"
                .into(),
        ),
        (
            "pods",
            egress("10.244.1.0/24"),
            "permissions.network.egress asks for 10.244.1.0/24, which overlaps a denied range"
                .into(),
        ),
        (
            "services",
            egress("10.96.0.0/24"),
            "permissions.network.egress asks for 10.96.0.0/24, which overlaps a denied range"
                .into(),
        ),
        (
            "api-server",
            egress("10.201.0.1/32"),
            "permissions.network.egress asks for 10.201.0.1/32, which overlaps a denied range"
                .into(),
        ),
        (
            "half-internet",
            egress("0.0.0.0/1"),
            format!(
                "permissions.network.egress asks for 0.0.0.0/1, which overlaps a denied range: {allows} nothing that overlaps [127.0.0.0/8"
            ),
        ),
        (
            "ipv6",
            egress("2001:db8::/32"),
            format!(
                "permissions.network.egress asks for 2001:db8::/32: {allows} egress within [0.0.0.0/0]"
            ),
        ),
        (
            "registry",
            json!({"image": digest_image("registry.example/weather")}),
            format!(
                "image {}: {allows} images from [registry.example/team-a/]",
                digest_image("registry.example/weather")
            ),
        ),
        (
            "digest",
            json!({"image": "registry.example/team-a/weather:1"}),
            format!(
                "image registry.example/team-a/weather:1: {allows} only images pinned by digest"
            ),
        ),
        (
            "replicas",
            json!({"replicas": 3}),
            format!("replicas 3: {allows} at most 2"),
        ),
        (
            "cpu",
            json!({"resources": {"limits": {"cpu": "2"}}}),
            format!("resources: the plugin container asks for more cpu than {allows} at most 1"),
        ),
        (
            "memory",
            json!({"resources": {"requests": {"memory": "512Mi"}}}),
            format!(
                "resources: the plugin container asks for more memory than {allows} at most 256Mi"
            ),
        ),
        (
            "ephemeral-storage",
            json!({"resources": {"limits": {"ephemeralStorage": "1Gi"}}}),
            format!(
                "resources: the plugin container asks for more ephemeralStorage than {allows} at most 256Mi"
            ),
        ),
        (
            "secret",
            env_from("secretKeyRef", "database-root"),
            format!(
                "env[].valueFrom names Secrets [database-root]: {allows} Secrets named [shared]"
            ),
        ),
        (
            "config-map",
            env_from("configMapKeyRef", "other"),
            format!(
                "env[].valueFrom names ConfigMaps [other]: {allows} ConfigMaps named [settings]"
            ),
        ),
    ];
    assert!(cases.len() >= 15);
    // The API server takes up a new policy, binding and parameter within seconds.
    let (first, change, message) = &cases[0];
    let first_plugin = plugin(first, change.clone());
    eventually(
        "the admission policy to refuse",
        Duration::from_secs(30),
        || async {
            let error = plugins.create(&dry_run(), &first_plugin).await.err()?;
            error.to_string().contains(message.as_str()).then_some(())
        },
    )
    .await;
    for (name, change, message) in &cases {
        let error = plugins
            .create(&dry_run(), &plugin(name, change.clone()))
            .await
            .expect_err(&format!("the {name} case must be refused"));
        let text = error.to_string();
        assert!(
            text.contains(message.as_str()),
            "{name}: {text}\nexpected: {message}"
        );
    }
    let within = plugin(
        "within",
        json!({
            "permissions": {"chatApi": [{"scope": "messages:read"}, {"scope": "messages:write", "channels": ["C1"]}],
                            "database": {"access": "ReadOnly", "maxValueBytes": 1024},
                            "network": {"egress": [{"cidr": "203.0.113.0/24"}]}},
            "replicas": 2,
            "resources": {"limits": {"cpu": "1", "memory": "256Mi"}},
            "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "shared", "key": "k"}}}]
        }),
    );
    let admitted = plugins.create(&dry_run(), &within).await;
    assert!(
        admitted.is_ok(),
        "a Plugin within its policy is admitted: {admitted:?}"
    );
}

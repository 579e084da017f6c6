//! PluginPolicies on real pods: narrowing a policy changes the running broker's
//! decisions without a restart; a user who may only create Plugins cannot get a Secret
//! it may not read into a plugin pod; a forced RuntimeClass is on the pod and the pod
//! runs.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use plugin_operator_test_support::cluster::{
    ShippedAdmission, TEST_POLICY_LABEL, TestPolicy, clean_up_from_drop, kubectl_with_input,
    random_suffix,
};
use serde_json::json;

use crate::support::{
    Scene, TestNamespace, eventually, exec_json, kubectl, sample_plugin_image, world,
};

fn restarts(pod: &Pod) -> i32 {
    let status = pod.status.clone().unwrap();
    status
        .container_statuses
        .iter()
        .chain(status.init_container_statuses.iter())
        .flatten()
        .map(|c| c.restart_count)
        .sum()
}

#[tokio::test]
async fn narrowing_a_policy_changes_the_running_brokers_decisions_without_a_restart() {
    let scene = Scene::new("e2e-policy-narrow").await;
    let both = json!({"chatApi": [{"scope": "messages:read"}, {"scope": "messages:write"}]});
    let policy = TestPolicy::apply(&scene.client, &scene.ns.name, both).await;
    scene
        .create_ready(
            "writer",
            json!({
                "image": sample_plugin_image(), "port": 8080,
                "permissions": {"chatApi": [{"scope": "messages:read"}, {"scope": "messages:write"}]}
            }),
        )
        .await;
    let pod = scene.pod("writer").await;
    let post = [
        "call",
        "POST",
        "/api/v1/channels/C123/messages",
        r#"{"text":"hello"}"#,
    ];
    let (status, body) = exec_json(&pod, "plugin", &post);
    assert_eq!(status, 201, "allowed by the policy: {body}");

    policy
        .set(
            &scene.ns.name,
            json!({"chatApi": [{"scope": "messages:read"}]}),
        )
        .await;
    let started = std::time::Instant::now();
    let body = eventually(
        "the narrowed policy to reach the running broker",
        Duration::from_secs(120),
        || async {
            let (status, body) = exec_json(&pod, "plugin", &post);
            (status == 403).then_some(body)
        },
    )
    .await;
    eprintln!("narrowing took effect after {:?}", started.elapsed());
    assert_eq!(body["scope"], "messages:write", "{body}");
    let (status, body) = exec_json(
        &pod,
        "plugin",
        &["call", "GET", "/api/v1/channels/C123/messages"],
    );
    assert_eq!(status, 200, "what is still allowed still works: {body}");
    let message = scene.degraded("writer", "PermissionsDenied").await;
    assert!(message.contains("messages:write"), "{message}");

    let now = scene.pod("writer").await;
    assert_eq!(now.metadata.uid, pod.metadata.uid, "the same pod");
    assert_eq!(restarts(&now), restarts(&pod), "no container restarted");
}

#[tokio::test]
async fn a_user_who_may_only_create_plugins_cannot_put_an_unlisted_secret_into_a_pod() {
    let client = world().await;
    // Only the test's own policy selects the namespace.
    let ns = TestNamespace::new(
        &client,
        "e2e-policy-deputy",
        &[
            ("pod-security.kubernetes.io/enforce", "restricted"),
            (TEST_POLICY_LABEL.0, "none"),
        ],
    )
    .await;
    let _policy = TestPolicy::apply(
        &client,
        &ns.name,
        json!({"envSources": {"secrets": {"names": ["weather-api-key"]}}}),
    )
    .await;
    let _admission = ShippedAdmission::install(&client, &ns.name).await;
    let user = "plugin-author";
    let setup = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "database-root"},
         "stringData": {"password": "root"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "plugins-only"},
         "rules": [{"apiGroups": ["plugins.chat.dev"], "resources": ["plugins"],
                    "verbs": ["get", "list", "create", "patch", "update"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "plugins-only"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "plugins-only"},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}
    ]});
    let (ok, out) = kubectl_with_input(&["apply", "-n", &ns.name], &setup.to_string());
    assert!(ok, "{out}");
    let cannot_read = kubectl()
        .args([
            "get",
            "secret",
            "database-root",
            "-n",
            &ns.name,
            "--as",
            user,
        ])
        .output()
        .unwrap();
    assert!(
        !cannot_read.status.success(),
        "the author may not read the Secret"
    );

    let plugin = |secret: &str| {
        json!({"apiVersion": "plugins.chat.dev/v1alpha1", "kind": "Plugin",
               "metadata": {"name": format!("uses-{secret}")},
               "spec": {"image": sample_plugin_image(), "port": 8080,
                        "env": [{"name": "KEY", "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}}}]}})
        .to_string()
    };
    let create_as_author = |manifest: String, dry_run: bool| {
        let mut args = vec!["create", "-n", &ns.name, "--as", user];
        if dry_run {
            args.push("--dry-run=server");
        }
        kubectl_with_input(&args, &manifest)
    };
    // A new binding is in force once the API server's admission informers have seen it,
    // usually within a second: probe with server-side dry runs, which change nothing, so
    // a probe made before then cannot leave a Plugin behind.
    eventually(
        "the admission binding to be in force",
        Duration::from_secs(30),
        || async {
            let (ok, _) = create_as_author(plugin("database-root"), true);
            (!ok).then_some(())
        },
    )
    .await;
    let (ok, refusal) = create_as_author(plugin("database-root"), false);
    assert!(!ok, "the unlisted Secret is refused: {refusal}");
    assert!(
        refusal.contains("env[].valueFrom names Secrets [database-root]"),
        "{refusal}"
    );
    assert!(
        refusal.contains("Secrets named [weather-api-key]"),
        "{refusal}"
    );
    let (ok, out) = create_as_author(plugin("weather-api-key"), false);
    assert!(ok, "a listed Secret is admitted for the same author: {out}");
    let plugins: Api<plugin_operator::api::Plugin> = ns.api();
    assert!(
        plugins
            .get_opt("uses-database-root")
            .await
            .unwrap()
            .is_none()
    );
}

/// A RuntimeClass whose handler the node's containerd has; deleted when dropped.
struct TestRuntimeClass(String);

impl Drop for TestRuntimeClass {
    fn drop(&mut self) {
        let name = self.0.clone();
        clean_up_from_drop(|client| async move {
            let _ = Api::<RuntimeClass>::all(client)
                .delete(&name, &DeleteParams::default())
                .await;
        });
    }
}

#[tokio::test]
async fn a_forced_runtime_class_is_on_the_pod_and_the_pod_runs() {
    let scene = Scene::new("e2e-policy-runtime").await;
    let name = format!("e2e-runc-{}", random_suffix());
    let class: RuntimeClass = serde_json::from_value(json!({
        "metadata": {"name": name}, "handler": "runc"
    }))
    .unwrap();
    Api::<RuntimeClass>::all(scene.client.clone())
        .create(&PostParams::default(), &class)
        .await
        .unwrap();
    let _class = TestRuntimeClass(name.clone());
    let _policy = TestPolicy::apply(
        &scene.client,
        &scene.ns.name,
        json!({"runtimeClassName": name}),
    )
    .await;
    let plugin = scene
        .create_ready(
            "boxed",
            json!({"image": sample_plugin_image(), "port": 8080}),
        )
        .await;
    let status = plugin.status.unwrap().permissions.unwrap();
    assert_eq!(status.runtime_class_name.as_deref(), Some(name.as_str()));
    let pod = scene.pod("boxed").await;
    assert_eq!(
        pod.spec
            .as_ref()
            .and_then(|s| s.runtime_class_name.as_deref()),
        Some(name.as_str()),
        "pod {}",
        pod.name_any()
    );
}

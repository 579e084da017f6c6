//! End-to-end support: real pods on the local node, the sample chat API, one operator
//! process per test watching that test's namespace, and `kubectl exec` into pods.

use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use plugin_operator::api::{Plugin, PluginSpec};
use serde_json::Value;

pub use plugin_operator_test_support::cluster::{
    NamespacedObject, Operator, TestNamespace, client, eventually, install_crd, kubectl, repo_path,
    test_image,
};

/// The sample plugin's image (`localhost/sample-plugin:dev` unless `TEST_IMAGE_TAG` is set).
pub fn sample_plugin_image() -> String {
    test_image("sample-plugin")
}
/// The sample plugin with nothing granted: the spec most tests start from.
pub fn sample_spec() -> Value {
    serde_json::json!({"image": sample_plugin_image(), "port": 8080})
}

pub const CHAT_API: &str = "http://chat-api.chat-system.svc:8080";

/// The operator binary cargo built for these tests.
const OPERATOR: &str = env!("CARGO_BIN_EXE_plugin-operator");

/// Once per test binary: the CRD and the sample chat API, ready.
pub async fn world() -> Client {
    static CHAT_API_DEPLOYED: OnceLock<()> = OnceLock::new();
    let client = client().await;
    install_crd(&client).await;
    CHAT_API_DEPLOYED.get_or_init(|| {
        let manifest = repo_path("deploy/examples/sample-chat-api.yaml");
        let out = kubectl()
            .args(["apply", "--server-side", "-f"])
            .arg(&manifest)
            .output()
            .expect("kubectl runs");
        assert!(
            out.status.success(),
            "deploying the sample chat API failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "chat-system");
    eventually(
        "the sample chat API to be ready (is localhost/sample-chat-api:dev loaded? `make images`)",
        Duration::from_secs(120),
        || async {
            let status = deployments.get("chat-api").await.ok()?.status?;
            (status.ready_replicas == Some(1)).then_some(())
        },
    )
    .await;
    client
}

/// One test's world: a restricted namespace and an operator watching it.
pub struct Scene {
    pub client: Client,
    pub ns: TestNamespace,
    /// Runs for as long as the scene; stopped when dropped.
    pub _operator: Operator,
}

/// A scene's namespace before its operator starts, for operator flags that name
/// something in that namespace (a stand-in chat API).
pub struct SceneWithoutOperator {
    pub client: Client,
    pub ns: TestNamespace,
}

impl SceneWithoutOperator {
    /// Starts the operator with `extra` flags besides the invoker's.
    pub async fn with_operator(self, extra: &[&str]) -> Scene {
        let mut args = vec![
            "--invoker-namespace",
            "chat-system",
            "--invoker-selector",
            "plugins.chat.dev/invoker=true",
        ];
        args.extend_from_slice(extra);
        let operator = Operator::start(OPERATOR, &self.ns.name, &args).await;
        Scene {
            client: self.client,
            ns: self.ns,
            _operator: operator,
        }
    }
}

impl Scene {
    pub async fn new(prefix: &str) -> Self {
        let scene = Self::without_operator(prefix).await;
        scene.with_operator(&["--chat-api-url", CHAT_API]).await
    }

    /// A restricted namespace with no operator yet: see [`Scene::with_operator`].
    pub async fn without_operator(prefix: &str) -> SceneWithoutOperator {
        let client = world().await;
        let ns = TestNamespace::new(
            &client,
            prefix,
            &[("pod-security.kubernetes.io/enforce", "restricted")],
        )
        .await;
        SceneWithoutOperator { client, ns }
    }

    pub fn plugins(&self) -> Api<Plugin> {
        Api::namespaced(self.client.clone(), &self.ns.name)
    }

    pub async fn create(&self, name: &str, spec: Value) -> Plugin {
        let spec: PluginSpec = serde_json::from_value(spec).expect("a valid spec");
        self.plugins()
            .create(&PostParams::default(), &Plugin::new(name, spec))
            .await
            .expect("the Plugin is accepted")
    }

    /// Creates the Plugin `name` from `spec` and waits for it to be Ready.
    pub async fn create_ready(&self, name: &str, spec: Value) -> Plugin {
        self.create(name, spec).await;
        self.ready(name).await
    }

    /// Waits for the Plugin's Ready condition to be True at its current generation.
    pub async fn ready(&self, name: &str) -> Plugin {
        let what = format!("Plugin {name} to be Ready");
        self.wait_for(name, &what, Duration::from_secs(120), |plugin| {
            let status = plugin.status.as_ref()?;
            let ready = status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            (ready && status.observed_generation == plugin.metadata.generation).then_some(plugin)
        })
        .await
    }

    /// Waits for the Plugin's Degraded condition with `reason`; returns its message.
    pub async fn degraded(&self, name: &str, reason: &str) -> String {
        let what = format!("Plugin {name} to be Degraded with {reason}");
        self.wait_for(name, &what, Duration::from_secs(150), |plugin| {
            plugin
                .status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Degraded" && c.status == "True" && c.reason == reason)
                .map(|c| c.message)
        })
        .await
    }

    /// Waits until `check` finds what it looks for in the Plugin `name`.
    pub async fn wait_for<T>(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(Plugin) -> Option<T>,
    ) -> T {
        let plugins = self.plugins();
        let check = &check;
        eventually(what, timeout, || async {
            check(plugins.get(name).await.ok()?)
        })
        .await
    }

    /// The running pod of a Plugin.
    pub async fn pod(&self, plugin: &str) -> Pod {
        pod_with_label(
            &self.client,
            &self.ns.name,
            &format!("plugins.chat.dev/plugin={plugin}"),
        )
        .await
    }
}

pub async fn pod_with_label(client: &Client, namespace: &str, selector: &str) -> Pod {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    eventually(
        &format!("a running pod {selector} in {namespace}"),
        Duration::from_secs(120),
        || async {
            let list = pods
                .list(&ListParams::default().labels(selector))
                .await
                .ok()?;
            list.items.into_iter().find(|p| {
                p.metadata.deletion_timestamp.is_none()
                    && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
            })
        },
    )
    .await
}

/// The pod's IP.
pub fn ip(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .expect("a running pod has an IP")
}

/// Runs the sample plugin's binary in `container` of `pod`; returns whether it exited 0
/// and what it printed.
pub fn exec(pod: &Pod, container: &str, args: &[&str]) -> (bool, String) {
    let out = kubectl()
        .args([
            "exec",
            "-n",
            &pod.namespace().unwrap(),
            &pod.name_any(),
            "-c",
            container,
            "--",
            "/sample-plugin",
        ])
        .args(args)
        .output()
        .expect("kubectl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `exec` of a subcommand that prints `{"status": N, "body": ...}`.
pub fn exec_json(pod: &Pod, container: &str, args: &[&str]) -> (u16, Value) {
    let (_, text) = exec(pod, container, args);
    let line = text
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON from {args:?}: {text}"));
    let value: Value = serde_json::from_str(line).unwrap();
    (
        value["status"].as_u64().unwrap_or(0) as u16,
        value["body"].clone(),
    )
}

/// A pod in chat-system that the test's operator allows to invoke plugins (see
/// `Scene::new`), running the sample plugin's binary as a client. Deleted on drop.
pub struct Invoker {
    pub pod: Pod,
}

impl Invoker {
    pub async fn new(scene: &Scene) -> Self {
        let name = format!("invoker-{}", scene.ns.name);
        let pod = helper_pod(
            &scene.client,
            "chat-system",
            &name,
            &[("plugins.chat.dev/invoker", "true")],
        )
        .await;
        Self { pod }
    }
}

impl Drop for Invoker {
    fn drop(&mut self) {
        let name = self.pod.name_any();
        let _ = kubectl()
            .args(["delete", "pod", "-n", "chat-system", &name, "--wait=false"])
            .output();
    }
}

/// A pod running the sample plugin's binary (serving on 8080) with the given labels.
pub async fn helper_pod(
    client: &Client,
    namespace: &str,
    name: &str,
    labels: &[(&str, &str)],
) -> Pod {
    helper_pod_with_args(client, namespace, name, labels, &[]).await
}

/// [`helper_pod`] running the sample plugin's binary with `args` (a subcommand).
pub async fn helper_pod_with_args(
    client: &Client,
    namespace: &str,
    name: &str,
    labels: &[(&str, &str)],
    args: &[&str],
) -> Pod {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut labels_json = serde_json::Map::new();
    for (k, v) in labels {
        labels_json.insert(k.to_string(), Value::String(v.to_string()));
    }
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": labels_json},
        "spec": {
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "automountServiceAccountToken": false,
            "containers": [{
                "name": "main",
                "image": sample_plugin_image(),
                "imagePullPolicy": "IfNotPresent",
                "args": args,
                "env": [{"name": "PLUGIN_PORT", "value": "8080"}],
                "resources": {"limits": {"cpu": "100m", "memory": "32Mi"}},
                "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}}
            }]
        }
    }))
    .unwrap();
    let _ = pods.create(&PostParams::default(), &pod).await;
    eventually(
        &format!("helper pod {namespace}/{name} to run"),
        Duration::from_secs(60),
        || async {
            let pod = pods.get(name).await.ok()?;
            (pod.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(pod)
        },
    )
    .await
}

/// The memory in use (working set) of `container` in `pod`, in bytes, as the kubelet's
/// summary API reports it (refreshed every few seconds); None while it has no figure.
pub fn container_memory(pod: &Pod, container: &str) -> Option<u64> {
    let node = pod.spec.as_ref()?.node_name.clone()?;
    let out = kubectl()
        .args(["get", "--raw"])
        .arg(format!("/api/v1/nodes/{node}/proxy/stats/summary"))
        .output()
        .ok()?;
    let summary: Value = serde_json::from_slice(&out.stdout).ok()?;
    let uid = pod.metadata.uid.as_deref()?;
    summary["pods"]
        .as_array()?
        .iter()
        .find(|p| p["podRef"]["uid"] == uid)?["containers"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == container)?["memory"]["workingSetBytes"]
        .as_u64()
}

/// Restarts of `container` in the pod as it is now, and how it last ended, if it did.
pub async fn restarts(client: &Client, pod: &Pod, container: &str) -> (i32, Option<String>) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap());
    let now = pods.get(&pod.name_any()).await.expect("the pod exists");
    let status = now.status.unwrap_or_default();
    let found = status
        .container_statuses
        .iter()
        .chain(status.init_container_statuses.iter())
        .flatten()
        .find(|c| c.name == container)
        .cloned()
        .expect("the container has a status");
    let last = found
        .last_state
        .and_then(|s| s.terminated)
        .and_then(|t| t.reason);
    (found.restart_count, last)
}

//! Drift is put back: each edit issue 14 made by hand to a Plugin's children (with
//! kubectl, another field manager, as a person would), and each child deleted, is undone
//! within 10 s, counted in `plugin_operator_drift_corrections_total{kind}` and written as a
//! `DriftCorrected` Event on the Plugin naming the kind and the field. Afterwards the
//! operator writes nothing more: a put-back child does not look drifted again.

use std::time::{Duration, Instant};

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Event, Service, ServiceAccount},
    networking::v1::NetworkPolicy,
};
use kube::api::{Api, PostParams};
use plugin_operator::api::{Plugin, PluginSpec};
use plugin_operator_test_support::cluster::{
    NamespacedObject, Operator, TestNamespace, assert_success, eventually, kubectl, together,
};
use serde_json::{Value, json};

use crate::operator_in_namespace;

/// The issue's bound for an edit to be undone.
const PUT_BACK_WITHIN: Duration = Duration::from_secs(10);
const PLUGIN: &str = "drift";
const WORKLOAD: &str = "plugin-drift";
const POLICY: &str = "plugin-drift-broker-policy";

/// A converged Plugin (its pods cannot be scheduled, so none run) and its operator. Its
/// spec has quantities the API server rewrites, scratch space, egress and variables, so
/// that a comparison fooled by what the API server stores would show here as a second
/// write or a correction.
struct Fixture {
    client: kube::Client,
    ns: TestNamespace,
    operator: Operator,
}

impl Fixture {
    async fn start(prefix: &str) -> Self {
        let (client, ns, operator) = operator_in_namespace(prefix).await;
        let spec: PluginSpec = serde_json::from_value(json!({
            "image": "registry.example/drift:1",
            "port": 8080,
            "resources": {
                "requests": {"cpu": "8", "memory": "0.5Gi"},
                "limits": {"cpu": "8000m", "memory": "1.5Gi"}
            },
            "env": [
                {"name": "LOG_LEVEL", "value": "info"},
                {"name": "REGION", "value": "eu"}
            ],
            "permissions": {
                "chatApi": [{"scope": "messages:write", "channels": ["C1"]}],
                "filesystem": {"scratch": {"sizeLimit": "0.25Gi"}},
                "network": {"egress": [{"cidr": "203.0.113.0/24", "ports": [443]}]}
            }
        }))
        .unwrap();
        let plugins: Api<Plugin> = Api::namespaced(client.clone(), &ns.name);
        plugins
            .create(&PostParams::default(), &Plugin::new(PLUGIN, spec))
            .await
            .unwrap();
        eventually(
            "the Plugin's status at its generation",
            Duration::from_secs(60),
            || async {
                let plugin = plugins.get(PLUGIN).await.ok()?;
                (plugin.status?.observed_generation == Some(1)).then_some(())
            },
        )
        .await;
        let fixture = Self {
            client,
            ns,
            operator,
        };
        fixture.assert_settled().await;
        for kind in [
            "ServiceAccount",
            "ConfigMap",
            "Deployment",
            "Service",
            "NetworkPolicy",
        ] {
            let metric = format!("plugin_operator_api_writes_total{{kind=\"{kind}\"}}");
            let writes = fixture.operator.metric(&metric).await;
            assert_eq!(
                writes, 1.0,
                "{kind} written once, not put back after its apply"
            );
        }
        let corrections = fixture.corrections("").await;
        if corrections != 0.0 {
            let log = fixture.operator.log.lock().unwrap().clone();
            let drift: Vec<_> = log.iter().filter(|l| l.contains("drift")).collect();
            panic!(
                "children just written are not drift, yet {corrections} correction(s): {drift:#?}"
            );
        }
        fixture
    }

    fn api<K: NamespacedObject>(&self) -> Api<K> {
        Api::namespaced(self.client.clone(), &self.ns.name)
    }

    async fn get<K: NamespacedObject>(&self, name: &str) -> K {
        self.api::<K>().get(name).await.unwrap()
    }

    /// `kubectl <args> -n <namespace>`, which must succeed.
    fn kubectl(&self, args: &[&str]) {
        let out = kubectl()
            .args(args)
            .args(["-n", &self.ns.name])
            .output()
            .expect("kubectl runs");
        assert_success(&out, &format!("kubectl {}", args.join(" ")));
    }

    /// `kubectl <args> -n <namespace>` with `object` as its file (`-f -`).
    fn kubectl_with(&self, args: &[&str], object: &Value) {
        use std::io::Write;
        let mut child = kubectl()
            .args(args)
            .args(["-n", &self.ns.name, "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(object.to_string().as_bytes()).unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        assert_success(&out, &format!("kubectl {}", args.join(" ")));
    }

    async fn corrections(&self, kind: &str) -> f64 {
        let name = "plugin_operator_drift_corrections_total";
        match kind {
            "" => self.operator.metric(name).await,
            kind => {
                self.operator
                    .metric(&format!("{name}{{kind=\"{kind}\"}}"))
                    .await
            }
        }
    }

    /// Waits until the child `name` satisfies `put_back`, at most [`PUT_BACK_WITHIN`]
    /// after `edited`, then until the operator reports it: one more correction of `kind`
    /// and an Event naming `kind`, `name` and `field`. Returns the time it took.
    async fn assert_put_back<K: NamespacedObject>(
        &self,
        edited: Instant,
        before: f64,
        name: &str,
        field: &str,
        put_back: impl Fn(&K) -> bool,
    ) -> Duration {
        let kind = K::kind(&()).to_string();
        let api = self.api::<K>();
        let took = eventually(
            &format!("{kind} {name} to be put back ({field})"),
            PUT_BACK_WITHIN,
            || async {
                let object = api.get_opt(name).await.ok()??;
                put_back(&object).then(|| edited.elapsed())
            },
        )
        .await;
        eprintln!("{kind} {name}: {field} put back in {took:?}");
        eventually(
            &format!("the operator to count the {kind} correction"),
            Duration::from_secs(5),
            || async { (self.corrections(&kind).await > before).then_some(()) },
        )
        .await;
        let events: Api<Event> = self.api();
        let expected = format!("{kind} {name}: {field}");
        eventually(
            &format!("a DriftCorrected Event saying \"{expected}\""),
            Duration::from_secs(5),
            || async {
                let list = events.list(&Default::default()).await.ok()?;
                list.items.into_iter().find(|e| {
                    e.reason.as_deref() == Some("DriftCorrected")
                        && e.involved_object.name.as_deref() == Some(PLUGIN)
                        && e.message
                            .as_deref()
                            .is_some_and(|m| m.starts_with(&expected))
                })
            },
        )
        .await;
        self.assert_settled().await;
        took
    }

    /// The operator stops writing: a child put back does not look drifted again.
    async fn assert_settled(&self) {
        let writes = "plugin_operator_api_writes_total";
        let mut previous = self.operator.metric(writes).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            tokio::time::sleep(Duration::from_secs(4)).await;
            let now = self.operator.metric(writes).await;
            if now == previous {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the operator kept writing for 30 s ({now} writes)"
            );
            previous = now;
        }
    }
}

fn pod_spec(deployment: &Deployment) -> &k8s_openapi::api::core::v1::PodSpec {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .unwrap()
}

#[tokio::test]
async fn a_network_policy_opened_by_hand_is_put_back() {
    let _cluster = together().await;
    let f = Fixture::start("op-drift-np").await;
    let original: NetworkPolicy = f.get(WORKLOAD).await;
    let before = f.corrections("NetworkPolicy").await;
    let edited = Instant::now();
    f.kubectl(&[
        "patch",
        "networkpolicy",
        WORKLOAD,
        "--type=merge",
        "-p",
        r#"{"spec": {"ingress": [{}], "egress": [{}]}}"#,
    ]);
    f.assert_put_back(
        edited,
        before,
        WORKLOAD,
        "spec.egress[0]",
        |np: &NetworkPolicy| np.spec == original.spec,
    )
    .await;
}

#[tokio::test]
async fn a_widened_or_extended_policy_config_map_is_put_back() {
    let _cluster = together().await;
    let f = Fixture::start("op-drift-cm").await;
    let original: ConfigMap = f.get(POLICY).await;
    let same = |cm: &ConfigMap| cm.data == original.data && cm.binary_data.is_none();

    let before = f.corrections("ConfigMap").await;
    let edited = Instant::now();
    f.kubectl_with(&["replace"], &widened(&original));
    f.assert_put_back(edited, before, POLICY, "data.policy.json changed", same)
        .await;

    // A key of its own beside the policy.
    let before = f.corrections("ConfigMap").await;
    let edited = Instant::now();
    f.kubectl(&[
        "patch",
        "configmap",
        POLICY,
        "--type=merge",
        "-p",
        r#"{"data": {"override.json": "{}"}}"#,
    ]);
    f.assert_put_back(edited, before, POLICY, "data.override.json added", same)
        .await;

    // Widened and made immutable, so that no update can put it back: it is created anew.
    let before = f.corrections("ConfigMap").await;
    let mut locked = widened(&original);
    locked["immutable"] = json!(true);
    let edited = Instant::now();
    f.kubectl_with(&["replace"], &locked);
    f.assert_put_back(
        edited,
        before,
        POLICY,
        "data.policy.json changed",
        |cm: &ConfigMap| same(cm) && cm.immutable != Some(true),
    )
    .await;
}

/// The policy ConfigMap, for `kubectl replace`, with every scope of the catalog granted
/// on every channel.
fn widened(original: &ConfigMap) -> Value {
    let data = original.data.as_ref().unwrap();
    let mut policy: Value = serde_json::from_str(&data["policy.json"]).unwrap();
    let scopes: std::collections::BTreeSet<String> = policy["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .map(|route| route["scope"].as_str().unwrap().to_string())
        .collect();
    policy["grants"] = scopes.iter().map(|s| json!({"scope": s})).collect();
    let mut widened = serde_json::to_value(original).unwrap();
    widened["data"]["policy.json"] = json!(policy.to_string());
    let metadata = widened["metadata"].as_object_mut().unwrap();
    metadata.remove("managedFields");
    metadata.remove("resourceVersion");
    widened
}

#[tokio::test]
async fn a_service_opened_to_outside_the_cluster_is_put_back() {
    let _cluster = together().await;
    let f = Fixture::start("op-drift-svc").await;
    let internal = |svc: &Service| {
        let spec = svc.spec.as_ref().unwrap();
        spec.type_.as_deref() == Some("ClusterIP")
            && spec.external_ips.is_none()
            && spec.ports.iter().flatten().all(|p| p.node_port.is_none())
    };
    for (patch, field) in [
        (r#"{"spec": {"type": "NodePort"}}"#, "spec.type changed"),
        (
            r#"{"spec": {"externalIPs": ["198.51.100.7"]}}"#,
            "spec.externalIPs added",
        ),
    ] {
        let before = f.corrections("Service").await;
        let edited = Instant::now();
        f.kubectl(&["patch", "service", WORKLOAD, "--type=merge", "-p", patch]);
        f.assert_put_back(edited, before, WORKLOAD, field, internal)
            .await;
    }
}

#[tokio::test]
async fn a_deployment_scaled_by_hand_is_put_back() {
    let _cluster = together().await;
    let f = Fixture::start("op-drift-scale").await;
    let before = f.corrections("Deployment").await;
    let edited = Instant::now();
    f.kubectl(&["scale", "deployment", WORKLOAD, "--replicas=3"]);
    f.assert_put_back(
        edited,
        before,
        WORKLOAD,
        "spec.replicas changed",
        |d: &Deployment| d.spec.as_ref().unwrap().replicas == Some(1),
    )
    .await;
}

#[tokio::test]
async fn a_variable_set_into_the_plugin_container_is_removed() {
    let _cluster = together().await;
    let f = Fixture::start("op-drift-env").await;
    let original: Deployment = f.get(WORKLOAD).await;
    let before = f.corrections("Deployment").await;
    let edited = Instant::now();
    f.kubectl(&[
        "set",
        "env",
        &format!("deployment/{WORKLOAD}"),
        "-c",
        "plugin",
        "INJECTED=1",
    ]);
    f.assert_put_back(
        edited,
        before,
        WORKLOAD,
        "spec.template.spec.containers[plugin].env[INJECTED] added",
        |d: &Deployment| pod_spec(d).containers == pod_spec(&original).containers,
    )
    .await;
}

#[tokio::test]
async fn a_container_or_volume_added_by_hand_is_removed() {
    let _cluster = together().await;
    let f = Fixture::start("op-drift-pod").await;
    let original: Deployment = f.get(WORKLOAD).await;
    let same = |d: &Deployment| pod_spec(d) == pod_spec(&original);
    let additions = [
        (
            "containers",
            json!({"name": "debug", "image": "registry.example/debug:1"}),
            "spec.template.spec.containers[debug] added",
        ),
        (
            "volumes",
            json!({"name": "extra", "emptyDir": {}}),
            "spec.template.spec.volumes[extra] added",
        ),
    ];
    for (list, item, field) in additions {
        let patch =
            json!([{"op": "add", "path": format!("/spec/template/spec/{list}/-"), "value": item}]);
        let before = f.corrections("Deployment").await;
        let edited = Instant::now();
        f.kubectl(&[
            "patch",
            "deployment",
            WORKLOAD,
            "--type=json",
            "-p",
            &patch.to_string(),
        ]);
        f.assert_put_back(edited, before, WORKLOAD, field, same)
            .await;
    }
}

#[tokio::test]
async fn each_deleted_child_is_put_back() {
    let _cluster = together().await;
    let f = Fixture::start("op-drift-delete").await;
    deleted_and_put_back::<ServiceAccount>(&f, "serviceaccount", WORKLOAD).await;
    deleted_and_put_back::<ConfigMap>(&f, "configmap", POLICY).await;
    deleted_and_put_back::<Deployment>(&f, "deployment", WORKLOAD).await;
    deleted_and_put_back::<Service>(&f, "service", WORKLOAD).await;
    deleted_and_put_back::<NetworkPolicy>(&f, "networkpolicy", WORKLOAD).await;
}

async fn deleted_and_put_back<K: NamespacedObject>(f: &Fixture, resource: &str, name: &str) {
    let original: K = f.get(name).await;
    let before = f.corrections(K::kind(&()).as_ref()).await;
    let edited = Instant::now();
    f.kubectl(&["delete", resource, name, "--wait=false"]);
    f.assert_put_back(edited, before, name, "the object deleted", |object: &K| {
        object.meta().uid != original.meta().uid
    })
    .await;
}

/// The issue's case that survived a restart: a widened policy and a variable owned by
/// another field manager, made while no operator ran, are put back when one starts.
#[tokio::test]
async fn drift_made_while_the_operator_was_stopped_is_put_back_when_it_starts() {
    let _cluster = together().await;
    let mut f = Fixture::start("op-drift-restart").await;
    let policy: ConfigMap = f.get(POLICY).await;
    let deployment: Deployment = f.get(WORKLOAD).await;
    f.operator.kill();
    f.kubectl_with(&["replace"], &widened(&policy));
    f.kubectl(&[
        "set",
        "env",
        &format!("deployment/{WORKLOAD}"),
        "-c",
        "plugin",
        "INJECTED=1",
    ]);
    let started = Instant::now();
    f.operator = Operator::start(crate::OPERATOR, &f.ns.name, &[]).await;
    f.assert_put_back(
        started,
        0.0,
        POLICY,
        "data.policy.json changed",
        |cm: &ConfigMap| cm.data == policy.data,
    )
    .await;
    f.assert_put_back(
        started,
        0.0,
        WORKLOAD,
        "spec.template.spec.containers[plugin].env[INJECTED] added",
        |d: &Deployment| pod_spec(d).containers == pod_spec(&deployment).containers,
    )
    .await;
}

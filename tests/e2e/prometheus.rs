//! Prometheus end to end (docs/operations.md): a real Prometheus, built from its Go module
//! (cluster/prometheus-image.sh) and run as a pod in a monitoring namespace, scrapes the
//! operator and a running broker; after allowed and refused calls a PromQL query returns
//! the broker's decision counts; a pod outside the monitoring peer cannot reach the
//! broker's metrics port.
//!
//! The operator here is the chart's, installed with helm as a pod watching only this
//! test's plugin namespace, not the host process the other end-to-end tests start: a
//! Prometheus in the cluster finds an operator through its Service, and only a pod is
//! behind one. So the chain is the one a cluster runs: chart values -> the operator's
//! `--monitoring-*` flags -> the plugin pod's NetworkPolicy -> a scrape from the
//! monitoring namespace. No prometheus-operator runs on the local cluster, so the
//! Prometheus configuration below is written by hand; it does what the chart's
//! ServiceMonitor and PodMonitor ask for (tests/chart/monitoring.rs checks those): the
//! metrics Service's `http-metrics` port as job `plugin-operator`, the `admin` port of
//! the pods labelled as the operator's plugin pods as job `plugin-broker`, the Plugin's
//! name as label `plugin`.

use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use plugin_operator_test_support::cluster::{
    TEST_SCOPE_CATALOG, api_server_endpoints, assert_success, helm_binary, http_get,
    kubectl_with_input, random_suffix,
};
use serde_json::{Value, json};

use crate::support::{
    TestNamespace, eventually, exec, exec_json, helper_pod, ip, pod_with_label, repo_path,
    sample_plugin_image, test_image, world,
};

const PROMETHEUS_LABEL: (&str, &str) = ("app.kubernetes.io/name", "prometheus");
const WAIT: Duration = Duration::from_secs(180);

#[tokio::test]
async fn prometheus_scrapes_the_operator_and_a_brokers_decision_counts() {
    let client = world().await;
    let release_ns = TestNamespace::restricted(&client, "e2e-prom-release").await;
    let plugins_ns = TestNamespace::restricted(&client, "e2e-prom-plugins").await;
    let monitoring_ns = TestNamespace::new(&client, "e2e-prom-monitoring", &[]).await;
    let outside_ns = TestNamespace::new(&client, "e2e-prom-outside", &[]).await;
    let release = format!("po-{}", random_suffix());
    let fullname = format!("{release}-plugin-operator");

    let _uninstall = install_chart(
        &client,
        &release,
        &release_ns.name,
        &plugins_ns.name,
        &monitoring_ns.name,
    )
    .await;
    let prometheus = run_prometheus(
        &client,
        &monitoring_ns.name,
        &release_ns.name,
        &plugins_ns.name,
        &fullname,
    )
    .await;
    let prometheus = format!("{}:9090", ip(&prometheus));

    // A plugin granted only messages:read: two allowed calls, three refused.
    let plugins: Api<plugin_operator::api::Plugin> =
        Api::namespaced(client.clone(), &plugins_ns.name);
    let spec = json!({
        "image": sample_plugin_image(), "port": 8080,
        "permissions": {"chatApi": [{"scope": "messages:read"}]}
    });
    plugins
        .create(
            &PostParams::default(),
            &plugin_operator::api::Plugin::new("reader", serde_json::from_value(spec).unwrap()),
        )
        .await
        .expect("the Plugin is accepted");
    let plugin_pod =
        pod_with_label(&client, &plugins_ns.name, "plugins.chat.dev/plugin=reader").await;
    wait_ready(&client, &plugin_pod).await;
    let broker = format!("{}:9090", ip(&plugin_pod));
    let broker_up = format!(
        r#"up{{job="plugin-broker", namespace="{}"}}"#,
        plugins_ns.name
    );
    let up = eventually(
        "Prometheus to scrape the broker (a target whose `up` stays 0 cannot reach port 9090)",
        Duration::from_secs(60),
        || async {
            let up = query_prometheus(&prometheus, &broker_up).await?;
            (values(&up) == [1.0]).then_some(up)
        },
    )
    .await;
    assert_eq!(
        up[0]["metric"]["pod"],
        plugin_pod.metadata.name.clone().unwrap().as_str()
    );
    assert_eq!(up[0]["metric"]["plugin"], "reader");
    for _ in 0..2 {
        let (status, body) = exec_json(
            &plugin_pod,
            "plugin",
            &["call", "GET", "/api/v1/channels/C123/messages"],
        );
        assert_eq!(status, 200, "a granted call: {body}");
    }
    for _ in 0..3 {
        let (status, body) = exec_json(
            &plugin_pod,
            "plugin",
            &[
                "call",
                "POST",
                "/api/v1/channels/C123/messages",
                r#"{"text":"hi"}"#,
            ],
        );
        assert_eq!(status, 403, "an ungranted call: {body}");
    }

    // The broker's counts, as Prometheus scraped them from the running broker.
    let query = format!(
        r#"sum by (outcome) (broker_decisions_total{{job="plugin-broker", namespace="{}", plugin="reader"}})"#,
        plugins_ns.name
    );
    let counts = eventually(
        "Prometheus to have scraped 2 allowed and 3 denied decisions",
        Duration::from_secs(60),
        || async {
            let counts = by_label(&query_prometheus(&prometheus, &query).await?, "outcome");
            (counts.get("allowed") == Some(&2.0) && counts.get("denied") == Some(&3.0))
                .then_some(counts)
        },
    )
    .await;
    assert_eq!(counts.len(), 2, "only allowed and denied calls: {counts:?}");
    let build = query_prometheus(
        &prometheus,
        &format!(
            r#"broker_build_info{{job="plugin-broker", namespace="{}"}}"#,
            plugins_ns.name
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        build[0]["metric"]["version"],
        env!("CARGO_PKG_VERSION"),
        "{build:?}"
    );

    // The operator pod, through its Service: up, leading, its build and its work.
    let operator = |expr: &'static str| {
        let prometheus = prometheus.clone();
        async move { query_prometheus(&prometheus, expr).await }
    };
    let leader = eventually(
        "Prometheus to have scraped the operator",
        Duration::from_secs(60),
        || async {
            let up = operator(r#"up{job="plugin-operator"}"#).await?;
            (values(&up) == [1.0]).then_some(())?;
            let leader = operator(r#"plugin_operator_leader{job="plugin-operator"}"#).await?;
            (!leader.is_empty()).then_some(leader)
        },
    )
    .await;
    assert_eq!(values(&leader), [1.0], "the one replica leads: {leader:?}");
    assert_eq!(leader[0]["metric"]["namespace"], release_ns.name.as_str());
    let build = operator(r#"plugin_operator_build_info{job="plugin-operator"}"#)
        .await
        .unwrap();
    assert_eq!(
        build[0]["metric"]["version"],
        env!("CARGO_PKG_VERSION"),
        "{build:?}"
    );
    let reconciles = operator(r#"plugin_operator_reconciles_total{job="plugin-operator"}"#)
        .await
        .unwrap();
    assert!(values(&reconciles)[0] >= 1.0, "{reconciles:?}");

    // Only the monitoring peer reaches the broker's metrics port: not a pod of another
    // namespace, nor a pod of the monitoring namespace without the peer's labels. A pod
    // with them does (the same client as the refused ones, so the refusals are the
    // NetworkPolicy's).
    let labelled = helper_pod(&client, &monitoring_ns.name, "scraper", &[PROMETHEUS_LABEL]).await;
    let unlabelled = helper_pod(&client, &monitoring_ns.name, "other", &[("role", "other")]).await;
    let outsider = helper_pod(&client, &outside_ns.name, "outsider", &[PROMETHEUS_LABEL]).await;
    let (ok, out) = exec(&labelled, "main", &["connect", &broker]);
    assert!(ok, "the monitoring peer reaches the broker's 9090: {out}");
    let (ok, out) = exec(&unlabelled, "main", &["connect", &broker]);
    assert!(
        !ok,
        "a pod of the monitoring namespace without the labels reached 9090: {out}"
    );
    let (ok, out) = exec(&outsider, "main", &["connect", &broker]);
    assert!(!ok, "a pod of another namespace reached 9090: {out}");
}

/// Installs the chart: its operator pod watches `plugins_ns`, opens the brokers' and its
/// own admin port to the Prometheus pods of `monitoring_ns`, and leaves the cluster-wide
/// admission policies, default PluginPolicy and ScopeCatalog to the tests' own.
async fn install_chart(
    client: &kube::Client,
    release: &str,
    release_ns: &str,
    plugins_ns: &str,
    monitoring_ns: &str,
) -> Uninstall {
    let image = test_image("plugin-operator");
    let (repository, tag) = image.rsplit_once(':').unwrap();
    let (cidrs, ports) = api_server_endpoints(client).await;
    let values = [
        format!("image.repository={repository},image.tag={tag}"),
        format!("watchNamespaces={{{plugins_ns}}}"),
        "leaderElection.enabled=true".into(),
        format!(
            "monitoring.namespace={monitoring_ns},monitoring.selector={}={}",
            PROMETHEUS_LABEL.0, PROMETHEUS_LABEL.1
        ),
        "networkPolicy.enabled=true".into(),
        format!("networkPolicy.apiServer.cidrs={{{cidrs}}}"),
        format!("networkPolicy.apiServer.ports={{{ports}}}"),
        "pluginPolicies.admission=false,pluginPolicies.default.enabled=false".into(),
        format!(
            "scopeCatalog.create=false,scopeCatalog.admission=false,scopeCatalog.name={TEST_SCOPE_CATALOG}"
        ),
    ];
    let mut args = vec![
        "install".to_string(),
        release.into(),
        repo_path("charts/plugin-operator").display().to_string(),
        "--namespace".into(),
        release_ns.into(),
        "--wait".into(),
        "--timeout".into(),
        "3m".into(),
    ];
    for value in values {
        args.extend(["--set".into(), value]);
    }
    let uninstall = Uninstall {
        release: release.into(),
        namespace: release_ns.into(),
    };
    let out = helm(&args);
    assert_success(&out, "helm install");
    uninstall
}

fn helm<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> std::process::Output {
    let home = repo_path("build/helm");
    Command::new(helm_binary())
        .args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .expect("helm runs")
}

/// Uninstalls the release when the test ends, whatever happened.
struct Uninstall {
    release: String,
    namespace: String,
}

impl Drop for Uninstall {
    fn drop(&mut self) {
        let _ = helm(&["uninstall", &self.release, "--namespace", &self.namespace]);
    }
}

/// Imports the Prometheus image (built on first use) and runs it in `monitoring_ns` with
/// a ServiceAccount that may discover pods and endpoints in the two other namespaces,
/// scraping every 2 s. Returns the ready pod.
async fn run_prometheus(
    client: &kube::Client,
    monitoring_ns: &str,
    release_ns: &str,
    plugins_ns: &str,
    fullname: &str,
) -> Pod {
    let script = repo_path("cluster/prometheus-image.sh");
    let out = Command::new(&script).output().expect("the script runs");
    assert_success(
        &out,
        "cluster/prometheus-image.sh (log under ~/.cache/plugin-operator)",
    );
    let image = String::from_utf8_lossy(&out.stdout).trim().to_string();

    let config = json!({
        "global": {"scrape_interval": "2s", "scrape_timeout": "1s", "evaluation_interval": "2s"},
        "scrape_configs": [
            {
                "job_name": "plugin-operator",
                "kubernetes_sd_configs": [{"role": "endpointslice", "namespaces": {"names": [release_ns]}}],
                "relabel_configs": [
                    {"source_labels": ["__meta_kubernetes_service_name", "__meta_kubernetes_endpointslice_port_name"],
                     "regex": format!("{fullname}-metrics;http-metrics"), "action": "keep"},
                    {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                    {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"}
                ]
            },
            {
                "job_name": "plugin-broker",
                "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [plugins_ns]}}],
                "relabel_configs": [
                    {"source_labels": [
                        "__meta_kubernetes_pod_label_app_kubernetes_io_managed_by",
                        "__meta_kubernetes_pod_label_app_kubernetes_io_component",
                        "__meta_kubernetes_pod_container_port_name"],
                     "regex": "plugin-operator;chat-plugin;admin", "action": "keep"},
                    {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                    {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                    {"source_labels": ["__meta_kubernetes_pod_label_plugins_chat_dev_plugin"], "target_label": "plugin"}
                ]
            }
        ]
    });
    let discover = json!([
        {"apiGroups": [""], "resources": ["pods", "services", "endpoints"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]}
    ]);
    let mut objects = vec![
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": "prometheus", "namespace": monitoring_ns}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "prometheus", "namespace": monitoring_ns},
               "data": {"prometheus.yml": serde_json::to_string(&config).unwrap()}}),
    ];
    for namespace in [release_ns, plugins_ns] {
        objects.push(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "prometheus-discovery", "namespace": namespace},
            "rules": discover}),
        );
        objects.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "prometheus-discovery", "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "prometheus-discovery"},
            "subjects": [{"kind": "ServiceAccount", "name": "prometheus", "namespace": monitoring_ns}]}));
    }
    objects.push(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "prometheus", "namespace": monitoring_ns,
                     "labels": {PROMETHEUS_LABEL.0: PROMETHEUS_LABEL.1}},
        "spec": {
            "serviceAccountName": "prometheus",
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
                                "fsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "prometheus",
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "args": ["--config.file=/etc/prometheus/prometheus.yml",
                         "--storage.tsdb.path=/data",
                         "--storage.tsdb.retention.time=1h",
                         "--web.listen-address=:9090"],
                "ports": [{"name": "web", "containerPort": 9090}],
                "readinessProbe": {"httpGet": {"path": "/-/ready", "port": "web"}, "periodSeconds": 1},
                "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
                "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                    "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": [{"name": "config", "mountPath": "/etc/prometheus"},
                                 {"name": "data", "mountPath": "/data"}]
            }],
            "volumes": [{"name": "config", "configMap": {"name": "prometheus"}},
                        {"name": "data", "emptyDir": {}}]
        }}));
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    let (ok, out) = kubectl_with_input(
        &[
            "apply",
            "--server-side",
            "--field-manager",
            "plugin-operator-tests",
        ],
        &list.to_string(),
    );
    assert!(ok, "creating Prometheus: {out}");
    let pods: Api<Pod> = Api::namespaced(client.clone(), monitoring_ns);
    let pod = pods.get("prometheus").await.expect("the Prometheus pod");
    wait_ready(client, &pod).await
}

/// Waits until every container of `pod` is ready; returns the pod as it is then.
async fn wait_ready(client: &kube::Client, pod: &Pod) -> Pod {
    let namespace = pod.metadata.namespace.clone().unwrap();
    let name = pod.metadata.name.clone().unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    eventually(
        &format!("pod {namespace}/{name} to be ready"),
        WAIT,
        || async {
            let pod = pods.get(&name).await.ok()?;
            let status = pod.status.as_ref()?;
            status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True")
                .then_some(pod)
        },
    )
    .await
}

/// The result vector of an instant query through Prometheus's HTTP API (from the host,
/// which reaches pod addresses); None while Prometheus does not answer.
async fn query_prometheus(address: &str, expr: &str) -> Option<Vec<Value>> {
    let body = http_get(
        address,
        &format!("/api/v1/query?query={}", percent_encode(expr)),
    )
    .await?;
    let answer: Value = serde_json::from_str(&body).ok()?;
    (answer["status"] == "success").then_some(())?;
    answer["data"]["result"].as_array().cloned()
}

/// Each sample's value.
fn values(result: &[Value]) -> Vec<f64> {
    result
        .iter()
        .filter_map(|s| s["value"][1].as_str()?.parse().ok())
        .collect()
}

/// Each sample's value by the value of its `label`.
fn by_label(result: &[Value], label: &str) -> std::collections::BTreeMap<String, f64> {
    result
        .iter()
        .filter_map(|s| {
            let key = s["metric"][label].as_str()?.to_string();
            Some((key, s["value"][1].as_str()?.parse().ok()?))
        })
        .collect()
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

//! The chart's monitoring objects (docs/operations.md): the ServiceMonitor, PodMonitor
//! and PrometheusRule against the real prometheus-operator CRDs (a server-side dry run
//! on the local API server), the alerts with promtool (`check rules`, and `test rules`
//! with tests/chart/alerts-test.yaml), and every query of the Grafana dashboard with
//! promtool. promtool is built from the Go module proxy on first use and cached
//! (cluster/lib.sh, `ensure_prometheus`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;

use plugin_operator_test_support::cluster::{
    TestNamespace, assert_success, client, eventually, kubectl, kubectl_with_input,
    prometheus_operator_crds, prometheus_tools, random_suffix, repo_path,
};
use serde_json::{Value, json};

use crate::support::{kind, name, of_kind, only, operator_args, render, text};

/// Every monitoring object on, and the scraping pods named.
const MONITORING: &[&str] = &[
    "--set",
    "metrics.serviceMonitor.enabled=true,metrics.podMonitor.enabled=true",
    "--set",
    "metrics.prometheusRule.enabled=true,metrics.dashboard.enabled=true",
    "--set",
    "monitoring.namespace=monitoring,monitoring.selector=app.kubernetes.io/name=prometheus",
];

const MONITORING_KINDS: [&str; 3] = ["ServiceMonitor", "PodMonitor", "PrometheusRule"];

fn promtool() -> &'static Path {
    static PROMTOOL: OnceLock<PathBuf> = OnceLock::new();
    PROMTOOL.get_or_init(|| prometheus_tools().join("promtool"))
}

/// Runs promtool with `args` in `dir`; its output, and whether it succeeded.
fn run_promtool(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(promtool())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool runs");
    (
        out.status.success(),
        format!("{}{}", text(&out.stdout), text(&out.stderr)),
    )
}

/// A fresh folder under the system's temporary directory.
fn scratch_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("plugin-operator-{what}-{}", random_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_yaml(path: &Path, value: &Value) {
    std::fs::write(path, serde_norway::to_string(value).unwrap()).unwrap();
}

/// The rendered PrometheusRule's groups, as a Prometheus rule file.
fn rendered_rule_file(extra: &[&str]) -> Value {
    let mut args = MONITORING.to_vec();
    args.extend_from_slice(extra);
    let docs = render(&args);
    only(&docs, "PrometheusRule")["spec"].clone()
}

/// The dashboard as the chart ships it.
fn dashboard() -> Value {
    let path = repo_path("charts/plugin-operator/files/dashboard.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("the dashboard is JSON")
}

/// Every panel, those inside collapsed rows too, with its title and its queries.
fn panels(dashboard: &Value) -> Vec<(String, Vec<String>)> {
    fn walk(panels: &Value, out: &mut Vec<(String, Vec<String>)>) {
        for panel in panels.as_array().into_iter().flatten() {
            if panel["type"] == "row" {
                walk(&panel["panels"], out);
                continue;
            }
            let queries = panel["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    t["expr"]
                        .as_str()
                        .expect("each target has an expr")
                        .to_string()
                })
                .collect();
            out.push((panel["title"].as_str().unwrap().to_string(), queries));
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// A rule file with one recording rule per query, for `promtool check rules`.
fn as_recording_rules(queries: &[String]) -> Value {
    let rules: Vec<Value> = queries
        .iter()
        .enumerate()
        .map(|(i, query)| json!({"record": format!("dashboard:query_{i}"), "expr": query}))
        .collect();
    json!({"groups": [{"name": "dashboard", "rules": rules}]})
}

#[test]
fn monitoring_objects_are_off_by_default_and_on_when_asked() {
    let docs = render(&[]);
    for wanted in MONITORING_KINDS {
        assert!(of_kind(&docs, wanted).is_empty(), "{wanted} by default");
    }
    assert!(
        !of_kind(&docs, "ConfigMap")
            .iter()
            .any(|c| name(c).ends_with("-dashboard")),
        "no dashboard by default"
    );
    let args = operator_args(&docs);
    assert!(
        !args.iter().any(|a| a.starts_with("--monitoring-")),
        "no monitoring peer by default: {args:?}"
    );

    let docs = render(MONITORING);
    for wanted in MONITORING_KINDS {
        assert_eq!(of_kind(&docs, wanted).len(), 1, "one {wanted}");
    }
    let args = operator_args(&docs);
    assert!(
        args.contains(&"--monitoring-namespace=monitoring".to_string())
            && args
                .contains(&"--monitoring-selector=app.kubernetes.io/name=prometheus".to_string()),
        "{args:?}"
    );
    let dashboard_map = of_kind(&docs, "ConfigMap")
        .into_iter()
        .find(|c| name(c).ends_with("-dashboard"))
        .expect("the dashboard ConfigMap");
    assert_eq!(
        dashboard_map["metadata"]["labels"]["grafana_dashboard"],
        "1"
    );
    let shipped: Value = serde_json::from_str(
        dashboard_map["data"]["plugin-operator.json"]
            .as_str()
            .unwrap(),
    )
    .expect("the ConfigMap holds the dashboard's JSON");
    assert_eq!(shipped, dashboard());
}

#[test]
fn monitors_scrape_the_ports_and_pods_the_operator_and_its_plugins_have() {
    let docs = render(MONITORING);
    let service_monitor = only(&docs, "ServiceMonitor");
    let service = only(&docs, "Service");
    assert_eq!(
        service_monitor["spec"]["endpoints"][0]["port"], service["spec"]["ports"][0]["name"],
        "the ServiceMonitor names the metrics Service's port"
    );
    assert_eq!(
        service_monitor["spec"]["selector"]["matchLabels"],
        json!(
            service["metadata"]["labels"]
                .as_object()
                .unwrap()
                .iter()
                .filter(
                    |(k, _)| *k == "app.kubernetes.io/name" || *k == "app.kubernetes.io/instance"
                )
                .collect::<BTreeMap<_, _>>()
        )
    );

    let pod_monitor = only(&docs, "PodMonitor");
    let endpoint = &pod_monitor["spec"]["podMetricsEndpoints"][0];
    assert_eq!(endpoint["port"], "admin", "the broker's admin port's name");
    assert_eq!(endpoint["path"], "/metrics");
    assert_eq!(
        pod_monitor["spec"]["selector"]["matchLabels"],
        json!({
            plugin_operator::controller::desired::MANAGED_BY_LABEL:
                plugin_operator::controller::desired::MANAGED_BY_VALUE,
            "app.kubernetes.io/component": "chat-plugin"
        }),
        "the labels the operator puts on every plugin pod"
    );
    assert_eq!(
        pod_monitor["spec"]["namespaceSelector"],
        json!({"any": true})
    );
    let relabelings = endpoint["relabelings"].as_array().unwrap();
    assert!(
        relabelings.iter().any(|r| r["targetLabel"] == "plugin"
            && r["sourceLabels"] == json!(["__meta_kubernetes_pod_label_plugins_chat_dev_plugin"])),
        "the Plugin's name becomes the `plugin` label: {relabelings:?}"
    );

    let mut args = MONITORING.to_vec();
    args.extend(["--set", "watchNamespaces={team-a,team-b}"]);
    let docs = render(&args);
    assert_eq!(
        only(&docs, "PodMonitor")["spec"]["namespaceSelector"],
        json!({"matchNames": ["team-a", "team-b"]}),
        "only the watched namespaces"
    );
}

#[tokio::test]
async fn monitors_and_rule_are_accepted_by_the_prometheus_operator_crds() {
    let client = client().await;
    let crds = prometheus_operator_crds();
    for plural in ["servicemonitors", "podmonitors", "prometheusrules"] {
        let file = crds.join(format!("monitoring.coreos.com_{plural}.yaml"));
        let out = kubectl()
            .args(["apply", "--server-side", "--force-conflicts"])
            .args(["--field-manager", "plugin-operator-tests", "-f"])
            .arg(&file)
            .output()
            .expect("kubectl runs");
        assert_success(&out, &format!("installing {}", file.display()));
        // A CRD created a moment ago has no conditions yet, and `kubectl wait` fails on
        // that instead of waiting: read them until Established is True.
        let name = format!("{plural}.monitoring.coreos.com");
        eventually(
            &format!("the {plural} CRD to be established"),
            Duration::from_secs(60),
            || async {
                let crd = Api::<CustomResourceDefinition>::all(client.clone())
                    .get(&name)
                    .await
                    .ok()?;
                crd.status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
                    .then_some(())
            },
        )
        .await;
    }
    let ns = TestNamespace::new(&client, "chart-monitoring", &[]).await;
    let mut args = MONITORING.to_vec();
    let namespace_arg = ns.name.clone();
    args.extend(["--namespace", &namespace_arg]);
    let docs = render(&args);
    let objects: Vec<&Value> = docs
        .iter()
        .filter(|d| MONITORING_KINDS.contains(&kind(d)))
        .collect();
    assert_eq!(objects.len(), 3);
    for object in objects {
        let (ok, out) = dry_run_apply(object);
        assert!(ok, "{} {} refused:\n{out}", kind(object), name(object));
    }

    // The check has teeth: the CRDs' schemas refuse what a typo would render.
    let mut broken = only(&docs, "PodMonitor").clone();
    broken["spec"]["podMetricsEndpoints"][0]["scheme"] = json!("ftp");
    let (ok, out) = dry_run_apply(&broken);
    assert!(!ok && out.contains("scheme"), "a bad scheme passed:\n{out}");
    let mut broken = only(&docs, "PrometheusRule").clone();
    broken["spec"]["groups"][0]["rules"][0]["for"] = json!("five minutes");
    let (ok, out) = dry_run_apply(&broken);
    assert!(!ok && out.contains("for"), "a bad duration passed:\n{out}");
}

/// `kubectl apply --server-side --dry-run=server` of one object, with strict field
/// validation: whether the API server accepted it, and what kubectl said.
fn dry_run_apply(object: &Value) -> (bool, String) {
    kubectl_with_input(
        &[
            "apply",
            "--server-side",
            "--dry-run=server",
            "--validate=strict",
            "--field-manager",
            "plugin-operator-tests",
        ],
        &serde_json::to_string(object).unwrap(),
    )
}

#[test]
fn rendered_alerts_pass_promtool_check_and_their_unit_tests() {
    let dir = scratch_dir("alerts");
    write_yaml(&dir.join("rules.yaml"), &rendered_rule_file(&[]));
    std::fs::copy(
        repo_path("tests/chart/alerts-test.yaml"),
        dir.join("alerts-test.yaml"),
    )
    .unwrap();
    let (ok, out) = run_promtool(&dir, &["check", "rules", "rules.yaml"]);
    assert!(ok, "promtool check rules:\n{out}");
    let (ok, out) = run_promtool(&dir, &["test", "rules", "alerts-test.yaml"]);
    assert!(ok, "promtool test rules:\n{out}");

    // The unit tests have teeth: a threshold three times higher misses a case.
    write_yaml(
        &dir.join("rules.yaml"),
        &rendered_rule_file(&["--set", "metrics.prometheusRule.denialsPerSecond=3"]),
    );
    let (ok, out) = run_promtool(&dir, &["test", "rules", "alerts-test.yaml"]);
    assert!(
        !ok && out.contains("PluginBrokerDenialsHigh"),
        "the unit tests passed a rule that never fires:\n{out}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn every_dashboard_query_passes_promtool_and_every_panel_is_documented() {
    let panels = panels(&dashboard());
    assert!(panels.len() >= 10, "{} panels", panels.len());
    let queries: Vec<String> = panels.iter().flat_map(|(_, q)| q.clone()).collect();
    assert!(
        panels.iter().all(|(_, q)| !q.is_empty()),
        "a panel without a query"
    );
    let dir = scratch_dir("dashboard");
    write_yaml(&dir.join("queries.yaml"), &as_recording_rules(&queries));
    let (ok, out) = run_promtool(&dir, &["check", "rules", "queries.yaml"]);
    assert!(ok, "promtool refused a dashboard query:\n{out}");
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", queries.len())),
        "{out}"
    );

    // The check has teeth: a query Grafana would take but Prometheus would not.
    write_yaml(
        &dir.join("queries.yaml"),
        &as_recording_rules(&["rate(broker_decisions_total[$__rate_interval])".into()]),
    );
    let (ok, out) = run_promtool(&dir, &["check", "rules", "queries.yaml"]);
    assert!(!ok, "promtool took a Grafana variable as a range:\n{out}");
    let _ = std::fs::remove_dir_all(dir);

    let docs = std::fs::read_to_string(repo_path("docs/operations.md")).unwrap();
    for (title, _) in &panels {
        assert!(
            docs.contains(&format!("| {title} |")),
            "panel {title:?} is not listed in docs/operations.md"
        );
    }
}

#[test]
fn every_metric_a_rule_or_panel_names_is_in_the_metrics_table() {
    let docs = std::fs::read_to_string(repo_path("docs/operations.md")).unwrap();
    let documented: BTreeMap<String, String> = docs
        .lines()
        .filter_map(|line| {
            let mut cells = line.split('|').map(str::trim).skip(1);
            let name = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
            let type_ = cells.next()?;
            Some((name.to_string(), type_.to_string()))
        })
        .filter(|(name, _)| name.starts_with("plugin_operator_") || name.starts_with("broker_"))
        .collect();
    assert!(documented.len() > 20, "{documented:?}");

    let rules = rendered_rule_file(&[]);
    let mut queries: Vec<String> = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().iter())
        .map(|r| r["expr"].as_str().unwrap().to_string())
        .collect();
    queries.extend(panels(&dashboard()).into_iter().flat_map(|(_, q)| q));
    let name = regex::Regex::new(r"\b(?:plugin_operator|broker)_[a-z_]+\b").unwrap();
    let mut named = 0;
    for query in &queries {
        for found in name.find_iter(query) {
            let found = found.as_str();
            let histogram = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| found.strip_suffix(suffix))
                .filter(|base| documented.get(*base).map(String::as_str) == Some("histogram"));
            let base = histogram.unwrap_or(found);
            assert!(
                documented.contains_key(base),
                "{found} (in `{query}`) is not in docs/operations.md's metrics table"
            );
            named += 1;
        }
    }
    assert!(named > 20, "{named} metric names found");
}

//! Shared by the chart tests: the helm binary, rendering the chart and reading the
//! rendered objects.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use plugin_operator_test_support::cluster::repo_path;
use serde_json::Value;

pub const CHART: &str = "charts/plugin-operator";
/// The namespace of the plain manifests under deploy/.
pub const MANIFEST_NAMESPACE: &str = "plugin-operator-system";
/// The Kubernetes version `helm template` renders for (the local cluster's; the chart
/// needs 1.30 or later and helm assumes an older one without a cluster).
pub const KUBE_VERSION: &str = "1.35.0";

/// The operator image the chart runs by default: `localhost/plugin-operator:<appVersion>`.
pub fn default_image() -> String {
    let chart = std::fs::read_to_string(repo_path("charts/plugin-operator/Chart.yaml"))
        .expect("Chart.yaml is readable");
    let app_version = chart
        .lines()
        .find_map(|line| line.strip_prefix("appVersion:"))
        .expect("Chart.yaml has an appVersion")
        .trim()
        .trim_matches('"')
        .to_string();
    format!("localhost/plugin-operator:{app_version}")
}

/// The helm binary, built from cluster/tools/helm and cached on first use
/// (`make helm` prints the same path).
pub fn helm() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        let out = Command::new("make")
            .args(["--no-print-directory", "-s", "helm"])
            .current_dir(repo_path(""))
            .output()
            .expect("make runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "`make helm` failed; it builds helm from cluster/tools/helm:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
        assert!(
            path.is_file(),
            "`make helm` printed {path:?}, which is not a file"
        );
        path
    })
}

/// Runs helm in the repository root with `args`.
pub fn run_helm(args: &[&str]) -> Output {
    Command::new(helm())
        .args(args)
        .current_dir(repo_path(""))
        .env("HELM_CACHE_HOME", helm_home("cache"))
        .env("HELM_CONFIG_HOME", helm_home("config"))
        .env("HELM_DATA_HOME", helm_home("data"))
        .output()
        .expect("helm runs")
}

/// Helm's own state stays in the build directory, away from the user's.
fn helm_home(kind: &str) -> PathBuf {
    repo_path("build/helm").join(kind)
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `helm template` of the chart with `extra` arguments: the YAML, or helm's stderr.
pub fn template(extra: &[&str]) -> Result<String, String> {
    let mut args = vec![
        "template",
        "plugin-operator",
        CHART,
        "--namespace",
        MANIFEST_NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
    ];
    args.extend_from_slice(extra);
    let out = run_helm(&args);
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(text(&out.stderr))
    }
}

/// Renders with `extra` arguments and panics with helm's message when it fails.
pub fn render(extra: &[&str]) -> Vec<Value> {
    let yaml = template(extra).unwrap_or_else(|e| panic!("helm template {extra:?} failed:\n{e}"));
    documents(&yaml)
}

/// The non-empty documents of a multi-document YAML stream.
pub fn documents(yaml: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_norway::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).expect("helm renders valid YAML"))
        .filter(|doc| !doc.is_null())
        .collect()
}

pub fn kind(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or_default()
}

pub fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or_default()
}

pub fn of_kind<'a>(docs: &'a [Value], wanted: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| kind(d) == wanted).collect()
}

/// The one object of `wanted` kind; panics when there is not exactly one.
pub fn only<'a>(docs: &'a [Value], wanted: &str) -> &'a Value {
    let found = of_kind(docs, wanted);
    assert_eq!(
        found.len(),
        1,
        "expected one {wanted}, found {}",
        found.len()
    );
    found[0]
}

/// The operator container's arguments.
pub fn operator_args(docs: &[Value]) -> Vec<String> {
    only(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("the operator has args")
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

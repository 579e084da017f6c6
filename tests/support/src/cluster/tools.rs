//! Tools that cluster/lib.sh builds or fetches on first use and caches (helm, prometheus
//! and promtool, the prometheus-operator CRDs), and the API server's address as pods
//! reach it.

use std::path::PathBuf;
use std::process::Command;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::{Api, ListParams};

use super::repo_path;

/// Runs `script` after `source cluster/lib.sh` in the repository root and returns what it
/// printed on standard output, trimmed; panics with its output when it fails. lib.sh's
/// progress lines belong on standard error (`ensure_x >&2`).
pub fn lib_sh(script: &str) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("source cluster/lib.sh && {script}"))
        .current_dir(repo_path(""))
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "`source cluster/lib.sh && {script}` failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The folder holding `prometheus` and `promtool`, built on first use (several minutes;
/// log under ~/.cache/plugin-operator).
pub fn prometheus_tools() -> PathBuf {
    PathBuf::from(lib_sh(
        r#"ensure_prometheus >&2 && printf '%s' "$PROMETHEUS_BIN""#,
    ))
}

/// The prometheus-operator CRDs folder (`monitoring.coreos.com_*.yaml`).
pub fn prometheus_operator_crds() -> PathBuf {
    PathBuf::from(lib_sh(
        r#"ensure_prometheus_operator_crds >&2 && printf '%s' "$PROMETHEUS_OPERATOR_CRDS""#,
    ))
}

/// The helm binary, built from cluster/tools/helm on first use.
pub fn helm_binary() -> PathBuf {
    PathBuf::from(lib_sh(r#"ensure_helm >&2 && printf '%s/helm' "$HELM_BIN""#))
}

/// The API server's addresses (as /32 or /128) and ports, as pods reach it: the
/// `kubernetes` Service's EndpointSlices, comma-separated for helm's `--set x={a,b}`.
pub async fn api_server_endpoints(client: &Client) -> (String, String) {
    let slices = Api::<EndpointSlice>::namespaced(client.clone(), "default")
        .list(&ListParams::default().labels("kubernetes.io/service-name=kubernetes"))
        .await
        .expect("the kubernetes Service's EndpointSlices");
    let mut cidrs = Vec::new();
    let mut ports = Vec::new();
    for slice in slices.items {
        let bits = if slice.address_type == "IPv6" {
            128
        } else {
            32
        };
        for endpoint in slice.endpoints {
            cidrs.extend(endpoint.addresses.iter().map(|a| format!("{a}/{bits}")));
        }
        ports.extend(slice.ports.into_iter().flatten().filter_map(|p| p.port));
    }
    assert!(
        !cidrs.is_empty() && !ports.is_empty(),
        "the API server has endpoints"
    );
    let ports: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
    (cidrs.join(","), ports.join(","))
}

//! Pods: a container securityContext that Pod Security "restricted" admits, waiting for a
//! pod, and kubectl for what the API alone does not do (exec).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;

use super::repo_path;

/// A container securityContext that Pod Security "restricted" admits.
pub fn restricted_container_security() -> serde_json::Value {
    serde_json::json!({
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "runAsNonRoot": true,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"}
    })
}

/// Waits until the pod reaches a terminal phase (Succeeded or Failed) and returns it.
pub async fn wait_pod_finished(pods: &Api<Pod>, name: &str, timeout: Duration) -> Pod {
    let mut last = None;
    let start = Instant::now();
    loop {
        if let Ok(p) = pods.get(name).await {
            let phase = p
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default();
            if phase == "Succeeded" || phase == "Failed" {
                return p;
            }
            last = Some(p);
        }
        if start.elapsed() > timeout {
            panic!(
                "pod {name} did not finish within {timeout:?}; last status: {:#?}",
                last.and_then(|p| p.status)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until the pod is Ready.
pub async fn wait_pod_ready(pods: &Api<Pod>, name: &str, timeout: Duration) -> Pod {
    let start = Instant::now();
    loop {
        if let Ok(p) = pods.get(name).await {
            let ready = p
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .map(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                .unwrap_or(false);
            if ready {
                return p;
            }
            if start.elapsed() > timeout {
                panic!(
                    "pod {name} not Ready within {timeout:?}; status: {:#?}",
                    p.status
                );
            }
        } else if start.elapsed() > timeout {
            panic!("pod {name} not found within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// kubectl: $KUBECTL, else the one the local cluster links into build/cluster/bin, else
/// the one it built into the cache, else the one on PATH.
pub fn kubectl() -> Command {
    if let Ok(path) = std::env::var("KUBECTL") {
        return Command::new(path);
    }
    let linked = repo_path("build/cluster/bin/kubectl");
    if linked.exists() {
        return Command::new(linked);
    }
    let cache = std::env::var("XDG_CACHE_HOME")
        .unwrap_or_else(|_| format!("{}/.cache", std::env::var("HOME").unwrap_or_default()));
    let cached = format!("{cache}/plugin-operator/k8s-v1.35.4/bin/kubectl");
    if Path::new(&cached).exists() {
        return Command::new(cached);
    }
    Command::new("kubectl")
}

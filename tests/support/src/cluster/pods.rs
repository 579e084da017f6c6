//! Pods: a container securityContext that Pod Security "restricted" admits, waiting for a
//! pod, and kubectl for what the API alone does not do (exec).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, PodStatus, PodTemplateSpec};
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

/// The pod a Deployment would make from `template`, named `name`: PodSecurity only warns
/// on Deployments and enforces on pods, so this is what to dry-run through admission.
pub fn pod_from_template(template: PodTemplateSpec, name: &str) -> Pod {
    let mut pod = Pod {
        metadata: template.metadata.unwrap_or_default(),
        spec: template.spec,
        status: None,
    };
    pod.metadata.name = Some(name.into());
    pod
}

/// Waits until the pod reaches a terminal phase (Succeeded or Failed) and returns it.
pub async fn wait_pod_finished(pods: &Api<Pod>, name: &str, timeout: Duration) -> Pod {
    wait_pod(pods, name, timeout, "finish", |status| {
        matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"))
    })
    .await
}

/// Waits until the pod is Ready.
pub async fn wait_pod_ready(pods: &Api<Pod>, name: &str, timeout: Duration) -> Pod {
    wait_pod(pods, name, timeout, "become Ready", |status| {
        status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
    .await
}

/// Polls the pod every 250 ms until `done` holds for its status; panics after `timeout`
/// with the last status seen.
async fn wait_pod(
    pods: &Api<Pod>,
    name: &str,
    timeout: Duration,
    what: &str,
    done: impl Fn(&PodStatus) -> bool,
) -> Pod {
    let start = Instant::now();
    let mut last = None;
    loop {
        if let Ok(pod) = pods.get(name).await {
            if done(pod.status.as_ref().unwrap_or(&PodStatus::default())) {
                return pod;
            }
            last = Some(pod);
        }
        if start.elapsed() > timeout {
            match last {
                Some(pod) => panic!(
                    "pod {name} did not {what} within {timeout:?}; last status: {:#?}",
                    pod.status
                ),
                None => panic!("pod {name} not found within {timeout:?}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `kubectl <args> -f -` with `input` on stdin: whether it succeeded, and what it said
/// (stdout, then stderr).
pub fn kubectl_with_input(args: &[&str], input: &str) -> (bool, String) {
    use std::io::Write;
    use std::process::Stdio;
    let out = kubectl()
        .args(args)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(input.as_bytes())?;
            child.wait_with_output()
        })
        .expect("kubectl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
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

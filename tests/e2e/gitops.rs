//! The GitOps health checks, run by the tools' own code on Plugins taken from the
//! cluster in each state: the Argo CD health check (deploy/gitops/argocd-health.lua)
//! under gopher-lua with Argo CD's contract, and kstatus (sigs.k8s.io/cli-utils), which
//! Flux's `wait: true` uses (deploy/gitops/flux-kustomization.yaml). The helper that
//! runs both is tests/gitops/health, built from the Go module proxy and cached.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use plugin_operator::api::Plugin;
use plugin_operator_test_support::cluster::repo_path;
use serde_json::{Value, json};

use crate::support::{Scene, sample_plugin_image};

/// The helper's path, built on first use (cluster/lib.sh, ensure_gitops_health).
fn health_helper() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        let out = Command::new("bash")
            .arg("-c")
            .arg("source cluster/lib.sh && ensure_gitops_health >&2 && printf '%s/health' \"$GITOPS_HEALTH_BIN\"")
            .current_dir(repo_path(""))
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "building tests/gitops/health failed (log: ~/.cache/plugin-operator/build-gitops-health.log):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    })
}

/// What Argo CD and kstatus say of each object, in order.
fn verdicts(objects: &[Value]) -> Vec<Value> {
    let mut child = Command::new(health_helper())
        .arg("--lua")
        .arg(repo_path("deploy/gitops/argocd-health.lua"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the health helper runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(objects).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the health helper failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the helper prints JSON")
}

fn has_condition(plugin: &Plugin, type_: &str, status: &str, reason: &str) -> bool {
    plugin.status.as_ref().is_some_and(|s| {
        s.observed_generation == plugin.metadata.generation
            && s.conditions
                .iter()
                .any(|c| c.type_ == type_ && c.status == status && c.reason == reason)
    })
}

#[tokio::test]
async fn argo_cd_and_kstatus_read_each_plugin_state_as_its_status_means() {
    let scene = Scene::new("e2e-gitops").await;
    let image = sample_plugin_image();
    let specs = [
        ("ready", json!({"image": image, "port": 8080})),
        (
            "paused",
            json!({"image": image, "port": 8080, "paused": true}),
        ),
        (
            "slow",
            json!({"image": image, "port": 8080,
                   "env": [{"name": "LISTEN_AFTER_SECONDS", "value": "900"}]}),
        ),
        (
            "ghost",
            json!({"image": "localhost/no-such-plugin:1", "port": 8080}),
        ),
        (
            "crashy",
            json!({"image": image, "port": 8080,
                   "env": [{"name": "EXIT_AT_START", "value": "3"}]}),
        ),
        (
            "hungry",
            json!({"image": image, "port": 8080,
                   "resources": {"limits": {"memory": "32Mi"}},
                   "env": [{"name": "ALLOCATE_MB", "value": "256"}]}),
        ),
    ];
    for (name, spec) in &specs {
        scene.create(name, spec.clone()).await;
    }
    let wait = Duration::from_secs(150);
    let mut objects = Vec::new();
    for (name, ready_or_degraded, status, reason) in [
        ("ready", "Ready", "True", "Available"),
        ("paused", "Ready", "True", "Paused"),
        ("slow", "Ready", "False", "RollingOut"),
        ("ghost", "Degraded", "True", "ImagePullBackOff"),
        ("crashy", "Degraded", "True", "CrashLoopBackOff"),
        ("hungry", "Degraded", "True", "OOMKilled"),
    ] {
        let what = format!("Plugin {name}: {ready_or_degraded}={status} ({reason})");
        let plugin = scene
            .wait_for(name, &what, wait, |plugin| {
                has_condition(&plugin, ready_or_degraded, status, reason).then_some(plugin)
            })
            .await;
        objects.push(serde_json::to_value(&plugin).unwrap());
    }

    // A generation the operator has not seen: stop it, then change the spec.
    let Scene {
        client,
        ns,
        _operator,
    } = scene;
    drop(_operator);
    let plugins: Api<Plugin> = Api::namespaced(client.clone(), &ns.name);
    let stale = plugins
        .patch(
            "ready",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"env": [{"name": "GREETING", "value": "hi"}]}})),
        )
        .await
        .expect("the spec changes");
    assert_ne!(
        stale.metadata.generation,
        stale.status.as_ref().unwrap().observed_generation
    );
    objects.push(serde_json::to_value(&stale).unwrap());

    let verdicts = verdicts(&objects);
    let expected = [
        ("ready", "Healthy", "Current"),
        ("paused", "Suspended", "Current"),
        ("slow", "Progressing", "InProgress"),
        ("ghost", "Degraded", "Failed"),
        ("crashy", "Degraded", "Failed"),
        ("hungry", "Degraded", "Failed"),
        (
            "ready, spec changed, operator stopped",
            "Progressing",
            "InProgress",
        ),
    ];
    for ((state, argo, kstatus), verdict) in expected.iter().zip(&verdicts) {
        assert_eq!(
            (
                verdict["argo"]["status"].as_str().unwrap(),
                verdict["kstatus"]["status"].as_str().unwrap()
            ),
            (*argo, *kstatus),
            "{state}: {verdict}"
        );
    }
    for (index, reason) in [
        (3, "ImagePullBackOff"),
        (4, "CrashLoopBackOff"),
        (5, "OOMKilled"),
    ] {
        let message = verdicts[index]["argo"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(reason),
            "Argo CD shows the reason: {message}"
        );
        let message = verdicts[index]["kstatus"]["message"].as_str().unwrap();
        assert!(!message.is_empty(), "kstatus carries a message");
    }
    drop(ns);
}

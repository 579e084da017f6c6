//! Drift put back: how long the operator takes to undo a NetworkPolicy opened by hand.
//!
//! Starts `plugin-operator controller` on a fresh `bench-` namespace with one Plugin,
//! then `--edits` times opens its NetworkPolicy as `kubectl patch` would (a merge patch
//! setting ingress and egress to `[{}]`, field manager `kubectl-patch`) and times from
//! just before the patch is sent until a read shows the policy as the operator wrote it
//! (reads every 10 ms). Prints one JSON line: every sample, p50, p99 (nearest rank), max.
//!
//! cargo run --release --example bench-drift -- --binary target/release/plugin-operator --edits 20

mod common;

use std::time::{Duration, Instant};

use common::{arg, progress};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, Patch, PatchParams};
use plugin_operator::api::Plugin;
use plugin_operator_test_support::cluster::{Operator, client, eventually, install_crd};
use serde_json::json;

/// The nearest-rank percentile `p` (0 to 100) of sorted `samples`.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() {
    let binary = arg("--binary", "target/release/plugin-operator");
    let edits: usize = arg("--edits", "20").parse().expect("--edits is a number");

    let client = client().await;
    install_crd(&client).await;
    let ns = common::create_namespace(&client, "drift").await;
    let namespace = ns.name.clone();
    progress(&format!("namespace {namespace}; starting {binary}"));
    let operator = Operator::spawn(
        Operator::command(&binary, &namespace),
        Duration::from_secs(30),
    )
    .await;

    let plugins: Api<Plugin> = Api::namespaced(client.clone(), &namespace);
    let plugin = common::create_plugin(&plugins, 0).await;
    let name = format!("plugin-{}", plugin.metadata.name.unwrap());
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &namespace);
    let written = eventually(
        "the NetworkPolicy and the Plugin's status",
        Duration::from_secs(60),
        || async {
            let status = plugins.get(&common::plugin_name(0)).await.ok()?.status?;
            status.observed_generation?;
            policies.get_opt(&name).await.ok()?
        },
    )
    .await;
    // Past the operator's memory of its own recent writes.
    tokio::time::sleep(Duration::from_secs(6)).await;

    let opened = json!({"spec": {"ingress": [{}], "egress": [{}]}});
    let by_hand = PatchParams {
        field_manager: Some("kubectl-patch".into()),
        ..Default::default()
    };
    let mut samples = vec![];
    for edit in 1..=edits {
        let started = Instant::now();
        policies
            .patch(&name, &by_hand, &Patch::Merge(&opened))
            .await
            .expect("the NetworkPolicy is opened");
        loop {
            let current = policies
                .get(&name)
                .await
                .expect("the NetworkPolicy is read");
            if current.spec == written.spec {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "edit {edit} was not put back within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let took = started.elapsed().as_secs_f64() * 1000.0;
        progress(&format!("edit {edit}/{edits}: put back in {took:.0} ms"));
        samples.push(took);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let corrections = operator
        .metric("plugin_operator_drift_corrections_total")
        .await;
    let mut sorted = samples.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "{}",
        json!({
            "edits": edits,
            "samples_ms": samples,
            "p50_ms": percentile(&sorted, 50.0),
            "p99_ms": percentile(&sorted, 99.0),
            "max_ms": sorted.last(),
            "corrections": corrections,
        })
    );
    drop(operator);
    common::clean_up(&client, ns).await;
}

//! Two operator replicas with leader election, the leader's clock skewed by +5 s and
//! -5 s (libfaketime): only one of them ever writes. Each process counts its own writes
//! (`plugin_operator_api_writes_total`, children, statuses and Events); they are sampled
//! every 100 ms while Plugins are created, and a sample in which both counts grew is two
//! writers. At the end of a round the leader is killed and the standby must take over.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use plugin_operator::api::Plugin;
use plugin_operator_test_support::cluster::{Operator, client, install_crd};
use serde_json::json;

use crate::common::{
    Outcome, create_plugins, namespace, number, operator_flags, paused_spec, progress,
    start_operator, wait_all_ready,
};

const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
const WRITES: &str = "plugin_operator_api_writes_total";

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("plugin-operator")
        .await
        .ok()??
        .spec?
        .holder_identity
}

pub async fn run(binary: &str) -> Outcome {
    assert!(
        std::path::Path::new(FAKETIME).exists(),
        "{FAKETIME} is missing: apt-get install libfaketime"
    );
    let rounds = number("--rounds", 2);
    let plugins = number("--plugins", 40);
    let lease_seconds = arg_lease();
    let client = client().await;
    install_crd(&client).await;
    let mut injected = 0;
    let mut survived = 0;
    let mut takeovers = Vec::new();
    let mut rows = Vec::new();
    for round in 1..=rounds {
        for skew in ["+5s", "-5s"] {
            injected += 1;
            progress(&format!(
                "round {round}/{rounds}, leader's clock {skew}, lease {lease_seconds} s: {plugins} Plugins"
            ));
            let ns = namespace(&client, "leader").await;
            let leases: Api<Lease> = Api::namespaced(client.clone(), &ns.name);
            let flags = |identity: &str| {
                operator_flags(&[
                    "--leader-elect",
                    "--lease-namespace",
                    &ns.name,
                    "--identity",
                    identity,
                    "--lease-seconds",
                    &lease_seconds,
                ])
            };
            let skewed_env = [("LD_PRELOAD", FAKETIME), ("FAKETIME", skew)];
            let mut leader = start_operator(binary, &ns.name, &flags("skewed"), &skewed_env).await;
            let deadline = Instant::now() + Duration::from_secs(30);
            while holder(&leases).await.as_deref() != Some("skewed") {
                assert!(Instant::now() < deadline, "the skewed replica never led");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let standby = start_operator(binary, &ns.name, &flags("exact"), &[]).await;
            let api = ns.api::<Plugin>();
            let creating = {
                let api = api.clone();
                tokio::spawn(async move {
                    create_plugins(
                        &api,
                        "lead",
                        plugins,
                        Duration::from_millis(500),
                        paused_spec,
                    )
                    .await
                })
            };
            // Sample both counters while the Plugins are created and converge, and for
            // three leases more: long enough for a standby to take a live Lease.
            let sampling = Duration::from_millis(500) * plugins as u32
                + Duration::from_secs(3 * lease_seconds.parse::<u64>().unwrap_or(10));
            let both = sample(&leader, &standby, sampling).await;
            creating.await.expect("the Plugins are created");
            let leader_writes = leader.metric(WRITES).await + 0.0;
            let standby_writes = standby.metric(WRITES).await + 0.0;
            let still_leads = holder(&leases).await.as_deref() == Some("skewed");

            leader.kill();
            let killed = Instant::now();
            let takeover = loop {
                if holder(&leases).await.as_deref() == Some("exact") {
                    break Some(killed.elapsed());
                }
                if killed.elapsed() > Duration::from_secs(60) {
                    break None;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            let converged = wait_all_ready(&api, plugins, Duration::from_secs(120)).await;
            let ok = both == 0
                && standby_writes == 0.0
                && leader_writes > 0.0
                && still_leads
                && takeover.is_some()
                && converged.is_some();
            progress(&format!(
                "  skew {skew}: leader wrote {leader_writes}, standby {standby_writes}; \
                 samples with two writers: {both}; leader kept the Lease: {still_leads}; \
                 standby took over {:.1} s after SIGKILL",
                takeover.map_or(f64::NAN, |t| t.as_secs_f64())
            ));
            if ok {
                survived += 1;
            }
            takeovers.push(takeover.map_or(f64::NAN, |t| t.as_secs_f64()));
            rows.push(json!({
                "skew": skew, "leader_writes": leader_writes, "standby_writes": standby_writes,
                "samples_with_two_writers": both, "leader_kept_lease": still_leads,
            }));
            drop(standby);
        }
    }
    Outcome {
        fault: "leader clock skewed ±5 s, two replicas".into(),
        injected,
        survived,
        recovery_seconds: takeovers,
        lost: 0,
        details: json!({
            "lease_seconds": lease_seconds,
            "plugins_per_round": plugins,
            "rounds": rows,
            "recovery": "seconds from SIGKILL of the skewed leader to the standby holding the Lease",
        }),
    }
}

fn arg_lease() -> String {
    crate::common::arg("--lease-seconds", "4")
}

/// Samples both processes' write counters every 100 ms for `how_long`; returns how many
/// samples saw both counters grow.
async fn sample(a: &Operator, b: &Operator, how_long: Duration) -> usize {
    let started = Instant::now();
    let (mut last_a, mut last_b) = (a.metric(WRITES).await, b.metric(WRITES).await);
    let mut both = 0;
    while started.elapsed() < how_long {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (now_a, now_b) = (a.metric(WRITES).await, b.metric(WRITES).await);
        if now_a > last_a && now_b > last_b {
            both += 1;
        }
        (last_a, last_b) = (now_a, now_b);
    }
    both
}

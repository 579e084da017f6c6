//! Convergence, memory and steady-state writes of the operator with many Plugins.
//!
//! Starts `plugin-operator controller` on a fresh `bench-` namespace, creates the
//! Plugins (8 at a time), times until every Plugin has its five children and is Ready
//! at its generation, then counts writes over a quiet window. Prints one JSON line.
//!
//! cargo run --release --example bench-operator -- --binary target/release/plugin-operator \
//!     --plugins 1000 --steady-seconds 60

mod common;

use std::time::{Duration, Instant};

use common::{arg, progress};
use kube::api::Api;
use plugin_operator::api::Plugin;
use plugin_operator_test_support::cluster::{
    Operator, apiserver_writes, client, http_get, install_crd, resource_versions,
};
use serde_json::json;

/// The operator's writes so far by kind, from its `/metrics`.
async fn writes_by_kind(admin: &str) -> serde_json::Map<String, serde_json::Value> {
    let text = http_get(admin, "/metrics").await.unwrap_or_default();
    text.lines()
        .filter(|line| line.starts_with("plugin_operator_api_writes_total{"))
        .filter_map(|line| {
            let kind = line.split("kind=\"").nth(1)?.split('"').next()?;
            let value: f64 = line.rsplit(' ').next()?.parse().ok()?;
            Some((kind.to_string(), json!(value)))
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let binary = arg("--binary", "target/release/plugin-operator");
    let count: usize = arg("--plugins", "1000")
        .parse()
        .expect("--plugins is a number");
    let steady = Duration::from_secs(arg("--steady-seconds", "60").parse().expect("seconds"));
    let timeout = Duration::from_secs(arg("--timeout-seconds", "1800").parse().expect("seconds"));
    let client_limit = common::controller_manager_client_limit();

    let client = client().await;
    install_crd(&client).await;
    // The previous run's namespace, still being deleted, would load the API server.
    common::wait_for_other_bench_namespaces_gone(&client, "", Duration::from_secs(1200)).await;
    let ns = common::create_namespace(&client, "op").await;
    let namespace = ns.name.clone();
    progress(&format!(
        "namespace {namespace}; starting {binary}; kube-controller-manager client limit {client_limit}"
    ));

    let mut command = Operator::command(&binary, &namespace);
    command.args([
        "--max-concurrent-reconciles",
        &common::CONCURRENCY.to_string(),
    ]);
    let mut operator = Operator::spawn(command, Duration::from_secs(30)).await;
    let pid = operator.pid();
    let admin = operator.admin.clone();
    // Give it up to 10 s to report ready (caches synced) before the clock starts.
    let mut ready_before = false;
    for _ in 0..50 {
        if http_get(&admin, "/readyz").await.is_some() {
            ready_before = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if !ready_before {
        progress("the operator's /readyz is not 200 after 10 s; starting anyway");
    }
    let (idle_rss, _) = common::memory_kib(pid);
    progress(&format!(
        "operator pid {pid} ready, admin {admin}; creating {count} Plugins"
    ));

    let plugins: Api<Plugin> = Api::namespaced(client.clone(), &namespace);
    let watch = common::ConvergenceWatch::start(&client, &namespace).await;
    let apiserver = common::apiserver_pid();
    let apiserver_cpu_before = apiserver.map(common::cpu_seconds);
    let operator_cpu_before = common::cpu_seconds(pid);
    let started = Instant::now();
    watch
        .reporting(count, common::create_plugins(&plugins, count))
        .await;
    let created = started.elapsed();
    progress(&format!(
        "created {count} Plugins in {:.1} s; waiting for convergence",
        created.as_secs_f64()
    ));
    let converged = watch.wait_converged(count, started, timeout).await;
    drop(watch);
    let converged_s = converged.map(|d| d.as_secs_f64());
    let operator_cpu = common::cpu_seconds(pid) - operator_cpu_before;
    let writes_at_convergence = writes_by_kind(&admin).await;
    let apiserver_cpu = apiserver
        .map(common::cpu_seconds)
        .zip(apiserver_cpu_before)
        .map(|(after, before)| after - before);
    progress(&format!("converged: {converged_s:?} s"));

    // Steady state means nothing left to react to: wait (at most 10 min) until the
    // deployment controller has observed every Deployment (the Plugins' Ready conditions
    // follow its status writes; with its default client rate limit of 20 requests/s
    // that takes minutes for 1,000 of them) and the operator wrote nothing for 3 s.
    let settle_started = Instant::now();
    let settle_deadline = settle_started + Duration::from_secs(600);
    let mut previous = operator.metric("plugin_operator_api_writes_total").await;
    let mut last_report = settle_started;
    loop {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let now = operator.metric("plugin_operator_api_writes_total").await;
        let behind = common::deployments_not_observed(&client, &namespace).await;
        if now == previous && behind == 0 {
            progress(&format!(
                "settled after {:.0} s: every Deployment observed, no operator write for 3 s",
                settle_started.elapsed().as_secs_f64()
            ));
            break;
        }
        if Instant::now() > settle_deadline {
            progress(&format!(
                "not settled after 600 s ({behind} Deployments not yet observed); counting anyway"
            ));
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(30) {
            progress(&format!(
                "settling: {behind} of {count} Deployments not yet observed by the deployment controller"
            ));
            last_report = Instant::now();
        }
        previous = now;
    }
    common::wait_for_other_bench_namespaces_gone(&client, &namespace, Duration::from_secs(120))
        .await;
    let (_, hwm_converged) = common::memory_kib(pid);
    let ready_after = http_get(&admin, "/readyz").await.is_some();
    progress(&format!(
        "steady state: counting writes for {} s",
        steady.as_secs()
    ));
    let writes_total = operator.metric("plugin_operator_api_writes_total").await;
    let versions_before = resource_versions(&client, &namespace)
        .await
        .unwrap_or_default();
    let server_before = apiserver_writes(&client).await.unwrap_or_default();
    let operator_before = operator.metric("plugin_operator_api_writes_total").await;
    let reconciles_before = operator.metric("plugin_operator_reconciles_total").await;
    tokio::time::sleep(steady).await;
    let operator_after = operator.metric("plugin_operator_api_writes_total").await;
    let reconciles_after = operator.metric("plugin_operator_reconciles_total").await;
    let server_after = apiserver_writes(&client).await.unwrap_or_default();
    let versions_after = resource_versions(&client, &namespace)
        .await
        .unwrap_or_default();
    let changed_objects = versions_after
        .iter()
        .filter(|(key, version)| versions_before.get(*key) != Some(version))
        .count();
    let (rss_end, hwm_end) = common::memory_kib(pid);
    operator.kill();

    let restart = restart_among(&binary, &namespace, count).await;
    progress("operator stopped; deleting the namespace");
    common::clean_up(&client, ns).await;

    let result = json!({
        "plugins": count,
        "operator_binary": binary,
        "create_seconds": created.as_secs_f64(),
        "converge_seconds": converged_s,
        "writes_during_convergence": writes_total,
        "writes_by_kind_at_convergence": writes_at_convergence,
        "operator_cpu_seconds": operator_cpu,
        "apiserver_cpu_seconds": apiserver_cpu,
        "rss_idle_kib": idle_rss,
        "readyz_before_plugins": ready_before,
        "readyz_after_convergence": ready_after,
        "hwm_converged_kib": hwm_converged,
        "rss_end_kib": rss_end,
        "hwm_kib": hwm_end,
        "steady_seconds": steady.as_secs(),
        "steady_operator_writes": operator_after - operator_before,
        "steady_reconciles": reconciles_after - reconciles_before,
        "steady_objects_changed_in_namespace": changed_objects,
        "steady_apiserver_writes_cluster_wide": server_after.saturating_sub(server_before),
        "controller_manager_client_limit": client_limit,
        "restart": restart,
    });
    println!("{result}");
    if converged.is_none() {
        std::process::exit(1);
    }
}

/// The operator's reconciles, children read and writes so far (0, not -0, for a
/// counter with no series yet: an empty sum of floats is -0).
async fn activity(operator: &Operator) -> (f64, f64, f64) {
    let value = async |name| operator.metric(name).await + 0.0;
    (
        value("plugin_operator_reconciles_total").await,
        value("plugin_operator_child_reads_total").await,
        value("plugin_operator_api_writes_total").await,
    )
}

/// A new operator process among `count` converged Plugins, as after an upgrade or a
/// crash: its caches list every object at once, and it reads each child from the API
/// server once (its content digest is new to the process) and writes nothing. Measured
/// until every Plugin was reconciled and nothing was read or written for 3 s (at most
/// 10 min): the time, the peak resident set, the reads and the writes.
async fn restart_among(binary: &str, namespace: &str, count: usize) -> serde_json::Value {
    progress(&format!(
        "restarting the operator among the {count} Plugins"
    ));
    let mut command = Operator::command(binary, namespace);
    command.args([
        "--max-concurrent-reconciles",
        &common::CONCURRENCY.to_string(),
    ]);
    let started = Instant::now();
    let mut operator = Operator::spawn(command, Duration::from_secs(30)).await;
    let pid = operator.pid();
    let deadline = started + Duration::from_secs(600);
    let mut previous = activity(&operator).await;
    let mut settled = None;
    let mut last_report = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let now = activity(&operator).await;
        if now == previous && now.0 >= count as f64 {
            settled = Some(started.elapsed().as_secs_f64() - 3.0);
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(30) {
            progress(&format!(
                "restarted: {} reconciles, {} children read, {} writes",
                now.0, now.1, now.2
            ));
            last_report = Instant::now();
        }
        previous = now;
    }
    let (reconciles, reads, writes) = activity(&operator).await;
    let (_, hwm) = common::memory_kib(pid);
    operator.kill();
    progress(&format!(
        "restarted operator settled after {settled:?} s: peak {hwm} KiB, {reads} children read, {writes} writes"
    ));
    json!({
        "settled_seconds": settled,
        "hwm_kib": hwm,
        "reconciles": reconciles,
        "children_read": reads,
        "writes": writes,
    })
}

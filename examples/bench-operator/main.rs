//! Convergence, memory and steady-state writes of the operator with many Plugins.
//!
//! Starts `plugin-operator controller` on a fresh `bench-` namespace, creates the
//! Plugins (8 at a time), times until every Plugin has its five children and a status
//! at its generation, then counts writes over a quiet window. Prints one JSON line.
//!
//! cargo run --release --example bench-operator -- --binary target/release/plugin-operator \
//!     --plugins 1000 --steady-seconds 60

#[path = "../../bench/convergence/common.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{arg, progress};
use kube::api::Api;
use plugin_operator::api::Plugin;
use serde_json::json;

async fn metric(admin: &str, name: &str) -> f64 {
    let text = http_get(admin, "/metrics").await.unwrap_or_default();
    text.lines()
        .filter(|line| line.starts_with(name) && !line.starts_with('#'))
        .filter(|line| line[name.len()..].starts_with([' ', '{']))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

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

async fn http_get(address: &str, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

#[tokio::main]
async fn main() {
    let binary = arg("--binary", "target/release/plugin-operator");
    let count: usize = arg("--plugins", "1000")
        .parse()
        .expect("--plugins is a number");
    let steady = Duration::from_secs(arg("--steady-seconds", "60").parse().expect("seconds"));
    let timeout = Duration::from_secs(arg("--timeout-seconds", "600").parse().expect("seconds"));

    let client = common::client().await;
    common::install_crd(&client).await;
    let namespace = common::create_namespace(&client, "op").await;
    progress(&format!("namespace {namespace}; starting {binary}"));

    let mut operator = Command::new(&binary)
        .args(["controller", "--namespace", &namespace])
        .args([
            "--max-concurrent-reconciles",
            &common::CONCURRENCY.to_string(),
        ])
        .args(["--admin-address", "127.0.0.1:0", "--log-format", "json"])
        .env("RUST_LOG", "info,kube=warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the operator binary starts");
    let pid = operator.id();
    let stdout = operator.stdout.take().unwrap();
    let (address_tx, address_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !sent
                && let Ok(value) = serde_json::from_str::<serde_json::Value>(&line)
                && let Some(address) = value.get("admin_address").and_then(|a| a.as_str())
            {
                let _ = address_tx.send(address.to_string());
                sent = true;
            }
        }
    });
    let admin = address_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the operator logs its admin address");
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
    common::create_plugins(&plugins, count).await;
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
    let mut previous = metric(&admin, "plugin_operator_api_writes_total").await;
    let mut last_report = settle_started;
    loop {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let now = metric(&admin, "plugin_operator_api_writes_total").await;
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
    let writes_total = metric(&admin, "plugin_operator_api_writes_total").await;
    let versions_before = common::resource_versions(&client, &namespace).await;
    let server_before = common::apiserver_writes(&client).await;
    let operator_before = metric(&admin, "plugin_operator_api_writes_total").await;
    let reconciles_before = metric(&admin, "plugin_operator_reconciles_total").await;
    tokio::time::sleep(steady).await;
    let operator_after = metric(&admin, "plugin_operator_api_writes_total").await;
    let reconciles_after = metric(&admin, "plugin_operator_reconciles_total").await;
    let server_after = common::apiserver_writes(&client).await;
    let versions_after = common::resource_versions(&client, &namespace).await;
    let changed_objects = versions_after
        .iter()
        .filter(|(key, version)| versions_before.get(*key) != Some(version))
        .count();
    let (rss_end, hwm_end) = common::memory_kib(pid);

    let _ = operator.kill();
    let _ = operator.wait();
    progress("operator stopped; deleting the namespace");
    common::clean_up(&client, &namespace).await;

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
    });
    println!("{result}");
    if converged.is_none() {
        std::process::exit(1);
    }
}

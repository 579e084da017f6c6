//! Shared by the convergence benchmarks (`operator.rs` and `floor.rs` beside this file):
//! the same Plugins, the same creation concurrency and the same convergence check, so
//! the two runs differ only in who writes the children. The client, namespaces and the
//! API server's count of writes come from the test support (`cluster`).
#![allow(dead_code)] // each driver uses a part

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use plugin_operator::api::status::condition;
use plugin_operator::api::{Plugin, PluginSpec};
use plugin_operator::controller::desired::PLUGIN_LABEL;
use plugin_operator_test_support::cluster::TestNamespace;
use serde::de::DeserializeOwned;
use serde_json::json;

/// The concurrency of every writer in these benchmarks, the operator's included.
pub const CONCURRENCY: usize = 8;

pub use plugin_operator_test_support::driver::{arg, progress};

/// The label of every benchmark namespace.
const BENCH_LABEL: &str = "bench.plugins.chat.dev";

/// A fresh namespace `bench-<what>-<random>`.
pub async fn create_namespace(client: &Client, what: &str) -> TestNamespace {
    TestNamespace::new(client, &format!("bench-{what}"), &[(BENCH_LABEL, "yes")]).await
}

/// The namespace prefixes of the convergence benchmarks' own runs (floor and operator);
/// others with the benchmark label (another checkout's benchmarks on the shared
/// cluster) are not waited for.
const CONVERGENCE_PREFIXES: [&str; 2] = ["bench-floor-", "bench-op-"];

/// Waits (up to `limit`) until no floor or operator namespace but `own` exists: a namespace
/// still being deleted makes API server writes of its own (garbage collection), which
/// the steady-state count must not see, and which would load the API server during the
/// next run's clock (at 10,000 Plugins the deletion of the last run takes minutes).
pub async fn wait_for_other_bench_namespaces_gone(client: &Client, own: &str, limit: Duration) {
    let namespaces = Api::<Namespace>::all(client.clone());
    let deadline = Instant::now() + limit;
    let mut last_report = Instant::now();
    loop {
        let others: Vec<String> = namespaces
            .list_metadata(&ListParams::default().labels(&format!("{BENCH_LABEL}=yes")))
            .await
            .map(|list| list.items)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|namespace| namespace.metadata.name)
            .filter(|name| name != own)
            .filter(|name| CONVERGENCE_PREFIXES.iter().any(|p| name.starts_with(p)))
            .collect();
        if others.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            progress(&format!("still terminating, going on anyway: {others:?}"));
            return;
        }
        if last_report.elapsed() >= Duration::from_secs(30) {
            progress(&format!("waiting for {others:?} to be deleted"));
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The Plugin every benchmark creates: paused, so it never makes a pod.
pub fn spec() -> PluginSpec {
    serde_json::from_value(json!({
        "image": "registry.example/bench:1",
        "port": 8080,
        "paused": true,
        "permissions": {"chatApi": [{"scope": "messages:read"}]}
    }))
    .expect("the benchmark spec parses")
}

pub fn plugin_name(index: usize) -> String {
    format!("bench-{index:04}")
}

/// Creates Plugin `index` and returns it as the API server stored it (with its uid).
pub async fn create_plugin(api: &Api<Plugin>, index: usize) -> Plugin {
    api.create(
        &PostParams::default(),
        &Plugin::new(&plugin_name(index), spec()),
    )
    .await
    .expect("a benchmark Plugin is created")
}

/// Creates `count` Plugins, `CONCURRENCY` at a time.
pub async fn create_plugins(api: &Api<Plugin>, count: usize) {
    stream::iter(0..count)
        .map(|index| create_plugin(api, index))
        .buffer_unordered(CONCURRENCY)
        .for_each(|_| async {})
        .await;
}

/// How far the namespace is: Plugins whose status is at their generation, Plugins Ready
/// at their generation, and Plugins having all five children.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub with_status: usize,
    pub ready: usize,
    pub with_children: usize,
}

/// How often a long wait says how far it has come.
const REPORT_EVERY: Duration = Duration::from_secs(5);

impl Progress {
    /// One line on stderr: how many of `count` Plugins have children, status, Ready.
    fn report(&self, count: usize) {
        progress(&format!(
            "{} / {count} with children, {} / {count} with status, {} / {count} Ready",
            self.with_children, self.with_status, self.ready
        ));
    }
}

/// Whether the Plugin's status is at its generation and says Ready=True, with the Ready
/// condition's `observedGeneration` at that generation too.
pub fn ready_at_generation(plugin: &Plugin) -> bool {
    let generation = plugin.metadata.generation;
    let Some(status) = plugin.status.as_ref() else {
        return false;
    };
    generation.is_some()
        && status.observed_generation == generation
        && status.conditions.iter().any(|c| {
            c.type_ == condition::READY && c.status == "True" && c.observed_generation == generation
        })
}

/// Watches of the namespace's Plugins and of their children's metadata, started before
/// the first write so convergence is seen as it happens without asking the API server
/// over and over. Both runs (floor and operator) keep the same watches, so they add the
/// same load to both. (Listing the namespace every 250 ms, as an earlier version did,
/// loaded the API server during the operator's whole run but only at the floor's end.)
pub struct ConvergenceWatch {
    plugins: Store<Plugin>,
    service_accounts: Store<PartialObjectMeta<ServiceAccount>>,
    config_maps: Store<PartialObjectMeta<ConfigMap>>,
    deployments: Store<PartialObjectMeta<Deployment>>,
    services: Store<PartialObjectMeta<Service>>,
    network_policies: Store<PartialObjectMeta<NetworkPolicy>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn watch<K>(
    client: &Client,
    namespace: &str,
    selector: Option<&str>,
) -> (Store<K>, tokio::task::JoinHandle<()>)
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let config = match selector {
        Some(selector) => watcher::Config::default().labels(selector),
        None => watcher::Config::default(),
    };
    let stream = watcher(Api::<K>::namespaced(client.clone(), namespace), config)
        .default_backoff()
        .reflect(writer);
    let task = tokio::spawn(async move {
        stream.for_each(|_| async {}).await;
    });
    (reader, task)
}

impl ConvergenceWatch {
    pub async fn start(client: &Client, namespace: &str) -> Self {
        let (plugins, a) = watch::<Plugin>(client, namespace, None);
        let (service_accounts, b) = watch(client, namespace, Some(PLUGIN_LABEL));
        let (config_maps, c) = watch(client, namespace, Some(PLUGIN_LABEL));
        let (deployments, d) = watch(client, namespace, Some(PLUGIN_LABEL));
        let (services, e) = watch(client, namespace, Some(PLUGIN_LABEL));
        let (network_policies, f) = watch(client, namespace, Some(PLUGIN_LABEL));
        let watch = Self {
            plugins,
            service_accounts,
            config_maps,
            deployments,
            services,
            network_policies,
            tasks: vec![a, b, c, d, e, f],
        };
        for ready in [
            watch.plugins.wait_until_ready().await.is_ok(),
            watch.service_accounts.wait_until_ready().await.is_ok(),
            watch.config_maps.wait_until_ready().await.is_ok(),
            watch.deployments.wait_until_ready().await.is_ok(),
            watch.services.wait_until_ready().await.is_ok(),
            watch.network_policies.wait_until_ready().await.is_ok(),
        ] {
            assert!(ready, "a convergence watch did not start");
        }
        watch
    }

    pub fn progress(&self) -> Progress {
        fn owners<K: Resource<DynamicType = ()> + Clone + 'static>(
            store: &Store<K>,
        ) -> BTreeSet<String> {
            store
                .state()
                .iter()
                .filter_map(|object| object.meta().labels.as_ref()?.get(PLUGIN_LABEL).cloned())
                .collect()
        }
        let plugins = self.plugins.state();
        let with_status = plugins
            .iter()
            .filter(|p| {
                p.metadata.generation.is_some()
                    && p.status.as_ref().and_then(|s| s.observed_generation)
                        == p.metadata.generation
            })
            .count();
        let owner_sets = [
            owners(&self.service_accounts),
            owners(&self.config_maps),
            owners(&self.deployments),
            owners(&self.services),
            owners(&self.network_policies),
        ];
        let with_children = plugins
            .iter()
            .filter_map(|p| p.metadata.name.as_ref())
            .filter(|name| owner_sets.iter().all(|set| set.contains(*name)))
            .count();
        Progress {
            with_status,
            ready: plugins.iter().filter(|p| ready_at_generation(p)).count(),
            with_children,
        }
    }

    /// Runs `work`, saying every 5 s how far the Plugins have come.
    pub async fn reporting<T>(&self, count: usize, work: impl Future<Output = T>) -> T {
        let mut work = std::pin::pin!(work);
        loop {
            tokio::select! {
                done = &mut work => return done,
                () = tokio::time::sleep(REPORT_EVERY) => self.progress().report(count),
            }
        }
    }

    /// Checks the watched state every 50 ms until `count` Plugins have all children and
    /// are Ready at their generation. Returns the time from `started`, or None on
    /// timeout.
    pub async fn wait_converged(
        &self,
        count: usize,
        started: Instant,
        timeout: Duration,
    ) -> Option<Duration> {
        let mut last_report = Instant::now();
        loop {
            let now = self.progress();
            if now.ready == count && now.with_children == count {
                return Some(started.elapsed());
            }
            if last_report.elapsed() > REPORT_EVERY {
                now.report(count);
                last_report = Instant::now();
            }
            if started.elapsed() > timeout {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ConvergenceWatch {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// VmRSS and VmHWM of a process in KiB.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// How many Deployments of the namespace the deployment controller has not caught up
/// with yet (`status.observedGeneration` behind `metadata.generation`); their status
/// writes, and the Plugin status changes that follow them, are still to come.
pub async fn deployments_not_observed(client: &Client, namespace: &str) -> usize {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let items = api
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    items
        .iter()
        .filter(|d| {
            let observed = d.status.as_ref().and_then(|s| s.observed_generation);
            observed.is_none() || observed < d.metadata.generation
        })
        .count()
}

/// Deletes every Plugin of the namespace (children go with their owner), then the namespace.
pub async fn clean_up(client: &Client, namespace: TestNamespace) {
    let plugins: Api<Plugin> = Api::namespaced(client.clone(), &namespace.name);
    let _ = plugins
        .delete_collection(&DeleteParams::background(), &ListParams::default())
        .await;
    drop(namespace);
}

/// CPU seconds (user + system) a process has used so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |index: usize| fields.get(index).and_then(|f| f.parse::<f64>().ok());
    // utime and stime are fields 14 and 15 of the line, 11 and 12 counting from 0 after
    // the name.
    let total = ticks(11).unwrap_or(0.0) + ticks(12).unwrap_or(0.0);
    total / clock_ticks_per_second()
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The pid of the local cluster's kube-apiserver, if it runs on this machine.
pub fn apiserver_pid() -> Option<u32> {
    pid_of("kube-apiserver")
}

/// The pid of the first process whose `comm` (the name, cut to 15 bytes) is `comm`.
fn pid_of(comm: &str) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let found = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            (found.trim() == comm).then_some(pid)
        })
}

/// The client limit of the local kube-controller-manager, read from its command line:
/// `{"qps": .., "burst": ..}`, the defaults (20, 30) for a flag not given; null when no
/// kube-controller-manager runs on this machine. The deployment controller reports a
/// Deployment's status at this rate, and a Plugin's Ready follows that report.
pub fn controller_manager_client_limit() -> serde_json::Value {
    let Some(pid) = pid_of("kube-controller") else {
        return serde_json::Value::Null;
    };
    let command_line = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let flag = |name: &str, default: f64| {
        command_line
            .split(|byte| *byte == 0)
            .filter_map(|arg| std::str::from_utf8(arg).ok())
            .filter_map(|arg| arg.strip_prefix(name)?.strip_prefix('='))
            .filter_map(|value| value.parse::<f64>().ok())
            .next_back()
            .unwrap_or(default)
    };
    json!({"qps": flag("--kube-api-qps", 20.0), "burst": flag("--kube-api-burst", 30.0)})
}

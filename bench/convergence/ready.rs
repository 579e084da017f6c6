//! Apply → Ready with real pods on the local node: the operator against a floor.
//!
//! One operator process (`--binary`, the broker image `--broker-image`) watches a fresh
//! `bench-ready-op-` namespace for the whole run. In rounds that take turns:
//!
//! - floor: in a `bench-ready-floor-` namespace, 50 (`--plugins`) Deployments written
//!   directly, all at once, each with the ServiceAccount and policy ConfigMap its pod
//!   needs; their pod template is the operator's own (`desired_children`), so
//!   containers, probes, resources and images are identical. Each is timed from just
//!   before its first write to the Deployment `Available` with its pod Ready.
//! - operator: 50 Plugins created at once, each timed from just before its create to
//!   `Ready=True` at its generation.
//!
//! Then `--tries` single Plugins on an otherwise idle namespace, each create → Ready,
//! deleted and gone before the next, each after a single floor Deployment likewise.
//! Between sides every pod is gone (deleted with a 1 s grace period: the sample plugin
//! does not handle SIGTERM, and waiting out its 30 s grace is not what is measured).
//! Times are taken from watches (Plugins, Deployments, pods) started before the first
//! write. Prints one JSON line.
//!
//! cargo run --release --example bench-ready -- --binary target/release/plugin-operator \
//!     --broker-image localhost/plugin-operator:dev --plugin-image localhost/sample-plugin:dev \
//!     --plugins 50 --rounds 2 --tries 20

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use futures::{StreamExt, future, stream};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, Resource};
use plugin_operator::api::{Plugin, PluginSpec, sample_scope_catalog};
use plugin_operator::controller::ControllerArgs;
use plugin_operator::controller::config::OperatorConfig;
use plugin_operator::controller::desired::{Children, PLUGIN_LABEL, desired_children};
use plugin_operator::controller::validate::validate;
use plugin_operator_test_support::cluster::{Operator, TEST_SCOPE_CATALOG, client, install_crd};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use common::{arg, progress};
use plugin_operator_test_support::driver::number;

/// The Plugin both sides run: the sample plugin with a CPU request of 10m (the broker
/// asks 10m too), so that 50 pods fit on a 2-CPU node with room for others.
fn spec(image: &str) -> PluginSpec {
    serde_json::from_value(json!({
        "image": image,
        "port": 8080,
        "resources": {"requests": {"cpu": "10m"}},
    }))
    .expect("the benchmark spec parses")
}

/// The operator's configuration for the flags the benchmark starts it with.
fn operator_config(broker_image: &str) -> OperatorConfig {
    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        controller: ControllerArgs,
    }
    Flags::try_parse_from([
        "controller",
        "--broker-image",
        broker_image,
        "--scope-catalog",
        TEST_SCOPE_CATALOG,
    ])
    .expect("the operator's flags parse")
    .controller
    .operator_config()
    .expect("the operator's configuration builds")
}

/// What the operator would write for a Plugin `name` in `namespace`, without the owner
/// references (there is no Plugin to own them; the garbage collector would delete
/// children of a missing owner).
fn floor_children(
    namespace: &str,
    name: &str,
    spec: &PluginSpec,
    config: &OperatorConfig,
) -> Children {
    let mut plugin = Plugin::new(name, spec.clone());
    plugin.metadata.namespace = Some(namespace.into());
    plugin.metadata.uid = Some("00000000-0000-4000-8000-000000000000".into());
    plugin.metadata.generation = Some(1);
    let routes = sample_scope_catalog().routes();
    let valid = validate(&plugin, &routes).expect("the benchmark Plugin is valid");
    let mut children = desired_children(&valid, config);
    children.service_account.metadata.owner_references = None;
    children.config_map.metadata.owner_references = None;
    children.deployment.metadata.owner_references = None;
    children
}

/// When each object (by the Plugin name it belongs to) was first seen in a state.
type Seen = Arc<Mutex<HashMap<String, Instant>>>;

/// The first moment each watched object of a namespace meets its check.
struct Milestones {
    plugin_ready: Seen,
    deployment_seen: Seen,
    deployment_available: Seen,
    pod_ready: Seen,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Watches `api` and records, per key, when `key` first returned it. Returns once the
/// watch has listed.
async fn first_seen<K>(
    api: Api<K>,
    key: fn(&K) -> Option<String>,
) -> (Seen, tokio::task::JoinHandle<()>)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let seen: Seen = Arc::default();
    let (listed_tx, listed_rx) = tokio::sync::oneshot::channel();
    let sink = seen.clone();
    let task = tokio::spawn(async move {
        let mut listed = Some(listed_tx);
        let mut events = std::pin::pin!(watcher(api, watcher::Config::default()));
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) => {
                    if let Some(name) = key(&object) {
                        sink.lock()
                            .unwrap()
                            .entry(name)
                            .or_insert_with(Instant::now);
                    }
                }
                Ok(watcher::Event::InitDone) => {
                    if let Some(tx) = listed.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    });
    listed_rx.await.expect("a milestone watch lists");
    (seen, task)
}

fn alive(meta: &kube::core::ObjectMeta) -> bool {
    meta.deletion_timestamp.is_none()
}

fn plugin_ready(plugin: &Plugin) -> Option<String> {
    let status = plugin.status.as_ref()?;
    let ready = status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    (alive(&plugin.metadata)
        && ready
        && status.observed_generation.is_some()
        && status.observed_generation == plugin.metadata.generation)
        .then(|| plugin.metadata.name.clone())?
}

fn owner(meta: &kube::core::ObjectMeta) -> Option<String> {
    alive(meta).then(|| meta.labels.as_ref()?.get(PLUGIN_LABEL).cloned())?
}

fn deployment_seen(deployment: &Deployment) -> Option<String> {
    owner(&deployment.metadata)
}

fn deployment_available(deployment: &Deployment) -> Option<String> {
    let status = deployment.status.as_ref()?;
    let available = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Available" && c.status == "True");
    (available && status.ready_replicas.unwrap_or(0) >= 1).then(|| owner(&deployment.metadata))?
}

fn pod_ready(pod: &Pod) -> Option<String> {
    let ready = pod
        .status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    ready.then(|| owner(&pod.metadata))?
}

impl Milestones {
    async fn start(client: &Client, namespace: &str) -> Self {
        let (plugin_ready, a) =
            first_seen(Api::namespaced(client.clone(), namespace), plugin_ready).await;
        let (deployment_seen, b) =
            first_seen(Api::namespaced(client.clone(), namespace), deployment_seen).await;
        let (deployment_available, c) = first_seen(
            Api::namespaced(client.clone(), namespace),
            deployment_available,
        )
        .await;
        let (pod_ready, d) =
            first_seen(Api::namespaced(client.clone(), namespace), pod_ready).await;
        Self {
            plugin_ready,
            deployment_seen,
            deployment_available,
            pod_ready,
            tasks: vec![a, b, c, d],
        }
    }

    fn at(seen: &Seen, name: &str, started: Instant) -> Option<f64> {
        let at = *seen.lock().unwrap().get(name)?;
        Some(at.saturating_duration_since(started).as_secs_f64() * 1000.0)
    }

    /// Milliseconds from `started` to each milestone of `name`.
    fn sample(&self, name: &str, started: Instant) -> Sample {
        Sample {
            deployment_seen: Self::at(&self.deployment_seen, name, started),
            pod_ready: Self::at(&self.pod_ready, name, started),
            deployment_available: Self::at(&self.deployment_available, name, started),
            plugin_ready: Self::at(&self.plugin_ready, name, started),
        }
    }
}

impl Drop for Milestones {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    deployment_seen: Option<f64>,
    pod_ready: Option<f64>,
    deployment_available: Option<f64>,
    plugin_ready: Option<f64>,
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Floor,
    Operator,
}

impl Sample {
    /// The side's own end: the Deployment Available with its pod Ready (floor), the
    /// Plugin Ready (operator).
    fn done(&self, side: Side) -> Option<f64> {
        match side {
            Side::Floor => Some(self.deployment_available?.max(self.pod_ready?)),
            Side::Operator => self.plugin_ready,
        }
    }
}

/// The nearest-rank percentile `p` (0 to 100) of `samples`.
fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied()
}

fn summary(samples: &[Sample], side: Side) -> Value {
    let of = |field: fn(&Sample) -> Option<f64>| -> Vec<f64> {
        samples.iter().filter_map(field).collect()
    };
    let done = of(match side {
        Side::Floor => |s: &Sample| s.done(Side::Floor),
        Side::Operator => |s: &Sample| s.done(Side::Operator),
    });
    let median = |values: Vec<f64>| percentile(&values, 50.0);
    json!({
        "samples_ms": done,
        "missing": samples.len() - done.len(),
        "p50_ms": percentile(&done, 50.0),
        "p99_ms": percentile(&done, 99.0),
        "max_ms": done.iter().copied().reduce(f64::max),
        "median_deployment_seen_ms": median(of(|s| s.deployment_seen)),
        "median_pod_ready_ms": median(of(|s| s.pod_ready)),
        "median_deployment_available_ms": median(of(|s| s.deployment_available)),
        "median_plugin_ready_ms": median(of(|s| s.plugin_ready)),
        "p99_pod_ready_ms": percentile(&of(|s| s.pod_ready), 99.0),
        "p99_deployment_available_ms": percentile(&of(|s| s.deployment_available), 99.0),
    })
}

/// Writes one floor item: its ServiceAccount and ConfigMap, then its Deployment.
async fn write_floor(client: &Client, namespace: &str, children: Children) {
    let post = PostParams::default();
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let (account, map) = future::join(
        accounts.create(&post, &children.service_account),
        maps.create(&post, &children.config_map),
    )
    .await;
    account.expect("the floor's ServiceAccount is created");
    map.expect("the floor's ConfigMap is created");
    deployments
        .create(&post, &children.deployment)
        .await
        .expect("the floor's Deployment is created");
}

/// Everything one side needs to write its items and know when they are done.
struct Bench {
    client: Client,
    floor_ns: String,
    operator_ns: String,
    spec: PluginSpec,
    config: OperatorConfig,
    timeout: Duration,
}

impl Bench {
    /// Writes `names` at once on `side` and waits until each is done (or the timeout).
    async fn run(&self, side: Side, names: &[String], milestones: &Milestones) -> Vec<Sample> {
        let namespace = match side {
            Side::Floor => &self.floor_ns,
            Side::Operator => &self.operator_ns,
        };
        let built: Vec<(String, Children)> = names
            .iter()
            .map(|name| {
                (
                    name.clone(),
                    floor_children(namespace, name, &self.spec, &self.config),
                )
            })
            .collect();
        let plugins: Api<Plugin> = Api::namespaced(self.client.clone(), namespace);
        let starts: Vec<(String, Instant)> = stream::iter(built)
            .map(|(name, children)| {
                let plugins = plugins.clone();
                async move {
                    let started = Instant::now();
                    match side {
                        Side::Floor => write_floor(&self.client, namespace, children).await,
                        Side::Operator => {
                            plugins
                                .create(
                                    &PostParams::default(),
                                    &Plugin::new(&name, self.spec.clone()),
                                )
                                .await
                                .expect("a benchmark Plugin is created");
                        }
                    }
                    (name, started)
                }
            })
            .buffer_unordered(names.len().max(1))
            .collect()
            .await;
        let deadline = Instant::now() + self.timeout;
        let mut last_report = Instant::now();
        loop {
            let done = starts
                .iter()
                .filter(|(name, started)| milestones.sample(name, *started).done(side).is_some())
                .count();
            if done == starts.len() {
                break;
            }
            if Instant::now() > deadline {
                progress(&format!("timed out: {done} / {} done", starts.len()));
                break;
            }
            if last_report.elapsed() > Duration::from_secs(10) {
                progress(&format!("{done} / {} done", starts.len()));
                last_report = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        starts
            .iter()
            .map(|(name, started)| milestones.sample(name, *started))
            .collect()
    }

    /// Deletes what `side` wrote and waits until its namespace has no pods left.
    async fn clean(&self, side: Side) {
        let namespace = match side {
            Side::Floor => &self.floor_ns,
            Side::Operator => &self.operator_ns,
        };
        let all = ListParams::default();
        let background = DeleteParams::background();
        match side {
            Side::Floor => {
                let _ = Api::<Deployment>::namespaced(self.client.clone(), namespace)
                    .delete_collection(&background, &all)
                    .await;
                let _ = Api::<ConfigMap>::namespaced(self.client.clone(), namespace)
                    .delete_collection(&background, &ListParams::default().labels(PLUGIN_LABEL))
                    .await;
                let _ = Api::<ServiceAccount>::namespaced(self.client.clone(), namespace)
                    .delete_collection(&background, &ListParams::default().labels(PLUGIN_LABEL))
                    .await;
            }
            Side::Operator => {
                let _ = Api::<Plugin>::namespaced(self.client.clone(), namespace)
                    .delete_collection(&background, &all)
                    .await;
            }
        }
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let plugins: Api<Plugin> = Api::namespaced(self.client.clone(), namespace);
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        let quick = DeleteParams {
            grace_period_seconds: Some(1),
            ..DeleteParams::background()
        };
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let _ = pods.delete_collection(&quick, &all).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let pods_left = objects_left(&pods, &all).await;
            let plugins_left = objects_left(&plugins, &all).await;
            let deployments_left = objects_left(&deployments, &all).await;
            if pods_left + plugins_left + deployments_left == 0 {
                return;
            }
            if Instant::now() > deadline {
                progress(&format!(
                    "still there after 180 s: {pods_left} pods, {plugins_left} Plugins, {deployments_left} Deployments"
                ));
                return;
            }
        }
    }
}

fn names(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i:02}")).collect()
}

#[tokio::main]
async fn main() {
    let binary = arg("--binary", "target/release/plugin-operator");
    let broker_image = arg("--broker-image", "localhost/plugin-operator:dev");
    let plugin_image = arg("--plugin-image", "localhost/sample-plugin:dev");
    let count = number("--plugins", 50);
    let rounds = number("--rounds", 2);
    let tries = number("--tries", 20);
    let timeout = Duration::from_secs(number("--timeout-seconds", 300) as u64);

    let client = client().await;
    install_crd(&client).await;
    let floor_ns = common::create_namespace(&client, "ready-floor").await;
    let operator_ns = common::create_namespace(&client, "ready-op").await;
    let mut command = Operator::command(&binary, &operator_ns.name);
    command.args(["--broker-image", &broker_image]);
    let operator = Operator::spawn(command, Duration::from_secs(30)).await;
    progress(&format!(
        "floor in {}, operator (pid {}) in {}; broker {broker_image}, plugin {plugin_image}",
        floor_ns.name,
        operator.pid(),
        operator_ns.name
    ));
    let bench = Bench {
        client: client.clone(),
        floor_ns: floor_ns.name.clone(),
        operator_ns: operator_ns.name.clone(),
        spec: spec(&plugin_image),
        config: operator_config(&broker_image),
        timeout,
    };
    let floor_watch = Milestones::start(&client, &bench.floor_ns).await;
    let operator_watch = Milestones::start(&client, &bench.operator_ns).await;
    let watch = |side: Side| match side {
        Side::Floor => &floor_watch,
        Side::Operator => &operator_watch,
    };

    // Warm-up: one of each, so neither side pays a first pod's costs.
    for (side, name) in [(Side::Floor, "warm-f"), (Side::Operator, "warm-o")] {
        let sample = bench.run(side, &[name.to_string()], watch(side)).await;
        progress(&format!("warm-up {name}: {:?} ms", sample[0].done(side)));
        bench.clean(side).await;
    }

    let mut at_once: Vec<Value> = vec![];
    let (mut floor_all, mut operator_all) = (vec![], vec![]);
    for round in 1..=rounds {
        for side in [Side::Floor, Side::Operator] {
            let (label, prefix) = match side {
                Side::Floor => ("floor", format!("f{round}")),
                Side::Operator => ("operator", format!("o{round}")),
            };
            progress(&format!("round {round}/{rounds}, {label}: {count} at once"));
            let samples = bench.run(side, &names(&prefix, count), watch(side)).await;
            let result = summary(&samples, side);
            progress(&format!(
                "round {round}/{rounds}, {label}: p50 {:.0} ms, p99 {:.0} ms",
                result["p50_ms"].as_f64().unwrap_or(f64::NAN),
                result["p99_ms"].as_f64().unwrap_or(f64::NAN)
            ));
            at_once.push(json!({"round": round, "side": label, "result": result}));
            match side {
                Side::Floor => floor_all.extend(samples),
                Side::Operator => operator_all.extend(samples),
            }
            bench.clean(side).await;
        }
    }

    let (mut floor_one, mut operator_one) = (vec![], vec![]);
    for attempt in 1..=tries {
        for side in [Side::Floor, Side::Operator] {
            let name = match side {
                Side::Floor => format!("qf-{attempt:02}"),
                Side::Operator => format!("qo-{attempt:02}"),
            };
            let sample = bench.run(side, &[name], watch(side)).await[0];
            if side == Side::Operator {
                progress(&format!(
                    "one Plugin, try {attempt}/{tries}: Ready in {:.0} ms (floor {:.0} ms)",
                    sample.done(side).unwrap_or(f64::NAN),
                    floor_one
                        .last()
                        .and_then(|s: &Sample| s.done(Side::Floor))
                        .unwrap_or(f64::NAN)
                ));
            }
            match side {
                Side::Floor => floor_one.push(sample),
                Side::Operator => operator_one.push(sample),
            }
            bench.clean(side).await;
        }
    }

    let floor = summary(&floor_all, Side::Floor);
    let op = summary(&operator_all, Side::Operator);
    let ratio = |key: &str| Some(op[key].as_f64()? / floor[key].as_f64()?);
    let result = json!({
        "plugins": count,
        "rounds": rounds,
        "broker_image": broker_image,
        "plugin_image": plugin_image,
        "operator_binary": binary,
        "at_once": {
            "rounds": at_once,
            "floor": floor,
            "operator": op,
            "ratio_p50": ratio("p50_ms"),
            "ratio_p99": ratio("p99_ms"),
        },
        "one": {
            "tries": tries,
            "floor": summary(&floor_one, Side::Floor),
            "operator": summary(&operator_one, Side::Operator),
        },
    });
    println!("{result}");
    drop(operator);
    drop(floor_watch);
    drop(operator_watch);
    common::clean_up(&client, floor_ns).await;
    common::clean_up(&client, operator_ns).await;
}

/// How many objects `api` still lists; 1 when the list fails, so a failing list never
/// counts as empty.
async fn objects_left<K>(api: &Api<K>, params: &ListParams) -> usize
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.list_metadata(params)
        .await
        .map_or(1, |list| list.items.len())
}

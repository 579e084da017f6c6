//! What every fault shares: flags, progress lines, the namespace and its Plugins, the
//! operator process, and the check that the children are exactly what the operator
//! would write (computed with the operator's own validate and build steps).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use clap::Parser;
use futures::{StreamExt, stream};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use plugin_operator::api::{Plugin, PluginSpec};
use plugin_operator::controller::ControllerArgs;
use plugin_operator::controller::apply::{APPLIED_HASH_ANNOTATION, applied_hash};
use plugin_operator::controller::config::OperatorConfig;
use plugin_operator::controller::desired::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, desired_children};
use plugin_operator::controller::validate::validate;
use plugin_operator_test_support::cluster::{Operator, TestNamespace, http_get, test_image};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub use plugin_operator_test_support::driver::{arg, number, progress};

/// What one fault measured: one row of docs/reliability.md (printed as one JSON line).
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub fault: String,
    pub injected: usize,
    pub survived: usize,
    /// Seconds from each injection's end (the process or component back) to recovery.
    pub recovery_seconds: Vec<f64>,
    /// Plugins or children lost, orphaned, duplicated or differing at the end.
    pub lost: usize,
    /// Figures particular to the fault.
    pub details: Value,
}

impl Outcome {
    pub fn print(&self) {
        println!(
            "{}",
            serde_json::to_string(self).expect("an outcome serializes")
        );
    }
}

/// A small xorshift generator seeded from the clock: random moments, reproducible from
/// the seed it reports.
pub struct Random(u64);

impl Random {
    pub fn new() -> Self {
        let seed = std::env::var("CHAOS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos() as u64
                    | 1
            });
        progress(&format!(
            "random seed {seed} (CHAOS_SEED={seed} repeats it)"
        ));
        Self(seed)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A fresh namespace `chaos-<what>-<random>`, removed when dropped.
pub async fn namespace(client: &Client, what: &str) -> TestNamespace {
    TestNamespace::new(
        client,
        &format!("chaos-{what}"),
        &[("chaos.plugins.chat.dev", "yes")],
    )
    .await
}

/// The flags the drivers start the operator with (besides its namespace and admin port),
/// and `extra`.
pub fn operator_flags(extra: &[&str]) -> Vec<String> {
    let mut flags = vec!["--broker-image".to_string(), test_image("plugin-operator")];
    flags.extend(extra.iter().map(|s| s.to_string()));
    flags
}

/// The build step's configuration for the same flags: what the operator computes.
pub fn operator_config(flags: &[String]) -> OperatorConfig {
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        controller: ControllerArgs,
    }
    let argv = std::iter::once("controller".to_string()).chain(flags.iter().cloned());
    Cli::try_parse_from(argv)
        .expect("the operator flags parse")
        .controller
        .operator_config()
        .expect("the operator configuration is valid")
}

/// Starts `binary controller` on `namespace` with `flags`; `wrap` runs it under another
/// program (e.g. faketime), when given.
pub async fn start_operator(
    binary: &str,
    namespace: &str,
    flags: &[String],
    env: &[(&str, &str)],
) -> Operator {
    let mut command = Operator::command(binary, namespace);
    command.args(flags);
    for (key, value) in env {
        command.env(key, value);
    }
    Operator::spawn(command, Duration::from_secs(60)).await
}

/// Waits up to `limit` until the operator's `/readyz` answers 200; the time it took.
pub async fn wait_ready(operator: &Operator, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if http_get(&operator.admin, "/readyz").await.is_some() {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// A paused Plugin: all five children, no pod.
pub fn paused_spec(index: usize) -> PluginSpec {
    serde_json::from_value(json!({
        "image": "registry.example/chaos:1",
        "port": 8080,
        "paused": true,
        "env": [{"name": "INDEX", "value": index.to_string()}],
        "permissions": {"chatApi": [{"scope": "messages:read"}]}
    }))
    .expect("the chaos spec parses")
}

/// A running Plugin of the sample plugin image.
pub fn running_spec() -> PluginSpec {
    serde_json::from_value(json!({
        "image": test_image("sample-plugin"),
        "port": 8080,
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
        "permissions": {"chatApi": [{"scope": "messages:read"}]}
    }))
    .expect("the sample plugin's spec parses")
}

/// Creates `count` Plugins named `<prefix>-NNNN`, eight at a time, the i-th no earlier
/// than `i * pace` after the start.
pub async fn create_plugins(
    api: &Api<Plugin>,
    prefix: &str,
    count: usize,
    pace: Duration,
    spec: impl Fn(usize) -> PluginSpec,
) {
    let started = Instant::now();
    stream::iter(0..count)
        .map(|index| {
            let plugin = Plugin::new(&format!("{prefix}-{index:04}"), spec(index));
            async move {
                let at = started + pace * index as u32;
                tokio::time::sleep_until(at.into()).await;
                for attempt in 0.. {
                    match api.create(&PostParams::default(), &plugin).await {
                        Ok(_) => return,
                        Err(kube::Error::Api(status)) if status.code == 409 => return,
                        Err(error) if attempt < 60 => {
                            progress(&format!(
                                "creating {}: {error}; retrying",
                                plugin.name_any()
                            ));
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                        Err(error) => panic!("creating {}: {error}", plugin.name_any()),
                    }
                }
            }
        })
        .buffer_unordered(8)
        .for_each(|_| async {})
        .await;
}

/// Whether the Plugin's status is Ready at its current generation.
pub fn ready(plugin: &Plugin) -> bool {
    let Some(status) = &plugin.status else {
        return false;
    };
    status.observed_generation == plugin.metadata.generation
        && status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// Plugins of the namespace that are Ready, and how many there are.
pub async fn count_ready(api: &Api<Plugin>) -> Option<(usize, usize)> {
    let plugins = api.list(&ListParams::default()).await.ok()?.items;
    Some((plugins.iter().filter(|p| ready(p)).count(), plugins.len()))
}

/// Waits up to `limit` until `count` Plugins of the namespace are Ready; the time it took.
pub async fn wait_all_ready(api: &Api<Plugin>, count: usize, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut reported = Instant::now();
    loop {
        let (ready, total) = count_ready(api).await.unwrap_or((0, 0));
        if ready == count && total == count {
            return Some(started.elapsed());
        }
        if started.elapsed() > limit {
            progress(&format!("gave up: {ready} / {count} Ready after {limit:?}"));
            return None;
        }
        if reported.elapsed() > Duration::from_secs(10) {
            progress(&format!("{ready} / {count} Ready"));
            reported = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What is wrong with the namespace's children, each as `Kind/name: why`.
#[derive(Debug, Default, Serialize)]
pub struct ChildrenCheck {
    pub plugins: usize,
    pub children: usize,
    pub missing: Vec<String>,
    pub orphaned: Vec<String>,
    pub duplicated: Vec<String>,
    pub differing: Vec<String>,
}

impl ChildrenCheck {
    pub fn problems(&self) -> usize {
        self.missing.len() + self.orphaned.len() + self.duplicated.len() + self.differing.len()
    }

    pub fn summary(&self) -> String {
        format!(
            "{} Plugins, {} children: {} missing, {} orphaned, {} duplicated, {} differing from \
             what the operator would write{}",
            self.plugins,
            self.children,
            self.missing.len(),
            self.orphaned.len(),
            self.duplicated.len(),
            self.differing.len(),
            [
                &self.missing,
                &self.orphaned,
                &self.duplicated,
                &self.differing
            ]
            .iter()
            .flat_map(|list| list.iter().take(3))
            .map(|p| format!("\n     {p}"))
            .collect::<String>()
        )
    }
}

/// Compares every child in `namespace` with what the operator's own build step makes of
/// its Plugin under `config`: each desired field present with the desired value (the API
/// server adds defaults beside them), the applied hash of exactly that desired object,
/// one child of each kind per Plugin, and no child without a live owner.
pub async fn check_children(
    client: &Client,
    namespace: &str,
    config: &OperatorConfig,
) -> ChildrenCheck {
    let plugins: Vec<Plugin> = Api::<Plugin>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .expect("list Plugins")
        .items;
    let mut check = ChildrenCheck {
        plugins: plugins.len(),
        ..Default::default()
    };
    let mut desired: BTreeMap<String, Value> = BTreeMap::new();
    for plugin in &plugins {
        let valid = validate(plugin, &plugin_operator::policy::default_catalog())
            .expect("every chaos Plugin is valid");
        let children = desired_children(&valid, config);
        add(&mut desired, &children.service_account);
        add(&mut desired, &children.config_map);
        add(&mut desired, &children.deployment);
        add(&mut desired, &children.service);
        add(&mut desired, &children.network_policy);
    }
    let owners: BTreeSet<String> = plugins.iter().filter_map(|p| p.uid()).collect();
    let mut seen = BTreeSet::new();
    compare::<ServiceAccount>(client, namespace, &desired, &owners, &mut seen, &mut check).await;
    compare::<ConfigMap>(client, namespace, &desired, &owners, &mut seen, &mut check).await;
    compare::<Deployment>(client, namespace, &desired, &owners, &mut seen, &mut check).await;
    compare::<Service>(client, namespace, &desired, &owners, &mut seen, &mut check).await;
    compare::<NetworkPolicy>(client, namespace, &desired, &owners, &mut seen, &mut check).await;
    check.missing = desired
        .keys()
        .filter(|k| !seen.contains(*k))
        .cloned()
        .collect();
    check
}

fn add<K: Resource<DynamicType = ()> + Serialize>(into: &mut BTreeMap<String, Value>, child: &K) {
    let mut value = serde_json::to_value(child).expect("a child serializes");
    value["metadata"]["annotations"][APPLIED_HASH_ANNOTATION] = json!(applied_hash(child));
    into.insert(format!("{}/{}", K::kind(&()), child.name_any()), value);
}

async fn compare<K>(
    client: &Client,
    namespace: &str,
    desired: &BTreeMap<String, Value>,
    owners: &BTreeSet<String>,
    seen: &mut BTreeSet<String>,
    check: &mut ChildrenCheck,
) where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let selector = format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}");
    let live = Api::<K>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&selector))
        .await
        .expect("list children")
        .items;
    for object in live {
        check.children += 1;
        let key = format!("{}/{}", K::kind(&()), object.name_any());
        let owned = object
            .owner_references()
            .iter()
            .any(|o| o.controller == Some(true) && owners.contains(&o.uid));
        if !owned {
            check
                .orphaned
                .push(format!("{key}: no live Plugin controls it"));
        }
        if !seen.insert(key.clone()) {
            check.duplicated.push(key.clone());
        }
        if let Some(want) = desired.get(&key) {
            let mut value = serde_json::to_value(&object).expect("a child serializes");
            value["metadata"]
                .as_object_mut()
                .map(|m| m.remove("managedFields"));
            if let Err(path) = contains(&value, want, String::new()) {
                check.differing.push(format!("{key}: {path}"));
            }
        }
    }
}

/// Whether `live` holds every field of `want` with the same value (objects: a superset;
/// lists: the same length, item by item); else the path of the first difference.
fn contains(live: &Value, want: &Value, path: String) -> Result<(), String> {
    match (live, want) {
        (Value::Object(live), Value::Object(want)) => {
            for (key, value) in want {
                let here = format!("{path}.{key}");
                contains(live.get(key).unwrap_or(&Value::Null), value, here)?;
            }
            Ok(())
        }
        (Value::Array(live), Value::Array(want)) if live.len() == want.len() => live
            .iter()
            .zip(want)
            .enumerate()
            .try_for_each(|(i, (l, w))| contains(l, w, format!("{path}[{i}]"))),
        _ if live == want => Ok(()),
        _ => Err(format!("{path}: want {want}, found {live}")),
    }
}

/// Runs cluster/restart.sh on `components` of the cluster whose kubeconfig is KUBECONFIG
/// (SIGKILL when `kill`); returns the seconds from the stop to healthy again (the longest).
pub async fn restart_components(components: &[&str], kill: bool) -> f64 {
    let kubeconfig = std::env::var("KUBECONFIG").expect("KUBECONFIG is set");
    let dir = std::path::Path::new(&kubeconfig)
        .parent()
        .expect("the kubeconfig lies in the cluster's directory")
        .to_path_buf();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("cluster/restart.sh");
    let mut command = tokio::process::Command::new(script);
    command.env("CLUSTER_BUILD_DIR", dir);
    if kill {
        command.arg("--kill");
    }
    command.args(components);
    let output = command.output().await.expect("cluster/restart.sh runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cluster/restart.sh {components:?} failed:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .filter_map(|line| {
            line.split(" down for ")
                .nth(1)?
                .trim_end_matches(" s")
                .parse::<f64>()
                .ok()
        })
        .fold(0.0, f64::max)
}

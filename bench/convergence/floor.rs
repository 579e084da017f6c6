//! The floor for the operator's convergence: the least work that gives N Plugins their
//! children and a Ready status, done directly.
//!
//! For each Plugin, 8 at a time (the operator's `--max-concurrent-reconciles`): create
//! it, check it against the tests' ScopeCatalog and the PluginPolicies that select the
//! namespace with the operator's own `review`, build its children with the operator's
//! own `validate` and `desired_children` (same configuration as the operator's
//! defaults), server-side apply the five children under the same field manager with
//! the same applied-hash annotation, and apply the status the operator would write
//! first (not Ready yet). Then, without holding one of the 8 slots, wait until the
//! deployment controller reports the Deployment, and apply the status the operator
//! computes from that report (Ready=True), in a slot again. Then the same convergence
//! check as `bench-operator`: every Plugin Ready at its generation. Prints one JSON line.
//!
//! cargo run --release --example bench-floor -- --plugins 1000

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use futures::{StreamExt, stream};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use plugin_operator::api::status::condition;
use plugin_operator::api::{Plugin, PluginPolicy, PluginStatus, ScopeCatalog, ScopeCatalogSpec};
use plugin_operator::controller::ControllerArgs;
use plugin_operator::controller::apply::{APPLIED_HASH_ANNOTATION, applied_hash};
use plugin_operator::controller::bounds::{
    Catalog, EnvObjects, permissions_status, review, selecting,
};
use plugin_operator::controller::config::OperatorConfig;
use plugin_operator::controller::desired::{FIELD_MANAGER, PLUGIN_LABEL, desired_children};
use plugin_operator::controller::status::{Desired, plugin_status};
use plugin_operator::controller::validate::validate;
use plugin_operator::policy::CatalogRoute;
use plugin_operator_test_support::cluster::{TEST_SCOPE_CATALOG, client, install_crd};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};

/// The operator's own flags with their defaults (and the tests' ScopeCatalog, as
/// `bench-operator` gives it): the same configuration it builds from.
#[derive(Parser)]
struct Defaults {
    #[command(flatten)]
    controller: ControllerArgs,
}

/// What the operator reads besides the Plugin: its ScopeCatalog and the PluginPolicies
/// that select the namespace. Read once: nothing changes them during the run.
struct Bounds {
    catalog: Option<ScopeCatalogSpec>,
    routes: Vec<CatalogRoute>,
    policies: Vec<PluginPolicy>,
}

impl Bounds {
    async fn read(client: &Client, namespace: &str) -> Self {
        let catalog = Api::<ScopeCatalog>::all(client.clone())
            .get_opt(TEST_SCOPE_CATALOG)
            .await
            .expect("the ScopeCatalog is read")
            .map(|catalog| catalog.spec);
        let labels: BTreeMap<String, String> = Api::<Namespace>::all(client.clone())
            .get(namespace)
            .await
            .expect("the namespace is read")
            .metadata
            .labels
            .unwrap_or_default();
        let all = Api::<PluginPolicy>::all(client.clone())
            .list(&ListParams::default())
            .await
            .expect("the PluginPolicies are listed")
            .items;
        let policies = selecting(all.iter(), &labels)
            .into_iter()
            .cloned()
            .collect();
        let routes = catalog
            .as_ref()
            .map(ScopeCatalogSpec::routes)
            .unwrap_or_default();
        Self {
            catalog,
            routes,
            policies,
        }
    }
}

/// Where each Deployment's watch events go: to the Plugin waiting for it to be reported.
type Waiting = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Deployment>>>>;

/// Forwards every event of the namespace's Deployments to the Plugin waiting for it.
fn forward_deployments(
    client: &Client,
    namespace: &str,
    waiting: Waiting,
) -> tokio::task::JoinHandle<()> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let stream = watcher(api, watcher::Config::default().labels(PLUGIN_LABEL))
        .default_backoff()
        .applied_objects();
    tokio::spawn(async move {
        stream
            .for_each(|deployment| {
                if let Ok(deployment) = deployment
                    && let Some(to) = waiting.lock().unwrap().get(&deployment.name_any())
                {
                    let _ = to.send(deployment);
                }
                std::future::ready(())
            })
            .await;
    })
}

async fn apply<K>(client: &Client, namespace: &str, mut desired: K)
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Serialize
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let hash = applied_hash(&desired);
    desired
        .annotations_mut()
        .insert(APPLIED_HASH_ANNOTATION.into(), hash);
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.patch(
        &desired.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&desired),
    )
    .await
    .expect("a child applies");
}

async fn apply_status(plugins: &Api<Plugin>, name: &str, status: &PluginStatus) {
    let patch = json!({
        "apiVersion": "plugins.chat.dev/v1alpha1",
        "kind": "Plugin",
        "status": status,
    });
    plugins
        .patch_status(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .expect("the status applies");
}

fn ready(status: &PluginStatus) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == condition::READY && c.status == "True")
}

/// What every Plugin's run shares.
struct Run<'a> {
    client: &'a Client,
    config: &'a OperatorConfig,
    bounds: &'a Bounds,
    namespace: &'a str,
    slots: &'a Semaphore,
    waiting: Waiting,
}

/// Returns when Plugin `index` has its children and was first given a status.
async fn one_plugin(run: &Run<'_>, index: usize, written: impl FnOnce()) {
    let plugins: Api<Plugin> = Api::namespaced(run.client.clone(), run.namespace);
    let slot = run.slots.acquire().await.expect("the slots stay open");
    let plugin = common::create_plugin(&plugins, index).await;
    let names = validate(&plugin, &run.bounds.routes)
        .expect("a created Plugin is valid")
        .names;
    let catalog = Catalog {
        name: TEST_SCOPE_CATALOG,
        spec: run.bounds.catalog.as_ref(),
    };
    let policies: Vec<&PluginPolicy> = run.bounds.policies.iter().collect();
    let review = review(&plugin.spec, catalog, &policies, &EnvObjects::default());
    assert!(
        review.permitted(),
        "the bench Plugin is held: {}",
        review.message()
    );
    let granted = Plugin {
        spec: review.granted.clone(),
        ..plugin.clone()
    };
    let mut valid = validate(&granted, &run.bounds.routes).expect("the granted spec is valid");
    valid.runtime_class_name = review.runtime_class_name.clone();
    let children = desired_children(&valid, run.config);
    let desired = Desired {
        generation: plugin.metadata.generation.unwrap_or_default(),
        paused: plugin.spec.paused.unwrap_or(false),
        replicas: children.desired_replicas(),
        endpoint: names.endpoint(),
    };
    let (reports, mut reported) = mpsc::unbounded_channel();
    run.waiting
        .lock()
        .unwrap()
        .insert(names.workload(), reports);
    let (client, namespace) = (run.client, run.namespace);
    apply(client, namespace, children.service_account).await;
    apply(client, namespace, children.config_map).await;
    apply(client, namespace, children.deployment).await;
    apply(client, namespace, children.service).await;
    apply(client, namespace, children.network_policy).await;
    let permissions = permissions_status(&review);
    let status_with = |deployment: Option<&Deployment>, previous: Option<&PluginStatus>| {
        let mut status = plugin_status(&desired, deployment, &[], None, previous, &now());
        status.permissions = Some(permissions.clone());
        status
    };
    let first = status_with(None, None);
    apply_status(&plugins, &plugin.name_any(), &first).await;
    drop(slot);
    written();

    // The deployment controller's report, waited for outside the slots.
    let status = loop {
        let deployment = reported
            .recv()
            .await
            .expect("the Deployment watch runs until the end");
        let status = status_with(Some(&deployment), Some(&first));
        if ready(&status) {
            break status;
        }
    };
    run.waiting.lock().unwrap().remove(&names.workload());
    let _slot = run.slots.acquire().await.expect("the slots stay open");
    apply_status(&plugins, &plugin.name_any(), &status).await;
}

/// Now, to the second, as the operator stamps condition transitions.
fn now() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    let now = k8s_openapi::jiff::Timestamp::now();
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::from_second(now.as_second()).unwrap_or(now),
    )
}

#[tokio::main]
async fn main() {
    let count: usize = common::arg("--plugins", "1000")
        .parse()
        .expect("--plugins is a number");
    let timeout = Duration::from_secs(
        common::arg("--timeout-seconds", "1800")
            .parse()
            .expect("seconds"),
    );
    let config = Defaults::parse_from(["bench-floor", "--scope-catalog", TEST_SCOPE_CATALOG])
        .controller
        .operator_config()
        .expect("the default configuration is valid");

    let client = client().await;
    install_crd(&client).await;
    // The previous run's namespace, still being deleted, would load the API server.
    common::wait_for_other_bench_namespaces_gone(&client, "", Duration::from_secs(1200)).await;
    let ns = common::create_namespace(&client, "floor").await;
    let namespace = ns.name.clone();
    let bounds = Bounds::read(&client, &namespace).await;
    let client_limit = common::controller_manager_client_limit();
    common::progress(&format!(
        "namespace {namespace}; creating {count} Plugins and their children, {} at a time; kube-controller-manager client limit {client_limit}",
        common::CONCURRENCY
    ));
    let watch = common::ConvergenceWatch::start(&client, &namespace).await;
    let waiting = Waiting::default();
    let forwarder = forward_deployments(&client, &namespace, waiting.clone());
    let slots = Semaphore::new(common::CONCURRENCY);
    let run = Run {
        client: &client,
        config: &config,
        bounds: &bounds,
        namespace: &namespace,
        slots: &slots,
        waiting,
    };
    let apiserver = common::apiserver_pid();
    let apiserver_cpu_before = apiserver.map(common::cpu_seconds);
    let started = Instant::now();
    let last_written = Mutex::new(Duration::ZERO);
    let mark_written = || *last_written.lock().unwrap() = started.elapsed();
    // Every Plugin's run is started at once; the slots keep 8 writing at a time.
    let writes = stream::iter(0..count)
        .map(|index| one_plugin(&run, index, mark_written))
        .buffer_unordered(count.max(1))
        .for_each(|_| async {});
    watch.reporting(count, writes).await;
    let written = *last_written.lock().unwrap();
    let converged = watch.wait_converged(count, started, timeout).await;
    drop(watch);
    forwarder.abort();
    let converged_s = converged.map(|d| d.as_secs_f64());
    let apiserver_cpu = apiserver
        .map(common::cpu_seconds)
        .zip(apiserver_cpu_before)
        .map(|(after, before)| after - before);
    common::progress(&format!("floor converged: {converged_s:?} s"));
    common::clean_up(&client, ns).await;
    println!(
        "{}",
        json!({
            "plugins": count,
            "write_seconds": written.as_secs_f64(),
            "converge_seconds": converged_s,
            "apiserver_cpu_seconds": apiserver_cpu,
            "controller_manager_client_limit": client_limit,
        })
    );
    if converged.is_none() {
        std::process::exit(1);
    }
}

//! `plugin-operator controller`: wires the watches, the reconcile loop, leader election,
//! the admin port and graceful shutdown.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{FutureExt, Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::{
    coordination::v1::Lease,
    core::v1::{ConfigMap, Namespace, Pod},
};
use kube::api::Api;
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::admin::{self, AdminState};
use super::args::ControllerArgs;
use super::cached::{Cached, Keeps, cached_event};
use super::config::OperatorConfig;
use super::context::{ChildStores, Context};
use super::desired::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, PLUGIN_LABEL};
use super::events::Recorder;
use super::metrics::{ConditionLabels, DegradedLabels, Metrics};
use super::reconcile::{error_policy, reconcile};
use super::rollout::Rollouts;
use super::verified::{Child, VerifiedChildren};
use crate::api::status::condition;
use crate::api::{Plugin, PluginPolicy, ScopeCatalog};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub async fn run(args: ControllerArgs) -> Result<(), BoxError> {
    crate::telemetry::init(args.log_format);
    let config = args.operator_config()?;
    let client = Client::try_default().await?;
    let metrics = Arc::new(Metrics::default());
    let plugin_stores: Arc<Mutex<Vec<Store<DeserializeGuard<Plugin>>>>> = Arc::default();
    let state = Arc::new(AdminState {
        metrics: metrics.clone(),
        ready: Default::default(),
        before_scrape: Box::new({
            let (metrics, stores) = (metrics.clone(), plugin_stores.clone());
            move || {
                count_plugins_by_condition(&metrics, &stores.lock().expect("store list poisoned"))
            }
        }),
        waiting: Default::default(),
    });
    // SIGTERM is handled from before the admin port answers: a stop at any moment after
    // is graceful.
    let terminate = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    tokio::spawn(signal_shutdown(terminate, shutdown_tx));
    let admin_address = admin::serve(args.admin_address, state.clone()).await?;
    info!(%admin_address, "admin endpoints listening");

    let election = args.leader_election();
    let leases: Option<Api<Lease>> = election.as_ref().map(|e| {
        let namespace = e.namespace.as_deref();
        Api::namespaced(
            client.clone(),
            namespace.unwrap_or(client.default_namespace()),
        )
    });
    if let (Some(election), Some(leases)) = (&election, &leases) {
        state.ready.store(true, Ordering::Relaxed);
        let renewed = tokio::select! {
            renewed = election.acquire(leases) => renewed,
            _ = wait_for(shutdown_rx.clone()) => return Ok(()),
        };
        metrics.leader.set(1);
        let (election, leases) = (election.clone(), leases.clone());
        tokio::spawn(async move {
            election.hold(&leases, renewed).await;
            // A graceful stop would let reconciles in flight write after a standby may
            // have taken over; end at once, as client-go does, and let the supervisor
            // start this replica again as a standby.
            error!("leadership lost; exiting at once so that only one replica writes");
            std::process::exit(1);
        });
    }

    if election.is_none() {
        metrics.leader.set(1);
    }

    let namespaces: Vec<Option<String>> = if args.namespaces.is_empty() {
        vec![None]
    } else {
        args.namespaces.iter().map(|n| Some(n.clone())).collect()
    };
    let reporter = Reporter {
        controller: "plugin-operator".into(),
        instance: election.as_ref().map(|e| e.identity.clone()),
    };
    let shared = Shared {
        client: client.clone(),
        config,
        metrics,
        recorder: Arc::new(Recorder::new(client.clone(), reporter)),
        plugin_stores,
        admin: state.clone(),
        max_concurrent_reconciles: args.max_concurrent_reconciles,
        max_concurrent_rollouts: args.max_concurrent_rollouts,
    };
    let controllers = namespaces
        .into_iter()
        .map(|namespace| controller_for(namespace, &shared, shutdown_rx.clone()));
    futures::future::join_all(controllers).await;
    if let (Some(election), Some(leases)) = (&election, &leases) {
        election.release(leases).await;
        info!("released the Lease");
    }
    info!("stopped");
    Ok(())
}

/// How many objects one list request of a Plugin or child watch asks for. A list at
/// "any" resourceVersion (served from the API server's cache) ignores the limit and
/// comes whole: at 10,000 Plugins, 10,000 Deployments with their managedFields are about
/// 145 MB of JSON, read and decoded at once before the caches trim them. Pages (consistent
/// reads) keep a (re)list's peak to one page per watch, and a new process lists its six
/// watches at once: a page of 100 Deployments is about 1.5 MB of JSON and twice that
/// decoded.
const LIST_PAGE: u32 = 100;

fn api<K>(client: &Client, namespace: &Option<String>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// The watches of the objects the operator manages (by label) in one controller's
/// namespace (or all).
struct ManagedWatches<'a> {
    client: &'a Client,
    namespace: &'a Option<String>,
    admin: &'a Arc<AdminState>,
    verified: &'a Arc<VerifiedChildren>,
}

impl ManagedWatches<'_> {
    /// A cache of the children of one kind, as [`Cached`] keeps them. A failing watch
    /// is reported to `admin` (log and `/readyz`) until it answers again; a deleted
    /// child leaves `verified`.
    fn reflect_children<K: Keeps>(
        &self,
    ) -> (
        Store<Cached<K>>,
        impl Stream<Item = Result<Cached<K>, watcher::Error>> + Send + use<K>,
    ) {
        let (reader, writer) = reflector::store();
        let verified = self.verified.clone();
        let stream = self
            .watch::<K>()
            .map_ok(cached_event)
            .inspect(report_to(self.admin.clone(), K::plural(&()).to_string()))
            .inspect(move |event| {
                if let Ok(watcher::Event::Delete(object)) = event {
                    verified.forget(Child::of(&K::kind(&()), object));
                }
            })
            .reflect(writer)
            .touched_objects()
            .filter(only_events);
        (reader, stream)
    }

    /// A cache of the operator's pods, without their spec: the status step reads a
    /// pod's labels and status only.
    fn reflect_pods(
        &self,
    ) -> (
        Store<Pod>,
        impl Stream<Item = Result<Pod, watcher::Error>> + Send + use<>,
    ) {
        let (reader, writer) = reflector::store();
        let stream = self
            .watch::<Pod>()
            .modify(|pod| {
                pod.metadata.managed_fields = None;
                pod.spec = None;
            })
            .inspect(report_to(self.admin.clone(), "pods".into()))
            .reflect(writer)
            .touched_objects()
            .filter(only_events);
        (reader, stream)
    }

    /// The watch of one kind, by the operator's label, in pages.
    fn watch<K>(&self) -> impl Stream<Item = watcher::Result<watcher::Event<K>>> + Send + use<K>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Debug
            + Send
            + 'static,
    {
        let selector = format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}");
        watcher(
            api::<K>(self.client, self.namespace),
            watcher::Config::default()
                .labels(&selector)
                .page_size(LIST_PAGE),
        )
        .default_backoff()
    }
}

/// A cache of every object of a kind (not only the operator's), and a stream of each
/// object that was changed, added or deleted: a deleted policy may release a Plugin.
/// `what` names the watch to `admin`.
fn reflect_all<K>(
    api: Api<K>,
    config: watcher::Config,
    trim: fn(&mut K),
    what: &str,
    admin: Arc<AdminState>,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send,
)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, config)
        .modify(move |object| {
            object.managed_fields_mut().clear();
            trim(object);
        })
        .default_backoff()
        .inspect(report_to(admin, what.to_string()))
        .reflect(writer)
        .filter_map(|event| async move {
            match event {
                Ok(watcher::Event::Apply(object) | watcher::Event::Delete(object)) => {
                    Some(Ok(object))
                }
                Ok(_) => None,
                Err(error) => Some(Err(error)),
            }
        })
        .filter(only_events);
    (reader, stream)
}

/// Tells `admin` whether the watch of `what` answers.
fn report_to<T, E: std::fmt::Display>(
    admin: Arc<AdminState>,
    what: String,
) -> impl FnMut(&Result<T, E>) {
    move |item| match item {
        Ok(_) => admin.waiting.answered(&what),
        Err(error) => admin.waiting.failed(&what, error),
    }
}

/// Keeps watch errors out of the controller's queue; [`report_to`] has reported them
/// and the watch retries by itself. kube-runtime's controller splits its queue into
/// events and errors, and an error waits there, holding back every event behind it,
/// until something else wakes the controller: after an API server restart the
/// operator saw no watch event until the next resync, five minutes later (found by
/// `make chaos`, docs/reliability.md).
fn only_events<T, E>(item: &Result<T, E>) -> std::future::Ready<bool> {
    std::future::ready(item.is_ok())
}

/// What the caches keep of the objects that are not children ([`Cached`] keeps those).
mod trim {
    use super::*;

    pub fn nothing<K>(_: &mut K) {}

    /// A CA bundle's keys: the status step asks only whether its key is there.
    pub fn keys_only(config_map: &mut ConfigMap) {
        for value in config_map
            .data
            .iter_mut()
            .flat_map(|data| data.values_mut())
        {
            value.clear();
        }
        for value in config_map
            .binary_data
            .iter_mut()
            .flat_map(|data| data.values_mut())
        {
            value.0.clear();
        }
    }
}

/// What every namespace's controller shares.
struct Shared {
    client: Client,
    config: OperatorConfig,
    metrics: Arc<Metrics>,
    recorder: Arc<Recorder>,
    plugin_stores: Arc<Mutex<Vec<Store<DeserializeGuard<Plugin>>>>>,
    admin: Arc<AdminState>,
    max_concurrent_reconciles: u16,
    max_concurrent_rollouts: u16,
}

async fn controller_for(
    namespace: Option<String>,
    shared: &Shared,
    shutdown: watch::Receiver<bool>,
) {
    let (client, admin) = (&shared.client, &shared.admin);
    let verified = Arc::new(VerifiedChildren::default());
    let managed = ManagedWatches {
        client,
        namespace: &namespace,
        admin,
        verified: &verified,
    };
    let (service_accounts, sa_stream) = managed.reflect_children();
    let (config_maps, cm_stream) = managed.reflect_children();
    let (deployments, deploy_stream) = managed.reflect_children();
    let (services, svc_stream) = managed.reflect_children();
    let (network_policies, np_stream) = managed.reflect_children();
    let (pods, pod_stream) = managed.reflect_pods();
    let (policies, policy_stream) = reflect_all(
        Api::<PluginPolicy>::all(client.clone()),
        watcher::Config::default().any_semantic(),
        trim::nothing,
        "pluginpolicies",
        admin.clone(),
    );
    // Only the operator's own catalog matters; it may not exist (yet).
    let (catalogs, catalog_stream) = reflect_all(
        Api::<ScopeCatalog>::all(client.clone()),
        watcher::Config::default()
            .fields(&format!("metadata.name={}", shared.config.scope_catalog))
            .any_semantic(),
        trim::nothing,
        "scopecatalogs",
        admin.clone(),
    );
    // Only the watched namespace's labels matter (every namespace's when all are watched).
    let namespace_config = match &namespace {
        Some(name) => watcher::Config::default().fields(&format!("metadata.name={name}")),
        None => watcher::Config::default(),
    };
    let (namespaces, namespace_stream) = reflect_all(
        Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
        namespace_config.any_semantic(),
        trim::nothing,
        "namespaces",
        admin.clone(),
    );
    // The chat API's CA bundle of every watched namespace, by name: one that appears,
    // changes or goes wakes the Plugins of its namespace (their status says when it is
    // missing).
    let (chat_api_ca, chat_api_ca_stream) = match &shared.config.chat_api_ca {
        Some(ca) => {
            let (store, stream) = reflect_all(
                api::<ConfigMap>(client, &namespace),
                watcher::Config::default()
                    .fields(&format!("metadata.name={}", ca.config_map))
                    .any_semantic(),
                trim::keys_only,
                "chat API CA bundles (configmaps)",
                admin.clone(),
            );
            (Some(store), Some(stream))
        }
        None => (None, None),
    };
    let stores = ChildStores {
        service_accounts,
        config_maps,
        deployments,
        services,
        network_policies,
        pods,
        policies,
        catalogs,
        namespaces,
        chat_api_ca,
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        config: shared.config.clone(),
        stores: stores.clone(),
        metrics: shared.metrics.clone(),
        recorder: shared.recorder.clone(),
        failures: Mutex::new(HashMap::new()),
        written_statuses: Default::default(),
        recent_applies: Default::default(),
        unwritten_deployments: Default::default(),
        verified_children: verified,
        rollouts: Rollouts::new(shared.max_concurrent_rollouts),
    });

    let (plugin_reader, plugin_writer) = reflector::store::<DeserializeGuard<Plugin>>();
    let plugin_stream = watcher(
        api::<DeserializeGuard<Plugin>>(client, &namespace),
        watcher::Config::default().page_size(LIST_PAGE),
    )
    // The operator reads no annotation of a Plugin; `kubectl apply`'s
    // last-applied-configuration alone is as large as the spec.
    .modify(|guarded| {
        guarded.managed_fields_mut().clear();
        guarded.annotations_mut().clear();
    })
    .default_backoff()
    .inspect(report_to(admin.clone(), "plugins".into()))
    .reflect(plugin_writer)
    .touched_objects()
    .filter(only_events);
    shared
        .plugin_stores
        .lock()
        .expect("store list poisoned")
        .push(plugin_reader.clone());

    let readiness = {
        let stores = stores.clone();
        let plugins = plugin_reader.clone();
        let state = shared.admin.clone();
        async move {
            synced(&plugins).await;
            synced(&stores.deployments).await;
            synced(&stores.pods).await;
            synced(&stores.policies).await;
            synced(&stores.catalogs).await;
            synced(&stores.namespaces).await;
            state.ready.store(true, Ordering::Relaxed);
            info!("caches synced; reconciling");
        }
    };
    tokio::spawn(readiness);

    // Everything else that wakes a Plugin wakes it by name and namespace alone
    // ([`plugin_ref`]). The controller's `owns_stream` and `watches_stream` would queue
    // each wake-up with the waking object's whole reference (API group, version, kind,
    // plural, name, namespace, uid, resourceVersion: about 600 bytes), and the queue
    // holds each request twice: a new process among 10,000 Plugins has them all queued
    // at once while it reads their children.
    let mut controller = Controller::for_stream(plugin_stream, plugin_reader.clone())
        .reconcile_on(owners_of(sa_stream))
        .reconcile_on(owners_of(cm_stream))
        .reconcile_on(owners_of(deploy_stream))
        .reconcile_on(owners_of(svc_stream))
        .reconcile_on(owners_of(np_stream))
        .reconcile_on(pod_stream.filter_map(|pod| {
            let plugin = pod.ok().and_then(|pod| {
                Some(plugin_ref(
                    pod.labels().get(PLUGIN_LABEL)?,
                    &pod.namespace()?,
                ))
            });
            std::future::ready(plugin)
        }))
        // A policy that changes or goes may hold or release any Plugin; a namespace's
        // labels decide which policies select it.
        .reconcile_on(policy_stream.flat_map(every_plugin(plugin_reader.clone())))
        // The catalog is compiled into every broker's policy and bounds every Plugin.
        .reconcile_on(catalog_stream.flat_map(every_plugin(plugin_reader.clone())))
        .reconcile_on(namespace_stream.flat_map(plugins_of_namespace(
            plugin_reader.clone(),
            |namespace: &PartialObjectMeta<Namespace>| namespace.name_any(),
        )));
    if let Some(stream) = chat_api_ca_stream {
        controller = controller.reconcile_on(stream.flat_map(plugins_of_namespace(
            plugin_reader.clone(),
            |bundle: &ConfigMap| bundle.namespace().unwrap_or_default(),
        )));
    }
    let run = controller
        .with_config(ControllerConfig::default().concurrency(shared.max_concurrent_reconciles))
        .graceful_shutdown_on(wait_for(shutdown.clone()))
        .run(reconcile, error_policy, ctx)
        .for_each(|outcome| async move {
            if let Err(error) = outcome {
                warn!(%error, "controller stream error");
            }
        });
    // kube-runtime's runner starts no reconcile before the Plugin cache has listed, and
    // after a shutdown it would wait for that list for ever. A stop that comes first
    // (a SIGTERM right after the start) ends here: nothing can be in flight.
    let stopped_before_listing = async {
        wait_for(shutdown).await;
        if plugin_reader.wait_until_ready().now_or_never().is_none() {
            return;
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        () = run => {}
        () = stopped_before_listing => info!("stopped before the Plugins were listed"),
    }
}

type PluginRef = ObjectRef<DeserializeGuard<Plugin>>;

/// A Plugin to wake, by name and namespace: the controller finds it in its cache.
fn plugin_ref(name: &str, namespace: &str) -> PluginRef {
    ObjectRef::new(name).within(namespace)
}

/// The Plugins in `namespace` (in every namespace for `None`): what a change to a
/// policy, the catalog, a namespace or its CA bundle wakes.
fn plugins_in(
    plugins: &Store<DeserializeGuard<Plugin>>,
    namespace: Option<&str>,
) -> Vec<PluginRef> {
    plugins
        .state()
        .iter()
        .filter_map(|plugin| {
            let meta = plugin.meta();
            let plugin_namespace = meta.namespace.as_deref()?;
            if namespace.is_some_and(|namespace| namespace != plugin_namespace) {
                return None;
            }
            Some(plugin_ref(meta.name.as_deref()?, plugin_namespace))
        })
        .collect()
}

/// Wakes every Plugin at each item.
fn every_plugin<T>(
    plugins: Store<DeserializeGuard<Plugin>>,
) -> impl FnMut(T) -> futures::stream::Iter<std::vec::IntoIter<PluginRef>> {
    move |_| futures::stream::iter(plugins_in(&plugins, None))
}

/// Wakes the Plugins in the namespace `namespace_of` names, at each item.
fn plugins_of_namespace<T>(
    plugins: Store<DeserializeGuard<Plugin>>,
    namespace_of: fn(&T) -> String,
) -> impl FnMut(Result<T, watcher::Error>) -> futures::stream::Iter<std::vec::IntoIter<PluginRef>> {
    move |item| {
        let woken = item.map(|item| plugins_in(&plugins, Some(&namespace_of(&item))));
        futures::stream::iter(woken.unwrap_or_default())
    }
}

/// The Plugins that own each changed child ([`Cached::owners`]).
fn owners_of<K: Keeps>(
    children: impl Stream<Item = Result<Cached<K>, watcher::Error>> + Send + 'static,
) -> impl Stream<Item = PluginRef> + Send + 'static {
    children.flat_map(|child| {
        let owners = child.map(|child| {
            let namespace = child.metadata.namespace.as_deref().unwrap_or_default();
            child
                .owners
                .iter()
                .map(|owner| plugin_ref(owner, namespace))
                .collect::<Vec<_>>()
        });
        futures::stream::iter(owners.unwrap_or_default())
    })
}

/// Waits until `store` has its first full list. The store's readiness wakes only the
/// last task that polled it, and the controller polls it too, so poll again each second
/// rather than wait for a wake-up that may go to the controller.
async fn synced<K>(store: &Store<K>)
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    while tokio::time::timeout(Duration::from_secs(1), store.wait_until_ready())
        .await
        .is_err()
    {}
}

fn count_plugins_by_condition(metrics: &Metrics, stores: &[Store<DeserializeGuard<Plugin>>]) {
    let mut counts: HashMap<(String, String), i64> = HashMap::new();
    let mut degraded = Vec::new();
    for store in stores {
        for guarded in store.state() {
            let Ok(plugin) = &guarded.0 else { continue };
            let conditions = plugin.status.as_ref().map(|s| s.conditions.as_slice());
            for type_ in [condition::READY, condition::DEGRADED] {
                let found = conditions
                    .unwrap_or_default()
                    .iter()
                    .find(|c| c.type_ == type_);
                let status = found.map_or("Unknown", |c| c.status.as_str());
                *counts
                    .entry((type_.to_string(), status.to_string()))
                    .or_default() += 1;
                if let Some(c) =
                    found.filter(|c| type_ == condition::DEGRADED && c.status == "True")
                {
                    degraded.push(DegradedLabels {
                        namespace: plugin.namespace().unwrap_or_default(),
                        plugin: plugin.name_any(),
                        reason: c.reason.clone(),
                    });
                }
            }
        }
    }
    metrics.plugins.clear();
    for ((condition, status), count) in counts {
        metrics
            .plugins
            .get_or_create(&ConditionLabels { condition, status })
            .set(count);
    }
    metrics.degraded.clear();
    for labels in degraded {
        metrics.degraded.get_or_create(&labels).set(1);
    }
}

async fn signal_shutdown(mut terminate: Signal, shutdown: watch::Sender<bool>) {
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    info!("shutting down");
    let _ = shutdown.send(true);
}

async fn wait_for(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stopping| *stopping).await;
}

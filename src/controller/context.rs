//! What every reconcile shares: the client, the configuration, the caches of the
//! children, metrics and the Event recorder.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Namespace, Pod, Service, ServiceAccount},
    networking::v1::NetworkPolicy,
};
use kube::Client;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};

use super::apply::{RecentApplies, UnwrittenDeployments};
use super::cached::Cached;
use super::config::OperatorConfig;
use super::events::Recorder;
use super::metrics::Metrics;
use super::rollout::Rollouts;
use super::status::written::WrittenStatuses;
use super::verified::VerifiedChildren;
use crate::api::{Plugin, PluginPolicy, ScopeCatalog};

/// Read-only caches of everything the operator manages, kept by watches. Children are
/// cached as metadata, applied hash and a digest of their content ([`Cached`]): the
/// apply step reads a child whose digest it has not seen clean; pods only as far as the
/// status reads them.
#[derive(Clone)]
pub struct ChildStores {
    pub service_accounts: Store<Cached<ServiceAccount>>,
    pub config_maps: Store<Cached<ConfigMap>>,
    pub deployments: Store<Cached<Deployment>>,
    pub services: Store<Cached<Service>>,
    pub network_policies: Store<Cached<NetworkPolicy>>,
    pub pods: Store<Pod>,
    /// Every PluginPolicy (cluster-scoped, few).
    pub policies: Store<PluginPolicy>,
    /// The operator's ScopeCatalog (the watch selects it by name).
    pub catalogs: Store<ScopeCatalog>,
    /// The watched namespaces, for their labels.
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    /// The chat API's CA bundles (`--chat-api-ca-config-map`), keys without values;
    /// None when the operator is given none.
    pub chat_api_ca: Option<Store<ConfigMap>>,
}

impl ChildStores {
    /// Whether every child cache has its first full list. Before that a child looks
    /// missing and the Plugin not ready: a new process would write statuses (and
    /// Events) that say so, and take them back a moment later.
    pub fn children_listed(&self) -> bool {
        fn listed<K>(store: &Store<K>) -> bool
        where
            K: kube::Resource + Clone + 'static,
            K::DynamicType: Eq + std::hash::Hash + Clone,
        {
            matches!(store.wait_until_ready().now_or_never(), Some(Ok(())))
        }
        listed(&self.service_accounts)
            && listed(&self.config_maps)
            && listed(&self.deployments)
            && listed(&self.services)
            && listed(&self.network_policies)
            && listed(&self.pods)
    }

    /// The labels of `namespace`, or None while its watch has not shown it.
    pub fn namespace_labels(
        &self,
        namespace: &str,
    ) -> Option<std::collections::BTreeMap<String, String>> {
        let object = self.namespaces.get(&ObjectRef::new(namespace))?;
        Some(object.metadata.labels.clone().unwrap_or_default())
    }
}

pub struct Context {
    pub client: Client,
    pub config: OperatorConfig,
    pub stores: ChildStores,
    pub metrics: Arc<Metrics>,
    pub recorder: Arc<Recorder>,
    /// Consecutive failures per Plugin, for exponential backoff.
    pub failures: Mutex<HashMap<ObjectRef<Plugin>, u32>>,
    /// Statuses written that the Plugin cache may not show yet.
    pub written_statuses: WrittenStatuses,
    /// Children written that their caches may not show yet.
    pub recent_applies: RecentApplies,
    /// Deployments rolling, so that only a few roll at once.
    pub rollouts: Rollouts,
    /// Deployments held back before their creation, so not missing by deletion.
    pub unwritten_deployments: UnwrittenDeployments,
    /// Children seen without drift, by content digest: the caches keep no content.
    pub verified_children: Arc<VerifiedChildren>,
}

impl Context {
    /// Counts one more failure of `plugin` and returns how many in a row.
    pub fn record_failure(&self, plugin: ObjectRef<Plugin>) -> u32 {
        let mut failures = self.failures.lock().expect("failure map poisoned");
        let count = failures.entry(plugin).or_insert(0);
        *count += 1;
        *count
    }

    pub fn record_success(&self, plugin: &ObjectRef<Plugin>) {
        self.failures
            .lock()
            .expect("failure map poisoned")
            .remove(plugin);
    }
}

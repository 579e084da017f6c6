//! What every reconcile shares: the client, the configuration, the caches of the
//! children, metrics and the Event recorder.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Pod, Service, ServiceAccount},
    networking::v1::NetworkPolicy,
};
use kube::Client;
use kube::core::PartialObjectMeta;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{ObjectRef, Store};

use super::apply::RecentApplies;
use super::config::OperatorConfig;
use super::metrics::Metrics;
use super::rollout::Rollouts;
use super::status::written::WrittenStatuses;
use crate::api::Plugin;

/// Read-only caches of everything the operator manages, kept by watches. Children
/// whose content the status does not depend on are watched as metadata only: the
/// apply step reads nothing but their applied-hash annotation.
#[derive(Clone)]
pub struct ChildStores {
    pub service_accounts: Store<PartialObjectMeta<ServiceAccount>>,
    pub config_maps: Store<PartialObjectMeta<ConfigMap>>,
    pub deployments: Store<Deployment>,
    pub services: Store<PartialObjectMeta<Service>>,
    pub network_policies: Store<PartialObjectMeta<NetworkPolicy>>,
    pub pods: Store<Pod>,
}

pub struct Context {
    pub client: Client,
    pub config: OperatorConfig,
    pub stores: ChildStores,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    /// Consecutive failures per Plugin, for exponential backoff.
    pub failures: Mutex<HashMap<ObjectRef<Plugin>, u32>>,
    /// Statuses written that the Plugin cache may not show yet.
    pub written_statuses: WrittenStatuses,
    /// Children written that their caches may not show yet.
    pub recent_applies: RecentApplies,
    /// Deployments rolling, so that only a few roll at once.
    pub rollouts: Rollouts,
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

//! The apply step: each child is compared by content with what the operator would
//! write, and written only when it differs, so a steady state makes no writes.
//!
//! How a child is written depends on why it differs:
//!
//! - **New, or the desired configuration changed** (the child's applied-hash annotation
//!   is another hash): server-side apply under one field manager, forced.
//! - **Drift** (the child carries the hash of what the operator would write, yet differs
//!   from it; or it was deleted; or its hash annotation is gone): the child is
//!   *replaced* (PUT) with the desired content on its current metadata. A forced apply
//!   is not enough: it takes back the fields the operator owns, but what another field
//!   manager added stays, because lists of containers, volumes and environment variables
//!   merge by name and maps (a ConfigMap's `data`, labels) by key. `kubectl set env`
//!   adds an `env` item owned by `kubectl-set`; only a replace removes it. After an
//!   apply the result is checked the same way and replaced if it still drifts.
//! - **Made immutable** (a ConfigMap with `immutable: true`, which refuses every change
//!   to its content): deleted, at the version found, and created anew.
//!
//! The caches keep a child's content digest, not its content ([`super::cached`]): a
//! child whose digest was seen without drift at the hash it carries is unchanged; any
//! other is read from the API server and compared in full, then remembered clean or
//! put back. So an edit by another writer costs a read, and so does each child once
//! after a restart.
//!
//! Each drift put back is counted (`plugin_operator_drift_corrections_total{kind}`) and
//! written as a Warning Event on the Plugin naming the kind and the field.
//!
//! Each child kind has its own watch, so a reconcile can start (woken by one child's
//! event) before another child's watch has delivered the previous reconcile's write;
//! that child then looks missing or old. [`RecentApplies`] remembers each apply for a
//! few seconds so it is not made twice; a reconcile that relied on it looks again once
//! the memory has expired, so a child deleted in that window is still put back. A
//! replace reads the child first, so a cache that still shows the drift costs a read,
//! not a second write; a child missing from the cache of a Plugin applied before is
//! read too, so a watch lagging under load is not taken for a deletion.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::cached::{Cached, Keeps};
use super::context::Context;
use super::desired::{Children, FIELD_MANAGER};
use super::drift::{Change, Drift, find_drift, restored};
use super::error::Error;
use super::rollout::Admission;
use super::verified::{Child, content_digest};
use crate::api::Plugin;
use crate::api::status::{condition, reason};

/// Annotation holding the hash of the applied configuration of a child.
pub const APPLIED_HASH_ANNOTATION: &str = "plugins.chat.dev/applied-hash";

/// How long a write is trusted over a cache that does not show it yet.
pub const TRUSTED_FOR: Duration = Duration::from_secs(5);

/// The Event reason of a drifted child put back.
pub const DRIFT_CORRECTED: &str = "DriftCorrected";

/// How many times a replace is retried when the child changed in between.
const REPLACE_ATTEMPTS: usize = 3;

/// What one apply step did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Children written.
    pub written: usize,
    /// Whether a child was skipped only because it was written moments ago (its watch
    /// has not shown it yet): the Plugin should be looked at again after [`TRUSTED_FOR`].
    pub relied_on_recent_writes: bool,
    /// Whether the Deployment waits for other rollouts to finish ([`super::rollout`]).
    pub rollout_held_back: bool,
}

/// What happened to one child.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    /// Written; with the drift it put back, if it was one.
    Written(Option<Corrected>),
    Unchanged,
    WrittenMomentsAgo,
    HeldBack,
}

/// Whether the Deployment is written too: a Plugin held by its PluginPolicy keeps its
/// Deployment as it was (or gets none) while the rest is narrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    Apply,
    Hold,
}

/// Writes every child that differs from what the operator would write, all at once.
pub async fn apply_children(
    ctx: &Context,
    plugin: &Plugin,
    children: Children,
    workload: Workload,
) -> Result<Applied, Error> {
    let stores = &ctx.stores;
    let applied_before = children_were_applied(plugin);
    let deployment_admitted = ctx
        .rollouts
        .admit(&stores.deployments, &children.deployment);
    let deployment = ObjectRef::from_obj(&children.deployment).to_string();
    let cached_deployment = ObjectRef::<Cached<_>>::new(&children.deployment.name_any())
        .within(&children.deployment.namespace().unwrap_or_default());
    // A Deployment held back before it was ever created is missing later because it
    // was never written, not because someone deleted it.
    let deployment_applied_before =
        applied_before && !ctx.unwritten_deployments.contains(&deployment);
    let outcomes = futures::try_join!(
        apply(
            ctx,
            applied_before,
            &stores.service_accounts,
            children.service_account
        ),
        apply(
            ctx,
            applied_before,
            &stores.config_maps,
            children.config_map
        ),
        async {
            // A held Plugin keeps its Deployment; a rollout may have to wait its turn.
            let name = children.deployment.name_any();
            let outcome = match (workload, deployment_admitted) {
                (Workload::Hold, _) => Outcome::Unchanged,
                (Workload::Apply, Admission::Later) => Outcome::HeldBack,
                (Workload::Apply, Admission::Now) => {
                    let applied = apply(
                        ctx,
                        deployment_applied_before,
                        &stores.deployments,
                        children.deployment,
                    )
                    .await;
                    ctx.unwritten_deployments.remove(&deployment);
                    return applied;
                }
            };
            if stores.deployments.get(&cached_deployment).is_none() {
                ctx.unwritten_deployments.insert(deployment.clone());
            }
            Ok(("Deployment".to_string(), name, outcome))
        },
        apply(ctx, applied_before, &stores.services, children.service),
        apply(
            ctx,
            applied_before,
            &stores.network_policies,
            children.network_policy
        ),
    )?;
    let outcomes = [outcomes.0, outcomes.1, outcomes.2, outcomes.3, outcomes.4];
    for (kind, name, corrected) in outcomes
        .iter()
        .filter_map(|(kind, name, outcome)| match outcome {
            Outcome::Written(Some(corrected)) => Some((kind, name, corrected)),
            _ => None,
        })
    {
        report_drift(ctx, plugin, kind, name, corrected).await;
    }
    Ok(Applied {
        written: outcomes
            .iter()
            .filter(|(_, _, o)| matches!(o, Outcome::Written(_)))
            .count(),
        relied_on_recent_writes: outcomes
            .iter()
            .any(|(_, _, o)| *o == Outcome::WrittenMomentsAgo),
        rollout_held_back: outcomes.iter().any(|(_, _, o)| *o == Outcome::HeldBack),
    })
}

/// Whether the Plugin's children were all written at its current generation before: its
/// status is at that generation and does not say a write failed. A child missing then
/// was deleted by someone.
fn children_were_applied(plugin: &Plugin) -> bool {
    let Some(status) = &plugin.status else {
        return false;
    };
    let generation = plugin.metadata.generation;
    status.observed_generation.is_some()
        && status.observed_generation == generation
        && status
            .conditions
            .iter()
            .any(|c| c.type_ == condition::READY && c.reason != reason::APPLY_FAILED)
}

/// Writes `desired` unless the cached child is the same (or the same was applied moments
/// ago); see the module's comment for how. `applied_before`: whether the Plugin's
/// children were all written before, so a missing one was deleted. Returns the child's
/// kind and name with what happened.
async fn apply<K: Keeps>(
    ctx: &Context,
    applied_before: bool,
    cache: &Store<Cached<K>>,
    mut desired: K,
) -> Result<(String, String, Outcome), Error> {
    let hash = applied_hash(&desired);
    desired
        .annotations_mut()
        .insert(APPLIED_HASH_ANNOTATION.into(), hash.clone());
    let (kind, name) = (K::kind(&()).to_string(), desired.name_any());
    let namespace = desired.namespace().unwrap_or_default();
    let current = cache.get(&ObjectRef::new(&name).within(&namespace));
    let key = ChildKey {
        kind: kind.clone(),
        namespace: namespace.clone(),
        name: name.clone(),
    };
    let writer = Writer {
        ctx,
        api: Api::namespaced(ctx.client.clone(), &namespace),
        desired: &desired,
        kind: &kind,
        hash: &hash,
    };
    let written_hash = current
        .as_deref()
        .map(|current| current.applied_hash.as_deref());
    // The cache holds a child's content digest, not its content: a digest seen clean
    // at this hash is the same content, anything else is read and compared in full.
    let outcome = match (current.as_deref(), written_hash) {
        (Some(current), Some(Some(written))) if written == hash => {
            if ctx
                .verified_children
                .holds(writer.child(), &hash, &current.digest)
            {
                Outcome::Unchanged
            } else {
                writer.write_as_found(&hash).await?
            }
        }
        _ if ctx.recent_applies.written_moments_ago(&key, &hash) => Outcome::WrittenMomentsAgo,
        // No apply can change its content, whatever the hash says.
        (Some(current), _) if current.immutable() => writer.recreate_as_found().await?,
        // Written before, so deleted since, or only the cache is behind: the server says.
        (None, _) if applied_before => writer.write_as_found(&hash).await?,
        (None, _) => writer.apply(None).await?,
        (Some(current), Some(None)) => writer.apply_unannotated(current).await?,
        (Some(_), _) => writer.apply(None).await?,
    };
    if matches!(outcome, Outcome::Written(_)) {
        ctx.recent_applies.remember(key, hash);
    }
    Ok((kind, name, outcome))
}

/// Writes one child to the API server.
struct Writer<'a, K> {
    ctx: &'a Context,
    api: Api<K>,
    desired: &'a K,
    kind: &'a str,
    /// The desired child's applied hash.
    hash: &'a str,
}

impl<K: Keeps> Writer<'_, K> {
    /// Server-side apply, forced; then replaced if what other managers own still makes
    /// it drift. `drift` is why, when the child was found drifted.
    async fn apply(&self, drift: Option<Corrected>) -> Result<Outcome, Error> {
        let name = self.desired.name_any();
        let applied = self.server_side_apply().await?;
        let Some(left) = find_drift(self.desired, &applied) else {
            self.seen_clean(&applied);
            return Ok(Outcome::Written(drift));
        };
        info!(kind = self.kind, %name, drift = %left, "apply left other writers' fields; replacing");
        self.replace(applied).await?;
        Ok(Outcome::Written(drift))
    }

    /// Reads the child, since the cache may be behind (a watch lagging under load), and
    /// writes it as found: created again when it is gone (a deletion), applied when it
    /// carries another configuration's hash, replaced when it drifted, left alone when
    /// it is the same after all.
    async fn write_as_found(&self, hash: &str) -> Result<Outcome, Error> {
        match self.get(&self.desired.name_any()).await? {
            None => {
                let deleted = Corrected::of(Drift::deleted(), self.desired);
                self.apply(Some(deleted)).await
            }
            Some(current)
                if current
                    .annotations()
                    .get(APPLIED_HASH_ANNOTATION)
                    .map(String::as_str)
                    != Some(hash) =>
            {
                self.apply(None).await
            }
            Some(current) => self.replace(current).await,
        }
    }

    /// Replaces `current` with the desired content while it drifts, reading it again
    /// when it changed in between.
    async fn replace(&self, mut current: K) -> Result<Outcome, Error> {
        let name = self.desired.name_any();
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        for _ in 0..REPLACE_ATTEMPTS {
            let Some(drift) = find_drift(self.desired, &current) else {
                self.seen_clean(&current);
                return Ok(Outcome::Unchanged);
            };
            if is_immutable(&current) {
                return self.recreate(drift, current).await;
            }
            self.ctx.metrics.count_write(self.kind);
            match self
                .api
                .replace(&name, &params, &restored(self.desired, &current))
                .await
            {
                Ok(replaced) => {
                    if find_drift(self.desired, &replaced).is_none() {
                        self.seen_clean(&replaced);
                    }
                    return Ok(Outcome::Written(Some(Corrected::of(drift, &current))));
                }
                Err(kube::Error::Api(status)) if status.is_conflict() => {}
                Err(source) => return Err(self.failed(source)),
            }
            match self.get(&name).await? {
                Some(fresh) => current = fresh,
                // Deleted meanwhile: its watch event brings the next reconcile, which
                // creates it.
                None => return Ok(Outcome::Unchanged),
            }
        }
        Err(Error::ApplyFailed {
            kind: self.kind.to_string(),
            name,
            source: kube::Error::Service(
                format!("the object changed {REPLACE_ATTEMPTS} times while it was put back").into(),
            ),
        })
    }

    /// Deletes `current` and creates the child anew: an object made `immutable` (a
    /// ConfigMap) refuses every change to its content, so a replace cannot put it back.
    /// The delete names the version found, so a newer change is read first. The pod's
    /// mounted policy keeps its last content while the ConfigMap is gone (the kubelet
    /// does not empty a volume whose source disappeared) and gets the new one after.
    async fn recreate(&self, drift: Drift, current: K) -> Result<Outcome, Error> {
        let name = self.desired.name_any();
        let preconditions = Preconditions {
            uid: current.uid(),
            resource_version: current.resource_version(),
        };
        info!(kind = self.kind, %name, %drift, "immutable; deleting it to create it anew");
        self.ctx.metrics.count_write(self.kind);
        match self
            .api
            .delete(&name, &DeleteParams::default().preconditions(preconditions))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(source) => return Err(self.failed(source)),
        }
        let created = self.server_side_apply().await?;
        if find_drift(self.desired, &created).is_none() {
            self.seen_clean(&created);
        }
        Ok(Outcome::Written(Some(Corrected::of(drift, &current))))
    }

    /// Reads a child the cache shows `immutable` and replaces it, which deletes and
    /// creates it while it is still immutable and drifts.
    async fn recreate_as_found(&self) -> Result<Outcome, Error> {
        match self.get(&self.desired.name_any()).await? {
            Some(current) => self.replace(current).await,
            None => self.apply(None).await,
        }
    }

    /// Applies a child whose applied-hash annotation was removed, naming what else
    /// drifted in it as read from the server (the cache keeps no content).
    async fn apply_unannotated(&self, cached: &Cached<K>) -> Result<Outcome, Error> {
        let found = self.get(&self.desired.name_any()).await?;
        let drift = found
            .as_ref()
            .and_then(|found| find_drift(self.desired, found))
            .unwrap_or(Drift {
                field: format!("metadata.annotations.{APPLIED_HASH_ANNOTATION}"),
                change: Change::Removed,
            });
        let corrected = match &found {
            Some(found) => Corrected::of(drift, found),
            None => Corrected::of(drift, cached),
        };
        self.apply(Some(corrected)).await
    }

    /// This child, as the verified children know it.
    fn child(&self) -> Child<'_> {
        Child::of(self.kind, self.desired)
    }

    /// `object`, as read from or written to the server, has no drift: its content digest
    /// is remembered so the cache's copy is trusted without a read.
    fn seen_clean(&self, object: &K) {
        self.ctx
            .verified_children
            .remember(self.child(), self.hash, &content_digest(object));
    }

    /// The desired child, server-side applied under the operator's field manager, forced.
    async fn server_side_apply(&self) -> Result<K, Error> {
        let params = PatchParams::apply(FIELD_MANAGER).force();
        self.ctx.metrics.count_write(self.kind);
        self.api
            .patch(
                &self.desired.name_any(),
                &params,
                &Patch::Apply(self.desired),
            )
            .await
            .map_err(|source| self.failed(source))
    }

    async fn get(&self, name: &str) -> Result<Option<K>, Error> {
        self.ctx.metrics.count_child_read(self.kind);
        self.api
            .get_opt(name)
            .await
            .map_err(|source| self.failed(source))
    }

    fn failed(&self, source: kube::Error) -> Error {
        Error::ApplyFailed {
            kind: self.kind.to_string(),
            name: self.desired.name_any(),
            source,
        }
    }
}

/// Whether `object` was made `immutable` (a ConfigMap or Secret field).
fn is_immutable<K: Serialize>(object: &K) -> bool {
    serde_json::to_value(object).is_ok_and(|value| value["immutable"] == true)
}

/// A drift put back, and the child as it was found.
#[derive(Clone, Debug, PartialEq)]
struct Corrected {
    drift: Drift,
    found: ObjectReference,
}

impl Corrected {
    fn of<K: Resource<DynamicType = ()>>(drift: Drift, found: &K) -> Self {
        let reference = ObjectReference {
            resource_version: found.meta().resource_version.clone(),
            ..found.object_ref(&())
        };
        Self {
            drift,
            found: reference,
        }
    }
}

/// Counts a drift put back and says so on the Plugin. The child, at the version found
/// drifted, is the Event's related object: the recorder folds Events with the same
/// reason, object and related object into one series that keeps the first note, and
/// each drift should be read on its own.
async fn report_drift(
    ctx: &Context,
    plugin: &Plugin,
    kind: &str,
    name: &str,
    corrected: &Corrected,
) {
    let drift = &corrected.drift;
    ctx.metrics.count_drift_correction(kind);
    warn!(plugin = %plugin.name_any(), kind, name, %drift, "put back a child another writer changed");
    let event = Event {
        type_: EventType::Warning,
        reason: DRIFT_CORRECTED.into(),
        note: Some(format!(
            "{kind} {name}: {drift} by another writer; put back"
        )),
        action: "PutBack".into(),
        secondary: Some(corrected.found.clone()),
    };
    if let Err(error) = ctx.recorder.publish(&event, &plugin.object_ref(&())).await {
        warn!(%error, "could not publish an Event");
    }
}

/// One child, by kind, namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChildKey {
    kind: String,
    namespace: String,
    name: String,
}

/// The Deployments a reconcile did not create: held back by the
/// rollout pace or by a PluginPolicy while none existed. Kept in memory only: after a
/// restart a Deployment still missing is taken for a deleted one (put back all the same,
/// with a `DriftCorrected` Event).
#[derive(Debug, Default)]
pub struct UnwrittenDeployments(Mutex<std::collections::HashSet<String>>);

impl UnwrittenDeployments {
    fn insert(&self, key: String) {
        self.lock().insert(key);
    }

    fn remove(&self, key: &str) {
        self.lock().remove(key);
    }

    fn contains(&self, key: &str) -> bool {
        self.lock().contains(key)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The hashes written in the last [`TRUSTED_FOR`], per child.
#[derive(Debug, Default)]
pub struct RecentApplies(Mutex<HashMap<ChildKey, (String, Instant)>>);

impl RecentApplies {
    fn remember(&self, key: ChildKey, hash: String) {
        let mut map = self.lock();
        map.retain(|_, (_, at)| at.elapsed() < TRUSTED_FOR);
        map.insert(key, (hash, Instant::now()));
    }

    fn written_moments_ago(&self, key: &ChildKey, hash: &str) -> bool {
        self.lock()
            .get(key)
            .is_some_and(|(written, at)| written == hash && at.elapsed() < TRUSTED_FOR)
    }

    /// How many writes are remembered (expired ones go at the next write).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ChildKey, (String, Instant)>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A short, stable hash of the configuration the operator applies for a child.
pub fn applied_hash<K: Serialize>(desired: &K) -> String {
    let bytes = serde_json::to_vec(desired).expect("children always serialize");
    let digest = Sha256::digest(&bytes);
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::desired::fixtures::{MINIMAL, children};

    fn key(name: &str) -> ChildKey {
        ChildKey {
            kind: "Service".into(),
            namespace: "team-a".into(),
            name: name.into(),
        }
    }

    #[test]
    fn a_write_is_trusted_for_its_hash_and_child_only() {
        let recent = RecentApplies::default();
        recent.remember(key("plugin-a"), "h1".into());
        assert!(recent.written_moments_ago(&key("plugin-a"), "h1"));
        assert!(!recent.written_moments_ago(&key("plugin-a"), "h2"));
        assert!(!recent.written_moments_ago(&key("plugin-b"), "h1"));
    }

    #[test]
    fn an_old_write_is_not_trusted_and_goes_at_the_next_write() {
        let recent = RecentApplies::default();
        let long_ago = Instant::now() - TRUSTED_FOR - Duration::from_millis(1);
        recent
            .lock()
            .insert(key("plugin-a"), ("h1".into(), long_ago));
        assert!(!recent.written_moments_ago(&key("plugin-a"), "h1"));
        recent.remember(key("plugin-b"), "h2".into());
        assert_eq!(recent.len(), 1);
    }

    #[test]
    fn same_plugin_gives_the_same_hash_and_a_changed_spec_a_new_one() {
        let a = children(MINIMAL);
        let b = children(MINIMAL);
        assert_eq!(applied_hash(&a.deployment), applied_hash(&b.deployment));
        let changed = children(&format!("{MINIMAL}replicas: 2\n"));
        assert_ne!(
            applied_hash(&a.deployment),
            applied_hash(&changed.deployment)
        );
        assert_eq!(applied_hash(&a.service), applied_hash(&changed.service));
    }
}

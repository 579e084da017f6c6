//! The apply step: server-side apply of each child under one field manager, skipped
//! when the cached child already carries the hash of what would be applied, so a
//! steady state makes no writes.
//!
//! Each child kind has its own watch, so a reconcile can start (woken by one child's
//! event) before another child's watch has delivered the previous reconcile's write;
//! that child then looks missing or old. [`RecentApplies`] remembers each write for a
//! few seconds so it is not made twice; a reconcile that relied on it looks again once
//! the memory has expired, so a child deleted in that window is still put back.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde::{Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};

use super::context::Context;
use super::desired::{Children, FIELD_MANAGER};
use super::error::Error;
use super::rollout::Admission;

/// Annotation holding the hash of the applied configuration of a child.
pub const APPLIED_HASH_ANNOTATION: &str = "plugins.chat.dev/applied-hash";

/// How long a write is trusted over a cache that does not show it yet.
pub const TRUSTED_FOR: Duration = Duration::from_secs(5);

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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Written,
    Unchanged,
    WrittenMomentsAgo,
    HeldBack,
}

/// Applies every child that differs from the cache, all at once.
pub async fn apply_children(
    ctx: &Context,
    namespace: &str,
    children: Children,
) -> Result<Applied, Error> {
    let stores = &ctx.stores;
    let deployment_admitted = ctx
        .rollouts
        .admit(&stores.deployments, &children.deployment);
    let written = futures::try_join!(
        apply(
            ctx,
            namespace,
            &stores.service_accounts,
            children.service_account
        ),
        apply(ctx, namespace, &stores.config_maps, children.config_map),
        unless_held_back(
            deployment_admitted,
            apply(ctx, namespace, &stores.deployments, children.deployment)
        ),
        apply(ctx, namespace, &stores.services, children.service),
        apply(
            ctx,
            namespace,
            &stores.network_policies,
            children.network_policy
        ),
    )?;
    let outcomes = [written.0, written.1, written.2, written.3, written.4];
    Ok(Applied {
        written: outcomes.iter().filter(|o| **o == Outcome::Written).count(),
        relied_on_recent_writes: outcomes.contains(&Outcome::WrittenMomentsAgo),
        rollout_held_back: outcomes.contains(&Outcome::HeldBack),
    })
}

/// Runs `apply` unless the rollout it starts has to wait.
async fn unless_held_back(
    admitted: Admission,
    apply: impl Future<Output = Result<Outcome, Error>>,
) -> Result<Outcome, Error> {
    match admitted {
        Admission::Now => apply.await,
        Admission::Later => Ok(Outcome::HeldBack),
    }
}

/// Applies `desired` unless the cached copy (the whole object or only its metadata)
/// carries the same applied hash, or the same was written moments ago.
async fn apply<K, Cached>(
    ctx: &Context,
    namespace: &str,
    cache: &Store<Cached>,
    mut desired: K,
) -> Result<Outcome, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug,
    Cached: Resource<DynamicType = ()> + Clone + 'static,
{
    let hash = applied_hash(&desired);
    let name = desired.name_any();
    let reference =
        ObjectRef::<Cached>::new(&name).within(desired.namespace().as_deref().unwrap_or_default());
    let unchanged = cache
        .get(&reference)
        .is_some_and(|current| current.annotations().get(APPLIED_HASH_ANNOTATION) == Some(&hash));
    if unchanged {
        return Ok(Outcome::Unchanged);
    }
    let kind = K::kind(&());
    let key = ChildKey {
        kind: kind.to_string(),
        namespace: reference.namespace.clone().unwrap_or_default(),
        name: name.clone(),
    };
    if ctx.recent_applies.written_moments_ago(&key, &hash) {
        return Ok(Outcome::WrittenMomentsAgo);
    }
    desired
        .annotations_mut()
        .insert(APPLIED_HASH_ANNOTATION.into(), hash.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    ctx.metrics.count_write(&kind);
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    api.patch(&name, &params, &Patch::Apply(&desired))
        .await
        .map_err(|source| Error::ApplyFailed {
            kind: kind.to_string(),
            name: name.clone(),
            source,
        })?;
    ctx.recent_applies.remember(key, hash);
    Ok(Outcome::Written)
}

/// One child, by kind, namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChildKey {
    kind: String,
    namespace: String,
    name: String,
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

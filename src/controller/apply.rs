//! The apply step: server-side apply of each child under one field manager, skipped
//! when the cached child already carries the hash of what would be applied, so a
//! steady state makes no writes.

use std::fmt::Debug;

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde::{Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};

use super::context::Context;
use super::desired::{Children, FIELD_MANAGER};
use super::error::Error;

/// Annotation holding the hash of the applied configuration of a child.
pub const APPLIED_HASH_ANNOTATION: &str = "plugins.chat.dev/applied-hash";

/// Applies every child that differs from the cache, all at once. Returns how many were
/// written.
pub async fn apply_children(
    ctx: &Context,
    namespace: &str,
    children: Children,
) -> Result<usize, Error> {
    let (client, stores) = (&ctx.client, &ctx.stores);
    let api = || client.clone();
    let written = futures::try_join!(
        apply(
            ctx,
            Api::namespaced(api(), namespace),
            &stores.service_accounts,
            children.service_account
        ),
        apply(
            ctx,
            Api::namespaced(api(), namespace),
            &stores.config_maps,
            children.config_map
        ),
        apply(
            ctx,
            Api::namespaced(api(), namespace),
            &stores.deployments,
            children.deployment
        ),
        apply(
            ctx,
            Api::namespaced(api(), namespace),
            &stores.services,
            children.service
        ),
        apply(
            ctx,
            Api::namespaced(api(), namespace),
            &stores.network_policies,
            children.network_policy
        ),
    )?;
    Ok(written.0 + written.1 + written.2 + written.3 + written.4)
}

/// Applies `desired` unless the cached copy (the whole object or only its metadata)
/// carries the same applied hash.
async fn apply<K, Cached>(
    ctx: &Context,
    api: Api<K>,
    cache: &Store<Cached>,
    mut desired: K,
) -> Result<usize, Error>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
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
        return Ok(0);
    }
    desired
        .annotations_mut()
        .insert(APPLIED_HASH_ANNOTATION.into(), hash);
    let kind = K::kind(&());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    ctx.metrics.count_write(&kind);
    api.patch(&name, &params, &Patch::Apply(&desired))
        .await
        .map_err(|source| Error::ApplyFailed {
            kind: kind.to_string(),
            name: name.clone(),
            source,
        })?;
    Ok(1)
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

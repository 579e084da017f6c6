//! What the caches keep of each child: [`Cached`], a few hundred bytes where the typed
//! object was kilobytes. At 10,000 Plugins the children's caches were most of the
//! operator's memory, and most of that was what no step reads: a Deployment's inline
//! pod template (2 KB even when empty), and a map allocated for the two or three
//! annotations a child kept.
//!
//! A child is kept as its metadata (name, namespace, uid, versions; no labels,
//! annotations, owner references or managedFields), the names of the Plugins among its
//! owners (what a change to it wakes), the operator's applied hash, the digest of its
//! content ([`content_digest`]: `apply` reads a child in full when the digest is one it
//! has not seen clean) and what its kind's steps read ([`Keeps::Kept`]): of a Deployment
//! its replicas, template hash and status, of a ConfigMap whether it is immutable.

use std::borrow::Cow;
use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::{
    apps::v1::{Deployment, DeploymentCondition, DeploymentSpec, DeploymentStatus},
    core::v1::{ConfigMap, Service, ServiceAccount},
    networking::v1::NetworkPolicy,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::runtime::watcher;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::apply::APPLIED_HASH_ANNOTATION;
use super::drift::content_digest;
use super::rollout::TEMPLATE_HASH_ANNOTATION;
use crate::api::Plugin;

/// One child as the caches keep it.
#[derive(Clone, Debug)]
pub struct Cached<K: Keeps> {
    pub metadata: ObjectMeta,
    /// The names of the Plugins among the child's owner references (one, unless someone
    /// added another), in its namespace: a change to the child wakes them. An owner
    /// reference is about 250 bytes; a name is what the wake-up needs.
    pub owners: Box<[Box<str>]>,
    /// The child's applied-hash annotation, if it has one.
    pub applied_hash: Option<Box<str>>,
    /// The digest of what the drift comparison reads of it.
    pub digest: Box<str>,
    /// What the steps read of this kind.
    pub kept: K::Kept,
}

/// A kind of child the operator writes, and what its cache keeps of it.
pub trait Keeps:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Serialize
    + DeserializeOwned
    + Clone
    + Debug
    + Send
    + Sync
    + 'static
{
    /// What the steps read of this kind, beyond metadata, hash and digest.
    type Kept: Clone + Debug + Send + Sync + 'static;

    /// Takes what is kept out of the object.
    fn kept(self) -> Self::Kept;

    /// Whether no apply can change the kept object's content (`immutable`).
    fn immutable(_: &Self::Kept) -> bool {
        false
    }
}

impl<K: Keeps> Cached<K> {
    pub fn new(mut object: K) -> Self {
        let digest = content_digest(&object).into_boxed_str();
        let meta = object.meta_mut();
        let applied_hash = meta
            .annotations
            .as_mut()
            .and_then(|annotations| annotations.remove(APPLIED_HASH_ANNOTATION))
            .map(String::into_boxed_str);
        let owners = meta
            .owner_references
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter(|owner| {
                owner.kind == Plugin::kind(&()) && owner.api_version == Plugin::api_version(&())
            })
            .map(|owner| owner.name.into_boxed_str())
            .collect();
        let metadata = ObjectMeta {
            name: meta.name.take(),
            namespace: meta.namespace.take(),
            uid: meta.uid.take(),
            resource_version: meta.resource_version.take(),
            generation: meta.generation,
            creation_timestamp: meta.creation_timestamp.take(),
            deletion_timestamp: meta.deletion_timestamp.take(),
            ..Default::default()
        };
        Self {
            metadata,
            owners,
            applied_hash,
            digest,
            kept: object.kept(),
        }
    }

    /// Whether no apply can change this child's content.
    pub fn immutable(&self) -> bool {
        K::immutable(&self.kept)
    }
}

impl<K: Keeps> Resource for Cached<K> {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        K::kind(&())
    }

    fn group(_: &()) -> Cow<'_, str> {
        K::group(&())
    }

    fn version(_: &()) -> Cow<'_, str> {
        K::version(&())
    }

    fn plural(_: &()) -> Cow<'_, str> {
        K::plural(&())
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// A watch event, with its objects as the cache keeps them.
pub fn cached_event<K: Keeps>(event: watcher::Event<K>) -> watcher::Event<Cached<K>> {
    use watcher::Event::*;
    match event {
        Apply(object) => Apply(Cached::new(object)),
        Delete(object) => Delete(Cached::new(object)),
        Init => Init,
        InitApply(object) => InitApply(Cached::new(object)),
        InitDone => InitDone,
    }
}

impl Keeps for ServiceAccount {
    type Kept = ();
    fn kept(self) {}
}

impl Keeps for Service {
    type Kept = ();
    fn kept(self) {}
}

impl Keeps for NetworkPolicy {
    type Kept = ();
    fn kept(self) {}
}

/// Of a ConfigMap: whether it is `immutable`, so that the apply step recreates it.
impl Keeps for ConfigMap {
    type Kept = bool;

    fn kept(self) -> bool {
        self.immutable == Some(true)
    }

    fn immutable(immutable: &bool) -> bool {
        *immutable
    }
}

/// What the rollout pace and the status step read of a Deployment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeploymentKept {
    pub replicas: Option<i32>,
    pub template_hash: Option<Box<str>>,
    /// Its status, with only the conditions that report a problem.
    pub status: Option<DeploymentStatus>,
}

impl Keeps for Deployment {
    type Kept = DeploymentKept;

    fn kept(self) -> DeploymentKept {
        let template_hash = self
            .metadata
            .annotations
            .and_then(|mut annotations| annotations.remove(TEMPLATE_HASH_ANNOTATION))
            .map(String::into_boxed_str);
        let status = self.status.map(|mut status| {
            status.conditions = status
                .conditions
                .map(|conditions| conditions.into_iter().filter(reports_a_problem).collect())
                .filter(|kept: &Vec<_>| !kept.is_empty());
            status
        });
        DeploymentKept {
            replicas: self.spec.and_then(|spec| spec.replicas),
            template_hash,
            status,
        }
    }
}

/// The conditions the status step and the rollout pace read: pods refused at creation,
/// a rollout past its progress deadline.
fn reports_a_problem(condition: &DeploymentCondition) -> bool {
    (condition.type_ == "ReplicaFailure" && condition.status == "True")
        || (condition.type_ == "Progressing"
            && condition.reason.as_deref() == Some("ProgressDeadlineExceeded"))
}

impl Cached<Deployment> {
    /// The Deployment as far as it is kept: what the status step reads.
    pub fn to_deployment(&self) -> Deployment {
        let mut metadata = self.metadata.clone();
        if let Some(hash) = &self.kept.template_hash {
            metadata.annotations =
                Some([(TEMPLATE_HASH_ANNOTATION.into(), hash.to_string())].into());
        }
        Deployment {
            metadata,
            spec: Some(DeploymentSpec {
                replicas: self.kept.replicas,
                ..Default::default()
            }),
            status: self.kept.status.clone(),
        }
    }
}

#[cfg(test)]
mod tests;

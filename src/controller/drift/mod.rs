//! Drift: how a child in the cluster differs from what the operator would write, and
//! the object that puts it back. Pure functions over the children's JSON.
//!
//! A child drifted when a field the operator writes has another value (or is gone), or
//! when another writer added something that weakens the sandbox: an extra container,
//! volume, environment variable or port, a command, a security setting, an extra key in
//! the policy ConfigMap, an extra NetworkPolicy rule or peer, a label that widens a
//! selector. What the API server adds by default (a Deployment's strategy, a Service's
//! cluster IP, a probe's timeout) and what does not touch the sandbox (tolerations, node
//! selectors, annotations on the object) is not drift: a false drift would be a write at
//! every reconcile. [`rules`] says, per kind and field, which additions count.

mod compare;
mod digest;
mod restore;
mod rules;

pub use digest::content_digest;
pub use restore::restored;

use std::fmt;

use kube::Resource;
use serde::Serialize;
use serde_json::Value;

/// The first field found that differs, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drift {
    /// The field, as a path with list items named: `spec.template.spec.containers[plugin].env[DEBUG]`.
    pub field: String,
    pub change: Change,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The operator writes this field and it has another value.
    Changed,
    /// The operator writes this field and it is gone.
    Removed,
    /// Another writer added this field or list item.
    Added,
    /// The whole object is gone (deleted, or its labels no longer mark it as managed).
    Deleted,
}

impl Drift {
    pub fn deleted() -> Self {
        Self {
            field: "the object".into(),
            change: Change::Deleted,
        }
    }
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = match self.change {
            Change::Changed => "changed",
            Change::Removed => "removed",
            Change::Added => "added",
            Change::Deleted => "deleted",
        };
        write!(f, "{} {how}", self.field)
    }
}

/// How `actual` differs from `desired`, a child of kind `K` as the operator builds it;
/// None when it does not (as far as the operator and the sandbox care).
pub fn find_drift<K>(desired: &K, actual: &K) -> Option<Drift>
where
    K: Resource<DynamicType = ()> + Serialize,
{
    let kind = K::kind(&());
    let desired = serde_json::to_value(desired).expect("children always serialize");
    let actual = serde_json::to_value(actual).expect("objects from the API serialize");
    metadata_drift(&desired, &actual)
        .or_else(|| compare::content(rules::for_kind(&kind), &desired, &actual))
}

/// The labels and the owner the operator sets must be there; other labels, annotations
/// and owners are other writers' business.
fn metadata_drift(desired: &Value, actual: &Value) -> Option<Drift> {
    let labels = |object: &Value| object["metadata"]["labels"].as_object().cloned();
    let (want, have) = (labels(desired).unwrap_or_default(), labels(actual));
    for (key, value) in want {
        let field = format!("metadata.labels.{key}");
        match have.as_ref().and_then(|have| have.get(&key)) {
            None => {
                return Some(Drift {
                    field,
                    change: Change::Removed,
                });
            }
            Some(found) if *found != value => {
                return Some(Drift {
                    field,
                    change: Change::Changed,
                });
            }
            Some(_) => {}
        }
    }
    let uids = |object: &Value| -> Vec<Value> {
        object["metadata"]["ownerReferences"]
            .as_array()
            .map(|owners| owners.iter().map(|o| o["uid"].clone()).collect())
            .unwrap_or_default()
    };
    let owners = uids(actual);
    uids(desired)
        .into_iter()
        .find(|uid| !owners.contains(uid))
        .map(|_| Drift {
            field: "metadata.ownerReferences".into(),
            change: Change::Removed,
        })
}

#[cfg(test)]
mod tests;

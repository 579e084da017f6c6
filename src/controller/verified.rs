//! Children seen to be what the operator would write. The caches keep each child's
//! metadata, applied hash and content digest ([`content_digest`]), not its content,
//! which is most of a Plugin's memory (a Deployment's pod template alone is about 17 KB
//! as typed objects; [`super::cached`]). A child is read from the API server and compared in full when its digest
//! is one the operator has not seen clean for the configuration it applies: after an
//! edit by another writer, or once after a restart; then its digest is remembered here.
//!
//! One entry per child, 40 bytes: a 64-bit slot for the child and a seal over the child,
//! the applied hash and the digest. Two children in one slot cost a read, never a
//! drift left in place, since the seal names the child. An entry goes with its child's
//! delete event.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

use kube::Resource;
use sha2::{Digest, Sha256};

pub use super::drift::content_digest;

/// One child, by kind, namespace and name.
#[derive(Clone, Copy, Debug)]
pub struct Child<'a> {
    pub kind: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
}

impl<'a> Child<'a> {
    pub fn of<K: Resource<DynamicType = ()>>(kind: &'a str, object: &'a K) -> Self {
        Self {
            kind,
            namespace: object.meta().namespace.as_deref().unwrap_or_default(),
            name: object.meta().name.as_deref().unwrap_or_default(),
        }
    }

    fn slot(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        (self.kind, self.namespace, self.name).hash(&mut hasher);
        hasher.finish()
    }

    fn seal(&self, applied_hash: &str, digest: &str) -> [u8; 32] {
        let mut sha = Sha256::new();
        for part in [self.kind, self.namespace, self.name, applied_hash, digest] {
            sha.update(part.as_bytes());
            sha.update([0]);
        }
        sha.finalize().into()
    }
}

/// The children seen clean, each at one applied hash and content digest.
#[derive(Debug, Default)]
pub struct VerifiedChildren(Mutex<HashMap<u64, [u8; 32]>>);

impl VerifiedChildren {
    /// `child`, carrying `applied_hash`, was found without drift with content `digest`.
    pub fn remember(&self, child: Child<'_>, applied_hash: &str, digest: &str) {
        self.lock()
            .insert(child.slot(), child.seal(applied_hash, digest));
    }

    /// Whether `child` was found clean with this applied hash and content digest.
    pub fn holds(&self, child: Child<'_>, applied_hash: &str, digest: &str) -> bool {
        self.lock().get(&child.slot()) == Some(&child.seal(applied_hash, digest))
    }

    /// `child` is gone.
    pub fn forget(&self, child: Child<'_>) {
        self.lock().remove(&child.slot());
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, [u8; 32]>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child(name: &str) -> Child<'_> {
        Child {
            kind: "ConfigMap",
            namespace: "team-a",
            name,
        }
    }

    #[test]
    fn a_child_is_clean_only_at_the_hash_and_digest_it_was_seen_with() {
        let verified = VerifiedChildren::default();
        verified.remember(child("plugin-a"), "h1", "d1");
        assert!(verified.holds(child("plugin-a"), "h1", "d1"));
        assert!(!verified.holds(child("plugin-a"), "h1", "d2"));
        assert!(!verified.holds(child("plugin-a"), "h2", "d1"));
        assert!(!verified.holds(child("plugin-b"), "h1", "d1"));
        verified.remember(child("plugin-a"), "h1", "d2");
        assert!(!verified.holds(child("plugin-a"), "h1", "d1"));
        assert_eq!(verified.len(), 1);
        verified.forget(child("plugin-a"));
        assert!(!verified.holds(child("plugin-a"), "h1", "d2"));
        assert!(verified.is_empty());
    }
}

//! What the drift comparison reads of a child, as a digest: the caches keep the digest
//! instead of the content, and a child whose digest was seen without drift is not read
//! again (`crate::controller::verified`).

use kube::Resource;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The SHA-256 (hex) of everything [`super::find_drift`] reads of `object`: its labels,
/// its owners and all but its metadata, status, `apiVersion` and `kind`. A server's
/// status update, a new resourceVersion or an annotation on the object leave it as it
/// was; any change the comparison could call drift gives another digest, and nobody
/// can make another content with a digest seen before.
pub fn content_digest<K: Resource + Serialize>(object: &K) -> String {
    let mut content = serde_json::to_value(object).expect("objects serialize");
    let read = content.as_object_mut().map(|fields| {
        for key in ["apiVersion", "kind", "status"] {
            fields.remove(key);
        }
        let metadata = fields.remove("metadata").unwrap_or(Value::Null);
        json!({
            "labels": metadata["labels"],
            "ownerReferences": metadata["ownerReferences"],
        })
    });
    let digest = Sha256::digest(json!([read, content]).to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

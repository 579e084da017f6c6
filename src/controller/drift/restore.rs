//! The object that puts a drifted child back: the desired content, on the current
//! object's metadata.

use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};

/// `current` with every field but its metadata replaced by `desired`'s (fields only
/// `current` has are dropped), the desired labels and annotations set over the current
/// ones, the desired owner added, and no managedFields (an update without them keeps
/// the server's). Its resourceVersion is `current`'s, so replacing it fails on a
/// concurrent change instead of undoing one.
pub fn restored<K>(desired: &K, current: &K) -> K
where
    K: Serialize + DeserializeOwned,
{
    let desired = serde_json::to_value(desired).expect("children always serialize");
    let current = serde_json::to_value(current).expect("objects from the API serialize");
    let (Value::Object(desired), Value::Object(mut body)) = (desired, current) else {
        unreachable!("Kubernetes objects serialize as JSON objects")
    };
    body.retain(|key, _| matches!(key.as_str(), "apiVersion" | "kind" | "metadata"));
    let mut metadata = match body.remove("metadata") {
        Some(Value::Object(metadata)) => metadata,
        _ => Map::new(),
    };
    for (key, value) in desired {
        if key == "metadata" {
            merge_metadata(&mut metadata, value);
        } else {
            body.insert(key, value);
        }
    }
    metadata.remove("managedFields");
    body.insert("metadata".into(), Value::Object(metadata));
    serde_json::from_value(Value::Object(body)).expect("the same kind deserializes back")
}

fn merge_metadata(metadata: &mut Map<String, Value>, desired: Value) {
    for map in ["labels", "annotations"] {
        let Some(Value::Object(want)) = desired.get(map) else {
            continue;
        };
        let entry = metadata
            .entry(map)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(have) = entry {
            have.extend(want.clone());
        }
    }
    let Some(Value::Array(owners)) = desired.get("ownerReferences") else {
        return;
    };
    let entry = metadata
        .entry("ownerReferences")
        .or_insert_with(|| Value::Array(vec![]));
    if let Value::Array(have) = entry {
        for owner in owners {
            if !have.iter().any(|o| o["uid"] == owner["uid"]) {
                have.push(owner.clone());
            }
        }
    }
}

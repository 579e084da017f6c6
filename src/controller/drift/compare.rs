//! The walk over two JSON objects: every field of the desired object must be in the
//! actual one with the same value; a list must have the same items in the same order;
//! a field only the actual object has is drift where [`Rules`] refuse additions.

use serde_json::{Map, Value};

use super::rules::{Extras, Rules};
use super::{Change, Drift};
use crate::api::quantity;

/// Where the walk is: the field as shown to people, and as matched by the rules (list
/// items as `[]`, so `spec.template.spec.containers[].env[]`).
#[derive(Clone)]
struct At {
    field: String,
    pattern: String,
}

impl At {
    fn root() -> Self {
        Self {
            field: String::new(),
            pattern: String::new(),
        }
    }

    fn key(&self, key: &str) -> Self {
        let join = |base: &str| {
            if base.is_empty() {
                key.to_string()
            } else {
                format!("{base}.{key}")
            }
        };
        Self {
            field: join(&self.field),
            pattern: join(&self.pattern),
        }
    }

    fn item(&self, label: &str) -> Self {
        Self {
            field: format!("{}[{label}]", self.field),
            pattern: format!("{}[]", self.pattern),
        }
    }

    fn drift(self, change: Change) -> Option<Drift> {
        Some(Drift {
            field: self.field,
            change,
        })
    }
}

/// Everything but the metadata, the status and the type, compared under `rules`.
pub fn content(rules: Rules, desired: &Value, actual: &Value) -> Option<Drift> {
    let strip = |object: &Value| -> Map<String, Value> {
        let mut object = object.as_object().cloned().unwrap_or_default();
        for key in ["apiVersion", "kind", "metadata", "status"] {
            object.remove(key);
        }
        object
    };
    objects(&rules, At::root(), &strip(desired), &strip(actual))
}

fn values(rules: &Rules, at: At, desired: &Value, actual: &Value) -> Option<Drift> {
    match (desired, actual) {
        (Value::Object(desired), Value::Object(actual)) => objects(rules, at, desired, actual),
        (Value::Array(desired), Value::Array(actual)) => arrays(rules, at, desired, actual),
        (Value::String(desired), Value::String(actual)) if (rules.quantity)(&at.pattern) => {
            if same_quantity(desired, actual) {
                None
            } else {
                at.drift(Change::Changed)
            }
        }
        (desired, actual) if desired == actual => None,
        _ => at.drift(Change::Changed),
    }
}

fn objects(
    rules: &Rules,
    at: At,
    desired: &Map<String, Value>,
    actual: &Map<String, Value>,
) -> Option<Drift> {
    for (key, want) in desired {
        let at = at.key(key);
        match actual.get(key) {
            Some(have) => {
                if let Some(drift) = values(rules, at, want, have) {
                    return Some(drift);
                }
            }
            None if is_empty(want) => {}
            None => return at.drift(Change::Removed),
        }
    }
    let extras = (rules.extras)(&at.pattern).unwrap_or(Extras::Open);
    for (key, have) in actual {
        if desired.contains_key(key) || !extras.refuses(key) || is_empty(have) {
            continue;
        }
        let at = at.key(key);
        // A field with rules of its own (annotations that may hold one known key) is
        // walked against nothing; any other refused addition is drift as a whole.
        match have {
            Value::Object(have) if (rules.extras)(&at.pattern).is_some() => {
                if let Some(drift) = objects(rules, at, &Map::new(), have) {
                    return Some(drift);
                }
            }
            _ => return at.drift(Change::Added),
        }
    }
    None
}

/// Same items in the same order. Items are named by their `name` where every item has
/// one (containers, volumes, environment variables), else by their position.
fn arrays(rules: &Rules, at: At, desired: &[Value], actual: &[Value]) -> Option<Drift> {
    let names = |items: &[Value]| -> Vec<String> {
        items
            .iter()
            .enumerate()
            .map(|(index, item)| label(item, index))
            .collect()
    };
    let (want, have) = (names(desired), names(actual));
    let named = desired
        .iter()
        .chain(actual)
        .all(|item| item.get("name").is_some());
    if named {
        if let Some(added) = have.iter().find(|name| !want.contains(name)) {
            return at.item(added).drift(Change::Added);
        }
        if let Some(removed) = want.iter().find(|name| !have.contains(name)) {
            return at.item(removed).drift(Change::Removed);
        }
    }
    for ((want, have), name) in desired.iter().zip(actual).zip(&want) {
        if let Some(drift) = values(rules, at.item(name), want, have) {
            return Some(drift);
        }
    }
    match actual.len().cmp(&desired.len()) {
        std::cmp::Ordering::Greater => at.item(&have[desired.len()]).drift(Change::Added),
        std::cmp::Ordering::Less => at.item(&want[actual.len()]).drift(Change::Removed),
        std::cmp::Ordering::Equal => None,
    }
}

fn label(item: &Value, index: usize) -> String {
    match item.get("name").and_then(Value::as_str) {
        Some(name) => name.to_string(),
        None => index.to_string(),
    }
}

/// Absent, null, false, zero-length: what the API server treats as not set.
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Number(_) | Value::Bool(true) => false,
    }
}

/// The API server stores `0.5` as `500m` and `1.5Gi` as `1536Mi`, and rounds requests and
/// limits up to a thousandth: equal amounts are the same quantity.
fn same_quantity(desired: &str, actual: &str) -> bool {
    if desired == actual {
        return true;
    }
    match (quantity::parse(desired), quantity::parse(actual)) {
        (Ok(desired), Ok(actual)) => {
            desired == actual || desired.as_stored_in_a_resource_list() == actual
        }
        _ => false,
    }
}

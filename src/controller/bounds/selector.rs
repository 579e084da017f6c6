//! Which PluginPolicies select a namespace: a label selector read as the API server
//! reads one (matchLabels and matchExpressions, all of which must hold).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::api::PluginPolicy;

/// Whether `selector` selects an object with `labels`. An empty selector selects
/// everything; an operator other than In, NotIn, Exists and DoesNotExist selects nothing.
pub fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_label = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(key, value)| labels.get(key) == Some(value));
    let by_expression = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    by_label && by_expression
}

/// The policies that select a namespace with `labels`, by name.
pub fn selecting<'a>(
    policies: impl IntoIterator<Item = &'a PluginPolicy>,
    labels: &BTreeMap<String, String>,
) -> Vec<&'a PluginPolicy> {
    let mut chosen: Vec<_> = policies
        .into_iter()
        .filter(|p| selects(&p.spec.namespace_selector, labels))
        .collect();
    chosen.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn selector(value: serde_json::Value) -> LabelSelector {
        serde_json::from_value(value).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_empty_selector_selects_every_namespace() {
        assert!(selects(&selector(json!({})), &labels(&[])));
    }

    #[test]
    fn match_labels_must_all_hold() {
        let s = selector(json!({"matchLabels": {"team": "a", "tier": "x"}}));
        assert!(selects(&s, &labels(&[("team", "a"), ("tier", "x")])));
        assert!(!selects(&s, &labels(&[("team", "a")])));
        assert!(!selects(&s, &labels(&[("team", "b"), ("tier", "x")])));
    }

    #[test]
    fn expressions_follow_the_api_servers_operators() {
        let expr = |op: &str, values: &[&str]| {
            selector(
                json!({"matchExpressions": [{"key": "team", "operator": op, "values": values}]}),
            )
        };
        let a = labels(&[("team", "a")]);
        let none = labels(&[]);
        assert!(selects(&expr("In", &["a", "b"]), &a));
        assert!(!selects(&expr("In", &["b"]), &a));
        assert!(!selects(&expr("In", &["a"]), &none));
        assert!(selects(&expr("NotIn", &["b"]), &a));
        assert!(selects(&expr("NotIn", &["b"]), &none));
        assert!(!selects(&expr("NotIn", &["a"]), &a));
        assert!(selects(&expr("Exists", &[]), &a));
        assert!(!selects(&expr("Exists", &[]), &none));
        assert!(selects(&expr("DoesNotExist", &[]), &none));
        assert!(!selects(&expr("DoesNotExist", &[]), &a));
        assert!(!selects(&expr("Gt", &["1"]), &a));
    }
}

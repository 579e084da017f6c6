//! The chart's README.md is generated from values.yaml: each value's `# --` comment is its
//! description, its default is what the file sets. `make chart-readme` writes the file
//! (this test with `UPDATE_CHART_README=1`); the test fails when it is stale or when a
//! value has no description.

use plugin_operator_test_support::cluster::repo_path;
use serde_json::Value;

const VALUES: &str = "charts/plugin-operator/values.yaml";
const README: &str = "charts/plugin-operator/README.md";

const INTRO: &str = "# plugin-operator chart

Runs chat plugins on Kubernetes, each behind a permission-enforcing broker sidecar. The
chart installs the `Plugin` CRD, the operator (`plugin-operator controller`), its
ServiceAccount and RBAC, and a Service for its admin port.

```sh
helm install plugin-operator charts/plugin-operator \\
  --namespace plugin-operator-system --create-namespace \\
  --set image.repository=registry.example/plugin-operator
```

Installing, upgrading, RBAC and GitOps: [docs/helm.md](../../docs/helm.md).

## Values

Generated from [values.yaml](values.yaml) by `make chart-readme`; do not edit this
table by hand. [values.schema.json](values.schema.json) refuses unknown keys and
out-of-range settings.

| value | type | default | description |
| --- | --- | --- | --- |
";

/// One documented value: where it is, and its `# --` description.
#[derive(Debug, PartialEq)]
struct Described {
    path: String,
    description: String,
}

/// The `# --` comments of values.yaml, each with the path of the key that follows it.
/// A description runs from `# --` over the `#` lines right below it, up to the key.
fn descriptions(values: &str) -> Vec<Described> {
    let mut described = Vec::new();
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut pending: Option<String> = None;
    for line in values.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if let Some(text) = trimmed.strip_prefix("# --") {
            pending = Some(text.trim().to_string());
        } else if let Some(text) = trimmed.strip_prefix('#') {
            if let Some(description) = pending.as_mut() {
                description.push(' ');
                description.push_str(text.trim());
            }
        } else if trimmed.is_empty() {
            pending = None;
        } else if let Some((key, _)) = trimmed.split_once(':')
            && !key.starts_with('-')
        {
            stack.retain(|(level, _)| *level < indent);
            stack.push((indent, key.to_string()));
            if let Some(description) = pending.take() {
                let path = stack.iter().map(|(_, k)| k.as_str()).collect::<Vec<_>>();
                described.push(Described {
                    path: path.join("."),
                    description,
                });
            }
        }
    }
    described
}

/// Every leaf of `value` (scalars, lists and empty maps) with its dotted path.
fn leaves(prefix: &str, value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                leaves(&path, child, out);
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

fn at<'a>(root: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(root, |value, key| &value[key])
}

fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// The README for `values` (the text of values.yaml), or the values that lack a
/// description.
fn readme(values: &str) -> Result<String, Vec<String>> {
    let parsed: Value = serde_norway::from_str(values).expect("values.yaml parses");
    let described = descriptions(values);
    let mut all = Vec::new();
    leaves("", &parsed, &mut all);
    // A described key covers the leaves below it that have no description of their own
    // (e.g. `resources`, shown as one row with its whole default).
    let mut shown: Vec<&Described> = Vec::new();
    let mut undescribed = Vec::new();
    for leaf in &all {
        let covering = described
            .iter()
            .filter(|d| *leaf == d.path || leaf.starts_with(&format!("{}.", d.path)))
            .max_by_key(|d| d.path.len());
        match covering {
            Some(row) => shown.push(row),
            None => undescribed.push(leaf.clone()),
        }
    }
    if !undescribed.is_empty() {
        return Err(undescribed);
    }
    // In the order of values.yaml.
    let mut text = INTRO.to_string();
    for row in described.iter().filter(|d| shown.contains(d)) {
        let default = at(&parsed, &row.path);
        text.push_str(&format!(
            "| `{}` | {} | `{}` | {} |\n",
            row.path,
            type_of(default),
            cell(&default.to_string()),
            cell(&row.description),
        ));
    }
    Ok(text)
}

#[test]
fn chart_readme_lists_every_value_with_its_description_and_default() {
    let values = std::fs::read_to_string(repo_path(VALUES)).expect("values.yaml is readable");
    let generated = readme(&values).unwrap_or_else(|missing| {
        panic!("values without a `# --` description in {VALUES}: {missing:?}")
    });
    let path = repo_path(README);
    if std::env::var_os("UPDATE_CHART_README").is_some() {
        std::fs::write(&path, &generated).expect("the chart README is writable");
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == generated,
        "{README} is out of date with {VALUES}: run `make chart-readme`"
    );
}

#[test]
fn descriptions_follow_keys_nest_and_continue_over_comment_lines() {
    let values = "\
# -- Top.
top: 1
section:
  # -- Inner, which goes on
  # over two lines.
  inner: a
  # a plain comment describes nothing
  plain: b
# -- Whole object.
whole:
  a: 1
list: []
# - {example: after the key}
";
    assert_eq!(
        descriptions(values),
        [
            Described {
                path: "top".into(),
                description: "Top.".into()
            },
            Described {
                path: "section.inner".into(),
                description: "Inner, which goes on over two lines.".into()
            },
            Described {
                path: "whole".into(),
                description: "Whole object.".into()
            },
        ]
    );
    assert_eq!(
        readme(values).unwrap_err(),
        ["list", "section.plain"],
        "values without a description are named"
    );
}

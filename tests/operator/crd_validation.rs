//! The real API server refuses every invalid Plugin in `tests/invalid-plugins/` with the
//! message written at the top of its file, and accepts the examples in `deploy/examples`.

use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use plugin_operator_test_support::cluster::{TestNamespace, dry_run, repo_path, together};
use serde::Deserialize;

use crate::namespace_with_crd;

/// Plugins as untyped objects, so that what the Rust types would refuse reaches the API
/// server, in a namespace of their own (kept while the namespace is held).
async fn untyped_plugins(prefix: &str) -> (TestNamespace, Api<DynamicObject>) {
    let (client, ns) = namespace_with_crd(prefix).await;
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "plugins.chat.dev",
        "v1alpha1",
        "Plugin",
    ));
    let api = Api::namespaced_with(client, &ns.name, &resource);
    (ns, api)
}

fn manifests(folder: &str) -> Vec<(String, String)> {
    let mut files: Vec<_> = std::fs::read_dir(repo_path(folder))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(path).unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_invalid_manifest_is_refused_with_a_message_a_person_understands() {
    let _cluster = together().await;
    let (_ns, api) = untyped_plugins("crd-invalid").await;
    let corpus = manifests("tests/invalid-plugins");
    assert!(
        corpus.len() >= 20,
        "the corpus keeps at least 20 cases, has {}",
        corpus.len()
    );
    let mut failures = vec![];
    for (file, text) in &corpus {
        let expected = text
            .lines()
            .find_map(|line| line.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{file} has no `# expect:` line"));
        let object: DynamicObject = serde_norway::from_str(text).unwrap();
        match api.create(&PostParams::default(), &object).await {
            Ok(_) => failures.push(format!(
                "{file}: was accepted, expected a refusal containing {expected:?}"
            )),
            Err(kube::Error::Api(status))
                if status.code == 422 && status.message.contains(expected) => {}
            Err(error) => failures.push(format!("{file}: expected {expected:?}, got: {error}")),
        }
    }
    let stored = api.list(&Default::default()).await.unwrap();
    assert!(
        stored.items.is_empty(),
        "a refused Plugin must change nothing"
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        corpus.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn example_plugins_are_accepted() {
    let _cluster = together().await;
    let (_ns, api) = untyped_plugins("crd-examples").await;
    let examples = manifests("deploy/examples");
    assert!(!examples.is_empty());
    for (file, text) in examples {
        for document in serde_norway::Deserializer::from_str(&text) {
            let value = serde_norway::Value::deserialize(document).unwrap();
            if value.get("kind").and_then(|k| k.as_str()) != Some("Plugin") {
                continue;
            }
            let object: DynamicObject = serde_norway::from_value(value).unwrap();
            if let Err(error) = api.create(&dry_run(), &object).await {
                panic!("{file} was refused: {error}");
            }
        }
    }
}

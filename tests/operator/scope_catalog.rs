//! The ScopeCatalog on a real API server: the shipped admission policy refuses a Plugin
//! naming a scope the catalog does not define, with the scopes it does define; the
//! operator holds such a Plugin (`UnknownScope`) until the catalog defines the scope,
//! brings a catalog change to every broker's policy, and changes nothing while the
//! catalog is one the brokers could not enforce.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use plugin_operator::api::{Plugin, sample_scope_catalog};
use plugin_operator_test_support::cluster::{
    Operator, ShippedAdmission, TEST_POLICY_LABEL, TestCatalog, TestNamespace, TestPolicy, client,
    dry_run, eventually, install_crd, together,
};
use serde_json::{Value, json};

use crate::OPERATOR;
use crate::plugin_policy::{broker_scopes, ready, spec, wait_for_reason};

/// The sample catalog's spec with `extra` scopes added.
fn sample_with(extra: Value) -> Value {
    let mut catalog = serde_json::to_value(sample_scope_catalog()).unwrap();
    let scopes = catalog["scopes"].as_array_mut().unwrap();
    scopes.extend(extra.as_array().unwrap().iter().cloned());
    catalog
}

fn deploy_write() -> Value {
    json!([{"name": "deploy:write", "description": "Start a deployment.",
            "routes": [{"method": "POST", "path": "/api/v1/deployments"}]}])
}

fn plugin(name: &str, scopes: &[&str]) -> Plugin {
    let grants: Vec<Value> = scopes.iter().map(|s| json!({"scope": s})).collect();
    Plugin::new(
        name,
        spec(
            json!({"image": "registry.example/x:1", "port": 8080, "paused": true,
                    "permissions": {"chatApi": grants}}),
        ),
    )
}

/// The routes of the broker's compiled policy, as `METHOD path`.
async fn broker_routes(config_maps: &Api<ConfigMap>, name: &str) -> Vec<String> {
    let Ok(config_map) = config_maps
        .get(&format!("plugin-{name}-broker-policy"))
        .await
    else {
        return vec![];
    };
    let text = config_map.data.unwrap_or_default()["policy.json"].clone();
    let policy: Value = serde_json::from_str(&text).unwrap();
    policy["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["method"].as_str().unwrap(),
                r["path"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn a_scope_the_catalog_does_not_define_is_refused_at_admission_with_the_scopes_it_does() {
    let _cluster = together().await;
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "op-scope-admission", &[]).await;
    let catalog = TestCatalog::named(&client, &ns.name);
    catalog.set(sample_with(json!([]))).await;
    let _admission =
        ShippedAdmission::install_scope_catalog(&client, &ns.name, &catalog.name).await;
    let plugins: Api<Plugin> = ns.api();
    let expected = format!(
        "permissions.chatApi names deploy:write, which ScopeCatalog {} does not define; it defines [channels:read, messages:read, messages:write, reactions:write, users:read, files:read, files:write]",
        catalog.name
    );
    let asks = plugin("asks", &["messages:read", "deploy:write"]);
    // A new binding is in force once the API server has seen it (dry runs change nothing).
    let refusal = eventually(
        "the scope admission policy to refuse",
        Duration::from_secs(30),
        || async {
            let error = plugins.create(&dry_run(), &asks).await.err()?;
            let text = error.to_string();
            text.contains("ScopeCatalog").then_some(text)
        },
    )
    .await;
    assert!(
        refusal.contains(&expected),
        "{refusal}\nexpected: {expected}"
    );
    let known = plugins
        .create(&dry_run(), &plugin("known", &["messages:read"]))
        .await;
    assert!(known.is_ok(), "a defined scope is admitted: {known:?}");

    catalog.set(sample_with(deploy_write())).await;
    eventually(
        "the changed catalog to admit deploy:write",
        Duration::from_secs(30),
        || async { plugins.create(&dry_run(), &asks).await.ok().map(drop) },
    )
    .await;
}

#[tokio::test]
async fn a_plugin_naming_an_undefined_scope_is_held_until_the_catalog_defines_it() {
    let _cluster = together().await;
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "op-scope-held", &[(TEST_POLICY_LABEL.0, "none")]).await;
    let _policy = TestPolicy::apply(
        &client,
        &ns.name,
        json!({"chatApi": [{"scope": "messages:read"}, {"scope": "deploy:write"}]}),
    )
    .await;
    // The operator starts before its catalog exists.
    let catalog = TestCatalog::named(&client, &ns.name);
    let _operator = Operator::start(
        OPERATOR,
        &ns.name,
        &["--scope-catalog", catalog.name.as_str()],
    )
    .await;
    let plugins: Api<Plugin> = ns.api();
    let config_maps: Api<ConfigMap> = ns.api();
    for plugin in [
        plugin("asks", &["messages:read", "deploy:write"]),
        plugin("plain", &["messages:read"]),
    ] {
        plugins
            .create(&PostParams::default(), &plugin)
            .await
            .unwrap();
    }

    let held = wait_for_reason(&plugins, "asks", "UnknownScope").await;
    let message = ready(&held).unwrap().2;
    assert!(
        message.contains(&format!("ScopeCatalog {} does not exist", catalog.name)),
        "{message}"
    );
    wait_for_reason(&plugins, "plain", "UnknownScope").await;
    assert_eq!(broker_scopes(&config_maps, "asks").await, Some(vec![]));

    catalog.set(sample_with(json!([]))).await;
    wait_for_reason(&plugins, "plain", "Paused").await;
    let held = eventually(
        "asks to be held for deploy:write alone",
        Duration::from_secs(30),
        || async {
            let plugin = plugins.get("asks").await.ok()?;
            let (_, reason, message) = ready(&plugin)?;
            (reason == "UnknownScope" && message.contains("does not define this scope"))
                .then_some(message)
        },
    )
    .await;
    assert!(
        held.contains("permissions.chatApi[deploy:write]: ScopeCatalog")
            && held.contains("it defines [channels:read, messages:read"),
        "{held}"
    );
    assert_eq!(
        broker_scopes(&config_maps, "asks").await,
        Some(vec!["messages:read".to_string()]),
        "the held Plugin's broker enforces what the catalog defines"
    );

    catalog.set(sample_with(deploy_write())).await;
    let released = wait_for_reason(&plugins, "asks", "Paused").await;
    assert!(released.status.unwrap().permissions.unwrap().permitted);
    assert_eq!(
        broker_scopes(&config_maps, "asks").await,
        Some(vec![
            "messages:read".to_string(),
            "deploy:write".to_string()
        ])
    );
    for name in ["asks", "plain"] {
        eventually(
            &format!("{name}'s broker policy to carry the new route"),
            Duration::from_secs(30),
            || async {
                broker_routes(&config_maps, name)
                    .await
                    .contains(&"POST /api/v1/deployments".to_string())
                    .then_some(())
            },
        )
        .await;
    }
}

#[tokio::test]
async fn a_catalog_the_brokers_could_not_enforce_changes_nothing() {
    let _cluster = together().await;
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "op-scope-invalid", &[]).await;
    let catalog = TestCatalog::named(&client, &ns.name);
    catalog.set(sample_with(json!([]))).await;
    let _operator = Operator::start(
        OPERATOR,
        &ns.name,
        &["--scope-catalog", catalog.name.as_str()],
    )
    .await;
    let plugins: Api<Plugin> = ns.api();
    let config_maps: Api<ConfigMap> = ns.api();
    plugins
        .create(&PostParams::default(), &plugin("plain", &["messages:read"]))
        .await
        .unwrap();
    wait_for_reason(&plugins, "plain", "Paused").await;
    let before = config_maps.get("plugin-plain-broker-policy").await.unwrap();

    // A key-value route outside the plugin's own space: every Plugin with a database
    // would read every other plugin's data.
    let mut leaky = sample_with(json!([]));
    for scope in leaky["scopes"].as_array_mut().unwrap() {
        if scope["name"] == "kv:read" {
            let routes = scope["routes"].as_array_mut().unwrap();
            routes.push(json!({"method": "GET", "path": "/api/v1/kv-all/{plugin}/{key}"}));
        }
    }
    catalog.set(leaky).await;
    let invalid = wait_for_reason(&plugins, "plain", "InvalidScopeCatalog").await;
    let message = ready(&invalid).unwrap().2;
    assert!(message.contains("{self}"), "{message}");
    let after = config_maps.get("plugin-plain-broker-policy").await.unwrap();
    assert_eq!(
        before.data, after.data,
        "the broker keeps the policy it had"
    );
}

#[tokio::test]
async fn the_example_catalog_is_accepted_and_its_routes_could_be_enforced() {
    use plugin_operator::api::ScopeCatalog;
    use plugin_operator_test_support::cluster::repo_path;
    let _cluster = together().await;
    let client = client().await;
    install_crd(&client).await;
    let text = std::fs::read_to_string(repo_path("deploy/examples/scope-catalog.yaml")).unwrap();
    let catalog: ScopeCatalog = serde_norway::from_str(&text).unwrap();
    Api::<ScopeCatalog>::all(client)
        .create(&dry_run(), &catalog)
        .await
        .expect("the API server accepts the example catalog");
    plugin_operator::policy::validate_catalog(&catalog.spec.routes())
        .expect("the brokers could enforce the example catalog");
    assert!(catalog.spec.chat_scope_names().contains(&"directory.read"));
}

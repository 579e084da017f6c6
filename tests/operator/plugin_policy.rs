//! The operator checks every Plugin against the PluginPolicies that select its namespace
//! on every reconcile: a narrowed policy holds an existing Plugin (Ready False,
//! `PermissionsDenied`, an Event) and narrows its broker policy and NetworkPolicy at once; widening the
//! policy releases it without anyone touching the Plugin. A namespace no policy selects
//! gets nothing; a forced RuntimeClass reaches the pod template.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Event};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, ListParams, PostParams};
use plugin_operator::api::{Plugin, PluginSpec};
use plugin_operator_test_support::cluster::{
    Operator, TEST_POLICY_LABEL, TestNamespace, TestPolicy, client, eventually, install_crd,
    together,
};
use serde_json::json;

use crate::{OPERATOR, operator_in_namespace};

const WAIT: Duration = Duration::from_secs(30);

/// Ready's status, reason and message.
pub(crate) fn ready(plugin: &Plugin) -> Option<(String, String, String)> {
    let ready = plugin
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")?;
    Some((
        ready.status.clone(),
        ready.reason.clone(),
        ready.message.clone(),
    ))
}

pub(crate) async fn wait_for_reason(plugins: &Api<Plugin>, name: &str, reason: &str) -> Plugin {
    eventually(
        &format!("{name} to be Ready with reason {reason}"),
        WAIT,
        || async {
            let plugin = plugins.get(name).await.ok()?;
            (ready(&plugin)?.1 == reason).then_some(plugin)
        },
    )
    .await
}

/// The scopes the broker's policy ConfigMap grants.
pub(crate) async fn broker_scopes(config_maps: &Api<ConfigMap>, name: &str) -> Option<Vec<String>> {
    let config_map = config_maps
        .get(&format!("plugin-{name}-broker-policy"))
        .await
        .ok()?;
    let policy: serde_json::Value =
        serde_json::from_str(config_map.data?.get("policy.json")?).ok()?;
    Some(
        policy["grants"]
            .as_array()?
            .iter()
            .filter_map(|g| g["scope"].as_str().map(String::from))
            .collect(),
    )
}

/// The CIDRs of the weather Plugin's NetworkPolicy's ipBlock egress rules.
async fn declared_egress(network_policies: &Api<NetworkPolicy>) -> Vec<String> {
    let policy = network_policies.get("plugin-weather").await.unwrap();
    policy
        .spec
        .and_then(|s| s.egress)
        .unwrap_or_default()
        .iter()
        .flat_map(|rule| rule.to.iter().flatten())
        .filter_map(|peer| peer.ip_block.as_ref().map(|b| b.cidr.clone()))
        .collect()
}

pub(crate) fn spec(value: serde_json::Value) -> PluginSpec {
    serde_json::from_value(value).unwrap()
}

#[tokio::test]
async fn a_narrowed_policy_holds_a_plugin_and_a_widened_one_releases_it() {
    let _cluster = together().await;
    let (client, ns, _operator) = operator_in_namespace("op-policy-narrow").await;
    let both = json!({
        "chatApi": [{"scope": "messages:read"}, {"scope": "messages:write"}],
        "egress": {"allowed": ["203.0.113.0/24"]}
    });
    let policy = TestPolicy::apply(&client, &ns.name, both.clone()).await;
    let plugins: Api<Plugin> = ns.api();
    let config_maps: Api<ConfigMap> = ns.api();
    let asked = spec(json!({
        "image": "registry.example/weather:1", "port": 8080, "paused": true,
        "permissions": {"chatApi": [{"scope": "messages:read"}, {"scope": "messages:write"}],
                        "network": {"egress": [{"cidr": "203.0.113.0/24"}]}},
        "rateLimits": [{"scope": "messages:write", "perMinute": 60}]
    }));
    plugins
        .create(&PostParams::default(), &Plugin::new("weather", asked))
        .await
        .unwrap();
    let allowed = wait_for_reason(&plugins, "weather", "Paused").await;
    let permissions = allowed.status.unwrap().permissions.unwrap();
    assert!(permissions.permitted);
    assert!(
        permissions.policies.contains(&policy.name),
        "{permissions:?}"
    );
    assert_eq!(
        permissions.granted.unwrap().chat_api,
        ["messages:read", "messages:write"]
    );
    let deployments: Api<Deployment> = ns.api();
    let before = deployments.get("plugin-weather").await.unwrap();
    let network_policies: Api<NetworkPolicy> = ns.api();
    assert!(
        declared_egress(&network_policies)
            .await
            .contains(&"203.0.113.0/24".to_string())
    );

    policy
        .set(&ns.name, json!({"chatApi": [{"scope": "messages:read"}]}))
        .await;
    let held = wait_for_reason(&plugins, "weather", "PermissionsDenied").await;
    let (status, _, message) = ready(&held).unwrap();
    assert_eq!(status, "False");
    assert!(
        message.contains(&format!(
            "permissions.chatApi[messages:write] scope: PluginPolicy {} allows the scopes [messages:read]",
            policy.name
        )),
        "{message}"
    );
    let permissions = held.status.as_ref().unwrap().permissions.clone().unwrap();
    assert!(!permissions.permitted);
    assert_eq!(permissions.granted.unwrap().chat_api, ["messages:read"]);
    assert_eq!(permissions.denied.len(), 2, "{:?}", permissions.denied);
    eventually(
        "the NetworkPolicy to lose the egress rule",
        WAIT,
        || async {
            declared_egress(&network_policies)
                .await
                .is_empty()
                .then_some(())
        },
    )
    .await;
    eventually("the broker policy to lose messages:write", WAIT, || async {
        let scopes = broker_scopes(&config_maps, "weather").await?;
        (scopes == ["messages:read"]).then_some(())
    })
    .await;
    let events: Api<Event> = ns.api();
    eventually("a PermissionsDenied Event on the Plugin", WAIT, || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .iter()
            .any(|e| e.reason.as_deref() == Some("PermissionsDenied"))
            .then_some(())
    })
    .await;
    let during = deployments.get("plugin-weather").await.unwrap();
    assert_eq!(
        during.metadata.generation, before.metadata.generation,
        "a held Plugin's Deployment is left as it was"
    );

    policy.set(&ns.name, both).await;
    let released = wait_for_reason(&plugins, "weather", "Paused").await;
    assert!(released.status.unwrap().permissions.unwrap().permitted);
    eventually(
        "the NetworkPolicy to regain the egress rule",
        WAIT,
        || async {
            let cidrs = declared_egress(&network_policies).await;
            cidrs.contains(&"203.0.113.0/24".to_string()).then_some(())
        },
    )
    .await;
    eventually(
        "the broker policy to grant messages:write again",
        WAIT,
        || async {
            let scopes = broker_scopes(&config_maps, "weather").await?;
            (scopes == ["messages:read", "messages:write"]).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_namespace_no_policy_selects_gets_nothing_until_one_does() {
    let _cluster = together().await;
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "op-policy-none", &[(TEST_POLICY_LABEL.0, "none")]).await;
    let operator = Operator::start(OPERATOR, &ns.name, &[]).await;
    let plugins: Api<Plugin> = ns.api();
    plugins
        .create(
            &PostParams::default(),
            &Plugin::new(
                "orphan",
                spec(json!({"image": "registry.example/x:1", "port": 8080, "paused": true})),
            ),
        )
        .await
        .unwrap();
    let held = wait_for_reason(&plugins, "orphan", "PermissionsDenied").await;
    assert!(
        ready(&held)
            .unwrap()
            .2
            .contains("no PluginPolicy selects this namespace"),
        "{:?}",
        ready(&held)
    );
    let deployments: Api<Deployment> = ns.api();
    assert!(
        deployments
            .get_opt("plugin-orphan")
            .await
            .unwrap()
            .is_none(),
        "a held Plugin that never ran gets no Deployment"
    );

    let _policy = TestPolicy::apply(&client, &ns.name, json!({})).await;
    wait_for_reason(&plugins, "orphan", "Paused").await;
    assert!(
        deployments
            .get_opt("plugin-orphan")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        operator
            .metric("plugin_operator_drift_corrections_total")
            .await,
        0.0,
        "a Deployment created on release was never deleted: it is no drift"
    );
}

/// What admission did not refuse (its binding not yet in force, or not installed, as
/// here) the operator holds: an unlisted Secret reaches no pod, neither through a new
/// Plugin nor through an edit of a running one.
#[tokio::test]
async fn an_unlisted_secret_that_passed_admission_reaches_no_deployment() {
    let _cluster = together().await;
    let (_client, ns, _operator) = operator_in_namespace("op-policy-secret").await;
    let plugins: Api<Plugin> = ns.api();
    let deployments: Api<Deployment> = ns.api();
    let with_secret = |paused: bool| {
        spec(json!({
            "image": "registry.example/x:1", "port": 8080, "paused": paused,
            "env": [{"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "database-root", "key": "password"}}}]
        }))
    };
    plugins
        .create(
            &PostParams::default(),
            &Plugin::new("new", with_secret(true)),
        )
        .await
        .unwrap();
    let held = wait_for_reason(&plugins, "new", "PermissionsDenied").await;
    let message = ready(&held).unwrap().2;
    assert!(message.contains("database-root"), "{message}");
    assert!(
        deployments.get_opt("plugin-new").await.unwrap().is_none(),
        "a held Plugin that never ran gets no Deployment"
    );

    plugins
        .create(
            &PostParams::default(),
            &Plugin::new(
                "running",
                spec(json!({"image": "registry.example/x:1", "port": 8080, "paused": true})),
            ),
        )
        .await
        .unwrap();
    wait_for_reason(&plugins, "running", "Paused").await;
    let before = deployments.get("plugin-running").await.unwrap();
    let mut edited = plugins.get("running").await.unwrap();
    edited.spec = with_secret(true);
    plugins
        .replace("running", &PostParams::default(), &edited)
        .await
        .unwrap();
    wait_for_reason(&plugins, "running", "PermissionsDenied").await;
    let after = deployments.get("plugin-running").await.unwrap();
    assert_eq!(
        before.spec, after.spec,
        "a held Plugin's Deployment is left as it was"
    );
    let names_the_secret = serde_json::to_string(&after.spec).unwrap();
    assert!(!names_the_secret.contains("database-root"));
}

#[tokio::test]
async fn a_policys_runtime_class_is_forced_onto_the_pods() {
    let _cluster = together().await;
    let (client, ns, _operator) = operator_in_namespace("op-policy-runtime").await;
    let _policy =
        TestPolicy::apply(&client, &ns.name, json!({"runtimeClassName": "sandboxed"})).await;
    let plugins: Api<Plugin> = ns.api();
    plugins
        .create(
            &PostParams::default(),
            &Plugin::new(
                "boxed",
                spec(json!({"image": "registry.example/x:1", "port": 8080, "paused": true})),
            ),
        )
        .await
        .unwrap();
    let plugin = wait_for_reason(&plugins, "boxed", "Paused").await;
    let permissions = plugin.status.unwrap().permissions.unwrap();
    assert_eq!(permissions.runtime_class_name.as_deref(), Some("sandboxed"));
    let deployments: Api<Deployment> = ns.api();
    let deployment = deployments.get("plugin-boxed").await.unwrap();
    let class = deployment
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|p| p.runtime_class_name);
    assert_eq!(class.as_deref(), Some("sandboxed"));
}

#[tokio::test]
async fn the_example_policy_is_accepted_and_allows_the_example_plugin() {
    use plugin_operator::api::PluginPolicy;
    use plugin_operator::controller::bounds::{Catalog, EnvObjects, review};
    use plugin_operator_test_support::cluster::{dry_run, repo_path};
    let _cluster = together().await;
    let client = client().await;
    install_crd(&client).await;
    let read = |path: &str| std::fs::read_to_string(repo_path(path)).unwrap();
    let policy: PluginPolicy =
        serde_norway::from_str(&read("deploy/examples/plugin-policy.yaml")).unwrap();
    Api::<PluginPolicy>::all(client.clone())
        .create(&dry_run(), &policy)
        .await
        .expect("the API server accepts the example policy");
    let weather: Plugin = serde_norway::from_str(&read("deploy/examples/weather.yaml")).unwrap();
    let sample = plugin_operator::api::sample_scope_catalog();
    let catalog = Catalog {
        name: "default",
        spec: Some(&sample),
    };
    let outcome = review(&weather.spec, catalog, &[&policy], &EnvObjects::default());
    assert!(
        outcome.permitted(),
        "the demo's plugin is within the demo's policy: {}",
        outcome.message()
    );
}

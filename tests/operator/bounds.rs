//! Every value the schema accepts becomes children the API server accepts: Plugins at the
//! schema's bounds, with quantities, ports, durations and CIDRs spelled every way the
//! schema allows, are read by the API server (dry run), validated and built by the
//! operator, and each child is applied to the API server (dry run).

use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use plugin_operator::api::{Plugin, PluginSpec};
use plugin_operator::controller::config::OperatorConfig;
use plugin_operator::controller::desired::desired_children;
use plugin_operator::controller::validate::validate;
use plugin_operator_test_support::cluster::{dry_run, together};
use serde::Serialize;
use serde_json::json;

use crate::namespace_with_crd;

/// Plugins at the schema's bounds, each with values spelled the ways the schema allows.
fn plugins_at_the_bounds() -> Vec<serde_json::Value> {
    let egress = |cidrs: &[&str]| {
        cidrs
            .iter()
            .map(|cidr| json!({"cidr": cidr, "ports": [1, 65535]}))
            .collect::<Vec<_>>()
    };
    vec![
        json!({
            "image": "registry.example/weather@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "port": 65535, "replicas": 50,
            "resources": {"requests": {"cpu": "8", "memory": "16Gi"}, "limits": {"cpu": "8", "memory": "16Gi"}},
            "timeouts": {"requestSeconds": 300}, "concurrency": {"maxInFlight": 1024},
            "permissions": {
                "database": {"access": "ReadWrite", "maxValueBytes": 1048576},
                "filesystem": {"scratch": {"sizeLimit": "4Gi"}},
                "network": {"egress": egress(&["203.0.113.7/32", "2001:db8::/32", "10.1.2.3/8", "2001:DB8::1/64", "0.0.0.0/1"])}
            }
        }),
        json!({
            "image": "registry.example/weather:1", "port": 1,
            "resources": {"requests": {"cpu": "900000u", "memory": "4Mi"}},
            "permissions": {"filesystem": {"scratch": {"sizeLimit": "1Mi"}}}
        }),
        json!({
            "image": "registry.example/weather:1", "port": 8080,
            "resources": {"requests": {"cpu": "1n", "memory": "0.004Gi"}, "limits": {"cpu": "2e-3"}}
        }),
        json!({
            "image": "registry.example/weather:1", "port": 8080,
            "resources": {"limits": {"cpu": "0.01", "memory": "5000k"}}
        }),
        json!({
            "image": "registry.example/weather:1", "port": 8080,
            "resources": {"requests": {"cpu": "7.999999999", "memory": "16e9"}}
        }),
    ]
}

async fn dry_run_apply<K>(client: &Client, namespace: &str, object: &K) -> Result<(), String>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Serialize
        + serde::de::DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let params = PatchParams::apply("plugin-operator-tests").dry_run();
    api.patch(&object.name_any(), &params, &Patch::Apply(object))
        .await
        .map(|_| ())
        .map_err(|error| format!("{} {}: {error}", K::kind(&()), object.name_any()))
}

#[tokio::test]
async fn a_plugin_at_every_bound_becomes_children_the_api_server_accepts() {
    let _cluster = together().await;
    let (client, ns) = namespace_with_crd("op-bounds").await;
    let plugins: Api<Plugin> = Api::namespaced(client.clone(), &ns.name);
    let config = OperatorConfig::example();
    let mut refusals = vec![];
    for (index, spec) in plugins_at_the_bounds().into_iter().enumerate() {
        let spec: PluginSpec = serde_json::from_value(spec).unwrap();
        let plugin = Plugin::new(&format!("bounds-{index}"), spec);
        // The API server's own reading of the Plugin, defaults and all, with a uid.
        let plugin = plugins
            .create(&dry_run(), &plugin)
            .await
            .unwrap_or_else(|e| panic!("bounds-{index} is a valid Plugin: {e}"));
        let valid = validate(&plugin, &plugin_operator::policy::default_catalog())
            .unwrap_or_else(|e| panic!("the operator refuses bounds-{index}: {e}"));
        let children = desired_children(&valid, &config);
        let results = [
            dry_run_apply(&client, &ns.name, &children.service_account).await,
            dry_run_apply(&client, &ns.name, &children.config_map).await,
            dry_run_apply(&client, &ns.name, &children.deployment).await,
            dry_run_apply(&client, &ns.name, &children.service).await,
            dry_run_apply(&client, &ns.name, &children.network_policy).await,
        ];
        refusals.extend(results.into_iter().filter_map(Result::err));
    }
    assert!(
        refusals.is_empty(),
        "the API server refuses children the operator builds from valid Plugins:\n{}",
        refusals.join("\n")
    );
}

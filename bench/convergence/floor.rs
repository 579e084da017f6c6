//! The floor for the operator's convergence: the least work that gives N Plugins their
//! children and a status, done directly.
//!
//! For each Plugin, 8 at a time (the operator's `--max-concurrent-reconciles`): create
//! it, build its children with the operator's own `validate` and `desired_children` (same configuration
//! as the operator's defaults), server-side apply the five children under the same
//! field manager with the same applied-hash annotation, and apply the status the
//! operator would write first. Then the same convergence check as `bench-operator`.
//! Prints one JSON line.
//!
//! cargo run --release --example bench-floor -- --plugins 1000

mod common;

use std::time::{Duration, Instant};

use clap::Parser;
use futures::{StreamExt, stream};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use plugin_operator::api::Plugin;
use plugin_operator::controller::ControllerArgs;
use plugin_operator::controller::apply::{APPLIED_HASH_ANNOTATION, applied_hash};
use plugin_operator::controller::config::OperatorConfig;
use plugin_operator::controller::desired::{FIELD_MANAGER, desired_children};
use plugin_operator::controller::status::{Desired, plugin_status};
use plugin_operator::controller::validate::validate;
use plugin_operator_test_support::cluster::{client, install_crd};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

/// The operator's own flags with their defaults: the same configuration it builds from.
#[derive(Parser)]
struct Defaults {
    #[command(flatten)]
    controller: ControllerArgs,
}

async fn apply<K>(client: &Client, namespace: &str, mut desired: K)
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Serialize
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let hash = applied_hash(&desired);
    desired
        .annotations_mut()
        .insert(APPLIED_HASH_ANNOTATION.into(), hash);
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.patch(
        &desired.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&desired),
    )
    .await
    .expect("a child applies");
}

async fn one_plugin(client: &Client, config: &OperatorConfig, namespace: &str, index: usize) {
    let plugins: Api<Plugin> = Api::namespaced(client.clone(), namespace);
    let plugin = common::create_plugin(&plugins, index).await;
    let valid = validate(&plugin, &plugin_operator::policy::default_catalog())
        .expect("a created Plugin is valid");
    let names = &valid.names;
    let children = desired_children(&valid, config);
    let replicas = children.desired_replicas();
    apply(client, namespace, children.service_account).await;
    apply(client, namespace, children.config_map).await;
    apply(client, namespace, children.deployment).await;
    apply(client, namespace, children.service).await;
    apply(client, namespace, children.network_policy).await;
    let desired = Desired {
        generation: plugin.metadata.generation.unwrap_or_default(),
        paused: plugin.spec.paused.unwrap_or(false),
        replicas,
        endpoint: names.endpoint(),
    };
    let now = k8s_openapi::jiff::Timestamp::now();
    let now = Time(k8s_openapi::jiff::Timestamp::from_second(now.as_second()).unwrap_or(now));
    let status = plugin_status(&desired, None, &[], None, None, &now);
    let patch = json!({
        "apiVersion": "plugins.chat.dev/v1alpha1",
        "kind": "Plugin",
        "status": status,
    });
    plugins
        .patch_status(
            &plugin.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .expect("the status applies");
}

#[tokio::main]
async fn main() {
    let count: usize = common::arg("--plugins", "1000")
        .parse()
        .expect("--plugins is a number");
    let config = Defaults::parse_from(["bench-floor"])
        .controller
        .operator_config()
        .expect("the default configuration is valid");

    let client = client().await;
    install_crd(&client).await;
    let ns = common::create_namespace(&client, "floor").await;
    let namespace = ns.name.clone();
    common::progress(&format!(
        "namespace {namespace}; creating {count} Plugins and their children, {} at a time",
        common::CONCURRENCY
    ));
    let watch = common::ConvergenceWatch::start(&client, &namespace).await;
    let apiserver = common::apiserver_pid();
    let apiserver_cpu_before = apiserver.map(common::cpu_seconds);
    let started = Instant::now();
    stream::iter(0..count)
        .map(|index| one_plugin(&client, &config, &namespace, index))
        .buffer_unordered(common::CONCURRENCY)
        .for_each(|_| async {})
        .await;
    let written = started.elapsed();
    let converged = watch
        .wait_converged(count, started, Duration::from_secs(600))
        .await;
    drop(watch);
    let converged_s = converged.map(|d| d.as_secs_f64());
    let apiserver_cpu = apiserver
        .map(common::cpu_seconds)
        .zip(apiserver_cpu_before)
        .map(|(after, before)| after - before);
    common::progress(&format!("floor converged: {converged_s:?} s"));
    common::clean_up(&client, ns).await;
    println!(
        "{}",
        json!({
            "plugins": count,
            "write_seconds": written.as_secs_f64(),
            "converge_seconds": converged_s,
            "apiserver_cpu_seconds": apiserver_cpu,
        })
    );
    if converged.is_none() {
        std::process::exit(1);
    }
}

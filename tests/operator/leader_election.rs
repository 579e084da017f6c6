//! Two operator processes: only the Lease holder reconciles, and when it dies the other
//! takes over within 15 s.

use std::time::{Duration, Instant};

use k8s_openapi::api::{apps::v1::Deployment, coordination::v1::Lease};
use kube::api::{Api, PostParams};
use plugin_operator::api::{Plugin, PluginSpec};
use plugin_operator_test_support::cluster::{Operator, eventually, together};
use serde_json::json;

use crate::{OPERATOR, namespace_with_crd};

fn spec() -> PluginSpec {
    serde_json::from_value(json!({"image": "registry.example/x:1", "port": 8080, "paused": true}))
        .unwrap()
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("plugin-operator")
        .await
        .ok()??
        .spec?
        .holder_identity
}

/// Creates the Plugin `name` and waits up to 30 s for its Deployment: `what` built it.
async fn build(plugins: &Api<Plugin>, deployments: &Api<Deployment>, name: &str, what: &str) {
    plugins
        .create(&PostParams::default(), &Plugin::new(name, spec()))
        .await
        .unwrap();
    let deployment = format!("plugin-{name}");
    eventually(what, Duration::from_secs(30), || async {
        deployments.get_opt(&deployment).await.ok()?.map(|_| ())
    })
    .await;
}

/// Waits up to 20 s for the operator `identity` to hold the Lease.
async fn wait_for_holder(leases: &Api<Lease>, identity: &str) {
    let what = format!("the operator {identity} to hold the Lease");
    eventually(&what, Duration::from_secs(20), || async {
        (holder(leases).await.as_deref() == Some(identity)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn only_the_leader_reconciles_and_a_standby_takes_over_when_it_dies() {
    let _cluster = together().await;
    let (client, ns) = namespace_with_crd("op-leader").await;
    let flags = |identity: &'static str| {
        [
            "--leader-elect",
            "--lease-namespace",
            ns.name.as_str(),
            "--identity",
            identity,
            "--lease-seconds",
            "10",
        ]
    };
    let mut first = Operator::start(OPERATOR, &ns.name, &flags("first")).await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns.name);
    wait_for_holder(&leases, "first").await;
    let second = Operator::start(OPERATOR, &ns.name, &flags("second")).await;

    let plugins: Api<Plugin> = Api::namespaced(client.clone(), &ns.name);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    build(
        &plugins,
        &deployments,
        "one",
        "the leader to build the first Plugin",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(first.metric("plugin_operator_reconciles_total").await >= 1.0);
    assert_eq!(
        second.metric("plugin_operator_reconciles_total").await,
        0.0,
        "the standby must not reconcile"
    );
    assert_eq!(holder(&leases).await.as_deref(), Some("first"));
    assert_eq!(first.metric("plugin_operator_leader").await, 1.0);
    assert_eq!(
        second.metric("plugin_operator_leader").await,
        0.0,
        "the standby says it does not lead"
    );

    first.kill();
    let killed_at = Instant::now();
    build(
        &plugins,
        &deployments,
        "two",
        "the standby to build the Plugin created after the leader died",
    )
    .await;
    let takeover = killed_at.elapsed();
    assert_eq!(holder(&leases).await.as_deref(), Some("second"));
    assert!(second.metric("plugin_operator_reconciles_total").await >= 1.0);
    assert_eq!(second.metric("plugin_operator_leader").await, 1.0);
    assert!(
        takeover < Duration::from_secs(15),
        "takeover took {takeover:?}"
    );
    eprintln!("takeover after SIGKILL of the leader: {takeover:?}");
}

#[tokio::test]
async fn a_leader_that_stops_gracefully_releases_the_lease() {
    let _cluster = together().await;
    let (client, ns) = namespace_with_crd("op-release").await;
    let mut operator = Operator::start(
        OPERATOR,
        &ns.name,
        &[
            "--leader-elect",
            "--lease-namespace",
            &ns.name,
            "--identity",
            "solo",
        ],
    )
    .await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns.name);
    wait_for_holder(&leases, "solo").await;
    let exit = operator.terminate();
    assert!(
        exit.success(),
        "SIGTERM ends the operator cleanly, got {exit}"
    );
    assert_eq!(
        holder(&leases).await,
        None,
        "the Lease is free for a standby at once"
    );
}

#[tokio::test]
async fn a_sigterm_before_the_plugins_are_listed_ends_the_operator() {
    let _cluster = together().await;
    let (_client, ns) = namespace_with_crd("op-early-stop").await;
    // Right after it logs its admin address the operator is still listing.
    let mut operator = Operator::start(OPERATOR, &ns.name, &[]).await;
    let exit = operator.terminate();
    assert!(
        exit.success(),
        "SIGTERM during the first list ends the operator cleanly, got {exit}"
    );
}

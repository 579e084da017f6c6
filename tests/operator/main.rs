//! The operator against a real API server (`make cluster-up`, KUBECONFIG exported): its
//! children, drift put back, leader election, malformed objects, steady state, writes at convergence,
//! failures on the status, Events folded into series, values read as the API server reads them, and the CRD's own
//! validation. One module per concern.
//!
//! The tests run side by side; the two that need the cluster to themselves (the
//! steady-state count of API-server writes, and the malformed Plugin, which changes the
//! CRD for a moment) hold `alone()`, every other test that talks to the cluster holds
//! `together()`.

mod apply_failed;
mod bounds;
mod children;
mod crd_drift;
mod crd_validation;
mod drift;
mod events;
mod images;
mod leader_election;
mod malformed;
mod plugin_policy;
mod policy_admission;
mod quantities;
mod scope_catalog;
mod steady_state;
mod version;
mod writes;

/// The operator binary cargo built for these tests.
const OPERATOR: &str = env!("CARGO_BIN_EXE_plugin-operator");

/// What most of these tests start from: a client, the CRD, and a namespace of their own.
async fn namespace_with_crd(
    prefix: &str,
) -> (
    kube::Client,
    plugin_operator_test_support::cluster::TestNamespace,
) {
    use plugin_operator_test_support::cluster::{TestNamespace, client, install_crd};
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, prefix, &[]).await;
    (client, ns)
}

/// The same, with an operator watching the namespace.
async fn operator_in_namespace(
    prefix: &str,
) -> (
    kube::Client,
    plugin_operator_test_support::cluster::TestNamespace,
    plugin_operator_test_support::cluster::Operator,
) {
    operator_in_namespace_with(prefix, &[]).await
}

/// [`operator_in_namespace`], the operator started with `extra` flags.
async fn operator_in_namespace_with(
    prefix: &str,
    extra: &[&str],
) -> (
    kube::Client,
    plugin_operator_test_support::cluster::TestNamespace,
    plugin_operator_test_support::cluster::Operator,
) {
    let (client, ns) = namespace_with_crd(prefix).await;
    let operator =
        plugin_operator_test_support::cluster::Operator::start(OPERATOR, &ns.name, extra).await;
    (client, ns, operator)
}

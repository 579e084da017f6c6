//! Generated files match what the code generates today.

use plugin_operator_test_support::cluster::repo_path;

fn read(relative: &str) -> String {
    let path = repo_path(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn committed_crd_matches_the_rust_types() {
    assert!(
        read("crds/plugins.chat.dev.yaml") == plugin_operator::api::crd_yaml(),
        "crds/plugins.chat.dev.yaml is out of date: run `make generate`"
    );
}

#[test]
fn committed_policy_crd_matches_the_rust_types() {
    assert!(
        read("crds/pluginpolicies.plugins.chat.dev.yaml")
            == plugin_operator::api::policy_crd_yaml(),
        "crds/pluginpolicies.plugins.chat.dev.yaml is out of date: run `make generate`"
    );
}

#[test]
fn committed_scope_catalog_crd_matches_the_rust_types() {
    assert!(
        read("crds/scopecatalogs.plugins.chat.dev.yaml")
            == plugin_operator::api::scope_catalog_crd_yaml(),
        "crds/scopecatalogs.plugins.chat.dev.yaml is out of date: run `make generate`"
    );
}

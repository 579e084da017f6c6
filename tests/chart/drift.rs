//! The chart's CRD and the plain manifests under deploy/ match what the code and the
//! chart generate today. No cluster needed; helm is built on first use.

use plugin_operator_test_support::cluster::repo_path;

use crate::support::{helm, text};

fn read(relative: &str) -> String {
    let path = repo_path(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn chart_crd_matches_the_rust_types() {
    let dir = repo_path("charts/plugin-operator/crds");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut files = files;
    files.sort();
    assert_eq!(
        files,
        [
            "pluginpolicies.plugins.chat.dev.yaml",
            "plugins.chat.dev.yaml",
            "scopecatalogs.plugins.chat.dev.yaml"
        ],
        "charts/plugin-operator/crds/ holds exactly the Plugin, PluginPolicy and ScopeCatalog CRDs"
    );
    assert!(
        read("charts/plugin-operator/crds/scopecatalogs.plugins.chat.dev.yaml")
            == plugin_operator::api::scope_catalog_crd_yaml(),
        "charts/plugin-operator/crds/scopecatalogs.plugins.chat.dev.yaml is out of date: run `make generate`"
    );
    assert!(
        read("charts/plugin-operator/files/sample-scope-catalog.yaml")
            == plugin_operator::api::sample_scope_catalog_yaml(),
        "charts/plugin-operator/files/sample-scope-catalog.yaml is out of date: run `make generate`"
    );
    assert!(
        read("charts/plugin-operator/crds/pluginpolicies.plugins.chat.dev.yaml")
            == plugin_operator::api::policy_crd_yaml(),
        "charts/plugin-operator/crds/pluginpolicies.plugins.chat.dev.yaml is out of date: run `make generate manifests`"
    );
    assert!(
        read("charts/plugin-operator/crds/plugins.chat.dev.yaml")
            == plugin_operator::api::crd_yaml(),
        "charts/plugin-operator/crds/plugins.chat.dev.yaml is out of date: run `make generate manifests`"
    );
}

#[test]
fn deploy_manifest_matches_the_chart_with_default_values() {
    let out = std::process::Command::new(repo_path("deploy/render.sh"))
        .env("HELM", helm())
        .output()
        .expect("deploy/render.sh runs");
    assert!(
        out.status.success(),
        "deploy/render.sh failed:\n{}",
        text(&out.stderr)
    );
    let rendered = text(&out.stdout);
    assert!(
        rendered.contains("kind: CustomResourceDefinition"),
        "the manifests include the CRD"
    );
    assert!(
        read("deploy/plugin-operator.yaml") == rendered,
        "deploy/plugin-operator.yaml is out of date: run `make manifests`"
    );
}

#[test]
fn argocd_patch_embeds_the_health_check() {
    let out = std::process::Command::new(repo_path("deploy/gitops/render.sh"))
        .output()
        .expect("deploy/gitops/render.sh runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        read("deploy/gitops/argocd-cm-patch.yaml") == text(&out.stdout),
        "deploy/gitops/argocd-cm-patch.yaml is out of date: run `make manifests`"
    );
    let patch: serde_json::Value =
        serde_norway::from_str(&read("deploy/gitops/argocd-cm-patch.yaml")).unwrap();
    assert_eq!(
        patch["data"]["resource.customizations.health.plugins.chat.dev_Plugin"],
        read("deploy/gitops/argocd-health.lua"),
        "the key holds the script as it is"
    );
}

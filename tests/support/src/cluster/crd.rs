//! The Plugin CRD, installed from the Rust types.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};

use super::eventually;

/// The field manager of every CRD apply by the tests and the benchmarks.
pub const CRD_FIELD_MANAGER: &str = "plugin-operator-tests";

/// Installs (or updates) the Plugin CRD from the Rust types and waits until it serves.
pub async fn install_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = plugin_operator::api::crd();
    let name = crd.metadata.name.clone().unwrap();
    crds.patch(
        &name,
        &PatchParams::apply(CRD_FIELD_MANAGER).force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("the CRD applies");
    eventually(
        "the Plugin CRD to be established",
        Duration::from_secs(30),
        || {
            let crds = crds.clone();
            let name = name.clone();
            async move {
                let crd = crds.get(&name).await.ok()?;
                let conditions = crd.status?.conditions?;
                conditions
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
                    .then_some(())
            }
        },
    )
    .await;
}

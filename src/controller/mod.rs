//! The operator: reconciles each Plugin into its children and reports their state.
//!
//! The pipeline is validate -> build -> apply -> status. `build` and `status` are pure
//! and hold most of the logic; `apply` and `reconcile` are the thin layer that talks to
//! the API server.

pub mod build;
pub mod config;
pub mod status;

#[derive(clap::Args, Debug)]
pub struct ControllerArgs {}

pub async fn run(_args: ControllerArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    Err("not built yet".into())
}

//! The reconcile pipeline (being built).

#[derive(clap::Args, Debug)]
pub struct ControllerArgs {}

pub async fn run(_args: ControllerArgs) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    Err("not built yet".into())
}

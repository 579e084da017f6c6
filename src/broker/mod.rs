//! The broker sidecar. (Being built: see issue on the broker.)

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(clap::Args, Debug)]
pub struct BrokerArgs {}

pub async fn run(_args: BrokerArgs) -> Result<(), BoxError> {
    Err("the broker is not built yet".into())
}

//! The one binary: `plugin-operator controller | broker | crd`.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "plugin-operator",
    version,
    about = "Runs chat plugins on Kubernetes behind a permission-enforcing broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Reconcile Plugin resources into pods, services and network policies.
    Controller(plugin_operator::controller::ControllerArgs),
    /// Run the broker sidecar inside a plugin pod.
    Broker(plugin_operator::broker::BrokerArgs),
    /// Print the Plugin CustomResourceDefinition as YAML.
    Crd,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Controller(args) => plugin_operator::controller::run(args).await,
        Command::Broker(args) => plugin_operator::broker::run(args).await,
        Command::Crd => plugin_operator::api::print_crd_yaml(),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("plugin-operator: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

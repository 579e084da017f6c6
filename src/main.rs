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

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Controller(args) => runtime().block_on(plugin_operator::controller::run(args)),
        Command::Broker(args) => runtime().block_on(plugin_operator::broker::run(args)),
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

/// One thread for both: the broker gets a fraction of a core as a sidecar and does its
/// best there without handing work between threads; the operator mostly waits on the
/// API server (about 2.5 CPU-seconds to converge 1,000 Plugins, docs/benchmarks.md).
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the async runtime starts")
}

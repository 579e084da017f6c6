//! The one binary: `plugin-operator controller | broker | crd`.

use clap::{Parser, Subcommand};

/// mimalloc: the broker allocates on every call, and glibc's allocator cost it a few
/// percent of its throughput (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        Command::Controller(args) => runtime(tokio::runtime::Builder::new_multi_thread())
            .block_on(plugin_operator::controller::run(args)),
        Command::Broker(args) => runtime(tokio::runtime::Builder::new_current_thread())
            .block_on(plugin_operator::broker::run(args)),
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

fn runtime(mut builder: tokio::runtime::Builder) -> tokio::runtime::Runtime {
    builder
        .enable_all()
        .build()
        .expect("the async runtime starts")
}

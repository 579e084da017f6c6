//! The one binary: `plugin-operator controller | broker | wait-for-broker | crd |
//! sample-scope-catalog | check`.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "plugin-operator",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("PLUGIN_OPERATOR_COMMIT"), ")"),
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
    /// Wait until the broker in this pod is ready (the broker container's postStart hook).
    WaitForBroker(plugin_operator::broker::WaitArgs),
    /// Print a CustomResourceDefinition as YAML (the Plugin's unless --kind says otherwise).
    Crd {
        /// Plugin, PluginPolicy or ScopeCatalog.
        #[arg(long, default_value = "Plugin")]
        kind: String,
    },
    /// Print the sample chat API's scopes, the chart's default ScopeCatalog.
    SampleScopeCatalog,
    /// Check an installed operator: ready, and the Plugin API served (the chart's helm test).
    Check(plugin_operator::controller::CheckArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Controller(args) => runtime().block_on(plugin_operator::controller::run(args)),
        Command::Broker(args) => runtime().block_on(plugin_operator::broker::run(args)),
        Command::WaitForBroker(args) => {
            plugin_operator::broker::wait_for_broker(&args).map_err(Into::into)
        }
        Command::Crd { kind } => plugin_operator::api::print_crd_yaml(&kind),
        Command::SampleScopeCatalog => {
            print!("{}", plugin_operator::api::sample_scope_catalog_yaml());
            Ok(())
        }
        Command::Check(args) => runtime().block_on(plugin_operator::controller::check(args)),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("plugin-operator: {}", with_causes(error.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

/// An error and every cause under it: `reading the kubeconfig: no such file: ...`.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Many errors already end with their cause's text; say it once.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
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

#[cfg(test)]
mod tests {
    use super::with_causes;

    #[derive(Debug, thiserror::Error)]
    #[error("starting the controller")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("reading the kubeconfig")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn the_error_is_printed_with_every_cause() {
        let error = Outer(Middle(std::io::Error::other("no such file")));
        assert_eq!(
            with_causes(&error),
            "starting the controller: reading the kubeconfig: no such file"
        );
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        #[derive(Debug, thiserror::Error)]
        #[error("applying failed: {0}")]
        struct Repeats(#[source] std::io::Error);
        let error = Repeats(std::io::Error::other("refused"));
        assert_eq!(with_causes(&error), "applying failed: refused");
    }
}

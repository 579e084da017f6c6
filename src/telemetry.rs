//! One place that sets up logging for every subcommand, and the `build_info` metric
//! operator and broker both export.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::{family::Family, gauge::Gauge};
use prometheus_client::registry::Registry;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// How log lines are written.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    #[default]
    Json,
    /// Human-readable lines.
    Plain,
}

/// Installs the global subscriber: `RUST_LOG` filters (default `info`), `format` picks
/// JSON or plain lines, to standard output. Calling it twice is harmless.
pub fn init(format: LogFormat) {
    init_writing_to(format, std::io::stdout);
}

/// [`init`], with lines going to `writer` instead of straight to standard output.
pub fn init_writing_to<W>(format: LogFormat, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .with_writer(writer)
                    .json()
                    .flatten_event(true)
                    .with_current_span(false),
            )
            .try_init(),
        LogFormat::Plain => registry.with(fmt::layer().with_writer(writer)).try_init(),
    };
}

/// The version and commit this binary was built from.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: &'static str,
    pub commit: &'static str,
}

/// This binary's version (the crate's) and commit (build.rs: `PLUGIN_OPERATOR_COMMIT`
/// or `git rev-parse`).
pub const BUILD: BuildLabels = BuildLabels {
    version: env!("CARGO_PKG_VERSION"),
    commit: env!("PLUGIN_OPERATOR_COMMIT"),
};

/// Registers `<prefix>_build_info{version, commit}`, always 1: joined on these labels,
/// a query can tell which build answered (the usual `_info` pattern).
pub fn register_build_info(registry: &mut Registry, what: &str) {
    let info = Family::<BuildLabels, Gauge>::default();
    info.get_or_create(&BUILD).set(1);
    registry.register(
        "build_info",
        format!("Always 1; its labels name the {what}'s version and commit"),
        info,
    );
}

/// What the metrics tests of operator and broker compare: the docs' metrics table and
/// an exposition, each as metric name (as queried: counters with `_total`) to type.
#[cfg(test)]
pub(crate) mod documented {
    use std::collections::BTreeMap;

    const OPERATIONS: &str = include_str!("../docs/operations.md");

    /// The rows of docs/operations.md's metrics table whose name starts with `prefix`.
    pub fn in_docs(prefix: &str) -> BTreeMap<String, String> {
        OPERATIONS
            .lines()
            .filter_map(|line| {
                let mut cells = line.split('|').map(str::trim).skip(1);
                let name = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
                let type_ = cells.next()?;
                name.starts_with(prefix)
                    .then(|| (name.to_string(), type_.to_string()))
            })
            .collect()
    }

    /// The `# TYPE` lines of an OpenMetrics exposition.
    pub fn in_exposition(text: &str) -> BTreeMap<String, String> {
        text.lines()
            .filter_map(|line| {
                let mut words = line.strip_prefix("# TYPE ")?.split(' ');
                let (name, type_) = (words.next()?, words.next()?);
                let name = match type_ {
                    "counter" => format!("{name}_total"),
                    _ => name.to_string(),
                };
                Some((name, type_.to_string()))
            })
            .collect()
    }
}

//! One place that sets up logging for every subcommand.

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

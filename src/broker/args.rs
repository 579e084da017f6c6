//! The broker's flags; each can also be set by its environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::audit::AuditDestination;
use crate::policy::ports;
use crate::telemetry::LogFormat;

#[derive(clap::Args, Clone, Debug)]
pub struct BrokerArgs {
    /// The policy file the operator writes into the broker's ConfigMap; re-read when it changes.
    #[arg(
        long,
        env = "BROKER_POLICY_FILE",
        default_value = "/etc/plugin-broker/policy.json"
    )]
    pub policy_file: PathBuf,

    /// Base URL of the chat API (http:// or https://, optionally with a path prefix).
    #[arg(long, env = "BROKER_CHAT_API_URL")]
    pub chat_api_url: String,

    /// The broker's token for the chat API (a projected ServiceAccount token); re-read when it rotates.
    #[arg(
        long,
        env = "BROKER_TOKEN_FILE",
        default_value = "/var/run/secrets/chat-api/token"
    )]
    pub token_file: PathBuf,

    /// PEM file of the CAs trusted for an https chat API (the operator mounts it from
    /// its `--chat-api-ca-config-map`); default: the system's trust store, which the
    /// broker's image does not have. Read once at start.
    #[arg(long, env = "BROKER_CHAT_API_CA_FILE")]
    pub chat_api_ca_file: Option<PathBuf>,

    /// The plugin this broker serves, `<namespace>/<name>`; a policy for another plugin is refused.
    #[arg(long, env = "BROKER_PLUGIN_ID")]
    pub plugin_id: Option<String>,

    /// The port the plugin serves HTTP on, inside the pod (on 127.0.0.1).
    #[arg(long, env = "BROKER_PLUGIN_PORT")]
    pub plugin_port: u16,

    /// Where invocations arrive (the Service's target).
    #[arg(long, env = "BROKER_INBOUND_BIND", default_value_t = SocketAddr::from(([0, 0, 0, 0], ports::INBOUND)))]
    pub inbound_bind: SocketAddr,

    /// Where the plugin calls the chat API; must be a loopback address.
    #[arg(long, env = "BROKER_OUTBOUND_BIND", default_value_t = SocketAddr::from(([127, 0, 0, 1], ports::OUTBOUND)))]
    pub outbound_bind: SocketAddr,

    /// Where /healthz, /readyz and /metrics are served.
    #[arg(long, env = "BROKER_ADMIN_BIND", default_value_t = SocketAddr::from(([0, 0, 0, 0], ports::ADMIN)))]
    pub admin_bind: SocketAddr,

    /// Longest a call to the chat API may take, up to the end of its response body (e.g. 10s, 500ms).
    #[arg(long, env = "BROKER_UPSTREAM_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub upstream_timeout: Duration,

    /// Most plugin connections open at once on the outbound listener (each holds one
    /// connection to the chat API); beyond it, new connections wait until one closes.
    #[arg(long, env = "BROKER_MAX_OUTBOUND_CONNECTIONS", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_outbound_connections: u32,

    /// Longest time a client may take to send a request's head; also closes idle connections.
    #[arg(long, env = "BROKER_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,

    /// How often the policy file is checked for changes.
    #[arg(long, env = "BROKER_POLICY_POLL_INTERVAL", default_value = "500ms", value_parser = parse_duration)]
    pub policy_poll_interval: Duration,

    /// How often the token file is checked for a rotated token.
    #[arg(long, env = "BROKER_TOKEN_POLL_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub token_poll_interval: Duration,

    /// How long requests in flight may take to finish after SIGTERM.
    #[arg(long, env = "BROKER_SHUTDOWN_GRACE", default_value = "20s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// The format of log and audit lines.
    #[arg(long, env = "BROKER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,

    /// Where audit lines go: standard output unless a test keeps them in memory.
    #[arg(skip)]
    pub audit_destination: AuditDestination,
}

/// `250ms`, `10s`, `2m`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 500ms, 10s or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("{text:?}: the unit must be ms, s or m")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_and_without_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("3h").is_err());
        assert!(parse_duration("fast").is_err());
    }
}

//! Flags (and their environment variables) of `plugin-operator controller`.

use std::net::SocketAddr;
use std::time::Duration;

use super::config::{ChatApiCa, DEFAULT_SCOPE_CATALOG, OperatorConfig, PodPeer, is_object_name};
use super::leader::LeaderElection;
use super::rollout::DEFAULT_MAX_CONCURRENT_ROLLOUTS;
use crate::telemetry::LogFormat;

/// A flag given twice takes its last value, so settings appended after a chart's own
/// (its `extraArgs`) win.
#[derive(clap::Args, Debug, Clone)]
#[command(args_override_self = true)]
pub struct ControllerArgs {
    /// Base URL of the chat API, as the broker reaches it.
    #[arg(
        long,
        env = "PLUGIN_OPERATOR_CHAT_API_URL",
        default_value = "http://chat-api.chat-system.svc:8080"
    )]
    pub chat_api_url: String,
    /// A ConfigMap in each plugin's namespace with the PEM certificates of the CAs the
    /// broker trusts for an https chat API (a trust-manager Bundle's target fits). It is
    /// mounted into the broker container only. Unset: the broker's own trust store, which
    /// its image does not have.
    #[arg(long, env = "PLUGIN_OPERATOR_CHAT_API_CA_CONFIG_MAP")]
    pub chat_api_ca_config_map: Option<String>,
    /// The key of that ConfigMap holding the certificates.
    #[arg(
        long,
        env = "PLUGIN_OPERATOR_CHAT_API_CA_KEY",
        default_value = "ca.crt"
    )]
    pub chat_api_ca_key: String,
    /// Audience of the token the broker presents to the chat API.
    #[arg(
        long,
        env = "PLUGIN_OPERATOR_TOKEN_AUDIENCE",
        default_value = "chat-api"
    )]
    pub token_audience: String,
    /// Lifetime of that token in seconds (at least 600); the kubelet rotates it.
    #[arg(long, env = "PLUGIN_OPERATOR_TOKEN_EXPIRATION_SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(i64).range(600..))]
    pub token_expiration_seconds: i64,
    /// Image of the broker sidecar.
    #[arg(
        long,
        env = "PLUGIN_OPERATOR_BROKER_IMAGE",
        default_value = "localhost/plugin-operator:dev"
    )]
    pub broker_image: String,
    /// Namespace of the chat API's pods (egress is allowed to them).
    #[arg(
        long,
        env = "PLUGIN_OPERATOR_CHAT_API_NAMESPACE",
        default_value = "chat-system"
    )]
    pub chat_api_namespace: String,
    /// Labels of the chat API's pods, `key=value,...`.
    #[arg(
        long,
        env = "PLUGIN_OPERATOR_CHAT_API_SELECTOR",
        default_value = "app.kubernetes.io/name=chat-api"
    )]
    pub chat_api_selector: String,
    /// Namespace of the pods that invoke plugins (ingress is allowed from them).
    /// Defaults to the chat API's namespace.
    #[arg(long, env = "PLUGIN_OPERATOR_INVOKER_NAMESPACE")]
    pub invoker_namespace: Option<String>,
    /// Labels of the pods that invoke plugins. Defaults to the chat API's selector.
    #[arg(long, env = "PLUGIN_OPERATOR_INVOKER_SELECTOR")]
    pub invoker_selector: Option<String>,
    /// Namespace of the cluster DNS pods (egress on port 53 is allowed to them).
    #[arg(
        long,
        env = "PLUGIN_OPERATOR_DNS_NAMESPACE",
        default_value = "kube-system"
    )]
    pub dns_namespace: String,
    /// Labels of the cluster DNS pods.
    #[arg(
        long,
        env = "PLUGIN_OPERATOR_DNS_SELECTOR",
        default_value = "k8s-app=kube-dns"
    )]
    pub dns_selector: String,
    /// Namespace of the pods that scrape the brokers' metrics (a Prometheus): ingress to
    /// the broker's admin port (9090) is allowed from them. None: no such rule.
    #[arg(long, env = "PLUGIN_OPERATOR_MONITORING_NAMESPACE")]
    pub monitoring_namespace: Option<String>,
    /// Labels of those pods, `key=value,...`; empty: every pod of that namespace.
    #[arg(long, env = "PLUGIN_OPERATOR_MONITORING_SELECTOR")]
    pub monitoring_selector: Option<String>,
    /// Do not allow DNS egress (when the chat API URL is an IP address).
    #[arg(long, env = "PLUGIN_OPERATOR_NO_DNS_EGRESS")]
    pub no_dns_egress: bool,
    /// The ScopeCatalog (cluster-scoped) whose scopes Plugins may ask for and whose
    /// routes every broker enforces.
    #[arg(long, env = "PLUGIN_OPERATOR_SCOPE_CATALOG", default_value = DEFAULT_SCOPE_CATALOG)]
    pub scope_catalog: String,
    /// Namespaces to watch; repeat the flag or separate with commas. All when empty.
    #[arg(
        long = "namespace",
        env = "PLUGIN_OPERATOR_NAMESPACES",
        value_delimiter = ','
    )]
    pub namespaces: Vec<String>,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(
        long,
        env = "PLUGIN_OPERATOR_ADMIN_ADDRESS",
        default_value = "0.0.0.0:8080"
    )]
    pub admin_address: SocketAddr,
    /// Plugins reconciled at the same time, at most.
    #[arg(
        long,
        env = "PLUGIN_OPERATOR_MAX_CONCURRENT_RECONCILES",
        default_value_t = 8
    )]
    pub max_concurrent_reconciles: u16,
    /// Deployments whose pods are being replaced at once, at most (per watched
    /// namespace list); a change to every Plugin's pods rolls this many at a time.
    #[arg(
        long,
        env = "PLUGIN_OPERATOR_MAX_CONCURRENT_ROLLOUTS",
        default_value_t = DEFAULT_MAX_CONCURRENT_ROLLOUTS,
        value_parser = clap::value_parser!(u16).range(1..)
    )]
    pub max_concurrent_rollouts: u16,
    /// Run as one of several replicas: only the holder of the Lease reconciles.
    #[arg(long, env = "PLUGIN_OPERATOR_LEADER_ELECT")]
    pub leader_elect: bool,
    /// Name of the Lease.
    #[arg(
        long,
        env = "PLUGIN_OPERATOR_LEASE_NAME",
        default_value = "plugin-operator"
    )]
    pub lease_name: String,
    /// Namespace of the Lease; defaults to the namespace the operator runs in (its pod's,
    /// or the kubeconfig context's outside a cluster).
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// This replica's identity in the Lease; defaults to the pod's name.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Seconds a Lease lasts without renewal before a standby takes over.
    #[arg(long, env = "PLUGIN_OPERATOR_LEASE_SECONDS", default_value_t = 10)]
    pub lease_seconds: u64,
    /// Log format.
    #[arg(long, env = "PLUGIN_OPERATOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
}

impl ControllerArgs {
    /// The build step's configuration; a bad flag or catalog is reported by name.
    pub fn operator_config(&self) -> Result<OperatorConfig, String> {
        let chat_api_peer = PodPeer::parse(&self.chat_api_namespace, &self.chat_api_selector)
            .map_err(|e| format!("--chat-api-selector: {e}"))?;
        let invoker_peer = PodPeer::parse(
            self.invoker_namespace
                .as_deref()
                .unwrap_or(&self.chat_api_namespace),
            self.invoker_selector
                .as_deref()
                .unwrap_or(&self.chat_api_selector),
        )
        .map_err(|e| format!("--invoker-selector: {e}"))?;
        let dns_peer = if self.no_dns_egress {
            None
        } else {
            Some(
                PodPeer::parse(&self.dns_namespace, &self.dns_selector)
                    .map_err(|e| format!("--dns-selector: {e}"))?,
            )
        };
        let monitoring_peer = match (&self.monitoring_namespace, &self.monitoring_selector) {
            (Some(namespace), selector) => Some(
                PodPeer::parse(namespace, selector.as_deref().unwrap_or_default())
                    .map_err(|e| format!("--monitoring-namespace/--monitoring-selector: {e}"))?,
            ),
            (None, Some(_)) => {
                return Err(
                    "--monitoring-selector needs --monitoring-namespace: name the namespace of the pods that scrape the brokers".into(),
                );
            }
            (None, None) => None,
        };
        if !is_object_name(&self.scope_catalog) {
            return Err(format!(
                "--scope-catalog {:?}: name a ScopeCatalog object (`kubectl get scopecatalogs`); a catalog file is no longer read",
                self.scope_catalog
            ));
        }
        let chat_api_ca = self
            .chat_api_ca_config_map
            .as_deref()
            .map(|name| ChatApiCa::new(name, &self.chat_api_ca_key))
            .transpose()
            .map_err(|e| format!("--chat-api-ca-config-map/--chat-api-ca-key: {e}"))?;
        Ok(OperatorConfig {
            chat_api_url: self.chat_api_url.clone(),
            token_audience: self.token_audience.clone(),
            token_expiration_seconds: self.token_expiration_seconds,
            broker_image: self.broker_image.clone(),
            chat_api_peer,
            invoker_peer,
            dns_peer,
            monitoring_peer,
            scope_catalog: self.scope_catalog.clone(),
            chat_api_ca,
        })
    }

    pub fn leader_election(&self) -> Option<LeaderElection> {
        self.leader_elect.then(|| {
            let lease_duration = Duration::from_secs(self.lease_seconds.max(3));
            LeaderElection {
                lease_name: self.lease_name.clone(),
                namespace: self.lease_namespace.clone(),
                identity: self.identity.clone().unwrap_or_else(default_identity),
                renew_every: lease_duration / 5,
                lease_duration,
            }
        })
    }
}

fn default_identity() -> String {
    let host =
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "operator".into());
    format!("{}-{}", host.trim(), std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        controller: ControllerArgs,
    }

    fn election(args: &[&str]) -> LeaderElection {
        let mut argv = vec!["controller", "--leader-elect"];
        argv.extend(args);
        Cli::try_parse_from(argv)
            .unwrap()
            .controller
            .leader_election()
            .unwrap()
    }

    fn config(args: &[&str]) -> Result<OperatorConfig, String> {
        let argv = std::iter::once("controller").chain(args.iter().copied());
        Cli::try_parse_from(argv)
            .unwrap()
            .controller
            .operator_config()
    }

    #[test]
    fn chat_api_ca_is_off_unless_its_config_map_is_named() {
        assert_eq!(config(&[]).unwrap().chat_api_ca, None);
        let ca = config(&["--chat-api-ca-config-map", "chat-api-ca"])
            .unwrap()
            .chat_api_ca
            .unwrap();
        assert_eq!(
            (ca.config_map.as_str(), ca.key.as_str()),
            ("chat-api-ca", "ca.crt")
        );
        let bundle = config(&[
            "--chat-api-ca-config-map=trust-bundle",
            "--chat-api-ca-key=trust-bundle.pem",
        ])
        .unwrap()
        .chat_api_ca
        .unwrap();
        assert_eq!(bundle.key, "trust-bundle.pem");
        let error = config(&["--chat-api-ca-config-map", "Not_A_Name"]).unwrap_err();
        assert!(error.contains("--chat-api-ca-config-map"), "{error}");
    }

    #[test]
    fn a_scope_catalog_is_named_not_read_from_a_file() {
        let config = |value: &str| {
            Cli::try_parse_from(["controller", "--scope-catalog", value])
                .unwrap()
                .controller
                .operator_config()
        };
        assert_eq!(
            config("chat-api.example").unwrap().scope_catalog,
            "chat-api.example"
        );
        let error = config("/etc/plugin-operator/catalog.yaml").unwrap_err();
        assert!(error.contains("name a ScopeCatalog object"), "{error}");
        let default = Cli::try_parse_from(["controller"]).unwrap().controller;
        assert_eq!(default.operator_config().unwrap().scope_catalog, "default");
    }

    #[test]
    fn monitoring_peer_is_set_only_with_a_namespace() {
        let config = |args: &[&str]| {
            let mut argv = vec!["controller"];
            argv.extend(args);
            Cli::try_parse_from(argv)
                .unwrap()
                .controller
                .operator_config()
        };
        assert_eq!(config(&[]).unwrap().monitoring_peer, None);
        let peer = config(&[
            "--monitoring-namespace",
            "monitoring",
            "--monitoring-selector",
            "app.kubernetes.io/name=prometheus",
        ])
        .unwrap()
        .monitoring_peer
        .unwrap();
        assert_eq!(peer.namespace, "monitoring");
        assert_eq!(peer.labels["app.kubernetes.io/name"], "prometheus");
        let whole_namespace = config(&["--monitoring-namespace", "monitoring"])
            .unwrap()
            .monitoring_peer
            .unwrap();
        assert!(whole_namespace.labels.is_empty());
        let error = config(&["--monitoring-selector", "app=prometheus"]).unwrap_err();
        assert!(error.contains("needs --monitoring-namespace"), "{error}");
        let error = config(&[
            "--monitoring-namespace",
            "m",
            "--monitoring-selector",
            "app",
        ])
        .unwrap_err();
        assert!(error.contains("not key=value"), "{error}");
    }

    #[test]
    fn lease_namespace_is_left_to_where_the_operator_runs_unless_given() {
        if std::env::var_os("POD_NAMESPACE").is_none() {
            assert_eq!(election(&[]).namespace, None);
        }
        assert_eq!(
            election(&["--lease-namespace", "ops"]).namespace.as_deref(),
            Some("ops")
        );
    }
}

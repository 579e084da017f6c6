//! The operator's configuration: what every Plugin's children have in common.

use std::collections::BTreeMap;

/// The ScopeCatalog the operator uses unless `--scope-catalog` names another; the chart
/// and the tests install one by this name.
pub const DEFAULT_SCOPE_CATALOG: &str = "default";

/// Cluster-wide settings the build step needs, parsed once from flags.
#[derive(Clone, Debug, PartialEq)]
pub struct OperatorConfig {
    /// Base URL the broker forwards chat-API calls to.
    pub chat_api_url: String,
    /// Audience of the projected ServiceAccount token the broker presents.
    pub token_audience: String,
    /// Lifetime of that token; the kubelet rotates it before it expires.
    pub token_expiration_seconds: i64,
    /// Image of the broker sidecar.
    pub broker_image: String,
    /// Where the chat API's pods run, for the egress rule.
    pub chat_api_peer: PodPeer,
    /// Who may invoke plugins, for the ingress rule.
    pub invoker_peer: PodPeer,
    /// The cluster DNS pods, for the egress rule (None: no DNS egress).
    pub dns_peer: Option<PodPeer>,
    /// Who may scrape the broker's admin port (`/metrics`), for an ingress rule (None:
    /// nobody outside the pod; the kubelet's probes need no rule).
    pub monitoring_peer: Option<PodPeer>,
    /// The ScopeCatalog whose scopes Plugins may ask for and whose routes every broker
    /// enforces.
    pub scope_catalog: String,
    /// The CAs the broker trusts for an https chat API (None: the broker's own trust
    /// store, which its image does not have).
    pub chat_api_ca: Option<ChatApiCa>,
}

/// A ConfigMap in each plugin namespace holding the PEM certificates of the CAs that
/// issue the chat API's certificate, as trust-manager writes a Bundle into every
/// namespace it targets. Mounted into the broker container only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatApiCa {
    pub config_map: String,
    pub key: String,
}

impl ChatApiCa {
    /// Checks the names as the API server would: a ConfigMap name (a DNS subdomain) and
    /// a ConfigMap key.
    pub fn new(config_map: &str, key: &str) -> Result<Self, String> {
        if !is_object_name(config_map) {
            return Err(format!(
                "{config_map:?} is not a ConfigMap name (lower-case letters, digits, '-' and '.')"
            ));
        }
        let key_ok = !key.is_empty()
            && key.len() <= 253
            && key != "."
            && key != ".."
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !key_ok {
            return Err(format!(
                "{key:?} is not a ConfigMap key (letters, digits, '-', '_' and '.')"
            ));
        }
        Ok(Self {
            config_map: config_map.into(),
            key: key.into(),
        })
    }
}

/// Pods in one namespace with some labels (no labels: every pod of the namespace).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodPeer {
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
}

impl PodPeer {
    /// Parses `namespace` and a selector like `app=chat,tier=api`.
    pub fn parse(namespace: &str, selector: &str) -> Result<Self, String> {
        let mut labels = BTreeMap::new();
        for pair in selector.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("selector term {pair:?} is not key=value"))?;
            labels.insert(key.trim().to_string(), value.trim().to_string());
        }
        if namespace.trim().is_empty() {
            return Err("a peer needs a namespace".into());
        }
        Ok(Self {
            namespace: namespace.trim().to_string(),
            labels,
        })
    }
}

impl OperatorConfig {
    /// A configuration for tests and examples: the sample chat API in `chat-system`.
    pub fn example() -> Self {
        let chat = PodPeer::parse("chat-system", "app.kubernetes.io/name=chat-api").expect("valid");
        Self {
            chat_api_url: "http://chat-api.chat-system.svc:8080".into(),
            token_audience: "chat-api".into(),
            token_expiration_seconds: 3600,
            broker_image: "localhost/plugin-operator:dev".into(),
            chat_api_peer: chat.clone(),
            invoker_peer: chat,
            dns_peer: Some(PodPeer::parse("kube-system", "k8s-app=kube-dns").expect("valid")),
            monitoring_peer: None,
            scope_catalog: DEFAULT_SCOPE_CATALOG.into(),
            chat_api_ca: None,
        }
    }
}

/// A DNS subdomain, as most Kubernetes object names are (ConfigMaps, ScopeCatalogs):
/// dot-separated labels of lower-case letters, digits and '-', 253 characters at most.
pub fn is_object_name(name: &str) -> bool {
    let label = |part: &str| {
        !part.is_empty()
            && part.len() <= 63
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !part.starts_with('-')
            && !part.ends_with('-')
    };
    name.len() <= 253 && name.split('.').all(label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_api_ca_names_are_checked_as_the_api_server_would() {
        assert!(ChatApiCa::new("chat-api-ca", "ca.crt").is_ok());
        assert!(ChatApiCa::new("trust.example.com", "trust-bundle.pem").is_ok());
        for (name, key) in [
            ("", "ca.crt"),
            ("Chat-CA", "ca.crt"),
            ("chat-ca-", "ca.crt"),
            ("chat..ca", "ca.crt"),
            ("chat-ca", ""),
            ("chat-ca", ".."),
            ("chat-ca", "ca/crt"),
        ] {
            assert!(ChatApiCa::new(name, key).is_err(), "{name:?} {key:?}");
        }
    }
}

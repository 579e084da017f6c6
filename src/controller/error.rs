//! One error type for the reconcile pipeline. Each variant's name is its metric label,
//! its Event reason and, where the user can act on it, the reason on the Plugin's
//! `Ready` condition: one mapping, [`Error::reason`].

use std::time::Duration;

use super::validate::InvalidSpec;
use crate::api::status::reason;
use crate::policy::PolicyError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object in the cluster does not parse as a Plugin (it predates a schema change,
    /// or was written around the schema). Waits for the object to change.
    #[error("the Plugin object cannot be read: {0}")]
    MalformedPlugin(String),
    /// The spec passed the API server but cannot be built. Waits for the spec to change.
    #[error("the Plugin cannot be built: {0}")]
    InvalidSpec(#[from] InvalidSpec),
    /// The operator's ScopeCatalog cannot be compiled into a broker policy. Nothing is
    /// written, so every broker keeps the policy it has; waits for the catalog to change.
    #[error("ScopeCatalog {name} cannot be enforced, so nothing is changed: {source}")]
    InvalidScopeCatalog {
        name: String,
        #[source]
        source: PolicyError,
    },
    /// Writing a child failed; retried with backoff.
    #[error("applying {kind} {name} failed: {source}")]
    ApplyFailed {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    /// Reading a ConfigMap's labels (for a PluginPolicy that allows ConfigMaps by label)
    /// failed; retried with backoff.
    #[error("reading the labels of {kind} {name} failed: {source}")]
    ReadFailed {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    /// Writing the Plugin's status failed; retried with backoff.
    #[error("updating the status failed: {0}")]
    StatusUpdateFailed(#[source] kube::Error),
}

impl Error {
    /// The variant's name: metric label and Event reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MalformedPlugin(_) => reason::MALFORMED_PLUGIN,
            Self::InvalidSpec(_) => reason::INVALID_SPEC,
            Self::InvalidScopeCatalog { .. } => reason::INVALID_SCOPE_CATALOG,
            Self::ApplyFailed { .. } => reason::APPLY_FAILED,
            Self::ReadFailed { .. } => reason::READ_FAILED,
            Self::StatusUpdateFailed(_) => reason::STATUS_UPDATE_FAILED,
        }
    }

    /// Whether the failure is put on the Plugin's status: a malformed object has no
    /// status to write and a failed status write cannot report itself.
    pub fn shows_on_status(&self) -> bool {
        matches!(
            self,
            Self::InvalidSpec(_) | Self::InvalidScopeCatalog { .. } | Self::ApplyFailed { .. }
        )
    }

    /// Permanent errors wait for the object (or the catalog, whose watch wakes every
    /// Plugin) to change; retrying cannot help.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::MalformedPlugin(_) | Self::InvalidSpec(_) | Self::InvalidScopeCatalog { .. }
        )
    }
}

/// Per-object exponential backoff: 1 s, 2 s, 4 s ... capped at 5 minutes.
pub fn backoff_delay(consecutive_failures: u32) -> Duration {
    let seconds = 1u64 << consecutive_failures.saturating_sub(1).min(9);
    Duration::from_secs(seconds.min(300))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_per_failure_and_stops_at_five_minutes() {
        assert_eq!(backoff_delay(1), Duration::from_secs(1));
        assert_eq!(backoff_delay(2), Duration::from_secs(2));
        assert_eq!(backoff_delay(5), Duration::from_secs(16));
        assert_eq!(backoff_delay(40), Duration::from_secs(300));
    }

    #[test]
    fn spec_errors_are_permanent_and_api_errors_are_not() {
        assert!(Error::InvalidSpec(InvalidSpec::MissingMetadata("uid")).is_permanent());
        assert!(Error::MalformedPlugin("x".into()).is_permanent());
        let api = kube::Error::Service("connection refused".into());
        assert!(!Error::StatusUpdateFailed(api).is_permanent());
    }
}

//! The policy in force: read from the mounted file, compiled, and swapped in whole
//! when the file changes. A request keeps the policy it started with, so a swap
//! never fails or drops one; a malformed new file is logged and the old policy kept.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::watch;

use super::{Loader, Reload};
use crate::broker::decide::CompiledPolicy;
use crate::broker::limits::Limits;
use crate::broker::metrics::Metrics;
use crate::policy::{BrokerPolicy, PolicyError};

/// The policy in force and the live state that enforces it, swapped in together.
#[derive(Debug)]
pub struct PolicyInForce {
    pub policy: CompiledPolicy,
    pub limits: Limits,
}

impl PolicyInForce {
    /// `policy` with fresh limits, or those of `previous` where they did not change.
    pub fn new(policy: CompiledPolicy, previous: Option<&PolicyInForce>) -> Self {
        let limits = Limits::new(&policy, previous.map(|p| (&p.policy, &p.limits)));
        Self { policy, limits }
    }
}

/// Read access to the policy in force, shared by every listener.
#[derive(Clone, Debug)]
pub struct PolicyStore {
    receiver: watch::Receiver<Option<Arc<PolicyInForce>>>,
}

impl PolicyStore {
    /// The policy in force, or `None` before one has loaded.
    pub fn current(&self) -> Option<Arc<PolicyInForce>> {
        self.receiver.borrow().clone()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyLoadError {
    #[error("the policy file is not a valid broker policy: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the policy cannot be enforced: {0}")]
    Invalid(#[from] PolicyError),
    #[error("the policy is for the plugin {found}, but this broker serves {expected}")]
    OtherPlugin { expected: String, found: String },
}

/// Parses and compiles a policy file's content. With `expected_plugin_id`, a policy
/// written for another plugin is refused.
pub fn load_policy(
    content: &[u8],
    expected_plugin_id: Option<&str>,
) -> Result<CompiledPolicy, PolicyLoadError> {
    let policy: BrokerPolicy = serde_json::from_slice(content)?;
    if let Some(expected) = expected_plugin_id
        && policy.plugin_id != expected
    {
        return Err(PolicyLoadError::OtherPlugin {
            expected: expected.to_owned(),
            found: policy.plugin_id,
        });
    }
    Ok(CompiledPolicy::compile(&policy)?)
}

/// Watches the policy file at `path`: the loader to run, and the store it publishes
/// each valid new version to. With `expected_plugin_id`, a policy for another plugin is
/// refused.
pub fn loader(
    path: impl Into<PathBuf>,
    expected_plugin_id: Option<String>,
    metrics: Arc<Metrics>,
) -> (Loader<Publish>, PolicyStore) {
    let (sender, receiver) = watch::channel(None);
    let publish = Publish {
        expected_plugin_id,
        sender,
        metrics,
    };
    (Loader::new(path, publish), PolicyStore { receiver })
}

/// Compiles each new version of the policy file and swaps it in, with the limits of the
/// policy it replaces carried over.
#[derive(Debug)]
pub struct Publish {
    expected_plugin_id: Option<String>,
    sender: watch::Sender<Option<Arc<PolicyInForce>>>,
    metrics: Arc<Metrics>,
}

impl Reload for Publish {
    const UNREADABLE: &'static str = "cannot read the policy file; keeping the policy in force";

    fn reload(&mut self, path: &Path, content: Vec<u8>, hash: String) {
        match load_policy(&content, self.expected_plugin_id.as_deref()) {
            Ok(policy) => {
                tracing::info!(
                    path = %path.display(),
                    version = %hash,
                    plugin = policy.plugin_id(),
                    mode = ?policy.mode(),
                    "policy applied"
                );
                let previous = self.sender.borrow().clone();
                let in_force = PolicyInForce::new(policy, previous.as_deref());
                self.sender.send_replace(Some(Arc::new(in_force)));
                self.metrics.record_policy_reload(true);
            }
            Err(error) => {
                tracing::error!(
                    path = %path.display(),
                    version = %hash,
                    %error,
                    "policy rejected; keeping the policy in force"
                );
                self.metrics.record_policy_reload(false);
            }
        }
    }
}

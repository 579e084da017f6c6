//! The policy in force: read from the mounted file, compiled, and swapped in whole
//! when the file changes. A request keeps the policy it started with, so a swap
//! never fails or drops one; a malformed new file is logged and the old policy kept.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::compiled::CompiledPolicy;
use super::file_watch::{FileWatch, Poll};
use super::metrics::Metrics;
use crate::policy::{BrokerPolicy, PolicyError};

/// Read access to the policy in force, shared by every listener.
#[derive(Clone, Debug)]
pub struct PolicyStore {
    receiver: watch::Receiver<Option<Arc<CompiledPolicy>>>,
}

impl PolicyStore {
    /// The policy in force, or `None` before one has loaded.
    pub fn current(&self) -> Option<Arc<CompiledPolicy>> {
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
    previous: Option<&CompiledPolicy>,
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
    Ok(CompiledPolicy::compile(&policy, previous)?)
}

/// Watches the policy file and publishes each valid new version to the store.
#[derive(Debug)]
pub struct PolicyLoader {
    watch: FileWatch,
    expected_plugin_id: Option<String>,
    sender: watch::Sender<Option<Arc<CompiledPolicy>>>,
    metrics: Arc<Metrics>,
}

impl PolicyLoader {
    pub fn new(
        path: impl Into<PathBuf>,
        expected_plugin_id: Option<String>,
        metrics: Arc<Metrics>,
    ) -> (Self, PolicyStore) {
        let (sender, receiver) = watch::channel(None);
        let loader = Self {
            watch: FileWatch::new(path),
            expected_plugin_id,
            sender,
            metrics,
        };
        (loader, PolicyStore { receiver })
    }

    /// Reads the file once and applies it if it changed and is valid.
    pub async fn poll_once(&mut self) {
        match self.watch.poll().await {
            Poll::Unchanged | Poll::SameError => {}
            Poll::NewError(error) => tracing::warn!(
                path = %self.watch.path().display(),
                %error,
                "cannot read the policy file; keeping the policy in force"
            ),
            Poll::Changed { content, hash } => {
                let previous = self.sender.borrow().clone();
                match load_policy(
                    &content,
                    previous.as_deref(),
                    self.expected_plugin_id.as_deref(),
                ) {
                    Ok(policy) => {
                        tracing::info!(
                            path = %self.watch.path().display(),
                            version = %hash,
                            plugin = policy.plugin_id(),
                            mode = ?policy.mode(),
                            "policy applied"
                        );
                        self.sender.send_replace(Some(Arc::new(policy)));
                        self.metrics.record_policy_reload(true);
                    }
                    Err(error) => {
                        tracing::error!(
                            path = %self.watch.path().display(),
                            version = %hash,
                            %error,
                            "policy rejected; keeping the policy in force"
                        );
                        self.metrics.record_policy_reload(false);
                    }
                }
            }
        }
    }

    /// Polls forever; the caller aborts the task at shutdown.
    pub async fn run(mut self, interval: Duration) {
        loop {
            tokio::time::sleep(interval).await;
            self.poll_once().await;
        }
    }
}

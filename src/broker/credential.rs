//! The broker's own credential toward the chat API: a projected ServiceAccount token
//! read from a file and re-read when the kubelet rotates it. Its value is never logged.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http::HeaderValue;

use super::file_watch::{FileWatch, Poll};
use super::metrics::Metrics;

/// The `Authorization` value the broker sends, shared by every outbound call.
#[derive(Debug, Default)]
pub struct Credential {
    authorization: RwLock<Option<HeaderValue>>,
}

impl Credential {
    /// `Bearer <token>`, or `None` while no valid token has been read.
    pub fn authorization(&self) -> Option<HeaderValue> {
        self.authorization
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    fn replace(&self, value: HeaderValue) {
        *self
            .authorization
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = Some(value);
    }
}

/// Builds the header value from a token file's content: surrounding whitespace is
/// ignored; an empty token or one with characters a header cannot carry is refused.
pub fn bearer_header(content: &[u8]) -> Option<HeaderValue> {
    let token = content.trim_ascii();
    if token.is_empty() || !token.iter().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let mut value = Vec::with_capacity(7 + token.len());
    value.extend_from_slice(b"Bearer ");
    value.extend_from_slice(token);
    let mut header = HeaderValue::from_bytes(&value).ok()?;
    header.set_sensitive(true);
    Some(header)
}

/// Watches the token file and publishes each valid new token.
#[derive(Debug)]
pub struct CredentialLoader {
    watch: FileWatch,
    credential: Arc<Credential>,
    metrics: Arc<Metrics>,
}

impl CredentialLoader {
    pub fn new(path: impl Into<PathBuf>, metrics: Arc<Metrics>) -> (Self, Arc<Credential>) {
        let credential = Arc::new(Credential::default());
        let loader = Self {
            watch: FileWatch::new(path),
            credential: credential.clone(),
            metrics,
        };
        (loader, credential)
    }

    pub async fn poll_once(&mut self) {
        match self.watch.poll().await {
            Poll::Unchanged | Poll::SameError => {}
            Poll::NewError(error) => tracing::warn!(
                path = %self.watch.path().display(),
                %error,
                "cannot read the token file; keeping the token in use"
            ),
            Poll::Changed { content, .. } => match bearer_header(&content) {
                Some(header) => {
                    self.credential.replace(header);
                    self.metrics.record_credential_reload(true);
                    tracing::info!(path = %self.watch.path().display(), "token loaded");
                }
                None => {
                    self.metrics.record_credential_reload(false);
                    tracing::error!(
                        path = %self.watch.path().display(),
                        "the token file is empty or not a valid token; keeping the token in use"
                    );
                }
            },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_becomes_a_sensitive_bearer_header() {
        let header = bearer_header(b"  abc.def-ghi\n").unwrap();
        assert_eq!(header, "Bearer abc.def-ghi");
        assert!(header.is_sensitive());
        assert!(!format!("{header:?}").contains("abc"));
    }

    #[test]
    fn empty_or_multi_word_token_is_refused() {
        assert!(bearer_header(b"\n").is_none());
        assert!(bearer_header(b"two words").is_none());
        assert!(bearer_header(b"line\nbreak").is_none());
    }
}

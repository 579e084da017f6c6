//! The broker's own credential toward the chat API: a projected ServiceAccount token
//! read from a file and re-read when the kubelet rotates it. Its value is never logged.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use http::HeaderValue;

use super::{Loader, Reload};
use crate::broker::metrics::Metrics;

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

/// Watches the token file at `path`: the loader to run, and the credential it keeps
/// up to date.
pub fn loader(
    path: impl Into<PathBuf>,
    metrics: Arc<Metrics>,
) -> (Loader<Publish>, Arc<Credential>) {
    let credential = Arc::new(Credential::default());
    let publish = Publish {
        credential: credential.clone(),
        metrics,
    };
    (Loader::new(path, publish), credential)
}

/// Publishes each valid new token.
#[derive(Debug)]
pub struct Publish {
    credential: Arc<Credential>,
    metrics: Arc<Metrics>,
}

impl Reload for Publish {
    const UNREADABLE: &'static str = "cannot read the token file; keeping the token in use";

    fn reload(&mut self, path: &Path, content: Vec<u8>, _hash: String) {
        match bearer_header(&content) {
            Some(header) => {
                self.credential.replace(header);
                self.metrics.record_credential_reload(true);
                tracing::info!(path = %path.display(), "token loaded");
            }
            None => {
                self.metrics.record_credential_reload(false);
                tracing::error!(
                    path = %path.display(),
                    "the token file is empty or not a valid token; keeping the token in use"
                );
            }
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

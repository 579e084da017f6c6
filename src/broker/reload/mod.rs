//! The files the broker re-reads while it runs: the policy ([`policy`]) and its own
//! token for the chat API ([`credential`]), each polled by a [`Loader`].
//!
//! Kubernetes updates ConfigMap and projected volumes by swapping a `..data` symlink,
//! so the path is re-opened every time and the content compared by hash; timestamps
//! are not trusted.

pub mod credential;
pub mod policy;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

pub use policy::load_policy;

/// What a [`Loader`] does with each new content of its file.
pub trait Reload {
    /// The warning logged when the file cannot be read (once per distinct error).
    const UNREADABLE: &'static str;

    /// Applies `content` (read from `path`; `hash` names the version in the log), or
    /// logs why not and keeps what is in use.
    fn reload(&mut self, path: &Path, content: Vec<u8>, hash: String);
}

/// Polls one file and hands each new content to its [`Reload`].
#[derive(Debug)]
pub struct Loader<R> {
    watch: FileWatch,
    reload: R,
}

impl<R: Reload> Loader<R> {
    pub fn new(path: impl Into<PathBuf>, reload: R) -> Self {
        Self {
            watch: FileWatch::new(path),
            reload,
        }
    }

    /// Reads the file once and applies it if it changed.
    pub async fn poll_once(&mut self) {
        match self.watch.poll().await {
            Poll::Unchanged | Poll::SameError => {}
            Poll::NewError(error) => tracing::warn!(
                path = %self.watch.path().display(),
                %error,
                "{}",
                R::UNREADABLE
            ),
            Poll::Changed { content, hash } => {
                self.reload.reload(self.watch.path(), content, hash);
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

#[derive(Debug)]
pub struct FileWatch {
    path: PathBuf,
    last_hash: Option<[u8; 32]>,
    last_error: Option<String>,
}

/// What one poll found.
#[derive(Debug)]
pub enum Poll {
    Unchanged,
    /// The file has content it did not have at the previous poll.
    Changed {
        content: Vec<u8>,
        hash: String,
    },
    /// The file could not be read, and this error differs from the previous one.
    NewError(io::Error),
    /// The file still cannot be read, for the same reason as before.
    SameError,
}

impl FileWatch {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            last_hash: None,
            last_error: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub async fn poll(&mut self) -> Poll {
        match tokio::fs::read(&self.path).await {
            Ok(content) => {
                self.last_error = None;
                let hash: [u8; 32] = Sha256::digest(&content).into();
                if self.last_hash == Some(hash) {
                    return Poll::Unchanged;
                }
                self.last_hash = Some(hash);
                let hash = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
                Poll::Changed { content, hash }
            }
            Err(error) => {
                let description = error.to_string();
                if self.last_error.as_deref() == Some(description.as_str()) {
                    return Poll::SameError;
                }
                self.last_error = Some(description);
                Poll::NewError(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn poll_reports_each_content_once_and_errors_once() {
        let dir = std::env::temp_dir().join(format!("file-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("policy.json");
        let _ = std::fs::remove_file(&path);
        let mut watch = FileWatch::new(&path);
        assert!(matches!(watch.poll().await, Poll::NewError(_)));
        assert!(matches!(watch.poll().await, Poll::SameError));
        std::fs::write(&path, b"one").unwrap();
        assert!(
            matches!(watch.poll().await, Poll::Changed { ref content, .. } if content == b"one")
        );
        assert!(matches!(watch.poll().await, Poll::Unchanged));
        std::fs::write(&path, b"two").unwrap();
        assert!(
            matches!(watch.poll().await, Poll::Changed { ref content, .. } if content == b"two")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Decision ids and the content of the one audit line written for every outbound
//! decision; `log.rs` buffers and writes the lines, `line.rs` formats them.
//!
//! The line names the call, never its credentials: no header value and no query string
//! is ever logged.

mod line;
mod log;

pub use log::{AuditDestination, AuditLog, Dropped, flush_stdout, stdout_log_lines};

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};

/// Identifies one decision in the audit log and in the caller's response body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecisionId {
    process: u32,
    sequence: u64,
}

impl DecisionId {
    #[cfg(test)]
    pub(crate) fn for_tests(sequence: u64) -> Self {
        Self {
            process: 0xabcd,
            sequence,
        }
    }
}

impl DecisionId {
    /// The id as a header value, formatted without a heap allocation of its own.
    pub fn header_value(&self) -> http::HeaderValue {
        let mut text = [0u8; 21];
        let mut cursor = std::io::Cursor::new(&mut text[..]);
        let _ = std::io::Write::write_fmt(&mut cursor, format_args!("{self}"));
        let written = usize::try_from(cursor.position()).unwrap_or(0);
        http::HeaderValue::from_bytes(&text[..written]).expect("hex digits and a dash")
    }
}

impl fmt::Display for DecisionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}-{:012x}", self.process, self.sequence)
    }
}

/// Hands out decision ids: a random per-process prefix and a counter.
#[derive(Debug)]
pub struct DecisionIds {
    process: u32,
    next: AtomicU64,
}

impl Default for DecisionIds {
    fn default() -> Self {
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        Self {
            process: (random >> 32) as u32 ^ random as u32,
            next: AtomicU64::new(1),
        }
    }
}

impl DecisionIds {
    pub fn next(&self) -> DecisionId {
        DecisionId {
            process: self.process,
            sequence: self.next.fetch_add(1, Ordering::Relaxed),
        }
    }
}

/// What became of a call; the `outcome` of audit lines and metrics.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Outcome {
    /// Within the grants, forwarded.
    Allowed,
    /// Outside the grants, forwarded because the policy is in Audit mode.
    Audited,
    /// Refused: outside the grants or malformed.
    Denied,
    RateLimited,
    TooLarge,
    /// The broker or the other side failed (no policy, no credential, unreachable, too slow).
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Audited => "audited",
            Outcome::Denied => "denied",
            Outcome::RateLimited => "rate_limited",
            Outcome::TooLarge => "too_large",
            Outcome::Failed => "failed",
        }
    }
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// One audit line's content.
#[derive(Debug)]
pub struct AuditRecord<'a> {
    pub id: DecisionId,
    pub plugin: &'a str,
    pub scope: Option<&'a str>,
    pub method: &'a str,
    /// The path only; the query may carry secrets and is never logged.
    pub path: &'a str,
    pub outcome: Outcome,
    /// The denial's reason: why it was refused, or in Audit mode why it would have been.
    pub reason: Option<&'static str>,
    pub status: u16,
    pub latency: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_ids_are_unique_and_share_the_process_prefix() {
        let ids = DecisionIds::default();
        let (a, b) = (ids.next(), ids.next());
        assert_ne!(a, b);
        assert_eq!(a.to_string()[..8], b.to_string()[..8]);
        assert_eq!(a.to_string().len(), 21);
        assert_eq!(a.header_value(), a.to_string().as_str());
    }
}

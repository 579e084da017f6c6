//! Where audit lines go: standard output, one line per decision, in the log format of
//! the rest of the process (JSON by default).
//!
//! Lines are formatted straight into a buffer and written by a background task that the
//! first line of a batch wakes. Under load, every decision made in one turn of the
//! event loop leaves in one write; when idle, a line is written as soon as the handler
//! that made it yields. Shutdown writes what is left, so a line can be lost only if the
//! process is killed outright (SIGKILL) in the instant between a decision and its write.

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::AuditRecord;
use super::line::{Timestamp, json_line, plain_line};
use crate::telemetry::LogFormat;

/// A buffer larger than this is written by the handler itself, so memory stays bounded
/// when standard output is slower than the decisions.
const WRITE_INLINE_ABOVE: usize = 256 * 1024;

/// Where the lines end up.
#[derive(Clone, Debug, Default)]
pub enum AuditDestination {
    #[default]
    Stdout,
    /// Kept in memory, for tests that read what was audited.
    Memory(Arc<Mutex<Vec<u8>>>),
}

/// The audit log shared by every outbound connection.
#[derive(Clone, Debug)]
pub struct AuditLog {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    format: LogFormat,
    destination: AuditDestination,
    pending: Mutex<Pending>,
    wake: Notify,
}

#[derive(Debug, Default)]
struct Pending {
    lines: Vec<u8>,
    /// The date and time to the second of the last line, formatted once per second.
    second: u64,
    second_text: String,
}

impl AuditLog {
    pub fn new(format: LogFormat, destination: AuditDestination) -> Self {
        Self {
            shared: Arc::new(Shared {
                format,
                destination,
                pending: Mutex::new(Pending::default()),
                wake: Notify::new(),
            }),
        }
    }

    /// Starts the task that writes the buffered lines; abort it after [`AuditLog::flush`]
    /// at shutdown.
    pub fn spawn_writer(&self) -> JoinHandle<()> {
        let shared = self.shared.clone();
        tokio::spawn(async move {
            loop {
                shared.wake.notified().await;
                shared.write_pending();
            }
        })
    }

    /// Adds one line for `record`.
    pub fn record(&self, record: &AuditRecord<'_>) {
        let mut pending = self.shared.lock();
        let was_empty = pending.lines.is_empty();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        pending.set_second(now.as_secs());
        let Pending {
            lines, second_text, ..
        } = &mut *pending;
        let timestamp = Timestamp {
            second: second_text,
            micros: now.subsec_micros(),
        };
        match self.shared.format {
            LogFormat::Json => json_line(lines, &timestamp, record),
            LogFormat::Plain => plain_line(lines, &timestamp, record),
        }
        let too_much = pending.lines.len() > WRITE_INLINE_ABOVE;
        drop(pending);
        if too_much {
            self.shared.write_pending();
        } else if was_empty {
            self.shared.wake.notify_one();
        }
    }

    /// Writes every buffered line now.
    pub fn flush(&self) {
        self.shared.write_pending();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write_pending(&self) {
        let lines = std::mem::take(&mut self.lock().lines);
        if lines.is_empty() {
            return;
        }
        match &self.destination {
            AuditDestination::Stdout => {
                // Nothing better to do if standard output is gone; the metrics still count.
                let _ = std::io::stdout().lock().write_all(&lines);
            }
            AuditDestination::Memory(memory) => memory
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .extend_from_slice(&lines),
        }
        let mut pending = self.lock();
        if pending.lines.is_empty() {
            // Keep the allocation for the next batch.
            let mut lines = lines;
            lines.clear();
            pending.lines = lines;
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.write_pending();
    }
}

impl Pending {
    fn set_second(&mut self, second: u64) {
        if self.second_text.is_empty() || self.second != second {
            let seconds = i64::try_from(second).unwrap_or(i64::MAX);
            self.second_text = chrono::DateTime::from_timestamp(seconds, 0)
                .unwrap_or_default()
                .format("%Y-%m-%dT%H:%M:%S")
                .to_string();
            self.second = second;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::broker::audit::{DecisionId, Outcome};

    fn record<'a>(path: &'a str, plugin: &'a str) -> AuditRecord<'a> {
        AuditRecord {
            id: DecisionId::for_tests(42),
            plugin,
            scope: Some("users:read"),
            method: "GET",
            path,
            outcome: Outcome::Denied,
            reason: Some("ScopeNotGranted"),
            status: 403,
            latency: Duration::from_micros(1234),
        }
    }

    fn lines_of(log: &AuditLog, memory: &Arc<Mutex<Vec<u8>>>) -> String {
        log.flush();
        String::from_utf8(memory.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn json_line_carries_every_field_of_the_decision() {
        let memory = Arc::new(Mutex::new(Vec::new()));
        let log = AuditLog::new(LogFormat::Json, AuditDestination::Memory(memory.clone()));
        log.record(&record("/api/v1/users", "team-a/weather"));
        let text = lines_of(&log, &memory);
        assert!(text.ends_with('\n') && text.lines().count() == 1, "{text}");
        let line: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(line["message"], "decision");
        assert_eq!(line["target"], "broker::audit");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["decision_id"], DecisionId::for_tests(42).to_string());
        assert_eq!(line["plugin"], "team-a/weather");
        assert_eq!(line["scope"], "users:read");
        assert_eq!(line["method"], "GET");
        assert_eq!(line["path"], "/api/v1/users");
        assert_eq!(line["outcome"], "denied");
        assert_eq!(line["reason"], "ScopeNotGranted");
        assert_eq!(line["status"], 403);
        assert_eq!(line["latency_ms"], 1.234);
        let timestamp = line["timestamp"].as_str().unwrap();
        let parsed = chrono::DateTime::parse_from_rfc3339(timestamp).unwrap();
        let age = chrono::Utc::now().signed_duration_since(parsed);
        assert!(age.num_seconds().abs() < 60, "{timestamp}");
    }

    #[test]
    fn lines_are_kept_until_written_and_none_is_lost() {
        let memory = Arc::new(Mutex::new(Vec::new()));
        let log = AuditLog::new(LogFormat::Json, AuditDestination::Memory(memory.clone()));
        for _ in 0..500 {
            log.record(&record("/api/v1/users", "p"));
        }
        assert!(memory.lock().unwrap().is_empty(), "written before a flush");
        assert_eq!(lines_of(&log, &memory).lines().count(), 500);
    }

    #[test]
    fn a_large_backlog_is_written_by_the_caller() {
        let memory = Arc::new(Mutex::new(Vec::new()));
        let log = AuditLog::new(LogFormat::Json, AuditDestination::Memory(memory.clone()));
        let long_path = format!("/{}", "a".repeat(4096));
        for _ in 0..100 {
            log.record(&record(&long_path, "p"));
        }
        assert!(
            !memory.lock().unwrap().is_empty(),
            "the backlog grew unbounded"
        );
    }

    #[test]
    fn dropping_the_log_writes_what_is_left() {
        let memory = Arc::new(Mutex::new(Vec::new()));
        let log = AuditLog::new(LogFormat::Plain, AuditDestination::Memory(memory.clone()));
        log.record(&record("/api/v1/users", "p"));
        drop(log);
        let text = String::from_utf8(memory.lock().unwrap().clone()).unwrap();
        assert!(text.contains("decision decision_id="), "{text}");
        assert!(text.contains("path=\"/api/v1/users\""), "{text}");
        assert!(text.contains("status=403"), "{text}");
    }

    #[tokio::test]
    async fn the_writer_task_writes_without_a_flush() {
        let memory = Arc::new(Mutex::new(Vec::new()));
        let log = AuditLog::new(LogFormat::Json, AuditDestination::Memory(memory.clone()));
        let writer = log.spawn_writer();
        log.record(&record("/api/v1/users", "p"));
        for _ in 0..100 {
            if !memory.lock().unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        writer.abort();
        assert_eq!(memory.lock().unwrap().split(|b| *b == b'\n').count(), 2);
    }
}

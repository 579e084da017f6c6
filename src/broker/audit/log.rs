//! Where audit lines go: standard output, one line per decision, in the log format of
//! the rest of the process (JSON by default). The broker's other log lines go the same
//! way ([`stdout_log_lines`]), so nothing else in the process writes to standard output.
//!
//! Lines are formatted straight into a buffer and written by a background task that the
//! first line of a batch wakes. Under load, every decision made in one turn of the
//! event loop leaves in one write; when idle, a line is written as soon as the handler
//! that made it yields.
//!
//! Nothing waits for standard output. When it is a pipe (as a container's is), it is
//! written without blocking: a reader that stops reading leaves the writer task waiting
//! for room while the listeners go on. The buffer holds at most [`CAPACITY`] bytes; a
//! line that does not fit is dropped whole and counted (`broker_audit_lines_dropped_total`,
//! `broker_log_lines_dropped_total`). Shutdown writes what is left, waiting at most
//! [`FLUSH_WITHIN`]. Standard output that is not a pipe (a file, a terminal) is written
//! with plain blocking writes.

use std::io::Write;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::counter::Counter;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::AuditRecord;
use super::line::{Timestamp, json_line, plain_line};
use crate::telemetry::LogFormat;

/// Most bytes of lines waiting for standard output (about 3,500 audit lines); a line
/// that would go beyond it is dropped. A batch being written is held besides.
pub const CAPACITY: usize = 1024 * 1024;

/// Longest a flush (at shutdown) waits for standard output to take what is left.
pub const FLUSH_WITHIN: Duration = Duration::from_secs(2);

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
    format: LogFormat,
    shared: Arc<Shared>,
}

/// Counts of lines dropped because the buffer was full.
#[derive(Clone, Debug, Default)]
pub struct Dropped {
    pub audit: Counter,
    pub log: Counter,
}

#[derive(Debug)]
struct Shared {
    pending: Mutex<Pending>,
    wake: Notify,
    /// The writing side; held across a write, so flushes and the writer take turns.
    out: tokio::sync::Mutex<Out>,
    dropped: Dropped,
}

#[derive(Debug, Default)]
struct Pending {
    lines: Vec<u8>,
    /// The date and time to the second of the last line, formatted once per second.
    second: u64,
    second_text: String,
}

#[derive(Debug)]
enum Out {
    /// Standard output, opened on the first write (it needs the runtime).
    Stdout,
    Pipe(pipe::Sender),
    Blocking,
    Memory(Arc<Mutex<Vec<u8>>>),
}

/// The process's one standard-output buffer, shared by audit and log lines.
fn stdout_shared() -> &'static Arc<Shared> {
    static STDOUT: OnceLock<Arc<Shared>> = OnceLock::new();
    STDOUT.get_or_init(|| Shared::new(Out::Stdout))
}

/// A `tracing` writer that puts the broker's log lines into the standard-output buffer.
pub fn stdout_log_lines() -> LogLines {
    LogLines(stdout_shared().clone())
}

/// Writes what standard output's buffer holds, waiting at most [`FLUSH_WITHIN`].
pub async fn flush_stdout() {
    stdout_shared().flush().await;
}

impl AuditLog {
    pub fn new(format: LogFormat, destination: AuditDestination) -> Self {
        let shared = match destination {
            AuditDestination::Stdout => stdout_shared().clone(),
            AuditDestination::Memory(memory) => Shared::new(Out::Memory(memory)),
        };
        Self { format, shared }
    }

    /// The counters of dropped lines, for the metrics.
    pub fn dropped(&self) -> &Dropped {
        &self.shared.dropped
    }

    /// Starts the task that writes the buffered lines; abort it after [`AuditLog::flush`]
    /// at shutdown.
    pub fn spawn_writer(&self) -> JoinHandle<()> {
        let shared = self.shared.clone();
        tokio::spawn(async move {
            loop {
                shared.wake.notified().await;
                shared.write_pending().await;
            }
        })
    }

    /// Adds one line for `record`, or drops it if the buffer is full.
    pub fn record(&self, record: &AuditRecord<'_>) {
        let mut pending = self.shared.lock();
        let before = pending.lines.len();
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
        match self.format {
            LogFormat::Json => json_line(lines, &timestamp, record),
            LogFormat::Plain => plain_line(lines, &timestamp, record),
        }
        if lines.len() > CAPACITY {
            lines.truncate(before);
            drop(pending);
            self.shared.dropped.audit.inc();
        } else {
            drop(pending);
            if before == 0 {
                self.shared.wake.notify_one();
            }
        }
    }

    /// Writes every buffered line now, waiting at most [`FLUSH_WITHIN`].
    pub async fn flush(&self) {
        self.shared.flush().await;
    }
}

impl Shared {
    fn new(out: Out) -> Arc<Self> {
        Arc::new(Self {
            pending: Mutex::new(Pending::default()),
            wake: Notify::new(),
            out: tokio::sync::Mutex::new(out),
            dropped: Dropped::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds one log line (as `tracing` wrote it), or drops it if the buffer is full.
    fn push_log_line(&self, line: &[u8]) {
        let mut pending = self.lock();
        if pending.lines.len() + line.len() > CAPACITY {
            drop(pending);
            self.dropped.log.inc();
            return;
        }
        let was_empty = pending.lines.is_empty();
        pending.lines.extend_from_slice(line);
        drop(pending);
        if was_empty {
            self.wake.notify_one();
        }
    }

    async fn flush(&self) {
        let _ = tokio::time::timeout(FLUSH_WITHIN, self.write_pending()).await;
    }

    async fn write_pending(&self) {
        let mut out = self.out.lock().await;
        let lines = std::mem::take(&mut self.lock().lines);
        if lines.is_empty() {
            return;
        }
        out.write_all(&lines).await;
        let mut pending = self.lock();
        if pending.lines.is_empty() {
            // Keep the allocation for the next batch.
            let mut lines = lines;
            lines.clear();
            pending.lines = lines;
        }
    }
}

impl Out {
    /// Writes `lines`; if standard output is gone there is nothing better to do (the
    /// metrics still count every decision).
    async fn write_all(&mut self, lines: &[u8]) {
        if let Out::Stdout = self {
            *self = Out::open_stdout();
        }
        match self {
            Out::Pipe(sender) => {
                let _ = sender.write_all(lines).await;
            }
            Out::Stdout | Out::Blocking => {
                let _ = std::io::stdout().lock().write_all(lines);
            }
            Out::Memory(memory) => memory
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .extend_from_slice(lines),
        }
    }

    /// Standard output as a non-blocking pipe when it is one. The pipe shares its open
    /// file with descriptor 1, which becomes non-blocking too; nothing else in the
    /// broker writes to it.
    fn open_stdout() -> Out {
        std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .and_then(pipe::Sender::from_owned_fd)
            .map_or(Out::Blocking, Out::Pipe)
    }
}

/// The `tracing` writer of [`stdout_log_lines`]: each write is one formatted event.
#[derive(Clone, Debug)]
pub struct LogLines(Arc<Shared>);

impl Write for LogLines {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        self.0.push_log_line(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogLines {
    type Writer = LogLines;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Pending {
    fn set_second(&mut self, second: u64) {
        if self.second_text.is_empty() || self.second != second {
            let seconds = i64::try_from(second).unwrap_or(i64::MAX);
            self.second_text = jiff::Timestamp::from_second(seconds)
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
                .strftime("%Y-%m-%dT%H:%M:%S")
                .to_string();
            self.second = second;
        }
    }
}

#[cfg(test)]
mod tests;

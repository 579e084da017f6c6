//! The audit log's buffer: lines kept until written, dropped whole when full.

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

async fn lines_of(log: &AuditLog, memory: &Arc<Mutex<Vec<u8>>>) -> String {
    log.flush().await;
    String::from_utf8(memory.lock().unwrap().clone()).unwrap()
}

#[tokio::test]
async fn json_line_carries_every_field_of_the_decision() {
    let memory = Arc::new(Mutex::new(Vec::new()));
    let log = AuditLog::new(LogFormat::Json, AuditDestination::Memory(memory.clone()));
    log.record(&record("/api/v1/users", "team-a/weather"));
    let text = lines_of(&log, &memory).await;
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
    let parsed: jiff::Timestamp = timestamp.parse().unwrap();
    let age = jiff::Timestamp::now().duration_since(parsed);
    assert!(age.as_secs().abs() < 60, "{timestamp}");
}

#[tokio::test]
async fn lines_are_kept_until_written_and_none_is_lost() {
    let memory = Arc::new(Mutex::new(Vec::new()));
    let log = AuditLog::new(LogFormat::Json, AuditDestination::Memory(memory.clone()));
    for _ in 0..500 {
        log.record(&record("/api/v1/users", "p"));
    }
    assert!(memory.lock().unwrap().is_empty(), "written before a flush");
    assert_eq!(lines_of(&log, &memory).await.lines().count(), 500);
    assert_eq!(log.dropped().audit.get(), 0);
}

#[tokio::test]
async fn a_full_buffer_drops_whole_lines_and_counts_them() {
    let memory = Arc::new(Mutex::new(Vec::new()));
    let log = AuditLog::new(LogFormat::Json, AuditDestination::Memory(memory.clone()));
    let long_path = format!("/{}", "a".repeat(4096));
    let lines = 2 * CAPACITY / long_path.len();
    for _ in 0..lines {
        log.record(&record(&long_path, "p"));
    }
    let log_line = format!("{{\"message\":\"{}\"}}\n", "b".repeat(long_path.len()));
    log.shared.push_log_line(log_line.as_bytes());
    let dropped = log.dropped().audit.get();
    assert!(dropped > 0, "nothing dropped");
    assert_eq!(log.dropped().log.get(), 1);
    let text = lines_of(&log, &memory).await;
    assert!(text.len() <= CAPACITY, "{} bytes kept", text.len());
    assert_eq!(text.lines().count() as u64 + dropped, lines as u64);
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("every kept line is whole");
    }
}

#[tokio::test]
async fn log_lines_and_audit_lines_share_the_buffer_in_order() {
    let memory = Arc::new(Mutex::new(Vec::new()));
    let log = AuditLog::new(LogFormat::Plain, AuditDestination::Memory(memory.clone()));
    log.record(&record("/first", "p"));
    let mut writer = LogLines(log.shared.clone());
    writer.write_all(b"a log line\n").unwrap();
    log.record(&record("/last", "p"));
    let text = lines_of(&log, &memory).await;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].contains("path=\"/first\""), "{text}");
    assert_eq!(lines[1], "a log line");
    assert!(lines[2].contains("path=\"/last\""), "{text}");
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

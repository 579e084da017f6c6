//! One audit line, formatted straight into the log's buffer: JSON, or plain text, in
//! the format of the process's other log lines.

use std::io::Write;

use super::AuditRecord;

/// RFC 3339 in UTC with microseconds, as the process's other log lines.
pub struct Timestamp<'a> {
    pub second: &'a str,
    pub micros: u32,
}

impl std::fmt::Display for Timestamp<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:06}Z", self.second, self.micros)
    }
}

pub fn json_line(out: &mut Vec<u8>, timestamp: &Timestamp<'_>, record: &AuditRecord<'_>) {
    out.extend_from_slice(b"{\"timestamp\":\"");
    out.extend_from_slice(timestamp.second.as_bytes());
    let _ = write!(out, ".{:06}Z", timestamp.micros);
    out.extend_from_slice(b"\",\"level\":\"INFO\",\"message\":\"decision\",\"decision_id\":\"");
    let _ = write!(out, "{}", record.id);
    for (name, value) in [
        ("plugin", record.plugin),
        ("scope", record.scope.unwrap_or("")),
        ("method", record.method),
        ("path", record.path),
        ("outcome", record.outcome.as_str()),
        ("reason", record.reason.unwrap_or("")),
    ] {
        out.extend_from_slice(b"\",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":\"");
        push_json_string_content(out, value);
    }
    let _ = writeln!(
        out,
        "\",\"status\":{},\"latency_ms\":{},\"target\":\"broker::audit\"}}",
        record.status,
        Milliseconds(record.latency)
    );
}

pub fn plain_line(out: &mut Vec<u8>, timestamp: &Timestamp<'_>, record: &AuditRecord<'_>) {
    let quoted = |value: &str| serde_json::to_string(value).unwrap_or_default();
    let _ = writeln!(
        out,
        "{timestamp}  INFO broker::audit: decision decision_id={} plugin={} scope={} method={} \
         path={} outcome={} reason={} status={} latency_ms={}",
        record.id,
        quoted(record.plugin),
        quoted(record.scope.unwrap_or("")),
        quoted(record.method),
        quoted(record.path),
        record.outcome.as_str(),
        record.reason.unwrap_or(""),
        record.status,
        Milliseconds(record.latency)
    );
}

/// A duration in milliseconds with three decimals (whole microseconds), written with
/// integer arithmetic: formatting a float was a visible part of each call's cost.
struct Milliseconds(std::time::Duration);

impl std::fmt::Display for Milliseconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let micros = self.0.as_micros();
        write!(f, "{}.{:03}", micros / 1000, micros % 1000)
    }
}

/// Appends `value` escaped for the inside of a JSON string (RFC 8259): quote, backslash
/// and control characters escaped, everything else as is.
fn push_json_string_content(out: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    let mut start = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        let escaped: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x7f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..index]);
        if escaped.is_empty() {
            let _ = write!(out, "\\u{byte:04x}");
        } else {
            out.extend_from_slice(escaped);
        }
        start = index + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn latency_is_written_in_milliseconds_to_the_microsecond() {
        let written = |duration| Milliseconds(duration).to_string();
        assert_eq!(written(Duration::from_micros(1234)), "1.234");
        assert_eq!(written(Duration::from_micros(7)), "0.007");
        assert_eq!(written(Duration::from_nanos(999)), "0.000");
        assert_eq!(written(Duration::from_secs(12)), "12000.000");
    }

    proptest! {
        #[test]
        fn any_string_survives_the_json_escaping(value in any::<String>()) {
            let mut out = b"\"".to_vec();
            push_json_string_content(&mut out, &value);
            out.push(b'"');
            let back: String = serde_json::from_slice(&out).unwrap();
            prop_assert_eq!(back, value);
        }
    }
}

//! Request paths: refused when ambiguous, then walked segment by segment.
//!
//! A path is accepted only when every reader (the broker, the chat API, any proxy in
//! between) must see the same segments: no `.` or `..`, no empty segment, no encoded
//! `/` or `\`, no percent-encoded letters, digits or `-._~` (which some servers decode
//! and others do not), no raw byte outside RFC 3986 `pchar`, no control character and
//! nothing that decodes to invalid UTF-8. Nothing here allocates.

use std::fmt;

/// Why a path was refused before matching.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathProblem {
    NotAbsolute,
    EmptySegment,
    DotSegment,
    EncodedSeparator,
    NeedlessEncoding,
    BadPercentEncoding,
    ControlCharacter,
    ForbiddenCharacter,
    InvalidUtf8,
}

impl PathProblem {
    pub fn describe(self) -> &'static str {
        match self {
            PathProblem::NotAbsolute => "the path must start with '/'",
            PathProblem::EmptySegment => "the path has an empty segment ('//' or a trailing '/')",
            PathProblem::DotSegment => "the path has a '.' or '..' segment",
            PathProblem::EncodedSeparator => "the path encodes '/' or '\\' (%2F, %5C)",
            PathProblem::NeedlessEncoding => {
                "the path percent-encodes a letter, digit or one of - . _ ~"
            }
            PathProblem::BadPercentEncoding => "the path has a '%' not followed by two hex digits",
            PathProblem::ControlCharacter => "the path encodes a control character",
            PathProblem::ForbiddenCharacter => {
                "the path has a character that must be percent-encoded"
            }
            PathProblem::InvalidUtf8 => "the path decodes to invalid UTF-8",
        }
    }
}

impl fmt::Display for PathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// A path that passed [`check_path`]: its raw (still encoded) segments.
#[derive(Clone, Copy, Debug)]
pub struct CheckedPath<'a> {
    without_leading_slash: &'a str,
    segment_count: usize,
}

impl<'a> CheckedPath<'a> {
    pub fn segment_count(&self) -> usize {
        self.segment_count
    }

    pub fn segments(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        self.without_leading_slash.split('/')
    }

    pub fn segment(&self, index: usize) -> Option<&'a str> {
        self.segments().nth(index)
    }
}

/// Checks `path` (without the query) and splits it into segments.
pub fn check_path(path: &str) -> Result<CheckedPath<'_>, PathProblem> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PathProblem::NotAbsolute);
    };
    let bytes = rest.as_bytes();
    let mut utf8 = Utf8Validator::default();
    let mut segment_start = 0;
    let mut segment_count = 1;
    let mut i = 0;
    while i <= bytes.len() {
        if i == bytes.len() || bytes[i] == b'/' {
            if !utf8.is_complete() {
                return Err(PathProblem::InvalidUtf8);
            }
            match &bytes[segment_start..i] {
                b"" => return Err(PathProblem::EmptySegment),
                b"." | b".." => return Err(PathProblem::DotSegment),
                _ => {}
            }
            if i < bytes.len() {
                segment_count += 1;
            }
            segment_start = i + 1;
            i += 1;
            continue;
        }
        let byte = bytes[i];
        if byte == b'%' {
            let decoded = decode_escape(bytes, i).ok_or(PathProblem::BadPercentEncoding)?;
            check_decoded_byte(decoded)?;
            utf8.push(decoded)?;
            i += 3;
        } else {
            if !crate::policy::is_pchar_byte(byte) {
                return Err(PathProblem::ForbiddenCharacter);
            }
            utf8.push(byte)?;
            i += 1;
        }
    }
    Ok(CheckedPath {
        without_leading_slash: rest,
        segment_count,
    })
}

fn check_decoded_byte(decoded: u8) -> Result<(), PathProblem> {
    if decoded == b'/' || decoded == b'\\' {
        Err(PathProblem::EncodedSeparator)
    } else if decoded.is_ascii_alphanumeric() || b"-._~".contains(&decoded) {
        Err(PathProblem::NeedlessEncoding)
    } else if decoded.is_ascii_control() {
        Err(PathProblem::ControlCharacter)
    } else {
        Ok(())
    }
}

fn decode_escape(bytes: &[u8], percent_at: usize) -> Option<u8> {
    let high = hex_value(*bytes.get(percent_at + 1)?)?;
    let low = hex_value(*bytes.get(percent_at + 2)?)?;
    Some(high << 4 | low)
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// The bytes a checked raw segment stands for, percent-escapes decoded.
fn decoded_bytes(raw: &str) -> impl Iterator<Item = u8> + '_ {
    let bytes = raw.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        let byte = *bytes.get(i)?;
        if byte == b'%'
            && let Some(decoded) = decode_escape(bytes, i)
        {
            i += 3;
            return Some(decoded);
        }
        i += 1;
        Some(byte)
    })
}

/// Whether a raw segment of a checked path decodes to exactly `expected`.
pub fn segment_equals(raw: &str, expected: &str) -> bool {
    if !raw.contains('%') {
        return raw == expected;
    }
    decoded_bytes(raw).eq(expected.bytes())
}

/// Streaming UTF-8 validation (RFC 3629: no overlong forms, no surrogates, at most
/// U+10FFFF), so decoded segments need no buffer.
#[derive(Default)]
struct Utf8Validator {
    continuation_bytes_left: u8,
    next_min: u8,
    next_max: u8,
}

impl Utf8Validator {
    fn is_complete(&self) -> bool {
        self.continuation_bytes_left == 0
    }

    fn push(&mut self, byte: u8) -> Result<(), PathProblem> {
        if self.continuation_bytes_left > 0 {
            if !(self.next_min..=self.next_max).contains(&byte) {
                return Err(PathProblem::InvalidUtf8);
            }
            self.continuation_bytes_left -= 1;
            (self.next_min, self.next_max) = (0x80, 0xBF);
            return Ok(());
        }
        let (left, min, max) = match byte {
            0x00..=0x7F => (0, 0x80, 0xBF),
            0xC2..=0xDF => (1, 0x80, 0xBF),
            0xE0 => (2, 0xA0, 0xBF),
            0xE1..=0xEC | 0xEE..=0xEF => (2, 0x80, 0xBF),
            0xED => (2, 0x80, 0x9F),
            0xF0 => (3, 0x90, 0xBF),
            0xF1..=0xF3 => (3, 0x80, 0xBF),
            0xF4 => (3, 0x80, 0x8F),
            _ => return Err(PathProblem::InvalidUtf8),
        };
        self.continuation_bytes_left = left;
        (self.next_min, self.next_max) = (min, max);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_path_splits_into_its_segments() {
        let checked = check_path("/api/v1/kv/team-a.weather/city").unwrap();
        assert_eq!(checked.segment_count(), 5);
        assert_eq!(
            checked.segments().collect::<Vec<_>>(),
            ["api", "v1", "kv", "team-a.weather", "city"]
        );
        assert_eq!(checked.segment(3), Some("team-a.weather"));
    }

    /// Asserts that each path is refused for its problem.
    fn assert_refused(cases: &[(&str, PathProblem)]) {
        for (path, expected) in cases {
            assert_eq!(check_path(path).err(), Some(*expected), "{path:?}");
        }
    }

    #[test]
    fn traversal_and_empty_segments_are_refused() {
        use PathProblem::*;
        assert_refused(&[
            ("/api/v1/kv/../other", DotSegment),
            ("/api/./v1", DotSegment),
            ("/api/v1/kv/%2e%2e/x", NeedlessEncoding),
            ("/api/v1/kv/.%2E/x", NeedlessEncoding),
            ("/api//v1", EmptySegment),
            ("/api/v1/", EmptySegment),
            ("/", EmptySegment),
            ("api", NotAbsolute),
            ("", NotAbsolute),
        ]);
    }

    #[test]
    fn encoded_separators_controls_and_bad_escapes_are_refused() {
        use PathProblem::*;
        assert_refused(&[
            ("/kv/a%2fb", EncodedSeparator),
            ("/kv/a%5Cb", EncodedSeparator),
            ("/kv/a%00", ControlCharacter),
            ("/kv/a%zz", BadPercentEncoding),
            ("/kv/a%4", BadPercentEncoding),
            ("/kv/a\\b", ForbiddenCharacter),
            ("/kv/é", ForbiddenCharacter),
        ]);
    }

    #[test]
    fn encoded_utf8_is_accepted_and_invalid_utf8_refused() {
        assert!(check_path("/kv/caf%C3%A9").is_ok());
        let invalid = [
            "/kv/%FF",
            "/kv/%C3",
            "/kv/%C3/%A9",
            "/kv/%C0%AF",
            "/kv/%ED%A0%80",
        ];
        assert_refused(&invalid.map(|path| (path, PathProblem::InvalidUtf8)));
    }

    #[test]
    fn segment_comparison_decodes_escapes() {
        assert!(segment_equals("C%20X", "C X"));
        assert!(segment_equals("C123", "C123"));
        assert!(!segment_equals("C1234", "C123"));
        assert!(!segment_equals("C%20", "C"));
    }
}

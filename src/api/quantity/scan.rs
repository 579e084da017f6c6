//! A quantity string cut into sign, digits, point and suffix, and the suffix read, by
//! the API server's rules.

use super::QuantityError;

/// The parts of a quantity string.
pub(super) struct Scanned<'a> {
    pub(super) positive: bool,
    /// Everything before the suffix: sign, digits, point.
    pub(super) value: &'a str,
    /// The whole digits without leading zeros ("0" when there are none).
    pub(super) whole: &'a str,
    /// The digits after the point.
    pub(super) fraction: &'a str,
    pub(super) suffix: &'a str,
}

pub(super) fn scan(text: &str) -> Result<Scanned<'_>, QuantityError> {
    let bytes = text.as_bytes();
    let end = bytes.len();
    let mut pos = 0;
    let mut positive = true;
    match bytes[0] {
        b'-' => {
            positive = false;
            pos += 1;
        }
        b'+' => pos += 1,
        _ => {}
    }
    let zero = |value| Scanned {
        positive,
        value,
        whole: "0",
        fraction: "",
        suffix: "",
    };
    while pos < end && bytes[pos] == b'0' {
        pos += 1;
    }
    if pos == end {
        return Ok(zero("0"));
    }
    let whole_start = pos;
    while pos < end && bytes[pos].is_ascii_digit() {
        pos += 1;
    }
    let whole = match &text[whole_start..pos] {
        "" => "0",
        digits => digits,
    };
    let mut fraction = "";
    if pos == end {
        return Ok(Scanned {
            whole,
            value: text,
            ..zero(text)
        });
    }
    if bytes[pos] == b'.' {
        pos += 1;
        let start = pos;
        while pos < end && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        fraction = &text[start..pos];
        if pos == end {
            return Ok(Scanned {
                whole,
                fraction,
                value: text,
                ..zero(text)
            });
        }
    }
    let value = &text[..pos];
    let suffix_start = pos;
    while pos < end && b"eEinumkKMGTP".contains(&bytes[pos]) {
        pos += 1;
    }
    if pos < end && (bytes[pos] == b'-' || bytes[pos] == b'+') {
        pos += 1;
    }
    while pos < end && bytes[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos < end {
        return Err(QuantityError::Format);
    }
    Ok(Scanned {
        positive,
        value,
        whole,
        fraction,
        suffix: &text[suffix_start..],
    })
}

#[derive(Clone, Copy)]
pub(super) enum Suffix {
    Decimal(i32),
    Binary(i32),
}

impl Suffix {
    pub(super) fn interpret(suffix: &str) -> Option<Self> {
        let decimal = match suffix {
            "n" => Some(-9),
            "u" => Some(-6),
            "m" => Some(-3),
            "" => Some(0),
            "k" => Some(3),
            "M" => Some(6),
            "G" => Some(9),
            "T" => Some(12),
            "P" => Some(15),
            "E" => Some(18),
            _ => None,
        };
        let binary = match suffix {
            "Ki" => Some(10),
            "Mi" => Some(20),
            "Gi" => Some(30),
            "Ti" => Some(40),
            "Pi" => Some(50),
            "Ei" => Some(60),
            _ => None,
        };
        if let Some(exponent) = decimal {
            return Some(Self::Decimal(exponent));
        }
        if let Some(exponent) = binary {
            return Some(Self::Binary(exponent));
        }
        let exponent = suffix.strip_prefix(['e', 'E'])?;
        if exponent.is_empty() {
            return None;
        }
        // The API server reads a 64-bit exponent and keeps its low 32 bits.
        let parsed: i64 = exponent.parse().ok()?;
        Some(Self::Decimal(parsed as i32))
    }
}

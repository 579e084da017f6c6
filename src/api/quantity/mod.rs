//! Kubernetes quantities (`500m`, `1.5Gi`, `900000u`, `12e-3`), read exactly as the API
//! server reads them, so the operator never compares two quantities differently from
//! the API server that later checks the Deployment it writes.
//!
//! The rules are the API server's, case by case:
//! - every suffix: `n u m "" k M G T P E`, `Ki Mi Gi Ti Pi Ei`, and `e`/`E` exponents;
//! - a number of at most 18 significant digits whose value is a whole number of
//!   nano-units is kept exactly as written, however large;
//! - anything else is rounded up to a whole nano-unit (`0.1n` is `1n`), and a binary
//!   amount (`Ki` ... `Ei`) above 2^63-1 units is capped there;
//! - odd forms the API server accepts are accepted alike (`.`, `+`, `Ki` are zero).
//!
//! `tests/operator/quantities.rs` sends generated quantities to a real API server and
//! checks that its canonical form reads as the same amount.

mod scan;

use std::cmp::Ordering;
use std::fmt;

use scan::{Scanned, Suffix, scan};

/// Why a string is not a quantity, in the API server's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )]
    Format,
    #[error("unable to parse quantity's suffix")]
    Suffix,
    #[error("unable to parse numeric part of quantity")]
    Numeric,
}

/// An exact amount: `digits` (most significant first, no leading or trailing zeros;
/// none for zero) times ten to the `exponent`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Amount {
    negative: bool,
    digits: Vec<u8>,
    exponent: i64,
}

/// The largest binary amount the API server keeps when it has to round: 2^63-1 units.
const CAP: i64 = i64::MAX;
/// Nano-units: the finest amount the API server keeps when it has to round.
const NANO: i64 = -9;

impl Amount {
    pub fn zero() -> Self {
        Self::new(false, vec![], 0)
    }

    /// `digits` (decimal) times ten to the `exponent`, exactly; None if `digits` has
    /// anything but decimal digits. For reading canonical forms, which are exact.
    pub fn from_digits(negative: bool, digits: &str, exponent: i64) -> Option<Self> {
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let digits = digits.bytes().map(|b| b - b'0').collect();
        Some(Self::new(negative, digits, exponent))
    }

    /// The amount rounded away from zero to a whole multiple of ten to the `exponent`,
    /// as the API server rounds.
    pub fn round_up_to(self, exponent: i64) -> Self {
        round_away_from_zero(self, exponent)
    }

    /// The amount as the API server stores it in a container's requests or limits (any
    /// `ResourceList`): rounded up to a thousandth of its unit.
    pub fn as_stored_in_a_resource_list(self) -> Self {
        self.round_up_to(-3)
    }

    fn new(negative: bool, mut digits: Vec<u8>, mut exponent: i64) -> Self {
        let leading = digits.iter().take_while(|&&d| d == 0).count();
        digits.drain(..leading);
        while digits.last() == Some(&0) {
            digits.pop();
            exponent += 1;
        }
        if digits.is_empty() {
            return Self {
                negative: false,
                digits,
                exponent: 0,
            };
        }
        Self {
            negative,
            digits,
            exponent,
        }
    }

    fn from_int(value: i128, exponent: i64) -> Self {
        let digits = value.unsigned_abs().to_string();
        let digits = digits.bytes().map(|b| b - b'0').collect();
        Self::new(value < 0, digits, exponent)
    }

    /// The amount in whole units, rounded up (`1.5Ki` is 1536, `0.1` is 1); None for a
    /// negative amount or one beyond `u128`.
    pub fn whole_units_rounded_up(&self) -> Option<u128> {
        if self.negative {
            return None;
        }
        let whole = self.clone().round_up_to(0);
        let mut units: u128 = 0;
        for digit in &whole.digits {
            units = units.checked_mul(10)?.checked_add(u128::from(*digit))?;
        }
        units.checked_mul(10u128.checked_pow(u32::try_from(whole.exponent).ok()?)?)
    }

    pub fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }

    /// Position of the most significant digit, for comparing magnitudes.
    fn magnitude(&self) -> i64 {
        self.digits.len() as i64 + self.exponent
    }

    fn cmp_magnitude(&self, other: &Self) -> Ordering {
        match (self.is_zero(), other.is_zero()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        self.magnitude().cmp(&other.magnitude()).then_with(|| {
            let len = self.digits.len().max(other.digits.len());
            let digit = |a: &Self, i: usize| a.digits.get(i).copied().unwrap_or(0);
            (0..len)
                .map(|i| digit(self, i).cmp(&digit(other, i)))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        })
    }
}

impl Ord for Amount {
    fn cmp(&self, other: &Self) -> Ordering {
        let sign = |a: &Self| match (a.is_zero(), a.negative) {
            (true, _) => 0,
            (false, true) => -1,
            (false, false) => 1,
        };
        sign(self).cmp(&sign(other)).then_with(|| {
            let by_magnitude = self.cmp_magnitude(other);
            if self.negative {
                by_magnitude.reverse()
            } else {
                by_magnitude
            }
        })
    }
}

impl PartialOrd for Amount {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Amount {
    /// Plain digits and a decimal exponent: `9e-1`, `-15e2`, `0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0");
        }
        let digits: String = self.digits.iter().map(|d| char::from(b'0' + d)).collect();
        let sign = if self.negative { "-" } else { "" };
        match self.exponent {
            0 => write!(f, "{sign}{digits}"),
            e => write!(f, "{sign}{digits}e{e}"),
        }
    }
}

/// Reads `text` as the API server reads a quantity.
pub fn parse(text: &str) -> Result<Amount, QuantityError> {
    if text.is_empty() {
        return Err(QuantityError::Format);
    }
    let scanned = scan(text)?;
    let Some(suffix) = Suffix::interpret(scanned.suffix) else {
        return Err(QuantityError::Suffix);
    };
    if let Some(exact) = fast_path(&scanned, suffix) {
        return Ok(exact);
    }
    rounded_and_capped(&scanned, suffix)
}

/// The API server's fast path: few enough digits to be held exactly, no rounding and no
/// cap. None when the slow path applies.
fn fast_path(scanned: &Scanned, suffix: Suffix) -> Option<Amount> {
    let digits = scanned.whole.len() + scanned.fraction.len();
    let (mut scale, precision, multiplier): (i32, i64, i64) = match suffix {
        Suffix::Decimal(exponent) => (exponent, 18 - digits as i64, 1),
        Suffix::Binary(exponent) if scanned.fraction.is_empty() => {
            let precision = 15 - scanned.whole.len() as i64 - i64::from(exponent * 3 / 10) - 1;
            (0, precision, 1i64 << exponent)
        }
        Suffix::Binary(_) => return None,
    };
    if precision < 0 {
        return None;
    }
    scale = scale.wrapping_sub(scanned.fraction.len() as i32);
    if scale < NANO as i32 {
        return None;
    }
    let value: i64 = format!("{}{}", scanned.whole, scanned.fraction)
        .parse()
        .ok()?;
    let result = value.checked_mul(multiplier)?;
    let signed = if scanned.positive { result } else { -result };
    Some(Amount::from_int(signed.into(), scale.into()))
}

/// The API server's slow path: the exact value, rounded up to a whole nano-unit; a
/// binary amount is capped at 2^63-1 units.
fn rounded_and_capped(scanned: &Scanned, suffix: Suffix) -> Result<Amount, QuantityError> {
    let unsigned = scanned.value.trim_start_matches(['+', '-']);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if whole.is_empty() && fraction.is_empty() {
        return Err(QuantityError::Numeric);
    }
    let mut digits: Vec<u8> = whole
        .bytes()
        .chain(fraction.bytes())
        .map(|b| b - b'0')
        .collect();
    let mut exponent = -(fraction.len() as i64);
    match suffix {
        Suffix::Decimal(e) => {
            // The API server adds the exponent to a 32-bit scale.
            let scale = (fraction.len() as i32).wrapping_sub(e);
            exponent = -i64::from(scale);
        }
        Suffix::Binary(e) => {
            for _ in 0..e {
                double(&mut digits);
            }
        }
    }
    let rounded = round_away_from_zero(Amount::new(!scanned.positive, digits, exponent), NANO);
    // Only binary amounts are capped; decimal ones keep every digit.
    Ok(match suffix {
        Suffix::Binary(_) => cap(rounded),
        Suffix::Decimal(_) => rounded,
    })
}

fn double(digits: &mut Vec<u8>) {
    let mut carry = 0;
    for d in digits.iter_mut().rev() {
        let twice = *d * 2 + carry;
        *d = twice % 10;
        carry = twice / 10;
    }
    if carry > 0 {
        digits.insert(0, carry);
    }
}

fn round_away_from_zero(amount: Amount, exponent: i64) -> Amount {
    if amount.is_zero() || amount.exponent >= exponent {
        return amount;
    }
    let dropped = (exponent - amount.exponent) as u64;
    let kept_len = (amount.digits.len() as u64).saturating_sub(dropped) as usize;
    // The dropped digits are not all zero (trailing zeros are never kept), so round up.
    let mut kept = amount.digits[..kept_len].to_vec();
    let mut carry = 1;
    for d in kept.iter_mut().rev() {
        let sum = *d + carry;
        *d = sum % 10;
        carry = sum / 10;
    }
    if carry > 0 {
        kept.insert(0, carry);
    }
    Amount::new(amount.negative, kept, exponent)
}

fn cap(amount: Amount) -> Amount {
    let cap = Amount::from_int(CAP.into(), 0);
    if amount.cmp_magnitude(&cap) == Ordering::Greater {
        return Amount {
            negative: amount.negative,
            ..cap
        };
    }
    amount
}

#[cfg(test)]
mod tests;

//! Just enough of Kubernetes quantities to pick defaults that never invert a request
//! and its limit. The API server has already refused malformed quantities.

/// A quantity in thousandths of its unit (millicores, millibytes), or None if unparsable.
pub fn milli_units(quantity: &str) -> Option<i128> {
    let quantity = quantity.trim();
    let suffix_start = quantity
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(quantity.len());
    let (number, suffix) = quantity.split_at(suffix_start);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let whole: i128 = if whole.is_empty() || whole == "+" {
        0
    } else {
        whole.parse().ok()?
    };
    let fraction_milli: i128 = match fraction.len() {
        0 => 0,
        n => {
            let digits: String = fraction
                .chars()
                .chain(std::iter::repeat('0'))
                .take(3)
                .collect();
            if n > 3 && fraction[3..].chars().any(|c| c != '0') {
                // Finer than a thousandth: round up, so a limit is never understated.
                digits.parse::<i128>().ok()? + 1
            } else {
                digits.parse().ok()?
            }
        }
    };
    let base = whole * 1000 + fraction_milli;
    let scaled = match suffix {
        "m" => base / 1000,
        "" => base,
        "k" => base * 1_000,
        "M" => base * 1_000_000,
        "G" => base * 1_000_000_000,
        "T" => base * 1_000_000_000_000,
        "Ki" => base << 10,
        "Mi" => base << 20,
        "Gi" => base << 30,
        "Ti" => base << 40,
        _ => return None,
    };
    Some(scaled)
}

#[cfg(test)]
mod tests {
    use super::milli_units;

    #[test]
    fn cpu_quantities_compare_in_millicores() {
        assert_eq!(milli_units("500m"), Some(500));
        assert_eq!(milli_units("1"), Some(1000));
        assert_eq!(milli_units("0.5"), Some(500));
        assert!(milli_units("250m") < milli_units("0.3"));
    }

    #[test]
    fn memory_quantities_understand_binary_and_decimal_suffixes() {
        assert_eq!(milli_units("64Mi"), Some((64 << 20) * 1000));
        assert_eq!(milli_units("1G"), Some(1_000_000_000 * 1000));
        assert!(milli_units("128Mi") > milli_units("128M"));
    }

    #[test]
    fn unknown_suffix_is_not_a_quantity() {
        assert_eq!(milli_units("12parsecs"), None);
    }
}

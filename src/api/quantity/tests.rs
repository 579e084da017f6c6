use super::*;

/// `text=amount ...`: each text reads as the amount after its `=` (digits and a
/// decimal exponent).
fn reads(cases: &str) {
    for case in cases.split_whitespace() {
        let (text, expected) = case.split_once('=').expect("text=amount");
        assert_eq!(amount(text), expected, "{text:?}");
    }
}

fn amount(text: &str) -> String {
    parse(text)
        .unwrap_or_else(|e| panic!("{text:?}: {e}"))
        .to_string()
}

#[test]
fn decimal_suffixes_scale_by_powers_of_ten() {
    reads("500m=5e-1 900000u=9e-1 3n=3e-9 1k=1e3 2P=2e15 5E=5e18");
}

#[test]
fn binary_suffixes_scale_by_powers_of_two() {
    reads("1Ki=1024 64Mi=67108864 1.5Gi=1610612736 1Ei=1152921504606846976");
}

#[test]
fn exponents_in_either_case_and_with_a_sign() {
    reads("12e-3=12e-3 1E3=1e3 1e+3=1e3 1.5e1=15");
}

#[test]
fn finer_than_a_nano_unit_is_rounded_up() {
    reads("0.1n=1e-9 1e-100=1e-9 1.0000000001=1000000001e-9 -0.1n=-1e-9");
}

#[test]
fn decimal_amounts_are_kept_exactly_however_large_and_binary_ones_are_capped() {
    reads(concat!(
        "10E=1e19 1e100=1e100 10000000000000000000=1e19 ",
        "49265250662502283805=49265250662502283805 2Ei=2305843009213693952 8Ei=9223372036854775807"
    ));
}

#[test]
fn resource_lists_round_up_to_a_thousandth() {
    for case in "1n=1e-3 24063u=25e-3 -1n=-1e-3 500m=5e-1 64Mi=67108864".split_whitespace() {
        let (text, expected) = case.split_once('=').unwrap();
        let stored = parse(text).unwrap().as_stored_in_a_resource_list();
        assert_eq!(stored.to_string(), expected, "{text:?}");
    }
}

#[test]
fn odd_forms_the_api_server_accepts_are_zero() {
    reads(".=0 +=0 -=0 Ki=0 m=0 0.0=0 000=0 0=0");
}

#[test]
fn malformed_quantities_are_refused_with_the_api_servers_reason() {
    assert_eq!(parse(""), Err(QuantityError::Format));
    assert_eq!(parse("1 m"), Err(QuantityError::Format));
    assert_eq!(parse("12parsecs"), Err(QuantityError::Format));
    assert_eq!(parse("1Mb"), Err(QuantityError::Format));
    assert_eq!(parse("1mm"), Err(QuantityError::Suffix));
    assert_eq!(parse("1e"), Err(QuantityError::Suffix));
    assert_eq!(parse(".Ei"), Err(QuantityError::Numeric));
}

#[test]
fn amounts_compare_by_value_across_suffixes() {
    let order = [
        "-1", "0", "1n", "250m", "0.3", "900000u", "1", "1k", "1Ki", "1M", "1Mi",
    ];
    for pair in order.windows(2) {
        assert!(
            parse(pair[0]).unwrap() < parse(pair[1]).unwrap(),
            "{pair:?}"
        );
    }
    assert_eq!(parse("1.5Gi").unwrap(), parse("1536Mi").unwrap());
    assert_eq!(parse("0.5").unwrap(), parse("500m").unwrap());
    assert!(parse("128Mi").unwrap() > parse("128M").unwrap());
}

#[test]
fn whole_units_round_up_and_refuse_what_does_not_fit() {
    let units = |text: &str| parse(text).unwrap().whole_units_rounded_up();
    assert_eq!(units("64Mi"), Some(64 << 20));
    assert_eq!(units("1.5Ki"), Some(1536));
    assert_eq!(units("1500m"), Some(2));
    assert_eq!(units("100n"), Some(1));
    assert_eq!(units("0"), Some(0));
    assert_eq!(units("2e3"), Some(2000));
    assert_eq!(units("-1"), None);
    assert_eq!(units("1e40"), None);
}

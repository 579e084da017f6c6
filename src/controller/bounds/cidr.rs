//! CIDRs compared by the addresses they hold, not by their spelling: `10.244.1.0/24`
//! lies inside `10.244.0.0/16`, and `0.0.0.0/1` overlaps `10.0.0.0/8`.

use ipnet::IpNet;

/// A CIDR as the Plugin CRD admits it (`isCIDR`); host bits are ignored.
pub fn parse(text: &str) -> Option<IpNet> {
    text.trim().parse::<IpNet>().ok().map(|net| net.trunc())
}

/// Whether every address of `inner` is in `outer`.
pub fn contains(outer: &IpNet, inner: &IpNet) -> bool {
    outer.contains(inner)
}

/// Whether `a` and `b` share an address: for CIDRs, when one contains the other.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(b) || b.contains(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> IpNet {
        parse(text).unwrap()
    }

    #[test]
    fn a_sub_range_is_contained_and_overlaps() {
        assert!(contains(&net("10.244.0.0/16"), &net("10.244.1.0/24")));
        assert!(overlaps(&net("10.244.0.0/16"), &net("10.244.1.0/24")));
        assert!(!contains(&net("10.244.1.0/24"), &net("10.244.0.0/16")));
    }

    #[test]
    fn a_super_range_overlaps_what_it_contains() {
        assert!(overlaps(&net("0.0.0.0/1"), &net("10.96.0.0/12")));
        assert!(overlaps(&net("128.0.0.0/1"), &net("169.254.169.254/32")));
        assert!(!overlaps(&net("0.0.0.0/1"), &net("169.254.0.0/16")));
    }

    #[test]
    fn host_bits_are_ignored_and_families_do_not_mix() {
        assert_eq!(net("10.1.2.3/8"), net("10.0.0.0/8"));
        assert!(!overlaps(&net("::/0"), &net("10.0.0.0/8")));
        assert!(parse("not-a-cidr").is_none());
    }
}

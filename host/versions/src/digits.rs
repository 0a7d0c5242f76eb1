//! Comparing runs of ASCII digits as unbounded numbers.
//!
//! Versions carry numbers far beyond `u64` (dates with times, `99999999999999999999`), and
//! every reference tool here compares them by value without overflowing, so parsing into a
//! fixed-width integer would be wrong. Stripping leading zeros and then comparing length
//! and digits gives the numeric order of any length.

use std::cmp::Ordering;

/// Compares two digit runs by numeric value (`"007"` equals `"7"`, `""` equals `"0"`).
pub(crate) fn cmp_digits(a: &[u8], b: &[u8]) -> Ordering {
    let a = strip_zeros(a);
    let b = strip_zeros(b);
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn strip_zeros(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&c| c != b'0').unwrap_or(s.len());
    &s[start..]
}

#[cfg(test)]
mod tests {
    use super::cmp_digits;
    use std::cmp::Ordering::*;

    #[test]
    fn numeric_order_of_any_length() {
        assert_eq!(cmp_digits(b"007", b"7"), Equal);
        assert_eq!(cmp_digits(b"", b"000"), Equal);
        assert_eq!(cmp_digits(b"9", b"10"), Less);
        assert_eq!(
            cmp_digits(b"100000000000000000000000", b"99999999999999999999999"),
            Greater
        );
        assert_eq!(cmp_digits(b"0123", b"0124"), Less);
    }
}

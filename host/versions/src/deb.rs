//! Debian package versions (`[epoch:]upstream_version[-debian_revision]`), ordered as
//! Debian Policy §5.6.12 describes and `dpkg --compare-versions` implements.
//!
//! The ordering, in the policy's words: epochs compare numerically; then the upstream
//! version and then the revision are compared left to right, alternating between a run of
//! non-digits and a run of digits. Non-digit runs compare character by character where
//! `~` sorts before everything, even the end of the run, letters sort before all
//! non-letters, and the rest by ASCII value; digit runs compare numerically, an empty run
//! counting as 0. So `1.0~rc1 < 1.0 < 1.0a < 1.0+b1` (letters sort before non-letters), a
//! missing revision equals `0` (`1.0` = `1.0-0`) and a missing epoch equals `0`
//! (`1.0` = `0:1.0`).
//!
//! Accepted syntax follows what dpkg accepts rather than what Policy recommends: an upstream
//! version that does not start with a digit and a colon in the upstream version after the
//! epoch only draw a warning from dpkg, which still compares them, so they are accepted here
//! too. What dpkg refuses (empty parts, non-numeric or oversized epoch, characters outside
//! `[A-Za-z0-9.+~-:]` in the upstream part or `[A-Za-z0-9.+~]` in the revision) is an error.

use std::cmp::Ordering;
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use crate::digits::cmp_digits;
use crate::{Ecosystem, Error, check_common};

/// A Debian package version.
#[derive(Debug, Clone)]
pub struct DebVersion {
    input: String,
    epoch: u32,
    upstream: Range<usize>,
    revision: Option<Range<usize>>,
}

impl DebVersion {
    /// The epoch; 0 when the version has none.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The upstream version (between the epoch's colon and the last hyphen).
    pub fn upstream(&self) -> &str {
        &self.input[self.upstream.clone()]
    }

    /// The Debian revision (after the last hyphen), if there is one.
    pub fn revision(&self) -> Option<&str> {
        self.revision.clone().map(|r| &self.input[r])
    }

    /// The string the version was parsed from.
    pub fn as_str(&self) -> &str {
        &self.input
    }
}

impl FromStr for DebVersion {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Error> {
        let err = |reason: &str| Error::new(Ecosystem::Deb, input, reason);
        check_common(Ecosystem::Deb, input)?;

        // The epoch ends at the first colon; later colons belong to the upstream version.
        let (epoch, rest_start) = match input.find(':') {
            Some(colon) => {
                let digits = &input[..colon];
                if digits.is_empty() {
                    return Err(err("epoch is empty"));
                }
                if !digits.bytes().all(|c| c.is_ascii_digit()) {
                    return Err(err("epoch is not a number"));
                }
                // dpkg stores the epoch in an int and refuses anything above INT_MAX.
                let epoch = digits
                    .parse::<u32>()
                    .ok()
                    .filter(|&e| e <= i32::MAX as u32)
                    .ok_or_else(|| err("epoch is too big"))?;
                (epoch, colon + 1)
            }
            None => (0, 0),
        };

        let rest = &input[rest_start..];
        let (upstream, revision) = match rest.rfind('-') {
            Some(hyphen) => {
                if hyphen + 1 == rest.len() {
                    return Err(err("revision is empty"));
                }
                (
                    rest_start..rest_start + hyphen,
                    Some(rest_start + hyphen + 1..input.len()),
                )
            }
            None => (rest_start..input.len(), None),
        };
        if upstream.is_empty() {
            return Err(err("upstream version is empty"));
        }
        let upstream_ok = |c: u8| c.is_ascii_alphanumeric() || b".+~-:".contains(&c);
        if !input[upstream.clone()].bytes().all(upstream_ok) {
            return Err(err("invalid character in upstream version"));
        }
        if let Some(rev) = &revision {
            let revision_ok = |c: u8| c.is_ascii_alphanumeric() || b".+~".contains(&c);
            if !input[rev.clone()].bytes().all(revision_ok) {
                return Err(err("invalid character in revision"));
            }
        }
        Ok(DebVersion {
            input: input.to_owned(),
            epoch,
            upstream,
            revision,
        })
    }
}

impl fmt::Display for DebVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.input)
    }
}

impl Ord for DebVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| compare_part(self.upstream().as_bytes(), other.upstream().as_bytes()))
            .then_with(|| {
                // A missing revision compares like an empty one, which equals "0".
                let a = self.revision().unwrap_or("");
                let b = other.revision().unwrap_or("");
                compare_part(a.as_bytes(), b.as_bytes())
            })
    }
}

impl PartialOrd for DebVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for DebVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for DebVersion {}

/// Weight of one character of a non-digit run (Policy §5.6.12): `~` lowest, below even the
/// end of the run (weight 0, which a digit also gets since it ends the run), then letters
/// by ASCII value, then every other character above all letters.
fn weight(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

/// Compares an upstream version or a revision, alternating non-digit and digit runs.
fn compare_part(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        // Non-digit run: character by character by weight. Both cursors only move together
        // over equal weights, and equal non-zero weights mean the same non-digit character.
        loop {
            let ca = a.get(i).copied().filter(|c| !c.is_ascii_digit());
            let cb = b.get(j).copied().filter(|c| !c.is_ascii_digit());
            if ca.is_none() && cb.is_none() {
                break;
            }
            let (wa, wb) = (weight(ca), weight(cb));
            if wa != wb {
                return wa.cmp(&wb);
            }
            i += 1;
            j += 1;
        }
        // Digit run: by numeric value, an empty run being 0.
        let da = digit_run(a, i);
        let db = digit_run(b, j);
        let ord = cmp_digits(&a[i..da], &b[j..db]);
        if ord != Ordering::Equal {
            return ord;
        }
        i = da;
        j = db;
    }
    Ordering::Equal
}

fn digit_run(s: &[u8], start: usize) -> usize {
    start
        + s.get(start..)
            .unwrap_or_default()
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count()
}

#[cfg(test)]
mod tests {
    use super::DebVersion;
    use std::cmp::Ordering::{self, *};

    fn cmp(a: &str, b: &str) -> Ordering {
        let a: DebVersion = a.parse().expect("valid a");
        let b: DebVersion = b.parse().expect("valid b");
        a.cmp(&b)
    }

    /// Examples stated in Debian Policy §5.6.12 itself.
    #[test]
    fn policy_examples() {
        // "~~ < ~~a < ~ < (empty) < a"
        assert_eq!(cmp("1~~", "1~~a"), Less);
        assert_eq!(cmp("1~~a", "1~"), Less);
        assert_eq!(cmp("1~", "1"), Less);
        assert_eq!(cmp("1", "1a"), Less);
        // A missing revision is equivalent to "0"; a missing epoch to "0".
        assert_eq!(cmp("1.0", "1.0-0"), Equal);
        assert_eq!(cmp("0:1.0", "1.0"), Equal);
        assert_eq!(cmp("1:0.1", "2.0"), Greater);
    }

    #[test]
    fn parts_are_split_at_first_colon_and_last_hyphen() {
        let v: DebVersion = "2:1.2-3-4ubuntu1".parse().expect("valid");
        assert_eq!(v.epoch(), 2);
        assert_eq!(v.upstream(), "1.2-3");
        assert_eq!(v.revision(), Some("4ubuntu1"));
        assert_eq!(v.to_string(), "2:1.2-3-4ubuntu1");
        let v: DebVersion = "1:2:3"
            .parse()
            .expect("dpkg accepts colons after the epoch");
        assert_eq!((v.epoch(), v.upstream(), v.revision()), (1, "2:3", None));
    }

    #[test]
    fn rejects_what_dpkg_rejects() {
        for bad in [
            "",
            ":1.0",
            "a:1.0",
            "-1:1.0",
            "1.0-",
            "-1",
            "1:",
            "1:-1",
            "1.0_1",
            "1.0-1:2",
            "1.0-1-",
            "1.0 1",
            "99999999999:1.0",
            "1.0-ü",
        ] {
            assert!(bad.parse::<DebVersion>().is_err(), "{bad:?} accepted");
        }
    }
}

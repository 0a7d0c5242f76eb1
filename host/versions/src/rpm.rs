//! RPM versions (`[epoch:]version[-release]`), ordered as rpm's `rpmvercmp` and
//! `labelCompare` do.
//!
//! `rpmvercmp`, as rpm documents it: each string is cut into segments, a segment being a
//! maximal run of ASCII digits or of ASCII letters; every other character only separates
//! segments, except `~` and `^`, which are segments of their own. Segments are compared in
//! order:
//! - `~` sorts before anything, even the end of the string (`1.0~rc1 < 1.0`);
//! - `^` sorts after the end of the string but before any other segment
//!   (`1.0 < 1.0^git1 < 1.0.1`);
//! - a numeric segment is newer than an alphabetic one; numeric segments compare by value
//!   (leading zeros ignored), alphabetic ones by ASCII (`A < Z < a`);
//! - when one string runs out first, the one with segments left is newer.
//!
//! Epochs compare numerically first (missing = 0), then versions, then releases. rpm treats a
//! *missing* release as matching any release when it resolves dependencies; a total order
//! cannot, so here a missing release sorts as an empty one, before any real release
//! (`1.0 < 1.0-1`). Advisories and databases always carry releases, so this only matters to
//! callers comparing bare versions, who should compare [`RpmVersion::version`]s with
//! [`rpmvercmp`] instead.

use std::cmp::Ordering;
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use crate::digits::cmp_digits;
use crate::{Ecosystem, Error, check_common};

/// An RPM epoch-version-release.
#[derive(Debug, Clone)]
pub struct RpmVersion {
    input: String,
    epoch: Option<u32>,
    version: Range<usize>,
    release: Option<Range<usize>>,
}

impl RpmVersion {
    /// The epoch, if the string has one (`None` compares as 0).
    pub fn epoch(&self) -> Option<u32> {
        self.epoch
    }

    /// The version (between the epoch's colon and the last hyphen).
    pub fn version(&self) -> &str {
        &self.input[self.version.clone()]
    }

    /// The release (after the last hyphen), if there is one.
    pub fn release(&self) -> Option<&str> {
        self.release.clone().map(|r| &self.input[r])
    }

    /// The string the version was parsed from.
    pub fn as_str(&self) -> &str {
        &self.input
    }
}

impl FromStr for RpmVersion {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Error> {
        let err = |reason: &str| Error::new(Ecosystem::Rpm, input, reason);
        check_common(Ecosystem::Rpm, input)?;
        if !input.is_ascii() {
            return Err(err("non-ASCII character"));
        }
        // rpm takes an epoch only from leading digits followed by a colon. Any other colon
        // would silently become a separator inside the version, which no real version has,
        // so it is refused rather than guessed at.
        let (epoch, rest_start) = match input.find(':') {
            Some(colon) => {
                let digits = &input[..colon];
                if digits.is_empty() {
                    return Err(err("epoch is empty"));
                }
                if !digits.bytes().all(|c| c.is_ascii_digit()) {
                    return Err(err("epoch is not a number"));
                }
                // Header epochs are 32-bit unsigned integers.
                let epoch = digits.parse::<u32>().map_err(|_| err("epoch is too big"))?;
                (Some(epoch), colon + 1)
            }
            None => (None, 0),
        };
        let rest = &input[rest_start..];
        if rest.contains(':') {
            return Err(err("colon outside the epoch"));
        }
        let (version, release) = match rest.rfind('-') {
            Some(hyphen) => {
                if hyphen + 1 == rest.len() {
                    return Err(err("release is empty"));
                }
                (
                    rest_start..rest_start + hyphen,
                    Some(rest_start + hyphen + 1..input.len()),
                )
            }
            None => (rest_start..input.len(), None),
        };
        if version.is_empty() {
            return Err(err("version is empty"));
        }
        Ok(RpmVersion {
            input: input.to_owned(),
            epoch,
            version,
            release,
        })
    }
}

impl fmt::Display for RpmVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.input)
    }
}

impl Ord for RpmVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .unwrap_or(0)
            .cmp(&other.epoch.unwrap_or(0))
            .then_with(|| rpmvercmp(self.version(), other.version()))
            .then_with(|| rpmvercmp(self.release().unwrap_or(""), other.release().unwrap_or("")))
    }
}

impl PartialOrd for RpmVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for RpmVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for RpmVersion {}

/// One segment of a version or release string.
#[derive(Debug, Clone, Copy)]
enum Segment<'a> {
    Tilde,
    Caret,
    Alpha(&'a [u8]),
    Numeric(&'a [u8]),
}

/// Cuts a string into segments, skipping separators.
struct Segments<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Segments<'a> {
    type Item = Segment<'a>;

    fn next(&mut self) -> Option<Segment<'a>> {
        let separator = |c: &u8| !c.is_ascii_alphanumeric() && *c != b'~' && *c != b'^';
        self.pos += self.s[self.pos..]
            .iter()
            .take_while(|c| separator(c))
            .count();
        let first = *self.s.get(self.pos)?;
        let start = self.pos;
        let run = |pred: fn(&u8) -> bool| self.s[start..].iter().take_while(|c| pred(c)).count();
        let (segment, len) = match first {
            b'~' => (Segment::Tilde, 1),
            b'^' => (Segment::Caret, 1),
            c if c.is_ascii_digit() => {
                let len = run(u8::is_ascii_digit);
                (Segment::Numeric(&self.s[start..start + len]), len)
            }
            _ => {
                let len = run(u8::is_ascii_alphabetic);
                (Segment::Alpha(&self.s[start..start + len]), len)
            }
        };
        self.pos += len;
        Some(segment)
    }
}

/// Rank of what stands at one position when the two strings differ there: `~`, then the
/// end of the string, then `^`, then an alphabetic and last a numeric segment.
fn rank(segment: Option<Segment<'_>>) -> u8 {
    match segment {
        Some(Segment::Tilde) => 0,
        None => 1,
        Some(Segment::Caret) => 2,
        Some(Segment::Alpha(_)) => 3,
        Some(Segment::Numeric(_)) => 4,
    }
}

/// rpm's version-string comparison (used for epochs, versions and releases alike).
pub fn rpmvercmp(a: &str, b: &str) -> Ordering {
    let mut a = Segments {
        s: a.as_bytes(),
        pos: 0,
    };
    let mut b = Segments {
        s: b.as_bytes(),
        pos: 0,
    };
    loop {
        let (sa, sb) = (a.next(), b.next());
        let ord = match (sa, sb) {
            (None, None) => return Ordering::Equal,
            (Some(Segment::Alpha(x)), Some(Segment::Alpha(y))) => x.cmp(y),
            (Some(Segment::Numeric(x)), Some(Segment::Numeric(y))) => cmp_digits(x, y),
            _ => rank(sa).cmp(&rank(sb)),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{RpmVersion, rpmvercmp};
    use std::cmp::Ordering::*;

    /// The behaviour of `~` and `^` as rpm's spec-file manual describes it (the oracle test
    /// checks these and thousands more against rpm itself).
    #[test]
    fn tilde_and_caret_as_documented() {
        assert_eq!(rpmvercmp("1.0~rc1", "1.0"), Less);
        assert_eq!(rpmvercmp("1.0~rc1", "1.0~rc2"), Less);
        assert_eq!(rpmvercmp("1.0^", "1.0"), Greater);
        assert_eq!(rpmvercmp("1.0^git1", "1.0.1"), Less);
        assert_eq!(rpmvercmp("1.0^git1~pre", "1.0^git1"), Less);
    }

    #[test]
    fn parts() {
        let v: RpmVersion = "3:1.2.3-4.el9".parse().expect("valid");
        assert_eq!(
            (v.epoch(), v.version(), v.release()),
            (Some(3), "1.2.3", Some("4.el9"))
        );
        let v: RpmVersion = "1.2".parse().expect("valid");
        assert_eq!((v.epoch(), v.version(), v.release()), (None, "1.2", None));
        for bad in [
            "",
            ":1",
            "x:1-1",
            "1:",
            "1-",
            "-1",
            "1:2:3-4",
            "1.0-1 ",
            "1.ü-1",
            "4294967296:1-1",
        ] {
            assert!(bad.parse::<RpmVersion>().is_err(), "{bad:?} accepted");
        }
    }
}

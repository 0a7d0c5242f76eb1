//! Alpine package versions, ordered as apk-tools 3 (`apk version -t`) orders them.
//!
//! Syntax, as apk-tools documents it (apk-package(5)):
//! `number{.number}...{letter}{_suffix{number}}...{~hash}{-r#}`, where `letter` is one of
//! `a`–`z`, `suffix` one of `alpha beta pre rc` (pre-releases) or `cvs svn git hg p`
//! (post-releases) and `hash` lower-case hexadecimal. Anything else is invalid.
//!
//! Ordering: the two versions are walked component by component. Equal kinds compare by
//! value: numbers numerically (the first one and suffix and revision numbers ignoring
//! leading zeros; a later `.`-component that starts with `0` on either side compares as a
//! string, so `1.05 < 1.5` and `1.0 < 1.00`), letters and hashes by ASCII, suffixes in
//! the list's order. Where the kinds differ (or one version ends), a pre-release suffix is
//! always older; otherwise the earlier kind in "number, letter, suffix, suffix number,
//! hash, revision, end" is newer. Hence `1.0_rc1 < 1.0 < 1.0-r0 < 1.0_p1 < 1.0a < 1.0.1`.
//!
//! apk-tools 2 (Alpine up to 3.22) orders the same way except for `.`-components with
//! leading zeros that are equal up to their zeros (it says `1.0 > 1.00` and
//! `8.2.0015 > 8.2.002`), numbers over 18 digits (it gives up and calls them equal) and
//! `~hash` (it stops comparing there). These are absent from real Alpine versions and
//! secdb entries, so one ordering serves both; the tests check the 2.14 test suite too.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::digits::cmp_digits;
use crate::{Ecosystem, Error, check_common};

/// An Alpine (apk) package version.
#[derive(Debug, Clone)]
pub struct ApkVersion {
    input: String,
    tokens: Vec<Token>,
}

impl ApkVersion {
    /// The string the version was parsed from.
    pub fn as_str(&self) -> &str {
        &self.input
    }

    /// The `-rN` package release number, if present, as written.
    pub fn revision(&self) -> Option<&str> {
        self.tokens.iter().find_map(|t| match *t {
            Token::Revision(s, e) => Some(&self.input[s..e]),
            _ => None,
        })
    }
}

/// Suffixes in their sorting order; the first four are pre-releases.
const SUFFIXES: [&str; 9] = ["alpha", "beta", "pre", "rc", "cvs", "svn", "git", "hg", "p"];
const PRE_RELEASE_SUFFIXES: usize = 4;

/// One component; positions are byte ranges in the input.
#[derive(Debug, Clone, Copy)]
enum Token {
    /// A digit run: the first component, or one after a `.`.
    Number {
        start: usize,
        end: usize,
        first: bool,
    },
    Letter(u8),
    /// Index into [`SUFFIXES`].
    Suffix(usize),
    SuffixNumber(usize, usize),
    Hash(usize, usize),
    Revision(usize, usize),
}

impl FromStr for ApkVersion {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Error> {
        let err = |reason: String| Error::new(Ecosystem::Apk, input, reason);
        check_common(Ecosystem::Apk, input)?;
        let s = input.as_bytes();
        let run = |start: usize, pred: fn(&u8) -> bool| {
            start + s[start..].iter().take_while(|c| pred(c)).count()
        };
        let mut tokens = Vec::new();

        let end = run(0, u8::is_ascii_digit);
        if end == 0 {
            return Err(err("must start with a digit".into()));
        }
        tokens.push(Token::Number {
            start: 0,
            end,
            first: true,
        });
        let mut pos = end;
        while s.get(pos) == Some(&b'.') {
            let end = run(pos + 1, u8::is_ascii_digit);
            if end == pos + 1 {
                return Err(err(format!("no number after '.' at byte {pos}")));
            }
            tokens.push(Token::Number {
                start: pos + 1,
                end,
                first: false,
            });
            pos = end;
        }
        if let Some(&c) = s.get(pos).filter(|c| c.is_ascii_lowercase()) {
            tokens.push(Token::Letter(c));
            pos += 1;
        }
        while s.get(pos) == Some(&b'_') {
            let name_end = run(pos + 1, u8::is_ascii_lowercase);
            let name = &input[pos + 1..name_end];
            let index = SUFFIXES
                .iter()
                .position(|&known| known == name)
                .ok_or_else(|| err(format!("unknown suffix {name:?} at byte {pos}")))?;
            tokens.push(Token::Suffix(index));
            let end = run(name_end, u8::is_ascii_digit);
            if end > name_end {
                tokens.push(Token::SuffixNumber(name_end, end));
            }
            pos = end;
        }
        if s.get(pos) == Some(&b'~') {
            let end = run(pos + 1, |c| c.is_ascii_digit() || (b'a'..=b'f').contains(c));
            if end == pos + 1 {
                return Err(err(format!("no hexadecimal hash after '~' at byte {pos}")));
            }
            tokens.push(Token::Hash(pos + 1, end));
            pos = end;
        }
        if s.get(pos) == Some(&b'-') {
            if s.get(pos + 1) != Some(&b'r') {
                return Err(err(format!("'-' not followed by 'r' at byte {pos}")));
            }
            let end = run(pos + 2, u8::is_ascii_digit);
            if end == pos + 2 {
                return Err(err(format!("no number after '-r' at byte {pos}")));
            }
            tokens.push(Token::Revision(pos + 2, end));
            pos = end;
        }
        if pos != s.len() {
            return Err(err(format!("unexpected character at byte {pos}")));
        }
        Ok(ApkVersion {
            input: input.to_owned(),
            tokens,
        })
    }
}

impl fmt::Display for ApkVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.input)
    }
}

/// Where a component (or the end, `None`) sorts against a component of another kind.
fn class(token: Option<Token>) -> u8 {
    match token {
        Some(Token::Suffix(i)) if i < PRE_RELEASE_SUFFIXES => 0,
        None => 1,
        Some(Token::Revision(..)) => 2,
        Some(Token::Hash(..)) => 3,
        Some(Token::SuffixNumber(..)) => 4,
        Some(Token::Suffix(_)) => 5,
        Some(Token::Letter(_)) => 6,
        Some(Token::Number { .. }) => 7,
    }
}

impl Ord for ApkVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.input.as_bytes(), other.input.as_bytes());
        let mut i = 0;
        loop {
            let (ta, tb) = (self.tokens.get(i).copied(), other.tokens.get(i).copied());
            let ord = match (ta, tb) {
                (None, None) => return Ordering::Equal,
                (
                    Some(Token::Number {
                        start: s1,
                        end: e1,
                        first,
                    }),
                    Some(Token::Number {
                        start: s2, end: e2, ..
                    }),
                ) => {
                    let (x, y) = (&a[s1..e1], &b[s2..e2]);
                    if !first && (x[0] == b'0' || y[0] == b'0') {
                        x.cmp(y)
                    } else {
                        cmp_digits(x, y)
                    }
                }
                (Some(Token::Letter(x)), Some(Token::Letter(y))) => x.cmp(&y),
                (Some(Token::Suffix(x)), Some(Token::Suffix(y))) => x.cmp(&y),
                (Some(Token::SuffixNumber(s1, e1)), Some(Token::SuffixNumber(s2, e2)))
                | (Some(Token::Revision(s1, e1)), Some(Token::Revision(s2, e2))) => {
                    cmp_digits(&a[s1..e1], &b[s2..e2])
                }
                (Some(Token::Hash(s1, e1)), Some(Token::Hash(s2, e2))) => a[s1..e1].cmp(&b[s2..e2]),
                _ => class(ta).cmp(&class(tb)),
            };
            if ord != Ordering::Equal {
                return ord;
            }
            i += 1;
        }
    }
}

impl PartialOrd for ApkVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for ApkVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for ApkVersion {}

#[cfg(test)]
mod tests {
    use super::ApkVersion;

    /// Valid and invalid forms listed in apk-tools' own test data (test/unit/version.data,
    /// apk-tools commit 90b974fd, GPL-2.0-only; test data only).
    #[test]
    fn validity_as_apk_tools_tests_it() {
        for good in [
            "1.2",
            "0.1_pre2",
            "0.1_pre2~1234abcd",
            "0.1_p1_pre2",
            "0.1_alpha1_pre2",
            "0.1_git20240101_pre1",
        ] {
            assert!(good.parse::<ApkVersion>().is_ok(), "{good:?} rejected");
        }
        for bad in [
            "",
            "0.1bc",
            "0.1bc1",
            "0.1a1",
            "0.1a.1",
            "0.1_pre2~",
            "0.1_pre2~1234xbcd",
            "0.1_pre2~1234abcd_pre1",
            "0.1_pre2-r1~1234xbcd",
            "0.1_foobar",
            "0.1_foobar1",
            "0.1-pre1.1",
            "0.1-r",
            "0.1-r2_pre1",
            "0.1-r2_p3_pre1",
            "0.1-r2-r3",
            "0.1-r2.1",
            ".1",
            "a",
            "_pre1",
            "-r1",
            "0.1_",
            "0.1_-r0",
            "0.1__alpha",
            "0.1_1_alpha",
        ] {
            assert!(bad.parse::<ApkVersion>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn revision_accessor() {
        let v: ApkVersion = "1.2.3_p1-r10".parse().expect("valid");
        assert_eq!(v.revision(), Some("10"));
        assert_eq!(v.to_string(), "1.2.3_p1-r10");
    }
}

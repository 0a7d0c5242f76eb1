//! Alpine package versions, ordered as apk-tools orders them (`apk version -t`).
//!
//! # Which apk-tools
//!
//! Two apk-tools are in use and they disagree at the edges. apk-tools 2 is the `apk` of every
//! Alpine release up to 3.22: it wrote every installed database and read every secdb feed
//! of those releases. apk-tools 3 (Alpine 3.23 and later) is stricter about syntax and
//! changed a few corner cases. This module orders **exactly as apk-tools 2.14 does**, for
//! every string, with one extension from apk-tools 3 described below; `syntax()` says which
//! of the two accepts a version.
//!
//! apk-tools 2 reads a version as a sequence of tokens: a number, then any of `.number`, a
//! lower-case letter (which may be followed by another number), `_suffix` (`alpha beta pre
//! rc` are pre-releases, `cvs svn git hg p` post-releases, matched by prefix) with an
//! optional number, and `-r` with an optional number. So it accepts, besides the documented
//! `number{.number}...{letter}{_suffix{number}}...{-r#}` (apk-package(5)), real versions
//! such as `3.3.3p1-r3` (libretls), `1.9.5p2-r0` (sudo) and `1.18.-r2`, which apk-tools 3
//! rejects. What it cannot read (`2021-03-27-r5`: a `-` not followed by `r`; an unknown
//! suffix; a number of 18 digits or more) it calls invalid (`apk version -c`) but still
//! orders: comparison stops at the first unreadable token, and an unreadable rest sorts
//! above any other kind of rest (`2021-03-27-r5 > 2021.03.27-r5`) while two unreadable
//! rests are equal (`2021-03-27-r5 = 2021-03-28-r0`). [`ApkVersion`] does the same and
//! says so ([`Syntax::Invalid`]), so that callers can report that the order is apk-tools'
//! fallback rather than a real comparison.
//!
//! Tokens are compared in turn: equal kinds by value (numbers numerically; a `.`-component
//! starting with `0` first by its count of leading zeros, fewer is newer, then by the rest;
//! letters by ASCII; suffixes in the list's order), different kinds by kind: a pre-release
//! suffix is always older; otherwise the earlier kind in "unreadable rest, `.`-number,
//! number, letter, post-release suffix, suffix number, revision, end" is newer. Hence
//! `1.0_rc1 < 1.0 < 1.0-r0 < 1.0_p1 < 1.0a < 1.0.1`.
//!
//! # apk-tools 3
//!
//! On every version apk-tools 3 accepts, it orders as apk-tools 2 except in three corners:
//! - `~hash` (`1.0~1234abcd`), new in apk-tools 3, which apk-tools 2 calls invalid. A
//!   version that only apk-tools 3 accepts is read as apk-tools 3 reads it: the hash sorts
//!   after suffix numbers and before the revision, hashes compare as strings; numbers of
//!   18 digits or more compare numerically. This is the one place where this module
//!   departs from apk-tools 2, for versions only apk-tools 3 can produce.
//! - `.`-components with leading zeros that differ only in their length: apk-tools 3
//!   compares such components as strings, so it says `1.0 < 1.00` and `8.2.0015 < 8.2.002`
//!   where apk-tools 2 says `>`. This module follows apk-tools 2. No real Alpine version
//!   or secdb entry in the test data pairs such components.
//! - Invalid versions: apk-tools 3 refuses to compare them (`apk version -t` fails).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::digits::cmp_digits;
use crate::{Ecosystem, Error, check_common};

/// An Alpine (apk) package version: any string without whitespace or control characters,
/// like apk-tools, which orders even versions it calls invalid. [`ApkVersion::syntax`]
/// says whether apk-tools accepts it.
#[derive(Debug, Clone)]
pub struct ApkVersion {
    input: String,
    tokens: Vec<Token>,
    /// How the token sequence ends: the end of the input, or a rest apk-tools cannot read.
    end: End,
    syntax: Syntax,
    /// Where and why apk-tools 2 stops reading the version, when it does.
    stop: Option<(usize, &'static str)>,
}

/// What the two apk-tools say of a version's syntax (`apk version -c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Syntax {
    /// apk-tools 2 and 3 both accept it.
    Valid,
    /// apk-tools 2 accepts it (Alpine up to 3.22 has such versions: `3.3.3p1-r3`,
    /// `1.18.-r2`), apk-tools 3 does not. Ordered exactly as apk-tools 2 orders it.
    Apk2Only,
    /// apk-tools 3 accepts it (`~hash`, numbers of 18 digits or more), apk-tools 2 does not.
    /// Ordered as apk-tools 3 reads those parts (see the module documentation).
    Apk3Only,
    /// Neither accepts it. Ordered by apk-tools 2's fallback for invalid versions: the
    /// comparison stops where apk-tools stops reading ([`ApkVersion::invalid_reason`]).
    Invalid,
}

impl ApkVersion {
    /// The string the version was parsed from.
    pub fn as_str(&self) -> &str {
        &self.input
    }

    /// The `-rN` package release number, if present, as written.
    pub fn revision(&self) -> Option<&str> {
        self.tokens.iter().find_map(|t| match (t.kind, t.value) {
            (Kind::Revision, Value::Digits(s, e)) => Some(&self.input[s..e]),
            _ => None,
        })
    }

    /// Whether apk-tools 2 and 3 accept the version.
    pub fn syntax(&self) -> Syntax {
        self.syntax
    }

    /// For a version no apk-tools accepts ([`Syntax::Invalid`]): where and why apk-tools 2
    /// stops reading it, which is where the comparison stops too.
    pub fn invalid_reason(&self) -> Option<String> {
        if self.syntax != Syntax::Invalid {
            return None;
        }
        self.stop.map(|(at, why)| format!("{why} at byte {at}"))
    }
}

/// Suffixes in their sorting order: the first four are pre-releases, valued -4 to -1, the
/// others post-releases, valued 0 to 4 (apk-tools 2 compares these values, and uses -1 for
/// an unknown suffix too).
const SUFFIXES: [&str; 9] = ["alpha", "beta", "pre", "rc", "cvs", "svn", "git", "hg", "p"];
const PRE_RELEASE_SUFFIXES: i64 = 4;

/// apk-tools 2 reads at most 17 digits into one number (it stores numbers in 64 bits); a
/// longer run makes the version invalid.
const MAX_DIGITS_APK2: usize = 17;

/// Token kinds, named after where they occur.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The first number, and a number right after a letter or after the leading zeros of a
    /// `.`-component.
    Number,
    /// What follows a `.`: a run of leading zeros (valued minus their count less one), or
    /// a number not starting with `0`.
    DotNumber,
    Letter,
    Suffix,
    SuffixNumber,
    /// apk-tools 3's `~hash` (hexadecimal), read only in versions apk-tools 3 accepts.
    Hash,
    Revision,
}

impl Kind {
    /// apk-tools 2's order of kinds, used to decide which may follow which: a kind may not
    /// follow a later one, except a `.`-number after a number, a suffix after a suffix
    /// number and a number after a letter. `Hash` sits where apk-tools 3 puts it.
    fn grammar_rank(self) -> u8 {
        match self {
            Kind::DotNumber => 0,
            Kind::Number => 1,
            Kind::Letter => 2,
            Kind::Suffix => 3,
            Kind::SuffixNumber => 4,
            Kind::Hash => 5,
            Kind::Revision => 6,
        }
    }
}

/// A token's value. Numbers keep their digits (compared without a width limit); the rest,
/// and the markers apk-tools 2 uses (leading zeros, unreadable numbers and suffixes), are
/// small integers.
#[derive(Debug, Clone, Copy)]
enum Value {
    Int(i64),
    /// Byte range of a run of digits (possibly empty, which is 0).
    Digits(usize, usize),
    /// Byte range of a hexadecimal hash.
    Hex(usize, usize),
}

#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Kind,
    value: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The whole input was read.
    Complete,
    /// apk-tools stops reading here: the rest of the input is ignored.
    Unreadable,
}

/// The tokens of `s` as apk-tools 2 reads them. With `apk3`, also `~hash` and numbers of
/// any length, as apk-tools 3 reads them (only used for versions apk-tools 3 accepts).
fn tokenize(s: &[u8], apk3: bool) -> (Vec<Token>, End, Option<(usize, &'static str)>) {
    let mut tokens = Vec::new();
    let stop = |tokens: Vec<Token>, at: usize, why: &'static str| {
        (tokens, End::Unreadable, Some((at, why)))
    };
    let digits_end =
        |from: usize| from + s[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut kind = Kind::Number;
    let mut pos = 0;
    loop {
        // A separator at the very end (`1.`, `1_`, `1-r`) announces a token with nothing
        // in it: apk-tools 2 gives it the value 0 and ends there.
        if pos == s.len() {
            tokens.push(Token {
                kind,
                value: Value::Int(0),
            });
            return (tokens, End::Complete, None);
        }
        match kind {
            Kind::DotNumber if s[pos] == b'0' => {
                // Leading zeros: all but the last become a marker, so that `1.05 < 1.5` and
                // `1.001 < 1.01`; the rest is then read as a plain number.
                let zeros = s[pos + 1..].iter().take_while(|&&c| c == b'0').count();
                tokens.push(Token {
                    kind,
                    value: Value::Int(-(zeros as i64)),
                });
                pos += zeros;
                kind = Kind::Number;
                continue;
            }
            Kind::Number | Kind::DotNumber | Kind::SuffixNumber | Kind::Revision => {
                let end = digits_end(pos);
                if end - pos > MAX_DIGITS_APK2 && !apk3 {
                    tokens.push(Token {
                        kind,
                        value: Value::Int(-1),
                    });
                    return stop(tokens, pos, "number of 18 digits or more");
                }
                tokens.push(Token {
                    kind,
                    value: Value::Digits(pos, end),
                });
                pos = end;
            }
            Kind::Letter => {
                tokens.push(Token {
                    kind,
                    value: Value::Int(i64::from(s[pos])),
                });
                pos += 1;
            }
            Kind::Suffix => {
                // apk-tools 2 matches suffix names as prefixes, pre-releases first: `_pre1`
                // is `pre` then 1, `_p1` is `p` then 1, `_patch` is `p` then garbage.
                let Some(index) = SUFFIXES
                    .iter()
                    .position(|name| s[pos..].starts_with(name.as_bytes()))
                else {
                    tokens.push(Token {
                        kind,
                        value: Value::Int(-1),
                    });
                    return stop(tokens, pos, "unknown suffix");
                };
                tokens.push(Token {
                    kind,
                    value: Value::Int(index as i64 - PRE_RELEASE_SUFFIXES),
                });
                pos += SUFFIXES[index].len();
            }
            Kind::Hash => {
                let end = pos
                    + s[pos..]
                        .iter()
                        .take_while(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
                        .count();
                tokens.push(Token {
                    kind,
                    value: Value::Hex(pos, end),
                });
                pos = end;
            }
        }
        if pos == s.len() {
            return (tokens, End::Complete, None);
        }
        // What comes next, from its first character and the kind just read.
        let c = s[pos];
        let (next, skip) = match (kind, c) {
            (Kind::Number | Kind::DotNumber, b'a'..=b'z') => (Kind::Letter, 0),
            (Kind::Letter, b'0'..=b'9') => (Kind::Number, 0),
            (Kind::Suffix, b'0'..=b'9') => (Kind::SuffixNumber, 0),
            (_, b'.') => (Kind::DotNumber, 1),
            (_, b'_') => (Kind::Suffix, 1),
            (_, b'-') if s.get(pos + 1) == Some(&b'r') => (Kind::Revision, 2),
            (_, b'~') if apk3 => (Kind::Hash, 1),
            (_, b'-') => return stop(tokens, pos, "'-' not followed by 'r'"),
            _ => return stop(tokens, pos, "unexpected character"),
        };
        let allowed = next.grammar_rank() >= kind.grammar_rank()
            || matches!(
                (kind, next),
                (Kind::Number, Kind::DotNumber)
                    | (Kind::SuffixNumber, Kind::Suffix)
                    | (Kind::Letter, Kind::Number)
            );
        if !allowed {
            return stop(tokens, pos, "unexpected character");
        }
        kind = next;
        pos += skip;
    }
}

/// apk-tools 3's syntax: `number{.number}...{letter}{_suffix{number}}...{~hash}{-r#}`.
fn apk3_accepts(s: &[u8]) -> bool {
    let run = |start: usize, pred: fn(&u8) -> bool| {
        start + s[start..].iter().take_while(|c| pred(c)).count()
    };
    let mut pos = run(0, u8::is_ascii_digit);
    if pos == 0 {
        return false;
    }
    while s.get(pos) == Some(&b'.') {
        let end = run(pos + 1, u8::is_ascii_digit);
        if end == pos + 1 {
            return false;
        }
        pos = end;
    }
    if s.get(pos).is_some_and(u8::is_ascii_lowercase) {
        pos += 1;
    }
    while s.get(pos) == Some(&b'_') {
        let name_end = run(pos + 1, u8::is_ascii_lowercase);
        if !SUFFIXES
            .iter()
            .any(|n| n.as_bytes() == &s[pos + 1..name_end])
        {
            return false;
        }
        pos = run(name_end, u8::is_ascii_digit);
    }
    if s.get(pos) == Some(&b'~') {
        let end = run(pos + 1, |c| c.is_ascii_digit() || (b'a'..=b'f').contains(c));
        if end == pos + 1 {
            return false;
        }
        pos = end;
    }
    if s.get(pos) == Some(&b'-') {
        if s.get(pos + 1) != Some(&b'r') {
            return false;
        }
        let end = run(pos + 2, u8::is_ascii_digit);
        if end == pos + 2 {
            return false;
        }
        pos = end;
    }
    pos == s.len()
}

impl FromStr for ApkVersion {
    type Err = Error;

    /// Fails only for what no package manager would write (empty, longer than
    /// [`crate::MAX_LEN`], whitespace or control characters): apk-tools orders any other
    /// string, and so does this type.
    fn from_str(input: &str) -> Result<Self, Error> {
        check_common(Ecosystem::Apk, input)?;
        let s = input.as_bytes();
        let (tokens, end, stop) = tokenize(s, false);
        let apk2 = end == End::Complete;
        let apk3 = apk3_accepts(s);
        let (syntax, tokens, end) = match (apk2, apk3) {
            (true, true) => (Syntax::Valid, tokens, end),
            (true, false) => (Syntax::Apk2Only, tokens, end),
            (false, true) => {
                let (tokens, end, _) = tokenize(s, true);
                (Syntax::Apk3Only, tokens, end)
            }
            (false, false) => (Syntax::Invalid, tokens, end),
        };
        Ok(ApkVersion {
            input: input.to_owned(),
            tokens,
            end,
            syntax,
            stop,
        })
    }
}

impl fmt::Display for ApkVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.input)
    }
}

/// Where a token (or the end, `None`) sorts against one of another kind; greater is newer.
fn rank(token: Option<&Token>, end: End) -> u8 {
    match token {
        None if end == End::Complete => 1,
        None => 9,
        Some(t) => match t.kind {
            Kind::Suffix if matches!(t.value, Value::Int(v) if v < 0) => 0,
            Kind::Revision => 2,
            Kind::Hash => 3,
            Kind::SuffixNumber => 4,
            Kind::Suffix => 5,
            Kind::Letter => 6,
            Kind::Number => 7,
            Kind::DotNumber => 8,
        },
    }
}

/// Compares two values of tokens of the same kind. Integers and digit runs meet only in
/// number kinds, where the integers are markers at or below zero.
fn cmp_value(x: Value, a: &[u8], y: Value, b: &[u8]) -> Ordering {
    let digits = |v: i64| v.to_string().into_bytes();
    match (x, y) {
        (Value::Int(x), Value::Int(y)) => x.cmp(&y),
        (Value::Digits(s1, e1), Value::Digits(s2, e2)) => cmp_digits(&a[s1..e1], &b[s2..e2]),
        (Value::Int(x), Value::Digits(..)) if x < 0 => Ordering::Less,
        (Value::Int(x), Value::Digits(s, e)) => cmp_digits(&digits(x), &b[s..e]),
        (Value::Digits(..), Value::Int(_)) => cmp_value(y, b, x, a).reverse(),
        (Value::Hex(s1, e1), Value::Hex(s2, e2)) => a[s1..e1].cmp(&b[s2..e2]),
        // A hash is only ever compared with a hash; keep the order total regardless.
        (Value::Hex(..), _) => Ordering::Greater,
        (_, Value::Hex(..)) => Ordering::Less,
    }
}

impl Ord for ApkVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.input.as_bytes(), other.input.as_bytes());
        // Ends: both lists are finite, and a pair of missing tokens always returns.
        let mut i = 0;
        loop {
            let (x, y) = (self.tokens.get(i), other.tokens.get(i));
            match (x, y) {
                (Some(x), Some(y)) if x.kind == y.kind => {
                    let ord = cmp_value(x.value, a, y.value, b);
                    if ord != Ordering::Equal {
                        return ord;
                    }
                }
                // Both ended the same way: whatever an unreadable rest holds is ignored.
                (None, None) if self.end == other.end => return Ordering::Equal,
                _ => return rank(x, self.end).cmp(&rank(y, other.end)),
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
    use super::{ApkVersion, Syntax};

    fn syntax(v: &str) -> Syntax {
        v.parse::<ApkVersion>().expect("orderable").syntax()
    }

    /// Valid and invalid forms listed in apk-tools 3's own test data (test/unit/version.data,
    /// apk-tools commit 90b974fd, GPL-2.0-only; test data only).
    #[test]
    fn apk3_validity_as_apk_tools_tests_it() {
        for good in [
            "1.2",
            "0.1_pre2",
            "0.1_pre2~1234abcd",
            "0.1_p1_pre2",
            "0.1_alpha1_pre2",
            "0.1_git20240101_pre1",
        ] {
            assert!(
                matches!(syntax(good), Syntax::Valid | Syntax::Apk3Only),
                "{good:?} rejected"
            );
        }
        for bad in [
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
            assert!(
                matches!(syntax(bad), Syntax::Apk2Only | Syntax::Invalid),
                "{bad:?} accepted"
            );
        }
    }

    /// What apk-tools 2.14.4 (Alpine 3.20) says with `apk version -c`.
    #[test]
    fn apk2_validity() {
        for (v, expected) in [
            ("3.3.3p1-r3", Syntax::Apk2Only),
            ("1.9.5p2-r0", Syntax::Apk2Only),
            ("1.18.-r2", Syntax::Apk2Only),
            ("0.8.21.r2", Syntax::Apk2Only),
            ("2.15.r-r1", Syntax::Apk2Only),
            ("0.1a1b", Syntax::Apk2Only),
            ("0.1-r2-r3", Syntax::Apk2Only),
            ("x", Syntax::Apk2Only),
            ("2021-03-27-r5", Syntax::Invalid),
            ("2.7.16-33", Syntax::Invalid),
            ("1_foo", Syntax::Invalid),
            ("1.0_alphabet", Syntax::Invalid),
            ("1.0-r1.2", Syntax::Invalid),
            ("0.1_pre2-r1~12", Syntax::Invalid),
            ("123456789012345678", Syntax::Apk3Only),
            ("12345678901234567", Syntax::Valid),
            ("1.0~ab", Syntax::Apk3Only),
        ] {
            assert_eq!(syntax(v), expected, "{v}");
        }
        let v: ApkVersion = "2021-03-27-r5".parse().expect("orderable");
        assert_eq!(
            v.invalid_reason().as_deref(),
            Some("'-' not followed by 'r' at byte 4")
        );
        assert_eq!(
            "1.0".parse::<ApkVersion>().map(|v| v.invalid_reason()),
            Ok(None)
        );
    }

    /// Orders `apk version -t` of apk-tools 2.14.4 gives, for versions it calls invalid.
    #[test]
    fn apk2_fallback_order() {
        for (a, op, b) in [
            ("2021-03-27-r5", "=", "2021-03-28-r0"),
            ("2021-03-27-r5", ">", "2021.03.27-r5"),
            ("1_foo", "<", "1"),
            ("1_foo", ">", "1_rc"),
            ("1_foo", ">", "1_alpha"),
            ("1.2-foo", "=", "1.2+bar"),
            ("1.0.2", "<", "1..2"),
            ("1.0", ">", "1.00"),
        ] {
            let x: ApkVersion = a.parse().expect("orderable");
            let y: ApkVersion = b.parse().expect("orderable");
            let ours = match x.cmp(&y) {
                std::cmp::Ordering::Less => "<",
                std::cmp::Ordering::Equal => "=",
                std::cmp::Ordering::Greater => ">",
            };
            assert_eq!(ours, op, "{a} {op} {b}");
        }
    }

    #[test]
    fn only_unprintable_input_is_refused() {
        for bad in ["", "1.0 ", "1\n0"] {
            assert!(bad.parse::<ApkVersion>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn revision_accessor() {
        let v: ApkVersion = "1.2.3_p1-r10".parse().expect("valid");
        assert_eq!(v.revision(), Some("10"));
        assert_eq!(v.to_string(), "1.2.3_p1-r10");
    }
}

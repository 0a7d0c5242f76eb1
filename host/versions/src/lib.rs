//! Version orderings for vulnerability matching.
//!
//! Whether an installed package is affected is decided by comparing its version with the
//! advisory's "fixed" version, so an ordering that differs from the distribution's own tool
//! either misses vulnerabilities or invents them. Each module implements one ecosystem's
//! ordering exactly as its reference tool does (the integration tests run those tools):
//!
//! | module | ordering of | reference |
//! |---|---|---|
//! | [`deb`] | Debian and Ubuntu packages | `dpkg --compare-versions` |
//! | [`rpm`] | RPM packages (`[E:]V-R`) | rpm's `rpmvercmp` / `labelCompare` |
//! | [`apk`] | Alpine packages | apk-tools 2.14 (`apk version -t`; Alpine up to 3.22), with apk-tools 3's `~hash` |
//! | [`semver`] | crates.io, npm (SemVer 2.0 precedence) and Go modules | the `semver` crate, npm's `semver`, Go's `x/mod/semver` |
//! | [`pep440`] | Python packages | `packaging.version` |
//!
//! A string the reference tool calls invalid is an [`Error`], except where the tool itself
//! orders invalid versions with a fallback of its own (apk-tools does): then it parses,
//! orders as the tool orders it, and [`Ecosystem::validate`] says so ([`Validity::Fallback`])
//! so that the caller can tell the user.
//!
//! Every version type keeps the string it was parsed from: `Display` prints it unchanged, and
//! equality is the ecosystem's equality (`1.0` and `1.0-0` are the same Debian version).
//! The types deliberately do not implement `Hash`: equal versions can have different spellings.
#![forbid(unsafe_code)]

use std::cmp::Ordering;
use std::fmt;

pub mod apk;
pub mod deb;
pub mod pep440;
pub mod rpm;
pub mod semver;

mod digits;

/// Longest version string accepted. Real versions are far shorter (the longest seen in the
/// Debian, AlmaLinux, Alpine and PyPI feeds is under 100 bytes); the limit only stops hostile
/// feed entries from being carried around.
pub const MAX_LEN: usize = 1024;

/// A version ordering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ecosystem {
    /// dpkg (Debian, Ubuntu): [`deb::DebVersion`].
    Deb,
    /// RPM (Red Hat, AlmaLinux, SUSE, Mariner): [`rpm::RpmVersion`].
    Rpm,
    /// apk (Alpine, Wolfi): [`apk::ApkVersion`].
    Apk,
    /// SemVer 2.0 precedence (crates.io, npm): [`semver::SemVer`].
    Semver,
    /// Go modules: [`semver::GoVersion`].
    Go,
    /// PEP 440 (PyPI): [`pep440::Pep440Version`].
    Pep440,
}

impl Ecosystem {
    /// Every ecosystem, in declaration order.
    pub const ALL: [Ecosystem; 6] = [
        Ecosystem::Deb,
        Ecosystem::Rpm,
        Ecosystem::Apk,
        Ecosystem::Semver,
        Ecosystem::Go,
        Ecosystem::Pep440,
    ];

    /// Parses `input` as a version of this ecosystem, only to check it: `Err` when it
    /// cannot be ordered, [`Validity::Fallback`] when it is ordered only by the reference
    /// tool's fallback for invalid versions.
    pub fn validate(self, input: &str) -> Result<Validity, Error> {
        fn valid<T>(r: Result<T, Error>) -> Result<Validity, Error> {
            r.map(|_| Validity::Valid)
        }
        match self {
            Ecosystem::Deb => valid(input.parse::<deb::DebVersion>()),
            Ecosystem::Rpm => valid(input.parse::<rpm::RpmVersion>()),
            Ecosystem::Apk => {
                let v = input.parse::<apk::ApkVersion>()?;
                Ok(match v.invalid_reason() {
                    None => Validity::Valid,
                    Some(why) => Validity::Fallback(Error::new(
                        Ecosystem::Apk,
                        input,
                        format!(
                            "{why}; ordered as apk-tools orders invalid versions: what follows is not compared"
                        ),
                    )),
                })
            }
            Ecosystem::Semver => valid(input.parse::<semver::SemVer>()),
            Ecosystem::Go => valid(input.parse::<semver::GoVersion>()),
            Ecosystem::Pep440 => valid(input.parse::<pep440::Pep440Version>()),
        }
    }
}

impl fmt::Display for Ecosystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ecosystem::Deb => "Debian",
            Ecosystem::Rpm => "RPM",
            Ecosystem::Apk => "apk",
            Ecosystem::Semver => "SemVer",
            Ecosystem::Go => "Go module",
            Ecosystem::Pep440 => "PEP 440",
        })
    }
}

/// What [`Ecosystem::validate`] says of a version that can be ordered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validity {
    /// Valid for the ecosystem's reference tool.
    Valid,
    /// Invalid for the reference tool, which still orders it with a fallback of its own,
    /// and so does this crate (only apk-tools does this: see [`apk`]). The error says what
    /// is wrong and what was done; callers should pass it on, because the order is the
    /// tool's guess at a malformed version.
    Fallback(Error),
}

/// Compares two version strings of one ecosystem.
///
/// Fails when either string is not a version of that ecosystem: guessing an order for a
/// malformed version would silently turn into a wrong match. The exception is a version
/// the reference tool itself orders although it calls it invalid (apk-tools): that is
/// ordered as the tool orders it ([`Validity::Fallback`]).
pub fn compare(ecosystem: Ecosystem, a: &str, b: &str) -> Result<Ordering, Error> {
    fn cmp<T: std::str::FromStr<Err = Error> + Ord>(a: &str, b: &str) -> Result<Ordering, Error> {
        Ok(a.parse::<T>()?.cmp(&b.parse::<T>()?))
    }
    match ecosystem {
        Ecosystem::Deb => cmp::<deb::DebVersion>(a, b),
        Ecosystem::Rpm => cmp::<rpm::RpmVersion>(a, b),
        Ecosystem::Apk => cmp::<apk::ApkVersion>(a, b),
        Ecosystem::Semver => cmp::<semver::SemVer>(a, b),
        Ecosystem::Go => cmp::<semver::GoVersion>(a, b),
        Ecosystem::Pep440 => cmp::<pep440::Pep440Version>(a, b),
    }
}

/// A string that is not a valid version of the ecosystem it was parsed for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {ecosystem} version {input:?}: {reason}")]
pub struct Error {
    ecosystem: Ecosystem,
    input: String,
    reason: String,
}

impl Error {
    /// Longest part of the input repeated in the message: enough to find the feed entry,
    /// short enough that a hostile megabyte-long "version" does not flood the logs.
    const SHOWN: usize = 128;

    pub(crate) fn new(ecosystem: Ecosystem, input: &str, reason: impl Into<String>) -> Self {
        let input = if input.len() > Self::SHOWN {
            let mut end = Self::SHOWN;
            while !input.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}… ({} bytes)", &input[..end], input.len())
        } else {
            input.to_owned()
        };
        Error {
            ecosystem,
            input,
            reason: reason.into(),
        }
    }

    /// The ordering the input was parsed for.
    pub fn ecosystem(&self) -> Ecosystem {
        self.ecosystem
    }

    /// The rejected input (cut after 128 bytes).
    pub fn input(&self) -> &str {
        &self.input
    }

    /// Why it was rejected.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// Rejects what no ecosystem accepts: empty, over-long, or containing whitespace or control
/// characters (feeds that pad versions are trimmed by the caller, not guessed at here).
pub(crate) fn check_common(ecosystem: Ecosystem, input: &str) -> Result<(), Error> {
    if input.is_empty() {
        return Err(Error::new(ecosystem, input, "empty version"));
    }
    if input.len() > MAX_LEN {
        return Err(Error::new(
            ecosystem,
            input,
            format!("longer than {MAX_LEN} bytes"),
        ));
    }
    if let Some(c) = input.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::new(
            ecosystem,
            input,
            format!("contains whitespace or control character {c:?}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_ecosystem_input_and_reason() {
        let err = compare(Ecosystem::Deb, "1.0", "1.0-").expect_err("empty revision");
        assert_eq!(err.ecosystem(), Ecosystem::Deb);
        assert_eq!(err.input(), "1.0-");
        let text = err.to_string();
        assert!(
            text.contains("Debian") && text.contains("\"1.0-\""),
            "{text}"
        );
    }

    #[test]
    fn error_cuts_huge_input() {
        let huge = "1".repeat(10_000);
        let err = compare(Ecosystem::Rpm, &huge, "1").expect_err("too long");
        assert!(err.input().len() < 200, "{}", err.input());
        assert!(err.input().ends_with("(10000 bytes)"));
    }

    #[test]
    fn every_ecosystem_rejects_empty_and_whitespace() {
        for eco in Ecosystem::ALL {
            assert!(eco.validate("").is_err(), "{eco}");
            assert!(eco.validate("1.0 ").is_err(), "{eco}");
            assert!(eco.validate("1.\n0").is_err(), "{eco}");
            assert!(
                eco.validate("1.0").is_ok() || eco == Ecosystem::Semver,
                "{eco}"
            );
        }
    }
}

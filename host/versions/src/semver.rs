//! SemVer 2.0 precedence (crates.io, npm) and Go module versions.
//!
//! Both use the `semver` crate's parser and its precedence order (`Version::cmp_precedence`):
//! major, minor and patch numerically, a pre-release before its release, pre-release
//! identifiers one by one (numeric ones by value and before alphanumeric ones, which compare
//! by ASCII, a shorter list first when all else is equal), build metadata ignored. Plain
//! `semver::Version` ordering is not used on purpose: it also orders by build metadata,
//! which SemVer §11, npm, Go and OSV all ignore.
//!
//! Go module versions are SemVer with a `v` prefix. The Go form here is lenient the way
//! advisory feeds need: the `v` is optional (OSV's `Go` ranges omit it), `v1` and `v1.2`
//! are the shorthands Go's `x/mod/semver` accepts for `v1.0.0` and `v1.2.0` (only without
//! pre-release or build), and `+incompatible` is build metadata, hence ignored.
//! Pseudo-versions (`v0.0.0-20191109021931-daa7c04131f5`,
//! `v1.2.4-0.20191109021931-daa7c04131f5`, `v1.2.3-pre.0.20191109021931-daa7c04131f5`) are
//! ordinary pre-releases and sort the way the Go module reference intends: after the tag they
//! are based on, before the next release, and by commit time among themselves.
//!
//! Limit: major, minor and patch must fit in a `u64` (the `semver` crate's representation);
//! larger ones are refused rather than misordered.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::{Ecosystem, Error, check_common};

/// A SemVer 2.0 version, ordered by precedence. A leading `v` is accepted, as npm does.
#[derive(Debug, Clone)]
pub struct SemVer {
    input: String,
    version: semver::Version,
}

/// A Go module version (see the module documentation for the accepted forms).
#[derive(Debug, Clone)]
pub struct GoVersion {
    input: String,
    version: semver::Version,
}

impl SemVer {
    /// The parsed version (with its build metadata, which the ordering ignores).
    pub fn version(&self) -> &semver::Version {
        &self.version
    }

    /// The string the version was parsed from.
    pub fn as_str(&self) -> &str {
        &self.input
    }
}

impl GoVersion {
    /// The version as full SemVer (shorthands expanded, `v` dropped).
    pub fn version(&self) -> &semver::Version {
        &self.version
    }

    /// The string the version was parsed from.
    pub fn as_str(&self) -> &str {
        &self.input
    }

    /// Whether this is a pseudo-version, in one of the three forms the Go module reference
    /// defines: `vX.0.0-T-H`, `vX.Y.Z-pre.0.T-H` or `vX.Y.Z-0.T-H`, where `T` is a 14-digit
    /// UTC timestamp and `H` a commit hash prefix.
    pub fn is_pseudo(&self) -> bool {
        let parts: Vec<&str> = self.version.pre.as_str().split('.').collect();
        let Some((last, base)) = parts.split_last() else {
            return false;
        };
        let Some((time, hash)) = last.split_once('-') else {
            return false;
        };
        let base_ok = match base.last() {
            None => self.version.minor == 0 && self.version.patch == 0,
            Some(&zero) => zero == "0",
        };
        base_ok
            && time.len() == 14
            && time.bytes().all(|c| c.is_ascii_digit())
            && !hash.is_empty()
            && hash.bytes().all(|c| c.is_ascii_alphanumeric())
    }
}

fn parse_semver(ecosystem: Ecosystem, input: &str, text: &str) -> Result<semver::Version, Error> {
    semver::Version::parse(text).map_err(|e| Error::new(ecosystem, input, e.to_string()))
}

impl FromStr for SemVer {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Error> {
        check_common(Ecosystem::Semver, input)?;
        let text = input.strip_prefix('v').unwrap_or(input);
        Ok(SemVer {
            input: input.to_owned(),
            version: parse_semver(Ecosystem::Semver, input, text)?,
        })
    }
}

impl FromStr for GoVersion {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Error> {
        check_common(Ecosystem::Go, input)?;
        let text = input.strip_prefix('v').unwrap_or(input);
        // x/mod/semver's shorthands: "v1" and "v1.2", only as a bare core version.
        let dots = text.bytes().filter(|&c| c == b'.').count();
        let bare = text.bytes().all(|c| c.is_ascii_digit() || c == b'.');
        let version = match (bare, dots) {
            (true, 0) => parse_semver(Ecosystem::Go, input, &format!("{text}.0.0"))?,
            (true, 1) => parse_semver(Ecosystem::Go, input, &format!("{text}.0"))?,
            _ => parse_semver(Ecosystem::Go, input, text)?,
        };
        Ok(GoVersion {
            input: input.to_owned(),
            version,
        })
    }
}

macro_rules! precedence_order {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.input)
            }
        }

        impl Ord for $t {
            fn cmp(&self, other: &Self) -> Ordering {
                self.version.cmp_precedence(&other.version)
            }
        }

        impl PartialOrd for $t {
            fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
                Some(self.cmp(other))
            }
        }

        impl PartialEq for $t {
            fn eq(&self, other: &Self) -> bool {
                self.cmp(other) == Ordering::Equal
            }
        }

        impl Eq for $t {}
    };
}

precedence_order!(SemVer);
precedence_order!(GoVersion);

#[cfg(test)]
mod tests {
    use super::{GoVersion, SemVer};
    use std::cmp::Ordering::*;

    fn semver(s: &str) -> SemVer {
        s.parse().expect("valid semver")
    }

    fn go(s: &str) -> GoVersion {
        s.parse().expect("valid Go version")
    }

    /// The precedence example of SemVer 2.0 §11, verbatim.
    #[test]
    fn semver_spec_precedence_example() {
        let chain = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
        ];
        for pair in chain.windows(2) {
            assert_eq!(semver(pair[0]).cmp(&semver(pair[1])), Less, "{pair:?}");
        }
        assert!(semver("1.0.0") < semver("2.0.0") && semver("2.0.0") < semver("2.1.0"));
        assert!(semver("2.1.0") < semver("2.1.1"));
        // §10: build metadata does not take part in precedence.
        assert_eq!(semver("1.0.0+20130313144700").cmp(&semver("1.0.0")), Equal);
        assert_eq!(semver("v1.2.3").cmp(&semver("1.2.3")), Equal);
        assert!("1.2".parse::<SemVer>().is_err() && "01.2.3".parse::<SemVer>().is_err());
    }

    /// Orderings stated in the Go module reference ("Versions", "Pseudo-versions").
    #[test]
    fn go_module_reference() {
        // "v1.2.3-pre is ordered before v1.2.3"; shorthands; +incompatible is build metadata.
        assert!(go("v1.2.3-pre") < go("v1.2.3"));
        assert_eq!(go("v1.2").cmp(&go("v1.2.0")), Equal);
        assert_eq!(go("v1").cmp(&go("v1.0.0")), Equal);
        assert_eq!(go("v2.0.0+incompatible").cmp(&go("v2.0.0")), Equal);
        assert_eq!(go("1.2.3").cmp(&go("v1.2.3")), Equal);
        // vX.0.0-yyyymmddhhmmss-abcdefabcdef: no known base version, before v0.0.0 itself.
        let p0 = go("v0.0.0-20191109021931-daa7c04131f5");
        assert!(p0.is_pseudo() && p0 < go("v0.0.0"));
        // vX.Y.Z-pre.0.yyyymmddhhmmss-…: after vX.Y.Z-pre, before vX.Y.Z.
        let p1 = go("v1.2.3-pre.0.20191109021931-daa7c04131f5");
        assert!(p1.is_pseudo() && go("v1.2.3-pre") < p1 && p1 < go("v1.2.3"));
        // vX.Y.(Z+1)-0.yyyymmddhhmmss-…: after vX.Y.Z, before vX.Y.(Z+1).
        let p2 = go("v1.2.4-0.20191109021931-daa7c04131f5");
        assert!(p2.is_pseudo() && go("v1.2.3") < p2 && p2 < go("v1.2.4"));
        // Later commits sort later.
        assert!(p2 < go("v1.2.4-0.20200101000000-0123456789ab"));
        assert!(!go("v1.2.4-rc.1").is_pseudo());
        for bad in [
            "v1.2-pre", "v1.2.3.4", "v01.2.3", "vv1.2.3", "1.2.3-", "latest",
        ] {
            assert!(bad.parse::<GoVersion>().is_err(), "{bad:?} accepted");
        }
    }
}

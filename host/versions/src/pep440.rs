//! Python package versions, ordered as PEP 440 and `packaging.version.Version` order them.
//!
//! Parsing and ordering come from `pep440_rs` (uv's implementation): epochs first
//! (`1!0.1 > 2.0`), release segments compared numerically with trailing zeros ignored
//! (`1.0 == 1.0.0`), then `devN < aN < bN < rcN < (release) < postN`, a dev release of a
//! pre- or post-release sorting just before it, and last local versions (`1.0 < 1.0+local`,
//! local segments numeric above alphanumeric). The normalisations PEP 440 allows are
//! accepted (`1.0-1` is `1.0.post1`, `1.0RC1` is `1.0rc1`, a leading `v`), as
//! `packaging` accepts them; surrounding whitespace, which `packaging` strips, is refused.
//!
//! Limit: numbers must fit in a `u64`; larger ones are refused rather than misordered.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::{Ecosystem, Error, check_common};

/// A PEP 440 version.
#[derive(Debug, Clone)]
pub struct Pep440Version {
    input: String,
    version: pep440_rs::Version,
}

impl Pep440Version {
    /// The parsed version; its `Display` is the normalised form (`1.0.post1` for `1.0-1`).
    pub fn version(&self) -> &pep440_rs::Version {
        &self.version
    }

    /// The string the version was parsed from.
    pub fn as_str(&self) -> &str {
        &self.input
    }
}

impl FromStr for Pep440Version {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Error> {
        check_common(Ecosystem::Pep440, input)?;
        let version = pep440_rs::Version::from_str(input)
            .map_err(|e| Error::new(Ecosystem::Pep440, input, e.to_string()))?;
        Ok(Pep440Version {
            input: input.to_owned(),
            version,
        })
    }
}

impl fmt::Display for Pep440Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.input)
    }
}

impl Ord for Pep440Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.version.cmp(&other.version)
    }
}

impl PartialOrd for Pep440Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Pep440Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Pep440Version {}

#[cfg(test)]
mod tests {
    use super::Pep440Version;

    fn v(s: &str) -> Pep440Version {
        s.parse().expect("valid PEP 440 version")
    }

    /// The summary ordering given in PEP 440's "Summary of permitted suffixes and relative
    /// ordering" section, verbatim.
    #[test]
    fn pep440_summary_ordering() {
        let chain = [
            "1.dev0",
            "1.0.dev456",
            "1.0a1",
            "1.0a2.dev456",
            "1.0a12.dev456",
            "1.0a12",
            "1.0b1.dev456",
            "1.0b2",
            "1.0b2.post345.dev456",
            "1.0b2.post345",
            "1.0rc1.dev456",
            "1.0rc1",
            "1.0",
            "1.0+abc.5",
            "1.0+abc.7",
            "1.0+5",
            "1.0.post456.dev34",
            "1.0.post456",
            "1.0.15",
            "1.1.dev1",
        ];
        for pair in chain.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{pair:?}");
        }
        assert_eq!(v("1.0-1"), v("1.0.post1"));
        assert_eq!(v("1!1.0").to_string(), "1!1.0");
        assert!(v("1!0.1") > v("2.0"));
        assert!("1.0.0-foo".parse::<Pep440Version>().is_err());
    }
}

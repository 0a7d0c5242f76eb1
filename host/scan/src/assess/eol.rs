//! End of security support per distribution release.
//!
//! An image on a release past this date gets no more fixes, and its feed stops listing new
//! vulnerabilities: a clean report on such an image is not good news, so the report warns.
//! The dates are the end of the last *security* support the distribution itself (or its
//! LTS team) provides, as published by the distributions and collected by endoflife.date
//! (checked 2026-11): Debian's LTS end (the Debian tracker follows LTS through DLAs), Ubuntu's
//! standard support (ESM needs a subscription and its own feed), Alpine's main repository
//! support (two years), RHEL-family maintenance support.

use bulkhead_model::{Eol, Os};

/// (os-release `ID`, release key, last day of security support).
const TABLE: &[(&str, &str, &str)] = &[
    ("debian", "8", "2020-06-30"),
    ("debian", "9", "2022-06-30"),
    ("debian", "10", "2024-06-30"),
    ("debian", "11", "2026-08-31"),
    ("debian", "12", "2028-06-30"),
    ("debian", "13", "2030-06-30"),
    ("ubuntu", "14.04", "2019-04-30"),
    ("ubuntu", "16.04", "2021-04-30"),
    ("ubuntu", "18.04", "2023-05-31"),
    ("ubuntu", "20.04", "2025-05-31"),
    ("ubuntu", "22.04", "2027-06-01"),
    ("ubuntu", "24.04", "2029-05-31"),
    ("ubuntu", "24.10", "2025-07-10"),
    ("ubuntu", "25.04", "2026-01-15"),
    ("ubuntu", "25.10", "2026-07-09"),
    ("alpine", "3.6", "2019-05-01"),
    ("alpine", "3.7", "2019-11-01"),
    ("alpine", "3.8", "2020-05-01"),
    ("alpine", "3.9", "2020-11-01"),
    ("alpine", "3.10", "2021-05-01"),
    ("alpine", "3.11", "2021-11-01"),
    ("alpine", "3.12", "2022-05-01"),
    ("alpine", "3.13", "2022-11-01"),
    ("alpine", "3.14", "2023-05-01"),
    ("alpine", "3.15", "2023-11-01"),
    ("alpine", "3.16", "2024-05-23"),
    ("alpine", "3.17", "2024-11-22"),
    ("alpine", "3.18", "2025-05-09"),
    ("alpine", "3.19", "2025-11-01"),
    ("alpine", "3.20", "2026-04-01"),
    ("alpine", "3.21", "2026-11-01"),
    ("alpine", "3.22", "2027-05-01"),
    ("alpine", "3.23", "2027-11-01"),
    ("almalinux", "8", "2029-03-01"),
    ("almalinux", "9", "2032-05-31"),
    ("almalinux", "10", "2035-05-31"),
    ("rocky", "8", "2029-05-31"),
    ("rocky", "9", "2032-05-31"),
    ("rocky", "10", "2035-05-31"),
    ("rhel", "7", "2024-06-30"),
    ("rhel", "8", "2029-05-31"),
    ("rhel", "9", "2032-05-31"),
    ("rhel", "10", "2035-05-31"),
    ("centos", "7", "2024-06-30"),
    ("centos", "8", "2021-12-31"),
    ("amzn", "2", "2026-06-30"),
    ("amzn", "2023", "2029-06-30"),
    ("mariner", "1.0", "2023-07-31"),
    ("mariner", "2.0", "2025-07-31"),
];

/// The release key of `os` in [`TABLE`]'s terms: the major version for Debian and the RHEL
/// family, `major.minor` for Ubuntu, Alpine and Mariner.
fn release_key(os: &Os) -> Option<String> {
    // Edge moves on; the release number it carries has not been released yet.
    if os.is_alpine_edge() {
        return None;
    }
    let version = os.version_id.as_deref()?.trim();
    let parts: Vec<&str> = version.split('.').collect();
    let take = match os.id.as_str() {
        "ubuntu" | "alpine" | "mariner" => 2,
        _ => 1,
    };
    (parts.len() >= take).then(|| parts[..take].join("."))
}

/// The end-of-life status of `os` on `today` (`YYYY-MM-DD`), when the release is known.
pub fn lookup(os: &Os, today: &str) -> Option<Eol> {
    let key = release_key(os)?;
    let id = os.id.trim().to_ascii_lowercase();
    let (_, _, date) = TABLE.iter().find(|(i, k, _)| *i == id && *k == key)?;
    Some(Eol {
        date: (*date).to_string(),
        // ISO dates order as strings.
        reached: today > *date,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(id: &str, version: &str) -> Os {
        Os {
            id: id.into(),
            id_like: vec![],
            version_id: Some(version.into()),
            version_codename: None,
            pretty_name: None,
            source_file: "etc/os-release".into(),
            eol: None,
        }
    }

    #[test]
    fn releases_are_keyed_as_their_feeds_key_them() {
        let e = lookup(&os("alpine", "3.11.6"), "2026-11-25").expect("known");
        assert_eq!((e.date.as_str(), e.reached), ("2021-11-01", true));
        let e = lookup(&os("debian", "12"), "2026-11-25").expect("known");
        assert!(!e.reached);
        let e = lookup(&os("ubuntu", "22.04"), "2026-11-25").expect("known");
        assert!(!e.reached);
        assert!(lookup(&os("almalinux", "9.4"), "2026-11-25").is_some());
        // Edge is never end-of-life, though Alpine 3.12 (its number's release) is.
        assert!(lookup(&os("alpine", "3.12.0_alpha20200122"), "2026-11-25").is_none());
        assert!(lookup(&os("alpine", "3.12.12"), "2026-11-25").is_some_and(|e| e.reached));
        assert!(
            lookup(&os("debian", "12"), "2028-07-01")
                .expect("known")
                .reached
        );
        assert!(lookup(&os("plan9", "4"), "2026-11-25").is_none());
        // The day itself is still supported.
        assert!(
            !lookup(&os("debian", "11"), "2026-08-31")
                .expect("known")
                .reached
        );
    }

    #[test]
    fn the_table_is_well_formed() {
        for (id, key, date) in TABLE {
            assert!(
                date.len() == 10 && date.parse::<jiff::civil::Date>().is_ok(),
                "{id} {key}: {date}"
            );
        }
    }
}

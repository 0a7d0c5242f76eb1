//! The Debian security tracker, in its two public forms:
//!
//! - the JSON export (`security-tracker.debian.org/tracker/data/json`): source package →
//!   CVE → per-release `status` (`resolved`, `open`, `undetermined`), `fixed_version`,
//!   `urgency` and `nodsa` reasons. One [`Advisory`] per (source package, CVE), id = the CVE
//!   (or the tracker's `TEMP-…` id), one [`Affected`] per release.
//! - the DSA and DLA lists (`data/DSA/list`, `data/DLA/list`): one [`Advisory`] per
//!   advisory, aliases = its CVEs, one [`Affected`] per `[release] - package version` line.
//!
//! Releases are named by codename in both; [`Releases`] turns them into OSV's ecosystems
//! (`bookworm` → `Debian:12`, `sid` → `Debian:unstable`).
//!
//! Mapping of the JSON's per-release entries:
//!
//! | tracker | [`FixState`] | range |
//! |---|---|---|
//! | `resolved`, `fixed_version` `0` | `NotAffected` | none |
//! | `resolved`, `fixed_version` V | `Fixed` | introduced 0, fixed V |
//! | `open`, urgency `end-of-life` | `EndOfLife` | introduced 0 |
//! | `open`, `nodsa_reason` `ignored` | `WontFix` | introduced 0 |
//! | `open` otherwise, `undetermined` | `NotFixed` | introduced 0 |
//!
//! Urgency (the `**` suffix, "set by hand", is dropped): `unimportant` → `negligible`,
//! `not yet assigned` → none, others as written (`low`, `medium`, `high`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{MAX_DOCUMENT, read_limited, read_text, shorten};
use crate::error::{Error, Result};
use crate::model::{Advisory, Affected, Event, FixState, Range, RangeKind};

/// Feed name of records from the JSON export, before the store renames them.
pub const FEED_TRACKER: &str = "debian-tracker";
/// Feed name of records from the DSA/DLA lists, before the store renames them.
pub const FEED_LIST: &str = "debian-dsa";

/// Debian release numbers by codename, oldest first. The tracker names releases only by
/// codename, and neither it nor its `config.json` says which number a codename has.
const KNOWN: &[(&str, &str)] = &[
    ("buzz", "1.1"),
    ("rex", "1.2"),
    ("bo", "1.3"),
    ("hamm", "2.0"),
    ("slink", "2.1"),
    ("potato", "2.2"),
    ("woody", "3.0"),
    ("sarge", "3.1"),
    ("etch", "4.0"),
    ("lenny", "5.0"),
    ("squeeze", "6.0"),
    ("wheezy", "7"),
    ("jessie", "8"),
    ("stretch", "9"),
    ("buster", "10"),
    ("bullseye", "11"),
    ("bookworm", "12"),
    ("trixie", "13"),
    ("forky", "14"),
    ("duke", "15"),
];

/// Codename → OSV ecosystem (`Debian:12`).
#[derive(Debug, Clone)]
pub struct Releases {
    map: BTreeMap<String, String>,
}

impl Default for Releases {
    fn default() -> Self {
        Releases::builtin()
    }
}

impl Releases {
    /// The releases known when this was written (up to `duke`, Debian 15) and `sid`.
    pub fn builtin() -> Self {
        let mut map: BTreeMap<String, String> = KNOWN
            .iter()
            .map(|(c, n)| ((*c).to_owned(), format!("Debian:{n}")))
            .collect();
        map.insert("sid".into(), "Debian:unstable".into());
        Releases { map }
    }

    /// The built-in table, extended with the codenames the tracker's `data/config.json`
    /// lists. A codename the table does not know (a release named after this was written)
    /// gets the number after the previous release in the file, which lists releases oldest
    /// first with `sid` last.
    pub fn from_config(path: &Path) -> Result<Self> {
        #[derive(Deserialize)]
        struct Config {
            distributions: serde_json::Map<String, serde_json::Value>,
        }
        let bytes = read_limited(path, super::MAX_RECORD)?;
        // serde_json keeps a map's keys sorted unless asked otherwise, so the order is taken
        // from the text: where each codename first appears after `"distributions"`, which
        // is as that object's key.
        let config: Config = serde_json::from_slice(&bytes)
            .map_err(|e| Error::with_source(path, "invalid tracker config", e))?;
        let text = String::from_utf8_lossy(&bytes);
        let start = text.find("\"distributions\"").unwrap_or(0);
        let mut names: Vec<(usize, &String)> = config
            .distributions
            .keys()
            .map(|k| {
                (
                    text[start..]
                        .find(&format!("\"{k}\""))
                        .unwrap_or(usize::MAX),
                    k,
                )
            })
            .collect();
        names.sort();
        let mut releases = Releases::builtin();
        let mut previous: Option<u32> = None;
        for (_, name) in names {
            if name == "sid" {
                continue;
            }
            if let Some(eco) = releases.map.get(name) {
                previous = eco
                    .strip_prefix("Debian:")
                    .and_then(|n| n.split('.').next())
                    .and_then(|n| n.parse().ok());
                continue;
            }
            let Some(n) = previous.map(|p| p + 1) else {
                return Err(Error::new(
                    path,
                    format!("release {name:?} has no known predecessor to number it after"),
                ));
            };
            releases.map.insert(name.clone(), format!("Debian:{n}"));
            previous = Some(n);
        }
        Ok(releases)
    }

    /// The ecosystem of a codename; unknown codenames become `Debian:<codename>` so that no
    /// data is dropped, and match nothing until the table knows them.
    pub fn ecosystem(&self, codename: &str) -> String {
        self.map
            .get(codename)
            .cloned()
            .unwrap_or_else(|| format!("Debian:{codename}"))
    }

    /// Whether the codename is known.
    pub fn knows(&self, codename: &str) -> bool {
        self.map.contains_key(codename)
    }
}

#[derive(Deserialize)]
struct RawIssue {
    description: Option<String>,
    releases: RawReleases,
}

/// Real exports write an issue without releases as `[]` (an empty PHP-style array), not `{}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawReleases {
    Map(BTreeMap<String, RawRelease>),
    Empty([(); 0]),
}

#[derive(Deserialize)]
struct RawRelease {
    status: String,
    fixed_version: Option<String>,
    urgency: Option<String>,
    nodsa_reason: Option<String>,
}

/// Reads the tracker's JSON export. The document must parse as an object of objects; each
/// (package, issue) that does not is one `Err` among the records.
pub fn read_tracker_json(path: &Path, releases: &Releases) -> Result<Vec<Result<Advisory>>> {
    let bytes = read_limited(path, MAX_DOCUMENT)?;
    parse_tracker_json(&bytes, path, releases)
}

/// Parses the tracker's JSON export; `path` is only for errors.
pub fn parse_tracker_json(
    bytes: &[u8],
    path: &Path,
    releases: &Releases,
) -> Result<Vec<Result<Advisory>>> {
    let packages: BTreeMap<String, BTreeMap<String, &RawValue>> = serde_json::from_slice(bytes)
        .map_err(|e| Error::with_source(path, "invalid tracker JSON", e))?;
    let mut out = Vec::new();
    for (package, issues) in packages {
        for (id, raw) in issues {
            let at = || format!("package {}, {}", shorten(&package), shorten(&id));
            let issue: RawIssue = match serde_json::from_str(raw.get()) {
                Ok(i) => i,
                Err(e) => {
                    out.push(Err(
                        Error::with_source(path, "invalid tracker entry", e).at(at())
                    ));
                    continue;
                }
            };
            out.push(
                tracker_issue(&package, &id, issue, releases)
                    .map_err(|m| Error::new(path, m).at(at())),
            );
        }
    }
    Ok(out)
}

fn tracker_issue(
    package: &str,
    id: &str,
    issue: RawIssue,
    releases: &Releases,
) -> Result<Advisory, String> {
    if package.is_empty() || id.is_empty() {
        return Err("empty package or id".into());
    }
    let releases_of_issue = match issue.releases {
        RawReleases::Map(m) => m,
        RawReleases::Empty(_) => BTreeMap::new(),
    };
    let mut affected = Vec::with_capacity(releases_of_issue.len());
    for (codename, rel) in releases_of_issue {
        let urgency = rel
            .urgency
            .as_deref()
            .map(|u| u.trim().trim_end_matches('*').trim());
        let (state, fixed) = match rel.status.as_str() {
            "resolved" => match rel.fixed_version.as_deref().map(str::trim) {
                Some("0") => (FixState::NotAffected, None),
                Some(v) if !v.is_empty() => (FixState::Fixed, Some(v.to_owned())),
                _ => return Err(format!("{codename}: resolved without fixed_version")),
            },
            "open" | "undetermined" => {
                if urgency == Some("end-of-life") {
                    (FixState::EndOfLife, None)
                } else if rel.nodsa_reason.as_deref() == Some("ignored") {
                    (FixState::WontFix, None)
                } else {
                    (FixState::NotFixed, None)
                }
            }
            other => return Err(format!("{codename}: unknown status {:?}", shorten(other))),
        };
        let mut events = Vec::new();
        if state != FixState::NotAffected {
            events.push(Event::Introduced("0".into()));
        }
        if let Some(v) = fixed {
            events.push(Event::Fixed(v));
        }
        let ranges = if events.is_empty() {
            Vec::new()
        } else {
            vec![Range {
                kind: RangeKind::Ecosystem,
                repo: None,
                events,
            }]
        };
        let vendor_severity = match urgency {
            None | Some("" | "not yet assigned" | "end-of-life") => None,
            Some("unimportant") => Some("negligible".to_owned()),
            Some(u) => Some(u.to_owned()),
        };
        affected.push(Affected {
            ecosystem: releases.ecosystem(&codename),
            package: package.to_owned(),
            ranges,
            versions: Vec::new(),
            fix_state: Some(state),
            vendor_severity,
            module: None,
        });
    }
    Ok(Advisory {
        id: id.to_owned(),
        aliases: Vec::new(),
        source: FEED_TRACKER.to_owned(),
        details: issue.description.unwrap_or_default(),
        affected,
        ..Advisory::default()
    })
}

/// Reads a DSA or DLA list (`data/DSA/list`). Entries that do not parse are `Err`s naming
/// the line; the rest are returned.
pub fn read_list(path: &Path, releases: &Releases) -> Result<Vec<Result<Advisory>>> {
    let text = read_text(path, MAX_DOCUMENT)?;
    Ok(parse_list(&text, path, releases))
}

/// Parses a DSA/DLA list; `path` is only for errors.
///
/// ```text
/// [29 Mar 2023] DSA-5380-1 xorg-server - security update
///         {CVE-2023-1393}
///         [bullseye] - xorg-server 2:1.20.11-1+deb11u6
///         [lenny] - vlc <not-affected> (Vulnerable code not present)
///         NOTE: …
/// ```
pub fn parse_list(text: &str, path: &Path, releases: &Releases) -> Vec<Result<Advisory>> {
    let mut out = Vec::new();
    // The entry being read, or the error that spoils it (reported once, at its end).
    let mut current: Option<Result<Advisory, Error>> = None;
    for (index, line) in text.lines().enumerate() {
        let lineno = index + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            out.extend(current.take());
            current = Some(
                list_header(trimmed).map_err(|m| Error::new(path, m).at(format!("line {lineno}"))),
            );
            continue;
        }
        let Some(entry) = current.as_mut() else {
            out.push(Err(
                Error::new(path, "text before the first advisory").at(format!("line {lineno}"))
            ));
            continue;
        };
        let Ok(advisory) = entry else { continue };
        let result = if let Some(ids) = trimmed.strip_prefix('{') {
            match ids.strip_suffix('}') {
                Some(ids) => {
                    advisory
                        .aliases
                        .extend(ids.split_whitespace().map(str::to_owned));
                    Ok(())
                }
                None => Err("unterminated {…} list".to_owned()),
            }
        } else if trimmed.starts_with('[') {
            list_fix(trimmed, releases).map(|a| advisory.affected.push(a))
        } else if trimmed.starts_with("NOTE:") {
            Ok(())
        } else {
            Err(format!("unrecognised line {:?}", shorten(trimmed)))
        };
        if let Err(m) = result {
            let id = advisory.id.clone();
            *entry = Err(Error::new(path, m).at(format!("{id}, line {lineno}")));
        }
    }
    out.extend(current);
    out
}

fn list_header(line: &str) -> Result<Advisory, String> {
    let (date, rest) = line
        .strip_prefix('[')
        .and_then(|l| l.split_once(']'))
        .ok_or("header without [date]")?;
    let published = parse_list_date(date).ok_or_else(|| format!("bad date {:?}", shorten(date)))?;
    let rest = rest.trim();
    let (id, summary) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    if !(id.starts_with("DSA-") || id.starts_with("DLA-") || id.starts_with("DTSA-")) {
        return Err(format!("bad advisory id {:?}", shorten(id)));
    }
    Ok(Advisory {
        id: id.to_owned(),
        source: FEED_LIST.to_owned(),
        published: Some(published),
        summary: summary.trim().to_owned(),
        ..Advisory::default()
    })
}

/// `29 Mar 2023` (DSA, DLA) or `August 26th, 2005` (the DTSA list) at midnight UTC.
fn parse_list_date(s: &str) -> Option<jiff::Timestamp> {
    let mut parts = s.split_whitespace();
    let first = parts.next()?;
    let second = parts.next()?;
    // Day first (`29 Mar 2023`) or month first (`August 26th, 2005`).
    let (day, month) = match first.parse::<i8>() {
        Ok(day) => (day, second),
        Err(_) => {
            let day = second
                .trim_end_matches(',')
                .trim_end_matches(|c: char| c.is_ascii_alphabetic())
                .parse()
                .ok()?;
            (day, first)
        }
    };
    const MONTHS: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    let lower = month.to_ascii_lowercase();
    // The three-letter abbreviation (`Mar`) or the full name (`March`).
    let month = MONTHS
        .iter()
        .position(|m| lower == *m || (lower.len() == 3 && m.starts_with(&lower)))?
        as i8
        + 1;
    let year: i16 = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    let date = jiff::civil::Date::new(year, month, day).ok()?;
    jiff::tz::TimeZone::UTC
        .to_timestamp(date.to_datetime(jiff::civil::Time::midnight()))
        .ok()
}

/// `[bullseye] - xorg-server 2:1.20.11-1+deb11u6`, `[lenny] - vlc <not-affected> (…)`.
fn list_fix(line: &str, releases: &Releases) -> Result<Affected, String> {
    let (codename, rest) = line
        .strip_prefix('[')
        .and_then(|l| l.split_once(']'))
        .ok_or("release line without [release]")?;
    let rest = rest
        .trim_start()
        .strip_prefix('-')
        .ok_or("release line without ' - '")?;
    let mut words = rest.split_whitespace();
    let package = words.next().ok_or("release line without package")?;
    let version = words.next().ok_or("release line without version")?;
    let (state, events) = match version {
        "<not-affected>" => (FixState::NotAffected, vec![]),
        "<unfixed>" => (FixState::NotFixed, vec![Event::Introduced("0".into())]),
        "<end-of-life>" => (FixState::EndOfLife, vec![Event::Introduced("0".into())]),
        v if v.starts_with('<') => return Err(format!("unknown state {:?}", shorten(v))),
        v => (
            FixState::Fixed,
            vec![Event::Introduced("0".into()), Event::Fixed(v.to_owned())],
        ),
    };
    // Anything after the version must be a parenthesised remark (`(high)` in DTSAs,
    // `(Vulnerable code not present)`).
    let remark: Vec<&str> = words.collect();
    if let Some(first) = remark.first()
        && !first.starts_with('(')
    {
        return Err(format!(
            "unexpected text after the version: {:?}",
            shorten(&remark.join(" "))
        ));
    }
    Ok(Affected {
        ecosystem: releases.ecosystem(codename.trim()),
        package: package.to_owned(),
        ranges: if events.is_empty() {
            vec![]
        } else {
            vec![Range {
                kind: RangeKind::Ecosystem,
                repo: None,
                events,
            }]
        },
        versions: Vec::new(),
        fix_state: Some(state),
        vendor_severity: None,
        module: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_dates() {
        assert_eq!(
            parse_list_date("29 Mar 2023")
                .map(|t| t.to_string())
                .as_deref(),
            Some("2023-03-29T00:00:00Z")
        );
        assert!(parse_list_date("31 Feb 2023").is_none());
        // The DTSA list writes month names in full, day second, with an ordinal.
        let d = |s| parse_list_date(s).map(|t| t.to_string());
        assert_eq!(d("29 March 2023").as_deref(), Some("2023-03-29T00:00:00Z"));
        assert_eq!(
            d("August 26th, 2005").as_deref(),
            Some("2005-08-26T00:00:00Z")
        );
        assert_eq!(
            d("September 1st, 2005").as_deref(),
            Some("2005-09-01T00:00:00Z")
        );
        assert_eq!(
            d("March 22nd, 2006").as_deref(),
            Some("2006-03-22T00:00:00Z")
        );
        assert_eq!(d("Marchx 1st, 2006"), None);
        assert_eq!(d("29 Mar 2023 extra"), None);
    }

    #[test]
    fn builtin_releases() {
        let r = Releases::builtin();
        assert_eq!(r.ecosystem("bookworm"), "Debian:12");
        assert_eq!(r.ecosystem("sid"), "Debian:unstable");
        assert_eq!(r.ecosystem("nosuch"), "Debian:nosuch");
    }
}

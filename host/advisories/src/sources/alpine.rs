//! Alpine's security database (secdb): one document per release and repository
//! (`v3.19/main.yaml`, or the JSON form `v3.19/main.json` served since 3.12), listing per
//! package the versions that fixed which vulnerabilities:
//!
//! ```yaml
//! distroversion: v3.11
//! reponame: main
//! packages:
//!   - pkg:
//!       name: ansible          # the origin (source) package
//!       secfixes:
//!         2.9.3-r0:            # fixed in this version
//!           - CVE-2019-14904
//!         "0":                 # "0": never affected in this release
//!           - CVE-2020-1234
//! ```
//!
//! Mapping: ecosystem `Alpine:<distroversion>`, package = `pkg.name` (an origin package:
//! the matcher must look up the installed package's origin), one [`Advisory`] per (document,
//! vulnerability id) with one [`Affected`] per package that lists it. A fixed version gives
//! the range `introduced 0, fixed V`; version `0` gives no range and
//! [`FixState::NotAffected`]. Entries with two ids (`CVE-2016-6258 XSA-182`) take the first
//! as id and the others as aliases.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{MAX_DOCUMENT, read_limited, shorten, walk};
use crate::error::{Error, Result};
use crate::model::{Advisory, Affected, Event, FixState, Range, RangeKind};

/// Feed name given to records before the store renames them after their import.
pub const FEED: &str = "alpine-secdb";

/// Reads one secdb document or every `.yaml`/`.json` document under a directory.
pub fn read_path(path: &Path) -> Result<Box<dyn Iterator<Item = Result<Advisory>>>> {
    let meta =
        std::fs::metadata(path).map_err(|e| Error::with_source(path, "cannot open secdb", e))?;
    let files = if meta.is_dir() {
        walk(path, &[".yaml", ".yml", ".json"])?
    } else {
        vec![path.to_path_buf()]
    };
    Ok(Box::new(files.into_iter().flat_map(|f| {
        match read_file(&f) {
            Ok(records) => records,
            Err(e) => vec![Err(e)],
        }
    })))
}

/// Reads one secdb document (YAML, or JSON when the name ends in `.json`). A document that
/// does not parse is an `Err`; a package entry that does not is one `Err` among the records.
pub fn read_file(path: &Path) -> Result<Vec<Result<Advisory>>> {
    let bytes = read_limited(path, MAX_DOCUMENT)?;
    let json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    parse(&bytes, path, json)
}

#[derive(Deserialize)]
struct RawDoc<P> {
    distroversion: String,
    #[serde(default = "Vec::new")]
    packages: Vec<P>,
}

#[derive(Deserialize)]
struct RawEntry {
    pkg: RawPkg,
}

#[derive(Deserialize)]
struct RawPkg {
    name: String,
    // Values are lists of ids; real files also have `{}` and null for "nothing".
    secfixes: Option<BTreeMap<String, Option<Ids>>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Ids {
    List(Vec<Option<String>>),
    Empty(BTreeMap<String, String>),
}

/// Parses one secdb document; `path` is only for errors.
pub fn parse(bytes: &[u8], path: &Path, json: bool) -> Result<Vec<Result<Advisory>>> {
    let (release, entries): (String, Vec<Result<RawEntry, String>>) = if json {
        let doc: RawDoc<serde_json::Value> = serde_json::from_slice(bytes)
            .map_err(|e| Error::with_source(path, "invalid secdb JSON", e))?;
        let entries = doc
            .packages
            .into_iter()
            .map(|p| serde_json::from_value(p).map_err(|e| e.to_string()))
            .collect();
        (doc.distroversion, entries)
    } else {
        super::check_yaml_depth(bytes).map_err(|m| Error::new(path, m))?;
        let doc: RawDoc<serde_yaml_ng::Value> = serde_yaml_ng::from_slice(bytes)
            .map_err(|e| Error::with_source(path, "invalid secdb YAML", e))?;
        let entries = doc
            .packages
            .into_iter()
            .map(|p| serde_yaml_ng::from_value(p).map_err(|e| e.to_string()))
            .collect();
        (doc.distroversion, entries)
    };
    let release = release.trim();
    if release.is_empty() || release.contains(char::is_whitespace) || release.len() > 32 {
        return Err(Error::new(
            path,
            format!("bad distroversion {:?}", shorten(release)),
        ));
    }
    let ecosystem = format!("Alpine:{release}");

    let mut out = Vec::new();
    // id → (aliases, affected entries), ordered for reproducible imports.
    let mut by_id: BTreeMap<String, (Vec<String>, Vec<Affected>)> = BTreeMap::new();
    for (i, entry) in entries.into_iter().enumerate() {
        let entry = match entry {
            Ok(e) => e,
            Err(m) => {
                out.push(Err(Error::new(path, m).at(format!("packages[{i}]"))));
                continue;
            }
        };
        let name = entry.pkg.name.trim().to_owned();
        if name.is_empty() {
            out.push(Err(
                Error::new(path, "empty package name").at(format!("packages[{i}]"))
            ));
            continue;
        }
        for (version, ids) in entry.pkg.secfixes.unwrap_or_default() {
            let version = version.trim().to_owned();
            let ids: Vec<String> = match ids {
                Some(Ids::List(ids)) => ids.into_iter().flatten().collect(),
                Some(Ids::Empty(map)) if map.is_empty() => Vec::new(),
                None => Vec::new(),
                Some(Ids::Empty(_)) => {
                    out.push(Err(Error::new(
                        path,
                        format!("secfixes {version:?}: a map instead of a list of ids"),
                    )
                    .at(format!("packages[{i}] {}", shorten(&name)))));
                    continue;
                }
            };
            for text in ids {
                let mut tokens = text.split_whitespace().map(clean_id);
                let Some(id) = tokens.next() else { continue };
                // Second ids (`XSA-182`, `TALOS-2017-0488`) are aliases; remarks such as
                // `(AoE)` in `CVE-2017-16808 (AoE)` are not ids.
                let aliases: Vec<String> = tokens
                    .filter(|t| t.starts_with(|c: char| c.is_ascii_alphabetic()) && t.contains('-'))
                    .collect();
                let (affected_state, ranges) = if version == "0" {
                    (FixState::NotAffected, Vec::new())
                } else {
                    (
                        FixState::Fixed,
                        vec![Range {
                            kind: RangeKind::Ecosystem,
                            repo: None,
                            events: vec![
                                Event::Introduced("0".into()),
                                Event::Fixed(version.clone()),
                            ],
                        }],
                    )
                };
                let slot = by_id.entry(id).or_default();
                for a in aliases {
                    if !slot.0.contains(&a) {
                        slot.0.push(a);
                    }
                }
                slot.1.push(Affected {
                    ecosystem: ecosystem.clone(),
                    package: name.clone(),
                    ranges,
                    versions: Vec::new(),
                    fix_state: Some(affected_state),
                    vendor_severity: None,
                    module: None,
                });
            }
        }
    }
    for (id, (aliases, affected)) in by_id {
        out.push(Ok(Advisory {
            id,
            aliases,
            source: FEED.to_owned(),
            affected,
            ..Advisory::default()
        }));
    }
    Ok(out)
}

/// `CVE-2017-8073.patch` (a real secdb entry) names CVE-2017-8073: a CVE id followed by
/// junk is cut to the id; other tokens are kept as written.
fn clean_id(token: &str) -> String {
    if token.starts_with("CVE-") {
        let end = token
            .char_indices()
            .skip(4)
            .find(|&(_, c)| !(c.is_ascii_digit() || c == '-'))
            .map_or(token.len(), |(i, _)| i);
        let cut = token[..end].trim_end_matches('-');
        if super::is_cve(cut) {
            return cut.to_owned();
        }
    }
    token.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_cleaned() {
        assert_eq!(clean_id("CVE-2017-8073.patch"), "CVE-2017-8073");
        assert_eq!(clean_id("CVE-2019-14904"), "CVE-2019-14904");
        assert_eq!(clean_id("XSA-182"), "XSA-182");
        assert_eq!(clean_id("wnpa-sec-2017-18"), "wnpa-sec-2017-18");
    }
}

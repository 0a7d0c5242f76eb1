//! OSV (<https://ossf.github.io/osv-schema/>): single JSON or YAML files, directories of them
//! (golang/vulndb, the RustSec OSV branch, the PyPA database in YAML, AlmaLinux), and the
//! per-ecosystem `all.zip` archives of osv.dev.
//!
//! Every OSV file is one record: a file that does not parse is reported with its path (and
//! its zip member name) and skipped, the others are imported.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{LimitError, MAX_RECORD, opt_time, read_limited, read_to_limit, shorten, walk};
use crate::error::{Error, Result};
use crate::model::{
    Advisory, Affected, Event, FixState, Range, RangeKind, Reference, Severity, SeverityKind,
};

/// Feed name given to records before the store renames them after their import.
pub const FEED: &str = "osv";

/// Most members an `all.zip` may have (osv.dev's largest, PyPI+GHSA, has about 60,000).
const MAX_ZIP_MEMBERS: usize = 2_000_000;

/// Reads an OSV feed at `path`: a `.zip` archive, a directory (every `.json`, `.yaml` and
/// `.yml` file under it), or a single file.
pub fn read_path(path: &Path) -> Result<Box<dyn Iterator<Item = Result<Advisory>>>> {
    let meta =
        std::fs::metadata(path).map_err(|e| Error::with_source(path, "cannot open OSV feed", e))?;
    if meta.is_dir() {
        let files = walk(path, &[".json", ".yaml", ".yml"])?;
        Ok(Box::new(files.into_iter().map(|f| read_file(&f))))
    } else if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"))
    {
        Ok(Box::new(read_zip(path)?))
    } else {
        Ok(Box::new(std::iter::once(read_file(path))))
    }
}

/// Reads one OSV file; `.yaml`/`.yml` files are YAML, everything else JSON.
pub fn read_file(path: &Path) -> Result<Advisory> {
    let bytes = read_limited(path, MAX_RECORD)?;
    parse(&bytes, path, is_yaml(path))
}

fn is_yaml(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}

/// Parses one OSV record (`yaml` selects the YAML syntax); `path` is only for errors.
pub fn parse(bytes: &[u8], path: &Path, yaml: bool) -> Result<Advisory> {
    let raw: RawOsv = if yaml {
        super::check_yaml_depth(bytes).map_err(|m| Error::new(path, m))?;
        serde_yaml_ng::from_slice(bytes)
            .map_err(|e| Error::with_source(path, "invalid OSV YAML", e))?
    } else {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::with_source(path, "invalid OSV JSON", e))?
    };
    let id = raw.id.clone();
    convert(raw).map_err(|m| Error::new(path, m).at(format!("record {}", shorten(&id))))
}

/// Iterates over the `.json` members of an osv.dev `all.zip`.
pub fn read_zip(path: &Path) -> Result<ZipRecords> {
    let file =
        File::open(path).map_err(|e| Error::with_source(path, "cannot open OSV archive", e))?;
    let archive = zip::ZipArchive::new(file)
        .map_err(|e| Error::with_source(path, "not a readable zip archive", e))?;
    if archive.len() > MAX_ZIP_MEMBERS {
        return Err(Error::new(
            path,
            format!("zip archive with more than {MAX_ZIP_MEMBERS} members"),
        ));
    }
    Ok(ZipRecords {
        archive,
        next: 0,
        path: path.to_path_buf(),
    })
}

/// The records of an OSV `all.zip`, read one member at a time.
pub struct ZipRecords {
    archive: zip::ZipArchive<File>,
    next: usize,
    path: PathBuf,
}

impl std::fmt::Debug for ZipRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZipRecords")
            .field("path", &self.path)
            .field("next", &self.next)
            .finish()
    }
}

impl Iterator for ZipRecords {
    type Item = Result<Advisory>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.next < self.archive.len() {
            let index = self.next;
            self.next += 1;
            let member = match self.archive.by_index(index) {
                Ok(m) => m,
                Err(e) => {
                    return Some(Err(Error::with_source(
                        &self.path,
                        "unreadable zip member",
                        e,
                    )
                    .at(format!("member #{index}"))));
                }
            };
            let name = match member.name() {
                Ok(n) => n.into_owned(),
                Err(e) => {
                    return Some(Err(Error::with_source(
                        &self.path,
                        "zip member with an unreadable name",
                        e,
                    )
                    .at(format!("member #{index}"))));
                }
            };
            if member.is_dir() || !(name.ends_with(".json") || name.ends_with(".yaml")) {
                continue;
            }
            let at = format!("member {}", shorten(&name));
            // The declared size is checked first (cheap), and the read is bounded anyway
            // because a hostile archive can lie about it.
            if member.size() > MAX_RECORD {
                return Some(Err(Error::new(
                    &self.path,
                    format!("member larger than {MAX_RECORD} bytes"),
                )
                .at(at)));
            }
            let bytes = match read_to_limit(member, MAX_RECORD) {
                Ok(b) => b,
                Err(LimitError::TooLarge) => {
                    return Some(Err(Error::new(
                        &self.path,
                        format!("member larger than {MAX_RECORD} bytes"),
                    )
                    .at(at)));
                }
                Err(LimitError::Io(e)) => {
                    return Some(Err(Error::with_source(
                        &self.path,
                        "cannot inflate zip member",
                        e,
                    )
                    .at(at)));
                }
            };
            return Some(parse(&bytes, &self.path, name.ends_with(".yaml")).map_err(|e| e.at(at)));
        }
        None
    }
}

#[derive(Deserialize)]
struct RawOsv {
    id: String,
    modified: Option<String>,
    published: Option<String>,
    withdrawn: Option<String>,
    aliases: Option<Vec<String>>,
    related: Option<Vec<String>>,
    summary: Option<String>,
    details: Option<String>,
    severity: Option<Vec<RawSeverity>>,
    affected: Option<Vec<RawAffected>>,
    references: Option<Vec<RawReference>>,
    database_specific: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawSeverity {
    #[serde(rename = "type")]
    kind: String,
    score: String,
}

#[derive(Deserialize)]
struct RawReference {
    #[serde(rename = "type")]
    kind: Option<String>,
    url: String,
}

#[derive(Deserialize)]
struct RawAffected {
    package: Option<RawPackage>,
    severity: Option<Vec<RawSeverity>>,
    ranges: Option<Vec<RawRange>>,
    versions: Option<Vec<String>>,
    ecosystem_specific: Option<serde_json::Value>,
    database_specific: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawPackage {
    ecosystem: String,
    name: String,
}

#[derive(Deserialize)]
struct RawRange {
    #[serde(rename = "type")]
    kind: String,
    repo: Option<String>,
    events: Vec<RawEvent>,
}

#[derive(Deserialize)]
struct RawEvent {
    introduced: Option<String>,
    fixed: Option<String>,
    last_affected: Option<String>,
    limit: Option<String>,
}

fn convert(raw: RawOsv) -> Result<Advisory, String> {
    if raw.id.trim().is_empty() {
        return Err("empty id".into());
    }
    let mut severity = Vec::new();
    for s in raw.severity.unwrap_or_default() {
        severity.push(convert_severity(s, FEED));
    }
    let top_vendor = vendor_word(raw.database_specific.as_ref());
    let summary = raw.summary.unwrap_or_default();
    // AlmaLinux and Rocky state the Red Hat impact only as the summary's first word
    // ("Important: kernel security update").
    let summary_vendor = summary
        .split_once(':')
        .map(|(w, _)| w.trim())
        .filter(|w| matches!(*w, "Low" | "Moderate" | "Important" | "Critical"))
        .map(str::to_owned);
    let mut affected = Vec::new();
    for (i, a) in raw.affected.unwrap_or_default().into_iter().enumerate() {
        // An entry without a package (a bare GIT range) cannot be matched against
        // installed packages; OSV allows it, it is not an error.
        let Some(package) = a.package else { continue };
        if package.ecosystem.is_empty() || package.name.is_empty() {
            return Err(format!("affected[{i}]: empty ecosystem or package name"));
        }
        let mut ranges = Vec::new();
        for (j, r) in a.ranges.unwrap_or_default().into_iter().enumerate() {
            ranges.push(convert_range(r).map_err(|m| format!("affected[{i}].ranges[{j}]: {m}"))?);
        }
        let fix_state = if ranges
            .iter()
            .flat_map(|r| &r.events)
            .any(|e| matches!(e, Event::Fixed(_)))
        {
            FixState::Fixed
        } else {
            FixState::NotFixed
        };
        let vendor_severity = vendor_word(a.ecosystem_specific.as_ref())
            .or_else(|| vendor_word(a.database_specific.as_ref()))
            .or_else(|| top_vendor.clone())
            .or_else(|| summary_vendor.clone());
        for s in a.severity.unwrap_or_default() {
            // OSV 1.5 per-package severities: kept with the advisory's, de-duplicated.
            let s = convert_severity(s, FEED);
            if !severity.contains(&s) {
                severity.push(s);
            }
        }
        affected.push(Affected {
            ecosystem: package.ecosystem,
            package: package.name,
            ranges,
            versions: a.versions.unwrap_or_default(),
            fix_state: Some(fix_state),
            vendor_severity,
            module: None,
        });
    }
    Ok(Advisory {
        id: raw.id,
        aliases: raw.aliases.unwrap_or_default(),
        related: raw.related.unwrap_or_default(),
        source: FEED.to_owned(),
        published: opt_time("published", raw.published.as_deref())?,
        modified: opt_time("modified", raw.modified.as_deref())?,
        withdrawn: opt_time("withdrawn", raw.withdrawn.as_deref())?,
        summary,
        details: raw.details.unwrap_or_default(),
        severity,
        references: raw
            .references
            .unwrap_or_default()
            .into_iter()
            .map(|r| Reference {
                kind: r.kind.unwrap_or_else(|| "WEB".into()),
                url: r.url,
            })
            .collect(),
        affected,
    })
}

fn convert_severity(s: RawSeverity, source: &str) -> Severity {
    let kind = match s.kind.as_str() {
        "CVSS_V2" => SeverityKind::CvssV2,
        "CVSS_V3" => SeverityKind::CvssV3,
        "CVSS_V4" => SeverityKind::CvssV4,
        // "Ubuntu" and any later vendor scale.
        _ => SeverityKind::Vendor,
    };
    Severity {
        source: source.to_owned(),
        kind,
        value: s.score,
        score: None,
    }
}

fn convert_range(r: RawRange) -> Result<Range, String> {
    let kind = match r.kind.as_str() {
        "ECOSYSTEM" => RangeKind::Ecosystem,
        "SEMVER" => RangeKind::Semver,
        "GIT" => RangeKind::Git,
        other => return Err(format!("unknown range type {:?}", shorten(other))),
    };
    if kind == RangeKind::Git && r.repo.is_none() {
        return Err("GIT range without repo".into());
    }
    let mut events = Vec::with_capacity(r.events.len());
    for (k, e) in r.events.into_iter().enumerate() {
        let event = match (e.introduced, e.fixed, e.last_affected, e.limit) {
            (Some(v), None, None, None) => Event::Introduced(v),
            (None, Some(v), None, None) => Event::Fixed(v),
            (None, None, Some(v), None) => Event::LastAffected(v),
            (None, None, None, Some(v)) => Event::Limit(v),
            _ => {
                return Err(format!(
                    "events[{k}]: an event must have exactly one of introduced, fixed, last_affected, limit"
                ));
            }
        };
        if event.version().is_empty() {
            return Err(format!("events[{k}]: empty version"));
        }
        events.push(event);
    }
    Ok(Range {
        kind,
        repo: r.repo,
        events,
    })
}

/// A `severity` word in an `ecosystem_specific` / `database_specific` object (GHSA's
/// `"severity": "HIGH"`, Ubuntu's priorities), if it is a plain string.
fn vendor_word(v: Option<&serde_json::Value>) -> Option<String> {
    let s = v?.get("severity")?.as_str()?.trim();
    (!s.is_empty() && s.len() <= 32).then(|| s.to_owned())
}

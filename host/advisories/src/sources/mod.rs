//! Feed parsers. Each turns one upstream format into [`Advisory`](crate::Advisory) records
//! (or [`Enrichment`](crate::Enrichment) for NVD) and yields them one by one as
//! `Result`s: a broken record is an `Err` naming the file and record, and the store skips and
//! counts it; a feed that cannot be opened at all fails before the first record.
//!
//! | module | feed | records |
//! |---|---|---|
//! | [`osv`] | OSV JSON/YAML files, directories of them, `all.zip` | one per OSV entry |
//! | [`alpine`] | Alpine secdb (YAML or JSON) | one per (secdb file, vulnerability id) |
//! | [`debian`] | Debian tracker JSON; DSA/DLA lists | one per (source package, CVE); one per DSA/DLA |
//! | [`nvd`] | NVD CVE API 2.0 pages | enrichment: CVSS per CVE |
//! | [`csaf`] | Red Hat CSAF advisories and VEX files | one per document |

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::error::{Error, Result};

pub mod alpine;
pub mod csaf;
pub mod debian;
pub mod nvd;
pub mod osv;

/// Largest single feed document read into memory. The biggest real one is the Debian
/// tracker's JSON export (about 80 MB in 2025); NVD pages and CSAF files are a few MB.
pub const MAX_DOCUMENT: u64 = 1 << 30;

/// Largest single record file (one OSV entry, one VEX file, one zip member). Real ones are
/// under 5 MB; the limit keeps a zip bomb's member from being inflated into memory.
pub const MAX_RECORD: u64 = 64 << 20;

/// Most files a directory import walks, against a directory tree that never ends (the
/// largest real feed, GitHub's advisory database, has about 250,000 files).
pub const MAX_FILES: usize = 5_000_000;

/// Deepest directory nesting walked (real feeds nest at most 4 levels).
const MAX_DEPTH: usize = 16;

/// Reads at most `limit` bytes of `path`, failing (rather than truncating) when it is longer.
pub(crate) fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let file =
        fs::File::open(path).map_err(|e| Error::with_source(path, "cannot open feed file", e))?;
    read_to_limit(file, limit).map_err(|e| match e {
        LimitError::Io(e) => Error::with_source(path, "cannot read feed file", e),
        LimitError::TooLarge => Error::new(path, format!("file larger than {limit} bytes")),
    })
}

pub(crate) enum LimitError {
    Io(std::io::Error),
    TooLarge,
}

pub(crate) fn read_to_limit(reader: impl Read, limit: u64) -> Result<Vec<u8>, LimitError> {
    let mut buf = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(LimitError::Io)?;
    if buf.len() as u64 > limit {
        return Err(LimitError::TooLarge);
    }
    Ok(buf)
}

/// Reads `path` as UTF-8 text (feeds are UTF-8 by specification).
pub(crate) fn read_text(path: &Path, limit: u64) -> Result<String> {
    let bytes = read_limited(path, limit)?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        Error::new(path, "file is not UTF-8").at(format!("byte {at}"))
    })
}

/// The regular files under `dir` whose name ends with one of `extensions`, sorted so that
/// imports are reproducible. Symbolic links are not followed: a feed checkout has none,
/// and following them could loop or leave the feed directory.
pub(crate) fn walk(dir: &Path, extensions: &[&str]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    while let Some((d, depth)) = stack.pop() {
        let entries =
            fs::read_dir(&d).map_err(|e| Error::with_source(&d, "cannot list directory", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::with_source(&d, "cannot list directory", e))?;
            let path = entry.path();
            let kind = entry
                .file_type()
                .map_err(|e| Error::with_source(&path, "cannot stat", e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') {
                // .git, editor and lock files are not feed content.
                continue;
            }
            if kind.is_dir() {
                if depth + 1 > MAX_DEPTH {
                    return Err(Error::new(
                        &path,
                        format!("directories nested deeper than {MAX_DEPTH}"),
                    ));
                }
                stack.push((path, depth + 1));
            } else if kind.is_file() && extensions.iter().any(|ext| name.ends_with(ext)) {
                if out.len() >= MAX_FILES {
                    return Err(Error::new(dir, format!("more than {MAX_FILES} feed files")));
                }
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Deepest YAML nesting accepted. serde_yaml_ng refuses more than 128 levels anyway, but
/// only after libyaml has scanned the whole input, which takes time growing with the
/// square of the depth (100,000 nested `[` take half a minute); real feeds nest under 10.
const MAX_YAML_DEPTH: usize = 1000;

/// Refuses YAML nested deeper than [`MAX_YAML_DEPTH`] before it reaches libyaml. Counts
/// flow brackets outside quoted scalars, and block nesting as the indentation of a line
/// plus the `- ` sequence entries that start it: an approximation that over-counts (a
/// stray `[` in plain text) rather than under-counts the real depth.
pub(crate) fn check_yaml_depth(bytes: &[u8]) -> Result<(), String> {
    let mut flow = 0usize;
    let mut quote: Option<u8> = None;
    let mut line_start = true;
    let mut indent = 0usize;
    // Last byte outside quotes that was not a space: a quote opens a quoted scalar only
    // where a scalar can start (`don't` in plain text opens nothing).
    let mut prev = b'\n';
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(b'"') if b == b'\\' => i += 1,
            Some(q) if b == q => {
                // '' inside a single-quoted scalar is an escaped quote.
                if q == b'\'' && bytes.get(i + 1) == Some(&b'\'') {
                    i += 1;
                } else {
                    quote = None;
                }
            }
            Some(_) => {}
            None => match b {
                b'\n' => {
                    line_start = true;
                    indent = 0;
                }
                b' ' | b'-' if line_start => {
                    indent += 1;
                    if indent > 2 * MAX_YAML_DEPTH {
                        return Err(format!("YAML nested deeper than {MAX_YAML_DEPTH} levels"));
                    }
                }
                b'[' | b'{' => {
                    line_start = false;
                    flow += 1;
                    if flow > MAX_YAML_DEPTH {
                        return Err(format!("YAML nested deeper than {MAX_YAML_DEPTH} levels"));
                    }
                }
                b']' | b'}' => {
                    line_start = false;
                    flow = flow.saturating_sub(1);
                }
                b'"' | b'\'' if matches!(prev, b'\n' | b':' | b'-' | b'[' | b'{' | b',' | b'?') => {
                    line_start = false;
                    quote = Some(b);
                }
                _ => line_start = false,
            },
        }
        if quote.is_none() && b != b' ' && b != b'\t' {
            prev = b;
        }
        i += 1;
    }
    Ok(())
}

/// Parses the timestamp forms feeds use: RFC 3339 with an offset (OSV, CSAF), a date and
/// time without one (NVD, which means UTC), or a bare date.
pub(crate) fn parse_time(s: &str) -> Option<Timestamp> {
    let s = s.trim();
    if let Ok(t) = s.parse::<Timestamp>() {
        return Some(t);
    }
    if let Ok(dt) = s.parse::<jiff::civil::DateTime>() {
        return TimeZone::UTC.to_timestamp(dt).ok();
    }
    if let Ok(d) = s.parse::<jiff::civil::Date>() {
        return TimeZone::UTC
            .to_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
            .ok();
    }
    None
}

/// [`parse_time`] for an optional field, failing with the field's name.
pub(crate) fn opt_time(field: &str, value: Option<&str>) -> Result<Option<Timestamp>, String> {
    match value {
        None => Ok(None),
        Some(s) if s.trim().is_empty() => Ok(None),
        Some(s) => parse_time(s)
            .map(Some)
            .ok_or_else(|| format!("{field}: not a timestamp: {:?}", shorten(s))),
    }
}

/// A prefix of `s` short enough for an error message.
pub(crate) fn shorten(s: &str) -> &str {
    const SHOWN: usize = 80;
    if s.len() <= SHOWN {
        return s;
    }
    let mut end = SHOWN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Whether `s` is a CVE id (`CVE-YYYY-NNNN…`).
pub(crate) fn is_cve(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("CVE-") else {
        return false;
    };
    let Some((year, num)) = rest.split_once('-') else {
        return false;
    };
    year.len() == 4
        && year.bytes().all(|b| b.is_ascii_digit())
        && num.len() >= 4
        && num.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_forms() {
        let z = parse_time("2021-07-15T02:22:07.728618Z").expect("osv");
        assert_eq!(z.to_string(), "2021-07-15T02:22:07.728618Z");
        let nvd = parse_time("2023-10-12T19:15:11.747").expect("nvd");
        assert_eq!(nvd.to_string(), "2023-10-12T19:15:11.747Z");
        let csaf = parse_time("2025-12-18T11:16:21+00:00").expect("csaf");
        assert_eq!(csaf.to_string(), "2025-12-18T11:16:21Z");
        let date = parse_time("2024-03-01").expect("date");
        assert_eq!(date.to_string(), "2024-03-01T00:00:00Z");
        assert!(parse_time("yesterday").is_none());
    }

    #[test]
    fn yaml_depth() {
        assert!(check_yaml_depth(b"a: [1, [2, {b: 3}]]\nc:\n  - - x\n").is_ok());
        let deep = format!("a: {}", "[".repeat(MAX_YAML_DEPTH + 1));
        assert!(check_yaml_depth(deep.as_bytes()).is_err());
        // Brackets inside a quoted scalar are text.
        let quoted = format!("a: \"{}\"", "[".repeat(MAX_YAML_DEPTH + 1));
        assert!(check_yaml_depth(quoted.as_bytes()).is_ok());
        // An apostrophe in plain text opens no quote that could hide nesting.
        let hidden = format!("a: don't {}", "[".repeat(MAX_YAML_DEPTH + 1));
        assert!(check_yaml_depth(hidden.as_bytes()).is_err());
        let block = format!("a:\n{}x\n", "- ".repeat(MAX_YAML_DEPTH + 1));
        assert!(check_yaml_depth(block.as_bytes()).is_err());
    }

    #[test]
    fn cve_ids() {
        assert!(is_cve("CVE-2021-44228"));
        assert!(is_cve("CVE-2021-0001"));
        assert!(!is_cve("CVE-2017-8073.patch"));
        assert!(!is_cve("XSA-182"));
        assert!(!is_cve("CVE-21-1234"));
    }
}

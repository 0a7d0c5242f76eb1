//! Which feed format a file or directory holds, told by its content rather than its name:
//! feeds are saved under arbitrary names (`json`, `main.json`, `page-3`, `all.zip`), and a
//! downloaded file has no name at all.
//!
//! Only a prefix of each file is read ([`SNIFF_BYTES`]): the Debian tracker export is
//! 80 MB and its first package says what it is. JSON is recognised by the keys it uses at
//! the first levels of nesting, found by a small scanner that tolerates the cut-off end of
//! the prefix; YAML and the DSA/DLA lists by their lines.

use std::collections::BTreeSet;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// Bytes of a file read to tell its format.
pub const SNIFF_BYTES: u64 = 256 << 10;

/// Files of a directory sampled to tell its format, and entries walked to find them.
const SAMPLE_FILES: usize = 32;
const SAMPLE_ENTRIES: usize = 100_000;

/// Largest Alpine secdb document whose header is read to name its source (real ones are
/// under 2 MB); a larger one is named after its file.
const MAX_NAMING_READ: u64 = 64 << 20;

/// A feed format that `db import` reads and `[[db.feeds]]` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FeedFormat {
    /// OSV JSON or YAML files, directories of them, osv.dev `all.zip` archives.
    Osv,
    /// Alpine secdb documents (YAML or JSON), or a directory of them.
    Alpine,
    /// The Debian security tracker's JSON export.
    DebianJson,
    /// A Debian DSA, DLA or DTSA `list` file of the security tracker.
    DebianList,
    /// NVD CVE API 2.0 pages or CVE objects (CVSS enrichment only).
    Nvd,
    /// Red Hat CSAF advisories or VEX documents.
    Csaf,
}

impl bulkhead_model::Named for FeedFormat {
    const ALL: &'static [Self] = &[
        FeedFormat::Osv,
        FeedFormat::Alpine,
        FeedFormat::DebianJson,
        FeedFormat::DebianList,
        FeedFormat::Nvd,
        FeedFormat::Csaf,
    ];
    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl FeedFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedFormat::Osv => "osv",
            FeedFormat::Alpine => "alpine",
            FeedFormat::DebianJson => "debian-json",
            FeedFormat::DebianList => "debian-list",
            FeedFormat::Nvd => "nvd",
            FeedFormat::Csaf => "csaf",
        }
    }

    /// Whether the parser can walk a directory of this format.
    fn reads_directories(self) -> bool {
        matches!(
            self,
            FeedFormat::Osv | FeedFormat::Alpine | FeedFormat::Nvd | FeedFormat::Csaf
        )
    }
}

impl fmt::Display for FeedFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the bytes of a feed are laid out, which picks the parser entry point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Dir,
    Zip,
    Json,
    Yaml,
    /// Line-oriented text (the DSA/DLA lists).
    Text,
}

/// One input of an import, with its format and source name settled.
#[derive(Clone, Debug)]
pub struct Input {
    pub path: PathBuf,
    pub format: FeedFormat,
    pub shape: Shape,
    pub source: String,
}

impl Input {
    /// Resolves `path`: its format (`forced`, or sniffed), its shape, and its source name
    /// (`source`, or derived, see [`derive_source`]).
    pub fn resolve(path: &Path, forced: Option<FeedFormat>, source: Option<&str>) -> Result<Self> {
        let meta = std::fs::metadata(path)
            .with_context(|| format!("cannot open feed {}", path.display()))?;
        let (format, shape) = if meta.is_dir() {
            let format = match forced {
                Some(f) => f,
                None => sniff_dir(path)?,
            };
            if !format.reads_directories() {
                bail!(
                    "{}: a {format} feed is one file, not a directory: import the file itself",
                    path.display()
                );
            }
            (format, Shape::Dir)
        } else {
            let head = read_head(path)?;
            let (sniffed, shape) = sniff_bytes(&head);
            let format = match (forced, sniffed) {
                (Some(f), _) => f,
                (None, Some(f)) => f,
                (None, None) => bail!(
                    "{}: not a feed format Bulkhead recognises (OSV, Alpine secdb, Debian tracker JSON or DSA/DLA list, NVD API 2.0, Red Hat CSAF); if it is one, say which with --format",
                    path.display()
                ),
            };
            (format, shape)
        };
        let source = match source {
            Some(s) if s.trim().is_empty() => bail!("--source: empty source name"),
            Some(s) => s.to_owned(),
            None => derive_source(path, format, shape)?,
        };
        Ok(Input {
            path: path.to_path_buf(),
            format,
            shape,
            source,
        })
    }
}

/// The first [`SNIFF_BYTES`] of `path`.
pub fn read_head(path: &Path) -> Result<Vec<u8>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut head = Vec::new();
    file.take(SNIFF_BYTES)
        .read_to_end(&mut head)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(head)
}

/// The format (if recognised) and shape of a file that starts with `head`.
pub fn sniff_bytes(head: &[u8]) -> (Option<FeedFormat>, Shape) {
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return (Some(FeedFormat::Osv), Shape::Zip);
    }
    let body = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(body.len());
    let body = &body[start..];
    match body.first() {
        Some(b'{') => (classify_json(&scan_keys(body)), Shape::Json),
        Some(b'[') if list_kind(body).is_some() => (Some(FeedFormat::DebianList), Shape::Text),
        // A JSON array: no supported feed is one.
        Some(b'[') => (None, Shape::Json),
        _ => {
            let format = classify_text(body);
            let shape = if format == Some(FeedFormat::DebianList) {
                Shape::Text
            } else {
                Shape::Yaml
            };
            (format, shape)
        }
    }
}

/// Top-level keys of OSV records besides `id` (any one of them, with `id`, makes a record).
const OSV_KEYS: &[&str] = &[
    "schema_version",
    "modified",
    "published",
    "withdrawn",
    "aliases",
    "related",
    "summary",
    "details",
    "affected",
    "severity",
    "database_specific",
];

/// Top-level keys of an NVD API 2.0 CVE object that OSV records do not have.
const NVD_CVE_KEYS: &[&str] = &[
    "sourceIdentifier",
    "vulnStatus",
    "cveTags",
    "descriptions",
    "configurations",
    "lastModified",
];

/// Object keys found at nesting levels 1 to [`KEY_DEPTHS`] (level 1: the top-level object's
/// own keys; an array counts as a level).
const KEY_DEPTHS: usize = 4;
const MAX_KEYS_PER_DEPTH: usize = 4096;

#[derive(Debug, Default)]
struct Keys {
    at: [Vec<String>; KEY_DEPTHS],
}

impl Keys {
    fn has(&self, depth: usize, key: &str) -> bool {
        self.at[depth - 1].iter().any(|k| k == key)
    }
}

/// Scans (possibly truncated) JSON for object keys, by nesting level. Not a validator:
/// it only needs to be right about well-formed input and to end on anything else.
fn scan_keys(bytes: &[u8]) -> Keys {
    let mut keys = Keys::default();
    // true for an object, false for an array.
    let mut stack: Vec<bool> = Vec::new();
    let mut expect_key = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => {
                stack.push(true);
                expect_key = true;
            }
            b'[' => {
                stack.push(false);
                expect_key = false;
            }
            b'}' | b']' => {
                stack.pop();
                expect_key = false;
            }
            b',' => expect_key = stack.last() == Some(&true),
            b':' => expect_key = false,
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while j < bytes.len() && bytes[j] != b'"' {
                    j += if bytes[j] == b'\\' { 2 } else { 1 };
                }
                if j >= bytes.len() {
                    break; // cut off inside a string
                }
                let depth = stack.len();
                if expect_key && (1..=KEY_DEPTHS).contains(&depth) {
                    let slot = &mut keys.at[depth - 1];
                    if slot.len() < MAX_KEYS_PER_DEPTH {
                        slot.push(String::from_utf8_lossy(&bytes[start..j]).into_owned());
                    }
                }
                expect_key = false;
                i = j;
            }
            _ => {}
        }
        i += 1;
    }
    keys
}

fn classify_json(k: &Keys) -> Option<FeedFormat> {
    let any1 = |names: &[&str]| names.iter().any(|n| k.has(1, n));
    if k.has(1, "document") && (k.has(2, "csaf_version") || k.has(1, "product_tree")) {
        return Some(FeedFormat::Csaf);
    }
    if k.has(1, "vulnerabilities")
        && (any1(&["format", "resultsPerPage", "totalResults", "startIndex"]) || k.has(3, "cve"))
    {
        return Some(FeedFormat::Nvd);
    }
    if k.has(1, "id") {
        if any1(NVD_CVE_KEYS) {
            return Some(FeedFormat::Nvd);
        }
        if any1(OSV_KEYS) {
            return Some(FeedFormat::Osv);
        }
    }
    if k.has(1, "distroversion") || (k.has(1, "packages") && k.has(3, "pkg")) {
        return Some(FeedFormat::Alpine);
    }
    // The tracker export: package → issue id → {description, scope, releases}.
    if (k.has(3, "releases") || k.has(3, "scope"))
        && k.at[1]
            .iter()
            .any(|id| id.starts_with("CVE-") || id.starts_with("TEMP-"))
    {
        return Some(FeedFormat::DebianJson);
    }
    None
}

/// YAML (OSV, Alpine secdb) or a DSA/DLA list, told by its top-level lines.
fn classify_text(body: &[u8]) -> Option<FeedFormat> {
    if list_kind(body).is_some() {
        return Some(FeedFormat::DebianList);
    }
    let text = String::from_utf8_lossy(body);
    let top: BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with([' ', '\t', '-', '#']))
        .filter_map(|l| l.split_once(':').map(|(k, _)| k.trim()))
        .collect();
    if top.contains("distroversion") || (top.contains("packages") && text.contains("secfixes:")) {
        return Some(FeedFormat::Alpine);
    }
    if top.contains("id") && OSV_KEYS.iter().any(|k| top.contains(k)) {
        return Some(FeedFormat::Osv);
    }
    None
}

/// `dsa`, `dla` or `dtsa` when the first non-blank line is a list entry header such as
/// `[29 Mar 2023] DSA-5380-1 xorg-server - security update`.
fn list_kind(body: &[u8]) -> Option<&'static str> {
    let text = String::from_utf8_lossy(&body[..body.len().min(4096)]);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let (_, rest) = line.strip_prefix('[')?.split_once(']')?;
    let id = rest.trim_start();
    [("DSA-", "dsa"), ("DLA-", "dla"), ("DTSA-", "dtsa")]
        .into_iter()
        .find(|(prefix, _)| id.starts_with(prefix))
        .map(|(_, kind)| kind)
}

/// The one format of the feed files in `dir`, from a sample of them.
fn sniff_dir(dir: &Path) -> Result<FeedFormat> {
    let files = sample_files(dir)?;
    if files.is_empty() {
        bail!(
            "{}: no feed files (*.json, *.yaml, *.yml) in this directory",
            dir.display()
        );
    }
    let mut found: Vec<(FeedFormat, &Path)> = Vec::new();
    for f in &files {
        let head = read_head(f)?;
        if let (Some(format), _) = sniff_bytes(&head)
            && !found.iter().any(|(g, _)| *g == format)
        {
            found.push((format, f));
        }
    }
    match found.as_slice() {
        [] => bail!(
            "{}: none of {} sampled files (such as {}) is in a feed format Bulkhead recognises; if they are, say which with --format",
            dir.display(),
            files.len(),
            files[0].display()
        ),
        [(format, _)] if format.reads_directories() => Ok(*format),
        [(format, example)] => bail!(
            "{}: holds {format} files (such as {}), which are imported one file at a time",
            dir.display(),
            example.display()
        ),
        [(a, x), (b, y), ..] => bail!(
            "{}: mixes feed formats ({} is {a}, {} is {b}): import the feeds separately, or say which format with --format",
            dir.display(),
            x.display(),
            y.display()
        ),
    }
}

/// Up to [`SAMPLE_FILES`] feed files under `dir`, the way the parsers walk it (hidden
/// entries skipped, symbolic links not followed), sorted.
fn sample_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = 0usize;
    'walk: while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).with_context(|| format!("cannot list {}", d.display()))?;
        let mut names: Vec<(PathBuf, std::fs::FileType)> = Vec::new();
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot list {}", d.display()))?;
            seen += 1;
            if seen > SAMPLE_ENTRIES {
                break;
            }
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let kind = entry
                .file_type()
                .with_context(|| format!("cannot stat {}", entry.path().display()))?;
            names.push((entry.path(), kind));
        }
        names.sort_by(|a, b| a.0.cmp(&b.0));
        // Depth first in name order: subdirectories are pushed last-first to pop first-first.
        for (path, _) in names.iter().rev().filter(|(_, k)| k.is_dir()) {
            stack.push(path.clone());
        }
        for (path, kind) in names {
            if kind.is_file()
                && path
                    .extension()
                    .is_some_and(|e| ["json", "yaml", "yml"].iter().any(|x| e == *x))
            {
                out.push(path);
                if out.len() >= SAMPLE_FILES {
                    break 'walk;
                }
            }
        }
        if seen > SAMPLE_ENTRIES {
            break;
        }
    }
    out.sort();
    Ok(out)
}

/// The source name an input is imported under, when `--source` does not give one:
///
/// | input | source |
/// |---|---|
/// | OSV directory or file | `osv:<directory name or file stem>` |
/// | OSV zip | `osv:<zip stem>`, or `osv:<parent directory>` for `all.zip` (`Debian/all.zip` → `osv:Debian`) |
/// | Alpine secdb document | `alpine:<distroversion>/<reponame>` from its content (`alpine:v3.20/main`) |
/// | Alpine directory | `alpine:<directory name>` |
/// | Debian tracker JSON | `debian-tracker` |
/// | Debian list | `debian-dsa`, `debian-dla` or `debian-dtsa` from its first entry |
/// | NVD | `nvd` |
/// | CSAF | `redhat-csaf` |
pub fn derive_source(path: &Path, format: FeedFormat, shape: Shape) -> Result<String> {
    Ok(match format {
        FeedFormat::Osv => {
            let own = name_of(path, shape == Shape::Dir)?;
            if shape == Shape::Zip && own == "all" {
                let parent = std::fs::canonicalize(path)
                    .ok()
                    .and_then(|p| p.parent().and_then(|p| p.file_name()).map(|n| n.to_owned()));
                match parent {
                    Some(p) => format!("osv:{}", p.to_string_lossy()),
                    None => "osv:all".to_owned(),
                }
            } else {
                format!("osv:{own}")
            }
        }
        FeedFormat::Alpine if shape == Shape::Dir => format!("alpine:{}", name_of(path, true)?),
        FeedFormat::Alpine => match alpine_repo(path, shape) {
            Some((release, Some(repo))) => format!("alpine:{release}/{repo}"),
            Some((release, None)) => format!("alpine:{release}"),
            None => format!("alpine:{}", name_of(path, false)?),
        },
        FeedFormat::DebianJson => "debian-tracker".to_owned(),
        FeedFormat::DebianList => {
            let head = read_head(path)?;
            format!("debian-{}", list_kind(&head).unwrap_or("list"))
        }
        FeedFormat::Nvd => "nvd".to_owned(),
        FeedFormat::Csaf => "redhat-csaf".to_owned(),
    })
}

/// A directory's name (resolving `.` and `..`) or a file's stem.
fn name_of(path: &Path, whole: bool) -> Result<String> {
    let real = std::fs::canonicalize(path)
        .with_context(|| format!("cannot resolve {}", path.display()))?;
    let name = if whole {
        real.file_name()
    } else {
        real.file_stem()
    };
    Ok(name
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "root".to_owned()))
}

/// `distroversion` and `reponame` of a secdb document.
fn alpine_repo(path: &Path, shape: Shape) -> Option<(String, Option<String>)> {
    let file = std::fs::File::open(path).ok()?;
    let mut bytes = Vec::new();
    file.take(MAX_NAMING_READ + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    if bytes.len() as u64 > MAX_NAMING_READ {
        return None;
    }
    let clean = |s: &str| {
        let s = s.trim().trim_matches(['"', '\'']).trim();
        (!s.is_empty() && !s.contains(['/', ' ', '\t'])).then(|| s.to_owned())
    };
    let (release, repo) = if shape == Shape::Json {
        #[derive(Deserialize)]
        struct Head {
            distroversion: Option<String>,
            reponame: Option<String>,
        }
        let head: Head = serde_json::from_slice(&bytes).ok()?;
        (head.distroversion, head.reponame)
    } else {
        let text = String::from_utf8_lossy(&bytes);
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(':').map(str::to_owned))
        };
        (field("distroversion"), field("reponame"))
    };
    let release = clean(&release?)?;
    Some((release, repo.as_deref().and_then(clean)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn testdata(rel: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../advisories/testdata")
            .join(rel)
    }

    fn sniff(rel: &str) -> (Option<FeedFormat>, Shape) {
        sniff_bytes(&read_head(&testdata(rel)).expect("read"))
    }

    #[test]
    fn real_feed_files_are_recognised() {
        use FeedFormat::*;
        let cases = [
            ("osv/go/GO-2020-0001.json", Osv, Shape::Json),
            ("osv/almalinux/ALBA-2022:8256.json", Osv, Shape::Json),
            ("osv/crates/RUSTSEC-2016-0001.json", Osv, Shape::Json),
            ("osv/pypi/PYSEC-2007-1.yaml", Osv, Shape::Yaml),
            ("osv/zip/go-all.zip", Osv, Shape::Zip),
            ("alpine/v3.12-main.json", Alpine, Shape::Json),
            ("alpine/v3.10-community.json", Alpine, Shape::Json),
            ("alpine/v3.11-main.yaml", Alpine, Shape::Yaml),
            ("debian/tracker-osvdev.json", DebianJson, Shape::Json),
            ("debian/tracker-vunnel.json", DebianJson, Shape::Json),
            ("debian/DSA-list", DebianList, Shape::Text),
            ("debian/DSA-vunnel", DebianList, Shape::Text),
            ("debian/DLA-malformed", DebianList, Shape::Text),
            ("nvd/CVE-2024-3094.json", Nvd, Shape::Json),
            ("nvd/full-page.json", Nvd, Shape::Json),
            ("nvd/respPage2.json", Nvd, Shape::Json),
            ("csaf/rhsa-2023_3821.json", Csaf, Shape::Json),
            ("csaf/cve-2024-10041.json", Csaf, Shape::Json),
        ];
        for (file, format, shape) in cases {
            assert_eq!(sniff(file), (Some(format), shape), "{file}");
        }
        // The tracker's config is JSON but no feed.
        assert_eq!(sniff("debian/config.json").0, None);
    }

    #[test]
    fn a_truncated_prefix_still_tells_the_format() {
        let bytes =
            std::fs::read(testdata("debian/tracker-vunnel.json")).expect("read tracker json");
        for cut in [600, 1000, 3000] {
            assert_eq!(
                sniff_bytes(&bytes[..cut]).0,
                Some(FeedFormat::DebianJson),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn directories_are_recognised_and_mixed_ones_refused() {
        assert_eq!(
            sniff_dir(&testdata("osv/almalinux9-matcher")).expect("osv"),
            FeedFormat::Osv
        );
        assert_eq!(
            sniff_dir(&testdata("alpine")).expect("alpine"),
            FeedFormat::Alpine
        );
        assert_eq!(sniff_dir(&testdata("nvd")).expect("nvd"), FeedFormat::Nvd);
        assert_eq!(
            sniff_dir(&testdata("csaf")).expect("csaf"),
            FeedFormat::Csaf
        );
        // osv/ holds YAML and JSON OSV files in subdirectories: still one format.
        assert_eq!(
            sniff_dir(&testdata("osv")).expect("osv tree"),
            FeedFormat::Osv
        );
        let mixed = sniff_dir(&testdata("")).expect_err("mixed");
        assert!(mixed.to_string().contains("mixes feed formats"), "{mixed}");
        let debian = sniff_dir(&testdata("debian")).expect_err("debian");
        assert!(
            debian.to_string().contains("one file at a time"),
            "{debian}"
        );
    }

    #[test]
    fn source_names() {
        let name = |rel: &str| {
            let input = Input::resolve(&testdata(rel), None, None).expect(rel);
            input.source
        };
        assert_eq!(name("osv/go"), "osv:go");
        assert_eq!(name("osv/go/GO-2020-0001.json"), "osv:GO-2020-0001");
        assert_eq!(name("osv/zip/go-all.zip"), "osv:go-all");
        assert_eq!(name("alpine/v3.12-main.json"), "alpine:v3.12/main");
        assert_eq!(
            name("alpine/v3.10-community.json"),
            "alpine:v3.10/community"
        );
        assert_eq!(name("alpine/v3.11-main.yaml"), "alpine:v3.11/main");
        assert_eq!(name("alpine"), "alpine:alpine");
        assert_eq!(name("debian/tracker-vunnel.json"), "debian-tracker");
        assert_eq!(name("debian/DSA-list"), "debian-dsa");
        assert_eq!(name("debian/DLA-malformed"), "debian-dla");
        assert_eq!(name("nvd/full-page.json"), "nvd");
        assert_eq!(name("csaf"), "redhat-csaf");

        let dir = tempfile::tempdir().expect("tempdir");
        let debian = dir.path().join("Debian");
        std::fs::create_dir(&debian).expect("mkdir");
        std::fs::copy(testdata("osv/zip/go-all.zip"), debian.join("all.zip")).expect("copy");
        assert_eq!(
            Input::resolve(&debian.join("all.zip"), None, None)
                .expect("all.zip")
                .source,
            "osv:Debian"
        );
        let forced = Input::resolve(&debian, Some(FeedFormat::DebianJson), None)
            .expect_err("debian-json dir");
        assert!(forced.to_string().contains("not a directory"), "{forced}");
    }

    #[test]
    fn unknown_content_is_refused_with_a_hint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("x.json");
        std::fs::write(&f, br#"{"hello": "world"}"#).expect("write");
        let e = Input::resolve(&f, None, None).expect_err("unknown");
        assert!(e.to_string().contains("--format"), "{e}");
        let forced = Input::resolve(&f, Some(FeedFormat::Osv), Some("mine")).expect("forced");
        assert_eq!(
            (forced.format, forced.source.as_str()),
            (FeedFormat::Osv, "mine")
        );
    }

    #[test]
    fn scanner_survives_hostile_input() {
        let deep = "[".repeat(1 << 20);
        assert!(classify_json(&scan_keys(deep.as_bytes())).is_none());
        let unterminated = br#"{"id": "x", "summary": "never ends"#;
        assert_eq!(
            classify_json(&scan_keys(unterminated)),
            Some(FeedFormat::Osv)
        );
        let escaped = br#"{"a\"b": 1, "id\\": 2}"#;
        let keys = scan_keys(escaped);
        assert_eq!(keys.at[0], vec![r#"a\"b"#.to_owned(), r"id\\".to_owned()]);
    }
}

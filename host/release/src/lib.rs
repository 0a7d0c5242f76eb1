//! Operating-system detection from the release files of an image.
//!
//! Reads, in order of preference, `etc/os-release`, `usr/lib/os-release`, then the older
//! files (`etc/lsb-release`, `etc/alpine-release`, the `etc/*-release` files of the Red Hat
//! family and `etc/debian_version`). Pure std and no I/O of its own: the caller hands
//! [`detect`] a way to read a file, so the host runs it over the release files it merged
//! from an image's layers (whiteouts applied, later layers win), and the analyzer SDK runs
//! it over one layer's tree inside the sandbox. The host's result decides the image's OS;
//! an analyzer's is only advisory.
//!
//! The files are attacker-controlled bytes: a text longer than [`MAX_RELEASE_FILE`] is not
//! a release file and is ignored, and every field of the result is checked (at most
//! [`MAX_FIELD`] bytes, no control characters): a bad field is left out and the rest
//! survives. Parsing is linear in the input and never panics (`fuzz/fuzz_targets/release.rs`).

#![forbid(unsafe_code)]

/// `etc/os-release` and `usr/lib/os-release`, most authoritative first.
pub const OS_RELEASE: [&str; 2] = ["etc/os-release", "usr/lib/os-release"];
pub const LSB_RELEASE: &str = "etc/lsb-release";
pub const ALPINE_RELEASE: &str = "etc/alpine-release";
pub const DEBIAN_VERSION: &str = "etc/debian_version";
/// `(file, os id)` for the Red Hat family's single-line release files. The specific files
/// come before `redhat-release`, which derivatives also ship. The id here is only the
/// fallback: the line itself names the distribution (see `REDHAT_NAMES`).
pub const REDHAT_FAMILY: [(&str, &str); 8] = [
    ("etc/almalinux-release", "almalinux"),
    ("etc/rocky-release", "rocky"),
    ("etc/centos-release", "centos"),
    ("etc/fedora-release", "fedora"),
    ("etc/oracle-release", "ol"),
    ("etc/mariner-release", "mariner"),
    ("etc/redhat-release", "rhel"),
    ("etc/system-release", "amzn"),
];
/// The name a Red Hat style release line starts with → the distribution's os-release `ID`.
/// Needed because `redhat-release` is not always Red Hat's: CentOS 5 has no
/// `centos-release`, and AlmaLinux, Rocky and Scientific Linux images carry their own name
/// in `redhat-release` ("Rocky Linux release 8.10 (Green Obsidian)").
const REDHAT_NAMES: [(&str, &str); 9] = [
    ("AlmaLinux", "almalinux"),
    ("Rocky Linux", "rocky"),
    ("CentOS", "centos"),
    ("Fedora", "fedora"),
    ("Oracle Linux", "ol"),
    ("Scientific Linux", "scientific"),
    ("Amazon Linux", "amzn"),
    ("CBL-Mariner", "mariner"),
    ("Red Hat Enterprise Linux", "rhel"),
];

/// Release files are small; anything larger is not one.
pub const MAX_RELEASE_FILE: u64 = 64 << 10;
/// Longest field kept: the host's limit for short strings (`MAX_SHORT` in
/// `host/scan/src/sandbox/v0_1.rs`).
pub const MAX_FIELD: usize = 512;
/// `ID_LIKE` entries kept; real files list one to three.
pub const MAX_ID_LIKE: usize = 16;

/// Every release file [`detect`] may read, relative to the image root.
pub fn paths() -> impl Iterator<Item = &'static str> {
    OS_RELEASE
        .iter()
        .chain([LSB_RELEASE, ALPINE_RELEASE, DEBIAN_VERSION].iter())
        .copied()
        .chain(REDHAT_FAMILY.iter().map(|(f, _)| *f))
}

/// A distribution release, as its files state it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Release {
    /// `ID`: `debian`, `ubuntu`, `alpine`, `rhel`, `almalinux`, … (lower case).
    pub id: String,
    /// `ID_LIKE`, split on spaces.
    pub id_like: Vec<String>,
    /// `VERSION_ID`: `12`, `3.19.1`, `9.4`.
    pub version_id: Option<String>,
    /// `VERSION_CODENAME`: `bookworm`.
    pub version_codename: Option<String>,
    /// `PRETTY_NAME`.
    pub pretty_name: Option<String>,
    /// The file it was recognised from.
    pub source_file: String,
}

/// Detect the release from the files `read` returns (by path relative to the image root;
/// `None` for a missing file); `None` when no usable release file is there (scratch and
/// distroless-static images).
///
/// A file that is missing, larger than [`MAX_RELEASE_FILE`] or without a usable id is
/// skipped for the next one. When os-release leaves out the version or the codename, the
/// same distribution's older files fill them in: distroless Debian images ship an
/// os-release without `VERSION_ID` next to `debian_version`, and Ubuntu before 16.04 has
/// the codename only in `lsb-release`.
pub fn detect(read: impl Fn(&str) -> Option<String>) -> Option<Release> {
    let read = |path: &str| {
        read(path).filter(|t| u64::try_from(t.len()).is_ok_and(|n| n <= MAX_RELEASE_FILE))
    };
    let lsb = || read(LSB_RELEASE).and_then(|t| from_lsb_release(&t));
    let debian = || read(DEBIAN_VERSION).and_then(|t| debian_version(&t));

    if let Some(mut os) = OS_RELEASE
        .iter()
        .find_map(|file| read(file).and_then(|t| from_os_release(&t, file)))
    {
        if os.id == "debian"
            && (os.version_id.is_none() || os.version_codename.is_none())
            && let Some((version, codename)) = debian()
        {
            os.version_id = os.version_id.or(version);
            os.version_codename = os.version_codename.or(codename);
        }
        if os.version_codename.is_none()
            && let Some(l) = lsb()
            && l.id == os.id
        {
            os.version_codename = l.version_codename;
        }
        return Some(os);
    }
    if let Some(os) = lsb() {
        return Some(os);
    }
    if let Some(v) = read(ALPINE_RELEASE).and_then(|t| first_line(&t)) {
        return Some(release("alpine", Some(v), ALPINE_RELEASE));
    }
    for (file, id) in REDHAT_FAMILY {
        if let Some(info) = read(file).and_then(|t| from_redhat_release(&t, id, file)) {
            return Some(info);
        }
    }
    let (version, codename) = debian()?;
    let mut info = release("debian", version, DEBIAN_VERSION);
    info.version_codename = codename;
    Some(info)
}

fn release(id: &str, version: Option<String>, file: &str) -> Release {
    Release {
        id: id.to_string(),
        id_like: Vec::new(),
        version_id: version,
        version_codename: None,
        pretty_name: None,
        source_file: file.to_string(),
    }
}

/// Parse `os-release(5)`: `KEY=value` lines, `#` comments. Values follow the shell rules
/// the format is defined by: `"…"` (where `\` escapes `"`, `\`, `` ` `` and `$`), `'…'`
/// (literal) and unquoted text (where `\` escapes any character), concatenated. Like
/// systemd's reader, whitespace inside an unquoted value is kept and trailing whitespace
/// dropped. Quotes do not span lines: an unterminated quote ends at the end of its line,
/// so one bad line cannot swallow the rest of the file. Keys repeat in file order; the
/// last one wins, as in the shell.
pub fn parse_os_release(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    // `lines` also strips a `\r` before the `\n`; systemd's reader treats `\r` as a line
    // end too, and CRLF files exist in images built on Windows.
    for line in text.lines() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, raw)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim_end();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        out.push((key.to_string(), unquote(raw.trim_start())));
    }
    out
}

fn unquote(raw: &str) -> String {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Plain,
        Single,
        Double,
    }
    let mut state = State::Plain;
    let mut s = String::new();
    // Length of `s` up to its last character that is not trailing unquoted whitespace.
    let mut keep = 0;
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match (state, c) {
            (State::Plain, '\'') => state = State::Single,
            (State::Plain, '"') => state = State::Double,
            (State::Single, '\'') | (State::Double, '"') => state = State::Plain,
            (State::Plain, '\\') => {
                if let Some(next) = chars.next() {
                    s.push(next);
                }
            }
            (State::Double, '\\') => match chars.next() {
                Some(next @ ('"' | '\\' | '`' | '$')) => s.push(next),
                Some(next) => {
                    s.push('\\');
                    s.push(next);
                }
                None => s.push('\\'),
            },
            (State::Plain, c) if c.is_whitespace() => {
                s.push(c);
                continue;
            }
            (_, c) => s.push(c),
        }
        keep = s.len();
    }
    s.truncate(keep);
    s
}

/// The last value of `key`, if it is a usable field.
fn lookup(fields: &[(String, String)], key: &str) -> Option<String> {
    fields
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| field(v))
}

/// `v` as a result field: not empty, at most `MAX_FIELD` bytes, no control characters
/// (the host rejects those).
pub fn field(v: &str) -> Option<String> {
    (!v.is_empty() && v.len() <= MAX_FIELD && !v.chars().any(char::is_control))
        .then(|| v.to_string())
}

/// `v` lower-cased, if it is an os-release identifier (`0-9`, `a-z`, `.`, `_`, `-`).
/// Advisory sources are keyed by it, so anything else is no id at all.
fn identifier(v: &str) -> Option<String> {
    let v = field(v)?.to_ascii_lowercase();
    v.chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        .then_some(v)
}

fn from_os_release(text: &str, file: &str) -> Option<Release> {
    let fields = parse_os_release(text);
    let get = |k: &str| lookup(&fields, k);
    Some(Release {
        id: identifier(&get("ID")?)?,
        id_like: get("ID_LIKE")
            .map(|s| {
                s.split_whitespace()
                    .filter_map(identifier)
                    .take(MAX_ID_LIKE)
                    .collect()
            })
            .unwrap_or_default(),
        version_id: get("VERSION_ID"),
        version_codename: get("VERSION_CODENAME"),
        pretty_name: get("PRETTY_NAME"),
        source_file: file.to_string(),
    })
}

fn from_lsb_release(text: &str) -> Option<Release> {
    let fields = parse_os_release(text);
    let get = |k: &str| lookup(&fields, k);
    let mut info = release(&identifier(&get("DISTRIB_ID")?)?, None, LSB_RELEASE);
    info.version_id = get("DISTRIB_RELEASE");
    info.version_codename = get("DISTRIB_CODENAME");
    info.pretty_name = get("DISTRIB_DESCRIPTION");
    Some(info)
}

/// The first line of a single-line release file, trimmed, if it is a usable field.
fn first_line(text: &str) -> Option<String> {
    field(text.lines().next()?.trim())
}

/// "CentOS Linux release 7.9.2009 (Core)" in `file` → centos 7.9.2009; `fallback_id` when
/// the line names no known distribution.
fn from_redhat_release(text: &str, fallback_id: &str, file: &str) -> Option<Release> {
    let line = text.lines().next()?.trim();
    let version = field(&redhat_version(line)?)?;
    let id = REDHAT_NAMES
        .iter()
        .find(|(name, _)| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' '))
        })
        .map_or(fallback_id, |(_, id)| id);
    let mut info = release(id, Some(version), file);
    info.pretty_name = field(line);
    Some(info)
}

/// "CentOS Linux release 7.9.2009 (Core)" → "7.9.2009".
fn redhat_version(line: &str) -> Option<String> {
    let mut words = line.split_whitespace();
    words.find(|w| *w == "release")?;
    let v = words.next()?;
    v.starts_with(|c: char| c.is_ascii_digit())
        .then(|| v.to_string())
}

/// `etc/debian_version` → (version, codename): "12.5" is a point release of 12;
/// "bookworm/sid" is testing (or unstable), which has a codename and no number.
fn debian_version(text: &str) -> Option<(Option<String>, Option<String>)> {
    let v = first_line(text)?;
    let major = v.split('.').next().unwrap_or_default();
    if !major.is_empty() && major.chars().all(|c| c.is_ascii_digit()) {
        return Some((Some(major.to_string()), None));
    }
    let codename = v
        .split('/')
        .next()
        .filter(|c| c.starts_with(|c: char| c.is_ascii_lowercase()))
        .and_then(identifier);
    Some((None, codename))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_quoting() {
        let f = parse_os_release(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME='x y'\nID=debian\n# c\nVERSION_ID=\"12\"\nX=\"a\\\"b\\$c\"\nY=a\\ b'c d'\"e\"  \nZ=\"a\\nb\"\n",
        );
        let get = |k: &str| f.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PRETTY_NAME"), Some("Debian GNU/Linux 12 (bookworm)"));
        assert_eq!(get("NAME"), Some("x y"));
        assert_eq!(get("ID"), Some("debian"));
        assert_eq!(get("VERSION_ID"), Some("12"));
        assert_eq!(get("X"), Some("a\"b$c"));
        assert_eq!(get("Y"), Some("a bc de"));
        assert_eq!(get("Z"), Some("a\\nb"));
    }

    #[test]
    fn redhat_release_line() {
        assert_eq!(
            redhat_version("CentOS Linux release 7.9.2009 (Core)").as_deref(),
            Some("7.9.2009")
        );
        assert_eq!(
            redhat_version("Fedora release 39 (Thirty Nine)").as_deref(),
            Some("39")
        );
        assert_eq!(redhat_version("garbage"), None);
        assert_eq!(redhat_version("Foo release"), None);
        assert_eq!(redhat_version("Foo release x1"), None);
    }

    #[test]
    fn debian_version_forms() {
        assert_eq!(debian_version("12.5\n"), Some((Some("12".into()), None)));
        assert_eq!(
            debian_version("trixie/sid\n"),
            Some((None, Some("trixie".into())))
        );
        // No number before the dot is no version.
        assert_eq!(debian_version(".5\n"), Some((None, None)));
        assert_eq!(debian_version("\n"), None);
    }

    #[test]
    fn an_oversized_file_is_no_release_file() {
        let big = format!("ID=alpine\nVERSION_ID=3.99.0\n{}", "#".repeat(70 << 10));
        let files = |p: &str| (p == "etc/os-release").then(|| big.clone());
        assert_eq!(detect(files), None);
        // The same file within the limit is read.
        let small = |p: &str| (p == "etc/os-release").then(|| "ID=alpine\n".to_string());
        assert_eq!(detect(small).map(|r| r.id), Some("alpine".into()));
    }

    #[test]
    fn os_release_wins_over_the_older_files() {
        let files = |p: &str| match p {
            "etc/os-release" => Some("ID=alpine\nVERSION_ID=3.12.12\n".to_string()),
            "etc/alpine-release" => Some("3.99.0\n".to_string()),
            _ => None,
        };
        let r = detect(files).expect("a release");
        assert_eq!(
            (r.id.as_str(), r.version_id.as_deref()),
            ("alpine", Some("3.12.12"))
        );
        assert_eq!(r.source_file, "etc/os-release");
    }
}

//! Operating-system detection from the release files a layer carries.
//!
//! Reads, in order of preference, `etc/os-release`, `usr/lib/os-release`, then the older
//! files (`etc/lsb-release`, `etc/alpine-release`, `etc/debian_version` and the
//! `etc/*-release` files of the Red Hat family). Pure std: it runs natively in tests and
//! inside the sandbox.

use std::path::Path;

use crate::{FileRequest, OsInfo, PathPattern};

/// Release files, most authoritative first.
const OS_RELEASE: [&str; 2] = ["etc/os-release", "usr/lib/os-release"];
const LSB_RELEASE: &str = "etc/lsb-release";
const ALPINE_RELEASE: &str = "etc/alpine-release";
const DEBIAN_VERSION: &str = "etc/debian_version";
/// `(file, os id)` for the Red Hat family's single-line release files. The specific files
/// come before `redhat-release`, which derivatives also ship.
const REDHAT_FAMILY: [(&str, &str); 8] = [
    ("etc/almalinux-release", "almalinux"),
    ("etc/rocky-release", "rocky"),
    ("etc/centos-release", "centos"),
    ("etc/fedora-release", "fedora"),
    ("etc/oracle-release", "ol"),
    ("etc/mariner-release", "mariner"),
    ("etc/redhat-release", "rhel"),
    ("etc/system-release", "amzn"),
];

/// Release files are small; anything larger is not one.
const MAX_RELEASE_FILE: u64 = 64 << 10;

/// The file requests an analyzer adds to its own to get OS detection.
pub fn requests() -> Vec<FileRequest> {
    OS_RELEASE
        .iter()
        .chain([LSB_RELEASE, ALPINE_RELEASE, DEBIAN_VERSION].iter())
        .copied()
        .chain(REDHAT_FAMILY.iter().map(|(f, _)| *f))
        .map(|path| FileRequest {
            pattern: PathPattern::Exact(path.to_string()),
            max_size: MAX_RELEASE_FILE,
        })
        .collect()
}

/// Detect the OS of the tree mounted at `root`; `None` when it carries no release file
/// (scratch and distroless-static images).
pub fn detect(root: &Path) -> Option<OsInfo> {
    let read = |rel: &str| {
        crate::fs::read(&root.join(rel), MAX_RELEASE_FILE)
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    for file in OS_RELEASE {
        if let Some(text) = read(file)
            && let Some(os) = from_os_release(&text, file)
        {
            return Some(os);
        }
    }
    if let Some(text) = read(LSB_RELEASE)
        && let Some(os) = from_lsb_release(&text)
    {
        return Some(os);
    }
    if let Some(text) = read(ALPINE_RELEASE) {
        let v = text.trim();
        if !v.is_empty() {
            return Some(os("alpine", Some(v), ALPINE_RELEASE));
        }
    }
    for (file, id) in REDHAT_FAMILY {
        if let Some(text) = read(file)
            && let Some(version) = redhat_version(&text)
        {
            let mut info = os(id, Some(&version), file);
            info.pretty_name = Some(text.trim().to_string());
            return Some(info);
        }
    }
    if let Some(text) = read(DEBIAN_VERSION) {
        let v = text.trim();
        if !v.is_empty() {
            // "12.5" is a point release of 12; "bookworm/sid" is testing, with no number.
            let version = v
                .split('.')
                .next()
                .filter(|m| m.chars().all(|c| c.is_ascii_digit()));
            let mut info = os("debian", version, DEBIAN_VERSION);
            if version.is_none() {
                info.version_codename = v.split('/').next().map(str::to_string);
            }
            return Some(info);
        }
    }
    None
}

fn os(id: &str, version: Option<&str>, file: &str) -> OsInfo {
    OsInfo {
        id: id.to_string(),
        id_like: Vec::new(),
        version_id: version.map(str::to_string),
        version_codename: None,
        pretty_name: None,
        source_file: file.to_string(),
    }
}

/// Parse `os-release(5)`: `KEY=value` lines, values optionally quoted with shell rules for
/// `"…"` (backslash escapes `\"`, `\\`, `` \` ``, `\$`) and `'…'`.
pub fn parse_os_release(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, raw)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        out.push((key.to_string(), unquote(raw.trim())));
    }
    out
}

fn unquote(raw: &str) -> String {
    let mut chars = raw.chars();
    match chars.next() {
        Some('"') => {
            let mut s = String::new();
            let mut escaped = false;
            for c in chars {
                match (escaped, c) {
                    (false, '\\') => escaped = true,
                    (false, '"') => break,
                    (true, c) if matches!(c, '"' | '\\' | '`' | '$') => {
                        s.push(c);
                        escaped = false;
                    }
                    (true, c) => {
                        s.push('\\');
                        s.push(c);
                        escaped = false;
                    }
                    (false, c) => s.push(c),
                }
            }
            s
        }
        Some('\'') => chars.take_while(|&c| c != '\'').collect(),
        _ => raw.to_string(),
    }
}

fn from_os_release(text: &str, file: &str) -> Option<OsInfo> {
    let fields = parse_os_release(text);
    let get = |k: &str| {
        fields
            .iter()
            .rev()
            .find(|(key, v)| key == k && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    let id = get("ID")?.to_ascii_lowercase();
    Some(OsInfo {
        id,
        id_like: get("ID_LIKE")
            .map(|s| s.split_whitespace().map(str::to_ascii_lowercase).collect())
            .unwrap_or_default(),
        version_id: get("VERSION_ID"),
        version_codename: get("VERSION_CODENAME"),
        pretty_name: get("PRETTY_NAME"),
        source_file: file.to_string(),
    })
}

fn from_lsb_release(text: &str) -> Option<OsInfo> {
    let fields = parse_os_release(text);
    let get = |k: &str| {
        fields
            .iter()
            .rev()
            .find(|(key, v)| key == k && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    let mut info = os(&get("DISTRIB_ID")?.to_ascii_lowercase(), None, LSB_RELEASE);
    info.version_id = get("DISTRIB_RELEASE");
    info.version_codename = get("DISTRIB_CODENAME");
    info.pretty_name = get("DISTRIB_DESCRIPTION");
    Some(info)
}

/// "CentOS Linux release 7.9.2009 (Core)" → "7.9.2009".
fn redhat_version(text: &str) -> Option<String> {
    let line = text.lines().next()?;
    let mut words = line.split_whitespace();
    words.find(|w| *w == "release")?;
    let v = words.next()?;
    v.chars()
        .next()
        .filter(char::is_ascii_digit)
        .map(|_| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_quoting() {
        let f = parse_os_release(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME='x y'\nID=debian\n# c\nVERSION_ID=\"12\"\nX=\"a\\\"b\\$c\"\n",
        );
        let get = |k: &str| f.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PRETTY_NAME"), Some("Debian GNU/Linux 12 (bookworm)"));
        assert_eq!(get("NAME"), Some("x y"));
        assert_eq!(get("ID"), Some("debian"));
        assert_eq!(get("VERSION_ID"), Some("12"));
        assert_eq!(get("X"), Some("a\"b$c"));
    }

    #[test]
    fn redhat_release_line() {
        assert_eq!(
            redhat_version("CentOS Linux release 7.9.2009 (Core)\n").as_deref(),
            Some("7.9.2009")
        );
        assert_eq!(
            redhat_version("Fedora release 39 (Thirty Nine)").as_deref(),
            Some("39")
        );
        assert_eq!(redhat_version("garbage"), None);
    }
}

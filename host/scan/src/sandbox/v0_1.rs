//! Bindings for `bulkhead:analyzer@0.1.0` and their conversion to the host's model.
//!
//! Everything an analyzer returns is untrusted: it is validated here, on the trust line,
//! before any other stage sees it.

use bulkhead_model::{
    Analysis, AnalyzerMeta, AnalyzerWarning, FileRequest, Os, Package, PathPattern,
};

use super::{RunError, Verdict};

#[allow(missing_docs, unreachable_pub, clippy::all)]
mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/analyzer.wit",
        world: "analyzer",
        exports: { default: async },
    });
}

use bindings::bulkhead::analyzer::types as wit;
pub use bindings::{Analyzer, AnalyzerPre};

pub(super) type RawMetadata = wit::Metadata;
pub(super) type RawResult = Result<wit::Analysis, wit::AnalyzeError>;

/// Longest name, version, architecture or similar short field accepted.
const MAX_SHORT: usize = 512;
/// Longest path or message accepted.
const MAX_LONG: usize = 4096;
/// Properties per package.
const MAX_PROPERTIES: usize = 64;
/// Warnings kept per call; more are counted in one summary warning.
const MAX_WARNINGS: usize = 1000;
/// File requests per analyzer.
const MAX_REQUESTS: usize = 256;

fn short(field: &str, s: &str) -> Result<(), String> {
    if s.len() > MAX_SHORT {
        return Err(format!(
            "{field} is {} bytes long (max {MAX_SHORT})",
            s.len()
        ));
    }
    if has_control(s) {
        return Err(format!("{field} {s:?} contains control characters"));
    }
    Ok(())
}

/// `s.chars().any(char::is_control)`, without decoding: C0 controls and DEL are single
/// bytes, and the C1 controls (U+0080..U+009F) are the only ones whose UTF-8 starts with
/// 0xC2 0x80..=0x9F. Every lifted name and version goes through here.
fn has_control(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().any(|&c| c < 0x20 || c == 0x7f)
        || b.windows(2)
            .any(|w| w[0] == 0xc2 && (0x80..=0x9f).contains(&w[1]))
}

/// A relative, `/`-separated path with no `..`, no empty components and no NUL.
fn rel_path(field: &str, s: &str) -> Result<(), String> {
    if s.len() > MAX_LONG {
        return Err(format!(
            "{field} is {} bytes long (max {MAX_LONG})",
            s.len()
        ));
    }
    let (nul, dots) = nul_or_dots(s.as_bytes());
    if s.starts_with('/') || nul || (dots && s.split('/').any(|c| c == "..")) {
        return Err(format!(
            "{field} {s:?} is not a relative path inside the image"
        ));
    }
    Ok(())
}

/// Whether `b` has a NUL byte, and whether it has two dots in a row. Every owned file goes
/// through here (120,000 paths, 7 MB, for a Debian desktop), so this reads eight bytes at a
/// time; only a path with ".." somewhere is then split into components.
fn nul_or_dots(b: &[u8]) -> (bool, bool) {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const DOTS: u64 = 0x2e2e_2e2e_2e2e_2e2e;
    // The high bit of each byte of `x` that is zero, and no other bit.
    let zeros = |x: u64| !(((x & LOW7) + LOW7) | x | LOW7);
    let (mut nul, mut dots, mut last_dot) = (0u64, false, false);
    let mut words = b.chunks_exact(8);
    for chunk in &mut words {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let v = u64::from_le_bytes(word);
        nul |= zeros(v);
        let d = zeros(v ^ DOTS);
        // A dot followed by a dot, inside the word or across from the previous one.
        dots |= d & (d >> 8) != 0 || (last_dot && d & 0x80 != 0);
        last_dot = d >> 63 != 0;
    }
    let mut nul = nul != 0;
    for &c in words.remainder() {
        nul |= c == 0;
        dots |= last_dot && c == b'.';
        last_dot = c == b'.';
    }
    (nul, dots)
}

/// Validate `metadata()`.
pub(super) fn meta_from(m: wit::Metadata) -> Result<AnalyzerMeta, String> {
    let name_ok = !m.name.is_empty()
        && m.name.len() <= 64
        && m.name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && m.name.starts_with(|c: char| c.is_ascii_lowercase());
    if !name_ok {
        return Err(format!(
            "name {:?} must be 1-64 characters of a-z, 0-9, '-' or '_', starting with a letter",
            m.name
        ));
    }
    if semver_ok(&m.version).is_err() {
        return Err(format!(
            "version {:?} is not a semantic version (MAJOR.MINOR.PATCH)",
            m.version
        ));
    }
    short("ecosystem", &m.ecosystem)?;
    if m.requests.is_empty() {
        return Err("it requests no files, so it can never see anything".into());
    }
    if m.requests.len() > MAX_REQUESTS {
        return Err(format!(
            "{} file requests (max {MAX_REQUESTS})",
            m.requests.len()
        ));
    }
    let mut requests = Vec::with_capacity(m.requests.len());
    for r in m.requests {
        let pattern = match r.pattern {
            wit::PathPattern::Exact(p) => PathPattern::Exact(p),
            wit::PathPattern::Prefix(p) => PathPattern::Prefix(p),
            wit::PathPattern::Suffix(p) => PathPattern::Suffix(p),
            wit::PathPattern::Glob(p) => PathPattern::Glob(p),
        };
        let text = match &pattern {
            PathPattern::Exact(p) | PathPattern::Prefix(p) | PathPattern::Glob(p) => p,
            PathPattern::Suffix(p) => p,
        };
        if text.is_empty() {
            return Err(format!("empty path pattern {pattern:?}"));
        }
        rel_path("path pattern", text)?;
        requests.push(FileRequest {
            pattern,
            max_size: r.max_size,
        });
    }
    Ok(AnalyzerMeta {
        name: m.name,
        version: m.version,
        ecosystem: m.ecosystem,
        requests,
    })
}

fn semver_ok(v: &str) -> Result<(), ()> {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    let numeric =
        |p: &&str| !p.is_empty() && p.len() <= 10 && p.chars().all(|c| c.is_ascii_digit());
    if parts.len() == 3
        && parts.iter().all(numeric)
        && v.len() <= 64
        && !v.contains(char::is_whitespace)
    {
        Ok(())
    } else {
        Err(())
    }
}

/// Validate `analyze()`'s result. Invalid packages are dropped with a warning rather than
/// failing the whole analysis; too many packages is a limit violation.
pub(super) fn verdict_from(r: RawResult, max_packages: usize) -> Result<Verdict, RunError> {
    let a = match r {
        Ok(a) => a,
        Err(wit::AnalyzeError::NotApplicable) => return Ok(Verdict::NotApplicable),
        Err(wit::AnalyzeError::Parse(p)) => {
            return Ok(Verdict::ParseError {
                file: clip(&p.file),
                line: p.line,
                message: clip(&p.message),
            });
        }
        Err(wit::AnalyzeError::Io(m)) => return Ok(Verdict::IoError(clip(&m))),
    };
    if a.packages.len() > max_packages {
        return Err(RunError::TooManyPackages {
            count: a.packages.len(),
            limit: max_packages,
        });
    }
    let mut warnings: Vec<AnalyzerWarning> = Vec::new();
    let total_warnings = a.warnings.len();
    for w in a.warnings.into_iter().take(MAX_WARNINGS) {
        warnings.push(AnalyzerWarning {
            file: clip(&w.file),
            line: w.line,
            message: clip(&w.message),
        });
    }
    if total_warnings > MAX_WARNINGS {
        warnings.push(AnalyzerWarning {
            file: String::new(),
            line: 0,
            message: format!("{} more warnings not shown", total_warnings - MAX_WARNINGS),
        });
    }
    let mut packages = Vec::with_capacity(a.packages.len());
    let mut dropped = 0usize;
    let mut first_reason = None;
    for p in a.packages {
        match package_from(p) {
            Ok(p) => packages.push(p),
            Err(reason) => {
                dropped += 1;
                first_reason.get_or_insert(reason);
            }
        }
    }
    if let Some(reason) = first_reason {
        warnings.push(AnalyzerWarning {
            file: String::new(),
            line: 0,
            message: format!("dropped {dropped} invalid package records; the first: {reason}"),
        });
    }
    let os = match a.os.map(os_from).transpose() {
        Ok(os) => os,
        Err(reason) => {
            warnings.push(AnalyzerWarning {
                file: String::new(),
                line: 0,
                message: format!("ignored invalid os-info: {reason}"),
            });
            None
        }
    };
    Ok(Verdict::Analysis(Analysis {
        os,
        packages,
        warnings,
    }))
}

fn package_from(p: wit::InstalledPackage) -> Result<Package, String> {
    if p.name.is_empty() || p.version.is_empty() {
        return Err(format!(
            "package {:?} version {:?}: name and version are required",
            p.name, p.version
        ));
    }
    short("name", &p.name)?;
    short("version", &p.version)?;
    for (field, v) in [
        ("source-name", &p.source_name),
        ("source-version", &p.source_version),
        ("arch", &p.arch),
    ] {
        if let Some(v) = v {
            short(field, v)?;
        }
    }
    if let Some(l) = &p.license
        && l.len() > MAX_LONG
    {
        return Err(format!("license of {} is {} bytes long", p.name, l.len()));
    }
    rel_path("db-path", &p.db_path)?;
    for f in &p.files {
        rel_path("owned file", f)?;
    }
    if p.properties.len() > MAX_PROPERTIES {
        return Err(format!(
            "{} has {} properties (max {MAX_PROPERTIES})",
            p.name,
            p.properties.len()
        ));
    }
    for (k, v) in &p.properties {
        short("property key", k)?;
        if v.len() > MAX_LONG {
            return Err(format!("property {k} of {} is too long", p.name));
        }
    }
    Ok(Package {
        name: p.name,
        version: p.version,
        source_name: p.source_name,
        source_version: p.source_version,
        arch: p.arch,
        license: p.license,
        db_path: p.db_path,
        files: p.files,
        properties: p.properties,
        // Provenance (ecosystem, analyzer, layer, purl) is the host's to add, at merge.
        ..Package::default()
    })
}

fn os_from(o: wit::OsInfo) -> Result<Os, String> {
    short("os id", &o.id)?;
    if o.id.is_empty() {
        return Err("empty os id".into());
    }
    for v in [&o.version_id, &o.version_codename, &o.pretty_name]
        .into_iter()
        .flatten()
    {
        short("os field", v)?;
    }
    for v in &o.id_like {
        short("os id-like", v)?;
    }
    rel_path("os source file", &o.source_file)?;
    Ok(Os {
        id: o.id,
        id_like: o.id_like,
        version_id: o.version_id,
        version_codename: o.version_codename,
        pretty_name: o.pretty_name,
        source_file: o.source_file,
        eol: None,
    })
}

/// Guest-provided free text, cut to a sane length at a character boundary.
fn clip(s: &str) -> String {
    if s.len() <= MAX_LONG {
        return s.to_string();
    }
    let mut end = MAX_LONG;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_shapes() {
        assert!(semver_ok("0.1.0").is_ok());
        assert!(semver_ok("1.2.3-rc.1+build").is_ok());
        assert!(semver_ok("1.2").is_err());
        assert!(semver_ok("x.y.z").is_err());
    }

    #[test]
    fn control_characters_are_found_without_decoding() {
        for s in ["a\u{0}b", "tab\there", "del\u{7f}", "c1\u{85}x", "\u{9f}"] {
            assert!(has_control(s), "{s:?}");
            assert_eq!(has_control(s), s.chars().any(char::is_control), "{s:?}");
        }
        for s in [
            "",
            "libc6",
            "2.36-9+deb12u4",
            "é",
            "\u{a0}nbsp",
            "日本語",
            "\u{100}",
        ] {
            assert!(!has_control(s), "{s:?}");
            assert_eq!(has_control(s), s.chars().any(char::is_control), "{s:?}");
        }
    }

    #[test]
    fn nul_and_dot_runs_are_found_at_every_position() {
        let naive = |b: &[u8]| (b.contains(&0), b.windows(2).any(|w| w == b".."));
        for len in 0..24 {
            for i in 0..len {
                for j in i..len {
                    for (x, y) in [
                        (b'.', b'.'),
                        (0, b'a'),
                        (b'.', 0),
                        (0xae, 0xae),
                        (0x80, b'.'),
                    ] {
                        let mut v = vec![b'a'; len];
                        v[i] = x;
                        if j + 1 < len {
                            v[j + 1] = y;
                        }
                        assert_eq!(nul_or_dots(&v), naive(&v), "{v:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn paths_stay_inside() {
        assert!(rel_path("p", "usr/share/doc/a..b/x").is_ok());
        assert!(rel_path("p", "usr/..hidden/..x").is_ok());
        assert!(rel_path("p", "..").is_err());
        assert!(rel_path("p", "usr/..").is_err());
        assert!(rel_path("p", "usr/bin\0").is_err());
        assert!(rel_path("p", "var/lib/dpkg/status").is_ok());
        assert!(rel_path("p", "/etc/passwd").is_err());
        assert!(rel_path("p", "var/../../etc").is_err());
    }
}

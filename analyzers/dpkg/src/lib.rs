//! The dpkg analyzer: Debian, Ubuntu and distroless package databases.
//!
//! Reads `var/lib/dpkg/status` (one stanza per package, `Status:` says whether it is
//! installed) and the distroless `var/lib/dpkg/status.d/*` (one file per package, no
//! `Status:`), plus the owned-file lists `var/lib/dpkg/info/<pkg>[:<arch>].list`.
//! The parser is plain Rust over `&str`: it runs natively in tests and fuzzing and inside
//! the sandbox through [`analyze`].

#![forbid(unsafe_code)]

pub mod status;

use std::io::ErrorKind;
use std::path::Path;

use bulkhead_analyzer_sdk::{
    Analysis, AnalyzeError, FileRequest, InstalledPackage, Metadata, ParseError, PathPattern,
    Warning,
};

/// The analyzer's name in reports and cache keys.
pub const NAME: &str = "dpkg";
/// The status database, relative to the layer root.
pub const STATUS: &str = "var/lib/dpkg/status";
/// Distroless images: one stanza file per package.
pub const STATUS_D: &str = "var/lib/dpkg/status.d/";
/// Owned-file lists.
pub const INFO: &str = "var/lib/dpkg/info/";
/// Largest file read (the host extracts nothing larger than the requests allow).
const MAX_FILE: u64 = 256 << 20;

/// What the host must extract for this analyzer.
pub fn metadata() -> Metadata {
    let mut requests = vec![
        FileRequest {
            pattern: PathPattern::Exact(STATUS.into()),
            max_size: 128 << 20,
        },
        FileRequest {
            pattern: PathPattern::Prefix(STATUS_D.into()),
            max_size: 1 << 20,
        },
        FileRequest {
            pattern: PathPattern::Glob(format!("{INFO}*.list")),
            max_size: 16 << 20,
        },
    ];
    requests.extend(bulkhead_analyzer_sdk::os::requests());
    Metadata {
        name: NAME.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ecosystem: "deb".into(),
        requests,
    }
}

/// Analyze the tree mounted at `root`.
pub fn analyze(root: &Path) -> Result<Analysis, AnalyzeError> {
    let mut out = Analysis {
        os: None,
        packages: Vec::new(),
        warnings: Vec::new(),
    };
    let mut found = false;

    if let Some(text) = read(root, STATUS)? {
        found = true;
        let parsed =
            status::parse(&text, status::Kind::Status).map_err(|e| parse_error(STATUS, e))?;
        push(parsed, STATUS, &mut out);
    }

    // Distroless: every regular file in status.d/ except the companions of a stanza file.
    match std::fs::read_dir(root.join(STATUS_D)) {
        Ok(entries) => {
            let mut names: Vec<String> = entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !is_companion(n))
                .collect();
            names.sort();
            for name in names {
                let rel = format!("{STATUS_D}{name}");
                let Some(text) = read(root, &rel)? else {
                    continue;
                };
                match status::parse(&text, status::Kind::StatusD) {
                    Ok(parsed) => {
                        found = true;
                        push(parsed, &rel, &mut out);
                    }
                    // One unreadable stanza file must not hide the others.
                    Err(e) => out.warnings.push(Warning {
                        file: rel,
                        line: e.line,
                        message: e.message,
                    }),
                }
            }
        }
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {}
        Err(e) => return Err(AnalyzeError::Io(format!("{STATUS_D}: {e}"))),
    }

    if !found {
        return Err(AnalyzeError::NotApplicable);
    }
    owned_files(root, &mut out)?;
    out.os = bulkhead_analyzer_sdk::os::detect(root);
    Ok(out)
}

/// Control members that distroless generators put beside a package's stanza file
/// (`<pkg>.md5sums`, sometimes `<pkg>.preinst` …): they are not stanzas. Package names may
/// contain dots (`libgtk-3.0`), so only these exact suffixes are skipped.
const COMPANIONS: [&str; 11] = [
    "md5sums",
    "conffiles",
    "preinst",
    "postinst",
    "prerm",
    "postrm",
    "config",
    "templates",
    "shlibs",
    "symbols",
    "triggers",
];

fn is_companion(name: &str) -> bool {
    name.rsplit_once('.')
        .is_some_and(|(_, ext)| COMPANIONS.contains(&ext))
}

fn parse_error(file: &str, e: status::Error) -> AnalyzeError {
    match e.kind {
        status::ErrorKind::NotDpkg => AnalyzeError::NotApplicable,
        status::ErrorKind::Malformed => AnalyzeError::Parse(ParseError {
            file: file.to_string(),
            line: e.line,
            message: e.message,
        }),
    }
}

fn push(parsed: status::Parsed, file: &str, out: &mut Analysis) {
    out.packages.extend(parsed.packages.into_iter().map(|p| {
        let mut properties = Vec::new();
        if let Some(ma) = p.multi_arch {
            properties.push(("multi-arch".to_string(), ma));
        }
        InstalledPackage {
            name: p.name,
            version: p.version,
            source_name: p.source_name,
            source_version: p.source_version,
            arch: p.arch,
            license: None,
            db_path: file.to_string(),
            files: Vec::new(),
            properties,
        }
    }));
    out.warnings
        .extend(parsed.warnings.into_iter().map(|w| Warning {
            file: file.to_string(),
            line: w.line,
            message: w.message,
        }));
}

/// Attach `info/<name>:<arch>.list` (multi-arch "same") or `info/<name>.list`.
fn owned_files(root: &Path, out: &mut Analysis) -> Result<(), AnalyzeError> {
    // List the directory once instead of probing two names per package: inside the
    // sandbox every failed open is a host call, and 1,500 of them cost more than parsing
    // the whole status file.
    let lists: std::collections::HashSet<String> = match std::fs::read_dir(root.join(INFO)) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| n.ends_with(".list"))
            .collect(),
        Err(_) => return Ok(()),
    };
    for pkg in &mut out.packages {
        let mut candidates = Vec::with_capacity(2);
        if let Some(arch) = &pkg.arch {
            candidates.push(format!("{}:{arch}.list", pkg.name));
        }
        candidates.push(format!("{}.list", pkg.name));
        for name in candidates.into_iter().filter(|n| lists.contains(n)) {
            let rel = format!("{INFO}{name}");
            if let Some(text) = read(root, &rel)? {
                pkg.files = status::parse_list(&text);
                break;
            }
        }
    }
    Ok(())
}

/// Read a file of the mounted tree; `None` when it is absent.
fn read(root: &Path, rel: &str) -> Result<Option<String>, AnalyzeError> {
    // dpkg databases are meant to be UTF-8, but old ones carry Latin-1 descriptions:
    // the fields we read are ASCII, so a lossy decode loses nothing we use.
    Ok(
        bulkhead_analyzer_sdk::fs::read_db(root, rel, MAX_FILE)?.map(
            |bytes| match String::from_utf8(bytes) {
                Ok(text) => text,
                // Only an invalid file pays for a decoded copy.
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            },
        ),
    )
}

#[cfg(target_arch = "wasm32")]
mod component {
    use bulkhead_analyzer_sdk::{Analysis, AnalyzeError, Guest, Metadata, export};

    struct Dpkg;

    impl Guest for Dpkg {
        fn metadata() -> Metadata {
            super::metadata()
        }

        fn analyze(root: String) -> Result<Analysis, AnalyzeError> {
            super::analyze(std::path::Path::new(&root))
        }
    }

    export!(Dpkg);
}

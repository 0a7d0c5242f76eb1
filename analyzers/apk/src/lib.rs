//! The apk analyzer: Alpine, Wolfi and other apk-tools package databases.
//!
//! Reads the "installed" database, `lib/apk/db/installed` (apk-tools 2) or
//! `usr/lib/apk/db/installed` (the usr-merged location used by apk-tools 3 systems). The
//! parser ([`installed`]) is plain Rust over `&str`: it runs natively in tests and fuzzing
//! and inside the sandbox through [`analyze`].

#![forbid(unsafe_code)]

pub mod installed;

use std::path::Path;

use bulkhead_analyzer_sdk::{
    Analysis, AnalyzeError, FileRequest, InstalledPackage, Metadata, ParseError, PathPattern,
    Warning,
};

/// The analyzer's name in reports and cache keys.
pub const NAME: &str = "apk";
/// The installed database, where apk-tools 2 keeps it.
pub const INSTALLED: &str = "lib/apk/db/installed";
/// The installed database on usr-merged systems.
pub const USR_INSTALLED: &str = "usr/lib/apk/db/installed";
/// Largest database accepted. A big Alpine image has a few MiB; the host does not extract
/// anything larger, and reading stops here when run outside the host.
pub const MAX_DB_SIZE: u64 = 64 << 20;

/// What the host must extract for this analyzer.
pub fn metadata() -> Metadata {
    let mut requests = vec![
        FileRequest {
            pattern: PathPattern::Exact(INSTALLED.into()),
            max_size: MAX_DB_SIZE,
        },
        FileRequest {
            pattern: PathPattern::Exact(USR_INSTALLED.into()),
            max_size: MAX_DB_SIZE,
        },
    ];
    requests.extend(bulkhead_analyzer_sdk::os::requests());
    Metadata {
        name: NAME.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ecosystem: "apk".into(),
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

    let primary = read(root, INSTALLED)?;
    let usr = read(root, USR_INSTALLED)?;
    let (file, text) = match (primary, usr) {
        (Some(text), usr) => {
            if let Some(other) = usr {
                // Both exist when a usr-merge left the old database behind, or when the
                // image links one to the other. apk-tools 2 reads lib/apk: take that one,
                // but say so, because a stale copy may list other packages.
                let same = other == text;
                out.warnings.push(Warning {
                    file: USR_INSTALLED.to_string(),
                    line: 0,
                    message: format!(
                        "both {INSTALLED} and {USR_INSTALLED} exist ({}); using {INSTALLED}",
                        if same {
                            "identical"
                        } else {
                            "different contents"
                        }
                    ),
                });
            }
            (INSTALLED, text)
        }
        (None, Some(text)) => (USR_INSTALLED, text),
        (None, None) => return Err(AnalyzeError::NotApplicable),
    };

    let parsed = installed::parse(&text).map_err(|e| {
        AnalyzeError::Parse(ParseError {
            file: file.to_string(),
            line: e.line,
            message: e.message,
        })
    })?;
    out.packages
        .extend(parsed.packages.into_iter().map(|p| convert(p, file)));
    out.warnings
        .extend(parsed.warnings.into_iter().map(|w| Warning {
            file: file.to_string(),
            line: w.line,
            message: w.message,
        }));
    out.os = bulkhead_analyzer_sdk::os::detect(root);
    Ok(out)
}

fn convert(p: installed::Package, file: &str) -> InstalledPackage {
    let mut properties = Vec::new();
    let mut prop = |key: &str, value: Option<String>| {
        if let Some(v) = value {
            properties.push((key.to_string(), v));
        }
    };
    prop("maintainer", p.maintainer);
    prop("build-time", p.build_time);
    prop("commit", p.commit);
    prop("checksum", p.checksum);
    prop("url", p.url);
    prop("installed-size", p.installed_size);
    prop("provides", p.provides);
    // apk builds every subpackage with its origin's version, so the origin's version is
    // the package's own; with no origin recorded there is no source package to name.
    let source_version = p.origin.as_ref().map(|_| p.version.clone());
    InstalledPackage {
        name: p.name,
        version: p.version,
        source_name: p.origin,
        source_version,
        arch: p.arch,
        license: p.license,
        db_path: file.to_string(),
        files: p.files,
        properties,
    }
}

/// Read a database of the mounted tree; `None` when it is absent or not a regular file.
fn read(root: &Path, rel: &str) -> Result<Option<String>, AnalyzeError> {
    // apk writes UTF-8; a damaged file is still worth reading, and a lossy decode only
    // replaces the invalid bytes and leaves valid UTF-8 as it is.
    Ok(
        bulkhead_analyzer_sdk::fs::read_db(root, rel, MAX_DB_SIZE)?.map(|bytes| {
            match String::from_utf8(bytes) {
                Ok(text) => text,
                // Only an invalid file pays for a decoded copy.
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            }
        }),
    )
}

#[cfg(target_arch = "wasm32")]
mod component {
    use bulkhead_analyzer_sdk::{Analysis, AnalyzeError, Guest, Metadata, export};

    struct Apk;

    impl Guest for Apk {
        fn metadata() -> Metadata {
            super::metadata()
        }

        fn analyze(root: String) -> Result<Analysis, AnalyzeError> {
            super::analyze(std::path::Path::new(&root))
        }
    }

    export!(Apk);
}

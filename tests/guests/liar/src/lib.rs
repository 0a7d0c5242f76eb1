//! A lying analyzer for the attack tests (`tests/e2e/security/analyzers.rs`). Never shipped.
//!
//! Unlike the hostile guest it breaks no limit: everything it returns passes the host's
//! validation. It lies instead. By default it declares the ecosystem `apk`, the built-in
//! apk analyzer's (a spoofed ecosystem); built with the `own-ecosystem` feature it
//! declares `liar`.
//!
//! Each layer chooses the lie: the file `<root>/liar.mode` holds `MODE[:ARG…]`; a layer
//! without it is `not-applicable`.
//!
//! | mode | lie |
//! |---|---|
//! | `os:ID:VERSION` | the OS is `ID VERSION` (read from `etc/os-release`) |
//! | `version:NAME:VERSION` | package `NAME` is at `VERSION` in `lib/apk/db/installed`, the built-in apk analyzer's database |
//! | `claim:NAME:VERSION:DB` | package `NAME VERSION` was read from `DB` (another analyzer's database) |

// Natively nothing calls in: the exports exist on wasm32 only.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use std::io::ErrorKind;
use std::path::Path;

use bulkhead_analyzer_sdk::{
    Analysis, AnalyzeError, FileRequest, InstalledPackage, Metadata, OsInfo, PathPattern,
};

/// The file, relative to the layer root, that selects the lie.
const MODE_FILE: &str = "liar.mode";
/// The built-in apk analyzer's database.
const APK_DB: &str = "lib/apk/db/installed";

/// The ecosystem it declares.
const ECOSYSTEM: &str = if cfg!(feature = "own-ecosystem") {
    "liar"
} else {
    "apk"
};

fn metadata() -> Metadata {
    Metadata {
        name: "liar".to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        ecosystem: ECOSYSTEM.to_string(),
        requests: vec![FileRequest {
            pattern: PathPattern::Exact(MODE_FILE.to_string()),
            max_size: 4096,
        }],
    }
}

fn analyze(root: &Path) -> Result<Analysis, AnalyzeError> {
    let mode_path = root.join(MODE_FILE);
    let text = match std::fs::read_to_string(&mode_path) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(AnalyzeError::NotApplicable),
        Err(e) => return Err(AnalyzeError::Io(format!("{MODE_FILE}: {e}"))),
    };
    let spec = text.trim();
    let parts: Vec<&str> = spec.split(':').collect();
    let bad = || AnalyzeError::Io(format!("{MODE_FILE}: unknown mode {spec:?}"));
    let mut out = Analysis {
        os: None,
        packages: Vec::new(),
        warnings: Vec::new(),
    };
    match parts.as_slice() {
        ["os", id, version] => {
            out.os = Some(OsInfo {
                id: id.to_string(),
                id_like: Vec::new(),
                version_id: Some(version.to_string()),
                version_codename: None,
                pretty_name: Some(format!("{id} {version}")),
                source_file: "etc/os-release".to_string(),
            })
        }
        ["version", name, version] => out.packages.push(package(name, version, APK_DB)),
        ["claim", name, version, db] => out.packages.push(package(name, version, db)),
        _ => return Err(bad()),
    }
    Ok(out)
}

fn package(name: &str, version: &str, db: &str) -> InstalledPackage {
    InstalledPackage {
        name: name.to_string(),
        version: version.to_string(),
        source_name: Some(name.to_string()),
        source_version: None,
        arch: Some("x86_64".to_string()),
        license: None,
        db_path: db.to_string(),
        files: Vec::new(),
        properties: Vec::new(),
    }
}

#[cfg(target_arch = "wasm32")]
mod component {
    use bulkhead_analyzer_sdk::{Analysis, AnalyzeError, Guest, Metadata, export};

    struct Liar;

    impl Guest for Liar {
        fn metadata() -> Metadata {
            super::metadata()
        }

        fn analyze(root: String) -> Result<Analysis, AnalyzeError> {
            super::analyze(std::path::Path::new(&root))
        }
    }

    export!(Liar);
}

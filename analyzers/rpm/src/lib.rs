//! The rpm analyzer: RHEL, CentOS, Fedora, AlmaLinux, Rocky, Amazon Linux, SUSE, CBL-Mariner.
//!
//! Three database formats hold the same thing, one rpm header blob per installed package:
//! BerkeleyDB hash (`Packages`), NDB (`Packages.db`) and SQLite (`rpmdb.sqlite`). Each
//! reader below is pure Rust over the file's bytes (C libraries do not build for wasm) and
//! returns the raw header blobs; `header` turns a blob into a package. A SQLite database is
//! read with its write-ahead log (`rpmdb.sqlite-wal`) when one lies beside it, since
//! committed transactions may be only there (see `sqlite`).

#![forbid(unsafe_code)]

pub mod bdb;
pub mod header;
pub mod ndb;
pub mod sqlite;

use std::path::Path;

use bulkhead_analyzer_sdk::{
    Analysis, AnalyzeError, FileRequest, InstalledPackage, Metadata, ParseError, PathPattern,
    Warning,
};

/// A database file that cannot be read. `offset` is the byte offset (or page number, as
/// `message` says) where the reader gave up, so that a report can point at it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbError {
    pub offset: u64,
    pub message: String,
}

impl DbError {
    pub fn new(offset: u64, message: impl Into<String>) -> Self {
        Self {
            offset,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at offset {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for DbError {}

/// The analyzer's name in reports and cache keys.
pub const NAME: &str = "rpm";
/// Largest database accepted, and largest write-ahead log. A full Fedora workstation's
/// rpmdb is around 100-200 MiB; the host does not extract anything larger, and reading
/// stops here when run outside it. The SQLite write-ahead log gets the same bound: it holds
/// copies of the database's pages, usually far fewer than the database has (rpm empties
/// it whenever it closes the database).
pub const MAX_DB_SIZE: u64 = 256 << 20;

/// Where rpmdbs live: the classic location, the one Fedora ≥ 36 and openSUSE use
/// (`/var/lib/rpm` is then a symlink to it), and the one some older SUSE images use.
pub const DIRS: [&str; 3] = ["var/lib/rpm/", "usr/lib/sysimage/rpm/", "usr/share/rpm/"];

/// The database formats, most preferred first. rpm uses one; when several files exist,
/// the newer format is the one current distributions write, and an older file next to it
/// is most likely left over from a conversion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Sqlite,
    Ndb,
    Bdb,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Sqlite, Format::Ndb, Format::Bdb];

    pub fn file_name(self) -> &'static str {
        match self {
            Format::Sqlite => "rpmdb.sqlite",
            Format::Ndb => "Packages.db",
            Format::Bdb => "Packages",
        }
    }

    /// The file beside the database that may hold committed changes not yet in it:
    /// SQLite's write-ahead log, named as SQLite names it (the database's name and `-wal`).
    pub fn wal_file_name(self) -> Option<&'static str> {
        match self {
            Format::Sqlite => Some("rpmdb.sqlite-wal"),
            Format::Ndb | Format::Bdb => None,
        }
    }

    /// The header blobs of a database of this format. `wal` is the content of the file
    /// [`Format::wal_file_name`] names, when the format has one and it exists; it is
    /// ignored for the other formats.
    pub fn blobs(self, data: &[u8], wal: Option<&[u8]>) -> Result<Vec<Vec<u8>>, DbError> {
        match self {
            Format::Sqlite => sqlite::blobs(data, wal),
            Format::Ndb => ndb::blobs(data),
            Format::Bdb => bdb::blobs(data),
        }
    }
}

/// What the host must extract for this analyzer.
pub fn metadata() -> Metadata {
    let mut requests: Vec<FileRequest> = DIRS
        .iter()
        .flat_map(|dir| {
            Format::ALL
                .iter()
                .flat_map(|f| std::iter::once(f.file_name()).chain(f.wal_file_name()))
                .map(move |name| FileRequest {
                    pattern: PathPattern::Exact(format!("{dir}{name}")),
                    max_size: MAX_DB_SIZE,
                })
        })
        .collect();
    requests.extend(bulkhead_analyzer_sdk::os::requests());
    Metadata {
        name: NAME.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ecosystem: "rpm".into(),
        requests,
    }
}

/// Analyze the tree mounted at `root`: the first database found, by format preference
/// then directory, is read (a SQLite one with its write-ahead log); the others are ignored.
pub fn analyze(root: &Path) -> Result<Analysis, AnalyzeError> {
    let Some((rel, format, data)) = find_db(root)? else {
        return Err(AnalyzeError::NotApplicable);
    };
    let fail = |line: u32, message: String| {
        AnalyzeError::Parse(ParseError {
            file: rel.clone(),
            line,
            message,
        })
    };
    let mut warnings = Vec::new();
    let blobs = match format {
        Format::Sqlite => {
            // SQLite's name for it, as `Format::wal_file_name` says.
            let wal_rel = format!("{rel}-wal");
            let wal = read(root, &wal_rel)?;
            let read = sqlite::read(&data, wal.as_deref()).map_err(|e| fail(0, e.to_string()))?;
            if let sqlite::WalUse::Ignored(reason) = read.wal {
                // The packages are then those of the last checkpoint, which may be older
                // than what rpm lists: say so.
                warnings.push(Warning {
                    file: wal_rel,
                    line: 0,
                    message: format!("{reason}: ignored, as SQLite ignores it; {rel} read alone"),
                });
            }
            read.blobs
        }
        Format::Ndb | Format::Bdb => format
            .blobs(&data, None)
            .map_err(|e| fail(0, e.to_string()))?,
    };
    let mut packages = Vec::with_capacity(blobs.len());
    for (i, blob) in blobs.iter().enumerate() {
        // Record numbers are 1-based positions in storage order (the order `rpm -qa`
        // lists), which is what the contract's `line` means for binary formats.
        let record = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let p = header::parse_with(blob, header::Paths::Relative)
            .map_err(|e| fail(record, format!("header record {record}: {}", e.message)))?;
        packages.push(convert(p, &rel));
    }
    Ok(Analysis {
        os: bulkhead_analyzer_sdk::os::detect(root),
        packages,
        warnings,
    })
}

/// The database to read: its path relative to the root, its format and its bytes.
/// Empty files are skipped: no format has an empty valid database, and an empty
/// placeholder must not hide a real database in another format or directory.
fn find_db(root: &Path) -> Result<Option<(String, Format, Vec<u8>)>, AnalyzeError> {
    for format in Format::ALL {
        for dir in DIRS {
            let rel = format!("{dir}{}", format.file_name());
            if let Some(data) = read(root, &rel)?
                && !data.is_empty()
            {
                return Ok(Some((rel, format, data)));
            }
        }
    }
    Ok(None)
}

fn convert(p: header::Package, db_path: &str) -> InstalledPackage {
    let version = p.evr();
    // The source rpm's file name carries name, version and release but never the epoch
    // (no rpm file name does). The source package is built from the same spec as the
    // binary and has the same Epoch, so its full version is the binary's epoch plus the
    // file name's version-release: this is the EVR `rpm -qp --qf %{EVR}` would print for
    // the .src.rpm, and what advisories keyed by source package compare against. (A
    // subpackage may declare its own Epoch; then this is the subpackage's, a rare miss.)
    let (source_name, source_version) =
        match p.source_rpm.as_deref().and_then(header::split_source_rpm) {
            Some((name, vr)) => {
                let v = match p.epoch {
                    Some(e) => format!("{e}:{vr}"),
                    None => vr.to_string(),
                };
                (Some(name.to_string()), Some(v))
            }
            None => (None, None),
        };
    let mut properties = Vec::new();
    if let Some(e) = p.epoch {
        properties.push(("epoch".to_string(), e.to_string()));
    }
    if let Some(label) = p.modularity_label.filter(|l| !l.is_empty()) {
        properties.push(("modularity-label".to_string(), label));
    }
    InstalledPackage {
        name: p.name,
        version,
        source_name,
        source_version,
        arch: p.arch,
        license: p.license,
        db_path: db_path.to_string(),
        // Relative to the image root already (`header::Paths::Relative`).
        files: p.files,
        properties,
    }
}

/// Read a database of the mounted tree; `None` when it is absent or not a regular file.
fn read(root: &Path, rel: &str) -> Result<Option<Vec<u8>>, AnalyzeError> {
    bulkhead_analyzer_sdk::fs::read_db(root, rel, MAX_DB_SIZE)
}

#[cfg(target_arch = "wasm32")]
mod component {
    use bulkhead_analyzer_sdk::{Analysis, AnalyzeError, Guest, Metadata, export};

    struct Rpm;

    impl Guest for Rpm {
        fn metadata() -> Metadata {
            super::metadata()
        }

        fn analyze(root: String) -> Result<Analysis, AnalyzeError> {
            super::analyze(std::path::Path::new(&root))
        }
    }

    export!(Rpm);
}

//! The advisory database commands: `bulkhead db import`, `db status` and `db update`.
//!
//! The database itself (one SQLite file, replaced atomically on every change) and the
//! feed parsers belong to the `bulkhead-advisories` crate; this module finds the inputs,
//! tells their formats, names their sources, downloads feeds and reports. See
//! `docs/advisories.md`.
//!
//! Every command that changes the database builds a complete new file and renames it over
//! the old one, under an exclusive lock (`advisories.db.lock`): a failure at any point,
//! or a second `db update` started meanwhile, leaves the previous database in place.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use bulkhead_advisories::Builder;
use bulkhead_advisories::sources::debian::Releases;

pub mod config;
pub mod detect;
pub mod import;
pub mod status;
pub mod update;

pub use config::{DbConfig, FeedConfig, default_feeds};
pub use detect::FeedFormat;
pub use status::StatusFormat;

/// File name of the database in `$BULKHEAD_HOME/db/`.
pub const DB_FILE: &str = "advisories.db";

/// `$BULKHEAD_HOME/db/advisories.db`.
pub fn default_db_path(home: &crate::home::Home) -> PathBuf {
    home.db().join(DB_FILE)
}

/// `db import`: every input into one new database, committed only if all sources import.
pub fn import_paths(
    db: &Path,
    paths: &[PathBuf],
    format: Option<FeedFormat>,
    source: Option<&str>,
    out: &mut dyn Write,
) -> Result<()> {
    // The same file given twice (`db import feeds/* feeds/x.json`) would store its records
    // twice in one source.
    let mut seen = std::collections::BTreeSet::new();
    let mut inputs = Vec::with_capacity(paths.len());
    for p in paths {
        let real = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
        if seen.insert(real) {
            inputs.push(detect::Input::resolve(p, format, source)?);
        }
    }
    // Sources in the order their first input was given.
    let mut order: Vec<&str> = Vec::new();
    let mut groups: BTreeMap<&str, Vec<&detect::Input>> = BTreeMap::new();
    for input in &inputs {
        let group = groups.entry(input.source.as_str()).or_default();
        if group.is_empty() {
            order.push(input.source.as_str());
        }
        group.push(input);
    }
    let releases = Releases::builtin();
    let mut builder = Builder::new(db).with_context(|| {
        format!(
            "cannot start from the advisory database {}; move it away to rebuild it",
            db.display()
        )
    })?;
    let identity = |s: String| s;
    for name in order {
        let group = &groups[name];
        let formats: Vec<String> = group.iter().map(|i| i.format.to_string()).collect();
        match import::import_source(&mut builder, name, group, &releases) {
            Ok(report) => import::print_report(out, &report, &identity)?,
            Err(e) => {
                let what = match &e {
                    import::SourceFailure::Empty(_) => "has nothing to import",
                    _ => "failed",
                };
                bail!(
                    "source {name} ({}) {what}: {}; the advisory database {} is unchanged",
                    formats.join(", "),
                    crate::text::sanitize(&e.to_string()),
                    db.display()
                );
            }
        }
    }
    builder
        .commit()
        .with_context(|| format!("cannot write the advisory database {}", db.display()))?;
    writeln!(out, "wrote {}", db.display())?;
    Ok(())
}

/// Takes the exclusive lock of the database at `db` (creating its directory), held until
/// the returned file is dropped.
pub fn lock(db: &Path) -> Result<std::fs::File> {
    let dir = match db.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    let path = db.with_file_name(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => bail!(
            "another bulkhead is changing the advisory database {} (lock {}); wait for it to finish",
            db.display(),
            path.display()
        ),
        Err(e) => {
            Err(std::io::Error::from(e)).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

//! The advisory database: one SQLite file, read by the matcher, written only by [`Builder`].
//!
//! # Never half-written
//!
//! A [`Builder`] works on a temporary file in the target's directory and only
//! [`Builder::commit`] puts it in place, by `rename(2)` after `VACUUM` and `fsync`. A crash,
//! a killed update or a feed that fails to import leaves the previous database untouched
//! (and readers that have it open keep reading the old file); dropping an uncommitted
//! builder deletes the temporary file.
//!
//! # Updating one feed
//!
//! [`Builder::new`] starts from a copy of the current database (`VACUUM INTO`, a
//! consistent snapshot even while others read it) and [`Builder::import`] *replaces* the
//! named source: its old rows go, the new ones come, in one transaction. That was chosen
//! over rebuilding from all feeds because feeds change at different rates (NVD and Alpine
//! hourly, Debian's JSON daily, AlmaLinux per erratum) and are fetched separately: a rebuild
//! would need every feed's raw data at hand on each update, and one unreachable feed would
//! block the update of all others. Copying the database costs one sequential read and
//! write of its size. [`Builder::empty`] starts from nothing, for a full rebuild.
//!
//! # Schema
//!
//! | table | holds | read by |
//! |---|---|---|
//! | `sources` | per feed: name, upstream date, import time, records, skipped | [`Store::status`] |
//! | `advisories` | one row per advisory; aliases, related ids and severities as JSON | all |
//! | `texts` | details and references, apart so that lookups do not page through them | [`Store::find`] |
//! | `affected` | one row per affected package, clustered by (ecosystem, package key) | [`Store::lookup`] |
//! | `aliases` | alias → advisory (`aliases` and `related`) | [`Store::find`] |
//! | `enrichment` | CVE → CVSS ratings from NVD | [`Store::enrichment`] |
//!
//! `affected` is a `WITHOUT ROWID` table whose primary key starts with (ecosystem, package
//! key): a lookup is one range scan of the table itself, with no separate index to store.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use rusqlite::{Connection, OpenFlags, params};
use serde::{Deserialize, Serialize};
use tempfile::TempPath;

use crate::error::{Error, Result};
use crate::model::{
    Advisory, Affected, Enrichment, Event, FixState, Range, RangeKind, Record, Reference, Severity,
    SeverityKind, package_key, version_scheme,
};

/// `PRAGMA application_id` of a Bulkhead advisory database ("BHKA"): tells it apart from
/// any other SQLite file a wrong path might point at.
const APPLICATION_ID: i32 = 0x4248_4b41;

/// `PRAGMA user_version`: the schema below. A database of another version is refused, not
/// misread; the update command rebuilds it.
pub const SCHEMA_VERSION: i32 = 2;

/// Errors kept in an [`ImportReport`]; beyond this only the count grows, so that a feed
/// whose every record is broken cannot fill memory with messages.
pub const MAX_REPORTED_ERRORS: usize = 100;

const SCHEMA: &str = "
CREATE TABLE sources (
    name TEXT PRIMARY KEY,
    upstream_date TEXT,
    imported_at TEXT NOT NULL,
    records INTEGER NOT NULL,
    skipped INTEGER NOT NULL
);
CREATE TABLE advisories (
    rowid INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    id TEXT NOT NULL,
    published TEXT,
    modified TEXT,
    withdrawn TEXT,
    summary TEXT NOT NULL,
    aliases TEXT NOT NULL,
    related TEXT NOT NULL,
    severity TEXT NOT NULL
);
CREATE TABLE texts (
    advisory INTEGER PRIMARY KEY,
    details TEXT NOT NULL,
    refs TEXT NOT NULL
);
CREATE INDEX advisories_by_source ON advisories(source);
CREATE INDEX advisories_by_id ON advisories(id);
CREATE TABLE affected (
    ecosystem TEXT NOT NULL,
    package_key TEXT NOT NULL,
    advisory INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    package TEXT NOT NULL,
    ranges TEXT NOT NULL,
    versions TEXT,
    fix_state TEXT,
    vendor_severity TEXT,
    module TEXT,
    PRIMARY KEY (ecosystem, package_key, advisory, seq)
) WITHOUT ROWID;
CREATE TABLE aliases (
    alias TEXT NOT NULL,
    advisory INTEGER NOT NULL,
    relation TEXT NOT NULL,
    PRIMARY KEY (alias, advisory, relation)
) WITHOUT ROWID;
CREATE TABLE enrichment (
    cve TEXT NOT NULL,
    feed TEXT NOT NULL,
    seq INTEGER NOT NULL,
    rater TEXT NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    score REAL,
    modified TEXT,
    PRIMARY KEY (cve, feed, seq)
) WITHOUT ROWID;
";

/// One feed's state in the database.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceStatus {
    pub name: String,
    /// Newest `modified` or `published` date among the feed's records: how current the
    /// upstream data was, independent of when it was fetched.
    pub upstream_date: Option<Timestamp>,
    pub imported_at: Timestamp,
    pub records: u64,
    /// Records that failed to parse or validate and were left out.
    pub skipped: u64,
}

/// The advisory-level fields a match needs (no details or references: see
/// [`Store::find`] for the whole advisory).
#[derive(Debug, Clone, PartialEq)]
pub struct AdvisoryHeader {
    pub source: String,
    pub id: String,
    pub aliases: Vec<String>,
    pub related: Vec<String>,
    pub published: Option<Timestamp>,
    pub modified: Option<Timestamp>,
    pub withdrawn: Option<Timestamp>,
    pub summary: String,
    pub severity: Vec<Severity>,
}

/// An affected-package entry found by [`Store::lookup`], with its advisory.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    pub advisory: AdvisoryHeader,
    pub affected: Affected,
}

/// One affected entry as the matcher first reads it: the entry itself and which advisory it
/// belongs to, without the advisory's header (most entries do not affect the installed
/// version, and decoding headers was two thirds of a lookup's cost). [`Store::header`]
/// reads the header of those that do.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The advisory's key for [`Store::header`].
    pub advisory: i64,
    /// The entry's position in its advisory.
    pub seq: i64,
    pub affected: Affected,
}

/// What an import did.
#[derive(Debug)]
pub struct ImportReport {
    pub source: String,
    /// Records stored.
    pub records: u64,
    /// Records left out because they failed to parse or validate.
    pub skipped: u64,
    /// Affected entries left out of otherwise stored advisories because a version in them
    /// is not valid in their ecosystem's ordering.
    pub dropped_affected: u64,
    /// Versions kept although the ecosystem's reference tool calls them invalid, because
    /// that tool orders them anyway with a fallback and the matcher does the same
    /// (apk-tools: the secdb's `2021-03-27-r5`). Each is also in `errors`, saying so.
    pub fallback_versions: u64,
    /// The first [`MAX_REPORTED_ERRORS`] problems, each naming file and record.
    pub errors: Vec<Error>,
}

/// A read-only handle on an advisory database.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

fn db_err(path: &Path, what: &str) -> impl FnOnce(rusqlite::Error) -> Error {
    move |e| Error::with_source(path, what.to_owned(), e)
}

fn check_schema(conn: &Connection, path: &Path) -> Result<()> {
    let app: i32 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(db_err(path, "not a readable SQLite database"))?;
    let version: i32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(db_err(path, "not a readable SQLite database"))?;
    if app != APPLICATION_ID {
        return Err(Error::new(path, "not a Bulkhead advisory database"));
    }
    if version != SCHEMA_VERSION {
        return Err(Error::new(
            path,
            format!(
                "advisory database schema {version}, this version reads {SCHEMA_VERSION}: rebuild it"
            ),
        ));
    }
    Ok(())
}

fn ts(s: Option<String>) -> Option<Timestamp> {
    s.and_then(|s| s.parse().ok())
}

fn from_json<T: for<'de> Deserialize<'de>>(path: &Path, what: &str, text: &str) -> Result<T> {
    serde_json::from_str(text)
        .map_err(|e| Error::with_source(path, format!("corrupt {what} column"), e))
}

impl Store {
    /// Opens an existing database read-only.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        let path = path.as_ref();
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(db_err(path, "cannot open advisory database"))?;
        check_schema(&conn, path)?;
        // A scan looks up hundreds of packages: a 64 MB page cache and memory-mapped reads
        // keep the hot part of the database (the `affected` and `advisories` tables, a
        // fraction of the file) in memory after the first lookups.
        conn.execute_batch("PRAGMA cache_size = -65536; PRAGMA mmap_size = 1073741824;")
            .map_err(db_err(path, "cannot configure advisory database"))?;
        // The bundled SQLite has STAT4, which re-prepares a statement whenever a bound value
        // might change its plan, that is on every lookup (measured: 40% of lookup time). The
        // plan is fixed by the primary key anyway, so the planner is told to keep it.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )
        .map_err(db_err(path, "cannot configure advisory database"))?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// The path the store was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every source in the database, by name.
    pub fn status(&self) -> Result<Vec<SourceStatus>> {
        let err = || db_err(&self.path, "cannot read sources");
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name, upstream_date, imported_at, records, skipped FROM sources ORDER BY name")
            .map_err(err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })
            .map_err(err())?;
        let mut out = Vec::new();
        for row in rows {
            let (name, upstream, imported, records, skipped) = row.map_err(err())?;
            let imported_at = imported.parse().map_err(|_| {
                Error::new(&self.path, format!("corrupt imported_at of source {name}"))
            })?;
            out.push(SourceStatus {
                name,
                upstream_date: ts(upstream),
                imported_at,
                records: records.max(0) as u64,
                skipped: skipped.max(0) as u64,
            });
        }
        Ok(out)
    }

    /// The entries of every advisory that names `package` in `ecosystem` (`Debian:12`,
    /// `PyPI`, …), by source and id. PyPI names are compared after PEP 503 normalisation,
    /// others exactly. Withdrawn advisories are included (with
    /// [`AdvisoryHeader::withdrawn`] set): the matcher decides what to show.
    pub fn lookup(&self, ecosystem: &str, package: &str) -> Result<Vec<Match>> {
        self.snapshot(|| {
            let mut headers: BTreeMap<i64, AdvisoryHeader> = BTreeMap::new();
            let mut out = Vec::new();
            for e in self.entries(ecosystem, package)? {
                let advisory = match headers.get(&e.advisory) {
                    Some(h) => h.clone(),
                    None => {
                        let h = self.header(e.advisory)?;
                        headers.insert(e.advisory, h.clone());
                        h
                    }
                };
                out.push((
                    e.advisory,
                    e.seq,
                    Match {
                        advisory,
                        affected: e.affected,
                    },
                ));
            }
            out.sort_by(|a, b| {
                (&a.2.advisory.source, &a.2.advisory.id, a.0, a.1).cmp(&(
                    &b.2.advisory.source,
                    &b.2.advisory.id,
                    b.0,
                    b.1,
                ))
            });
            Ok(out.into_iter().map(|(_, _, m)| m).collect())
        })?
    }

    /// The entries naming `package` in `ecosystem`, without their advisories' headers (see
    /// [`Entry`]), in storage order: a primary-key range scan, no join and no sort. Callers
    /// that need (source, advisory id) order sort the entries they keep by header.
    pub fn entries(&self, ecosystem: &str, package: &str) -> Result<Vec<Entry>> {
        let err = || db_err(&self.path, "cannot look up package");
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT advisory, seq, package, ranges, versions, fix_state, vendor_severity, module
                 FROM affected WHERE ecosystem = ?1 AND package_key = ?2",
            )
            .map_err(err())?;
        let key = package_key(ecosystem, package);
        let mut rows = stmt.query(params![ecosystem, key]).map_err(err())?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(err())? {
            let get = |i: usize| -> Result<Option<String>> { r.get(i).map_err(err()) };
            let need = |i: usize| -> Result<String> { r.get(i).map_err(err()) };
            let fix_state =
                match get(5)? {
                    None => None,
                    Some(s) => Some(FixState::parse(&s).ok_or_else(|| {
                        Error::new(&self.path, format!("corrupt fix_state {s:?}"))
                    })?),
                };
            let ranges: Vec<StoredRange> = from_json(&self.path, "ranges", &need(3)?)?;
            out.push(Entry {
                advisory: r.get(0).map_err(err())?,
                seq: r.get(1).map_err(err())?,
                affected: Affected {
                    ecosystem: ecosystem.to_owned(),
                    package: need(2)?,
                    ranges: ranges.into_iter().map(Range::from).collect(),
                    versions: match get(4)? {
                        Some(v) => from_json(&self.path, "versions", &v)?,
                        None => Vec::new(),
                    },
                    fix_state,
                    vendor_severity: get(6)?,
                    module: get(7)?,
                },
            });
        }
        Ok(out)
    }

    /// The header of the advisory an [`Entry`] belongs to.
    pub fn header(&self, advisory: i64) -> Result<AdvisoryHeader> {
        let err = || db_err(&self.path, "cannot read advisory");
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT source, id, aliases, related, published, modified, withdrawn, summary, severity
                 FROM advisories WHERE rowid = ?1",
            )
            .map_err(err())?;
        let mut rows = stmt.query([advisory]).map_err(err())?;
        let r = rows
            .next()
            .map_err(err())?
            .ok_or_else(|| Error::new(&self.path, format!("no advisory with key {advisory}")))?;
        let get = |i: usize| -> Result<Option<String>> { r.get(i).map_err(err()) };
        let need = |i: usize| -> Result<String> { r.get(i).map_err(err()) };
        Ok(AdvisoryHeader {
            source: need(0)?,
            id: need(1)?,
            aliases: from_json(&self.path, "aliases", &need(2)?)?,
            related: from_json(&self.path, "related", &need(3)?)?,
            published: ts(get(4)?),
            modified: ts(get(5)?),
            withdrawn: ts(get(6)?),
            summary: need(7)?,
            severity: severities_from_json(&self.path, &need(8)?)?,
        })
    }

    /// [`Store::entries`] for many packages in one read transaction.
    pub fn entries_many<E: AsRef<str>, P: AsRef<str>>(
        &self,
        packages: &[(E, P)],
    ) -> Result<Vec<Vec<Entry>>> {
        self.snapshot(|| {
            packages
                .iter()
                .map(|(e, p)| self.entries(e.as_ref(), p.as_ref()))
                .collect()
        })?
    }

    /// [`Store::lookup`] for many packages in one read transaction: one file lock and one
    /// consistency check for all of them instead of one per package (measured: 10 ms
    /// instead of 14 for 1,000 packages), and all answers from the same database state.
    pub fn lookup_many<E: AsRef<str>, P: AsRef<str>>(
        &self,
        packages: &[(E, P)],
    ) -> Result<Vec<Vec<Match>>> {
        self.snapshot(|| {
            packages
                .iter()
                .map(|(e, p)| self.lookup(e.as_ref(), p.as_ref()))
                .collect()
        })?
    }

    /// Runs `f` inside one read transaction: every statement in it sees the same
    /// database state, and the file lock is taken once instead of once per statement
    /// (each costs an `fcntl` and an `fstat`: measured, a third of a scan's matching time
    /// without it). Nested calls join the outer transaction.
    pub fn snapshot<R>(&self, f: impl FnOnce() -> R) -> Result<R> {
        if !self.conn.is_autocommit() {
            return Ok(f());
        }
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(db_err(&self.path, "cannot start read transaction"))?;
        let out = f();
        // Read-only: ending the transaction either way just releases the lock.
        drop(tx);
        Ok(out)
    }

    /// Whether any advisory names a package of `ecosystem` (`Debian:12`): a scan whose
    /// packages fall in an ecosystem the database does not cover must say so, not report
    /// a clean image.
    pub fn has_ecosystem(&self, ecosystem: &str) -> Result<bool> {
        let err = || db_err(&self.path, "cannot look up an ecosystem");
        let mut stmt = self
            .conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM affected WHERE ecosystem = ?1)")
            .map_err(err())?;
        stmt.query_row([ecosystem], |r| r.get(0)).map_err(err())
    }

    /// Every distinct (ecosystem, package key) pair in the database, sorted.
    pub fn packages(&self) -> Result<Vec<(String, String)>> {
        let err = || db_err(&self.path, "cannot list packages");
        let mut stmt = self
            .conn
            .prepare_cached("SELECT DISTINCT ecosystem, package_key FROM affected ORDER BY 1, 2")
            .map_err(err())?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(err())?;
        rows.collect::<Result<_, _>>().map_err(err())
    }

    /// CVSS ratings of `cve` from enrichment feeds (NVD), NVD's own first.
    pub fn enrichment(&self, cve: &str) -> Result<Vec<Severity>> {
        let err = || db_err(&self.path, "cannot read enrichment");
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT rater, kind, value, score FROM enrichment WHERE cve = ?1
                 ORDER BY rater <> 'nvd@nist.gov', feed, seq",
            )
            .map_err(err())?;
        let rows = stmt
            .query_map([cve], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<f64>>(3)?,
                ))
            })
            .map_err(err())?;
        let mut out = Vec::new();
        for row in rows {
            let (source, kind, value, score) = row.map_err(err())?;
            let kind = SeverityKind::parse(&kind)
                .ok_or_else(|| Error::new(&self.path, format!("corrupt severity kind {kind:?}")))?;
            out.push(Severity {
                source,
                kind,
                value,
                score,
            });
        }
        Ok(out)
    }

    /// The severity ratings (CVSS vectors, vendor words) of every advisory whose id is `id`
    /// or which lists `id` as an alias: what other feeds say about one CVE, without reading
    /// the advisories' packages (the matcher's fallback when a finding's own feeds rate
    /// nothing). Sorted by feed, then advisory id.
    pub fn severities_of(&self, id: &str) -> Result<Vec<Severity>> {
        let err = || db_err(&self.path, "cannot read severities");
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT source, id, severity FROM advisories WHERE rowid IN
                   (SELECT rowid FROM advisories WHERE id = ?1
                    UNION SELECT advisory FROM aliases WHERE alias = ?1 AND relation = 'alias')
                 ORDER BY source, id",
            )
            .map_err(err())?;
        let rows = stmt
            .query_map([id], |r| r.get::<_, String>(2))
            .map_err(err())?;
        let mut out = Vec::new();
        for json in rows {
            out.extend(severities_from_json(&self.path, &json.map_err(err())?)?);
        }
        Ok(out)
    }

    /// Whole advisories whose id is `id`, or which list `id` as an alias or related id
    /// (`find("CVE-2024-3094")` gives the CVE's records in every feed).
    pub fn find(&self, id: &str) -> Result<Vec<Advisory>> {
        let err = || db_err(&self.path, "cannot find advisory");
        let rowids: BTreeSet<i64> = {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT rowid FROM advisories WHERE id = ?1 UNION SELECT advisory FROM aliases WHERE alias = ?1",
                )
                .map_err(err())?;
            stmt.query_map([id], |r| r.get(0))
                .map_err(err())?
                .collect::<Result<_, _>>()
                .map_err(err())?
        };
        let mut out = Vec::with_capacity(rowids.len());
        for rowid in rowids {
            out.push(self.advisory_by_rowid(rowid)?);
        }
        Ok(out)
    }

    fn advisory_by_rowid(&self, rowid: i64) -> Result<Advisory> {
        let err = || db_err(&self.path, "cannot read advisory");
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT a.source, a.id, a.published, a.modified, a.withdrawn, a.summary, t.details, a.aliases,
                        a.related, a.severity, t.refs
                 FROM advisories a JOIN texts t ON t.advisory = a.rowid WHERE a.rowid = ?1",
            )
            .map_err(err())?;
        type Row = (
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            String,
            String,
            String,
            String,
            String,
            String,
        );
        let row: Row = stmt
            .query_row([rowid], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                    r.get(10)?,
                ))
            })
            .map_err(err())?;
        let refs: Vec<StoredReference> = from_json(&self.path, "refs", &row.10)?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT ecosystem, package, ranges, versions, fix_state, vendor_severity, module
                 FROM affected WHERE advisory = ?1 ORDER BY seq",
            )
            .map_err(err())?;
        let mut affected = Vec::new();
        let mut rows = stmt.query([rowid]).map_err(err())?;
        while let Some(r) = rows.next().map_err(err())? {
            let ranges: Vec<StoredRange> =
                from_json(&self.path, "ranges", &r.get::<_, String>(2).map_err(err())?)?;
            let versions: Option<String> = r.get(3).map_err(err())?;
            let fix_state: Option<String> = r.get(4).map_err(err())?;
            affected.push(Affected {
                ecosystem: r.get(0).map_err(err())?,
                package: r.get(1).map_err(err())?,
                ranges: ranges.into_iter().map(Range::from).collect(),
                versions: match versions {
                    Some(v) => from_json(&self.path, "versions", &v)?,
                    None => Vec::new(),
                },
                fix_state: fix_state.as_deref().and_then(FixState::parse),
                vendor_severity: r.get(5).map_err(err())?,
                module: r.get(6).map_err(err())?,
            });
        }
        Ok(Advisory {
            source: row.0,
            id: row.1,
            published: ts(row.2),
            modified: ts(row.3),
            withdrawn: ts(row.4),
            summary: row.5,
            details: row.6,
            aliases: from_json(&self.path, "aliases", &row.7)?,
            related: from_json(&self.path, "related", &row.8)?,
            severity: severities_from_json(&self.path, &row.9)?,
            references: refs
                .into_iter()
                .map(|r| Reference {
                    kind: r.t,
                    url: r.u,
                })
                .collect(),
            affected,
        })
    }
}

// Compact stored forms: the JSON columns are most of the database, so keys are short.

#[derive(Serialize, Deserialize)]
struct StoredRange {
    #[serde(rename = "t")]
    kind: RangeKind,
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    repo: Option<String>,
    #[serde(rename = "e")]
    events: Vec<Event>,
}

impl From<StoredRange> for Range {
    fn from(r: StoredRange) -> Self {
        Range {
            kind: r.kind,
            repo: r.repo,
            events: r.events,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct StoredSeverity {
    s: String,
    k: SeverityKind,
    v: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    n: Option<f64>,
}

#[derive(Serialize, Deserialize)]
struct StoredReference {
    t: String,
    u: String,
}

fn severities_from_json(path: &Path, text: &str) -> Result<Vec<Severity>> {
    let stored: Vec<StoredSeverity> = from_json(path, "severity", text)?;
    Ok(stored
        .into_iter()
        .map(|s| Severity {
            source: s.s,
            kind: s.k,
            value: s.v,
            score: s.n,
        })
        .collect())
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Serialising plain structs of strings and numbers to a String cannot fail; NaN scores
    // become null.
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// Builds a new database next to `target` and swaps it in on [`Builder::commit`].
#[derive(Debug)]
pub struct Builder {
    conn: Option<Connection>,
    temp: Option<TempPath>,
    target: PathBuf,
}

impl Builder {
    /// Starts from a copy of the database at `target` (if there is one) to add or replace
    /// sources in it.
    pub fn new(target: impl AsRef<Path>) -> Result<Builder> {
        let target = target.as_ref();
        let temp = Self::temp_file(target)?;
        if target.exists() {
            let old = Store::open(target)?;
            let temp_str = temp
                .to_str()
                .ok_or_else(|| Error::new(&*temp, "temporary path is not UTF-8"))?;
            // VACUUM INTO writes a consistent, compacted snapshot even while others read.
            old.conn
                .execute("VACUUM INTO ?1", [temp_str])
                .map_err(db_err(target, "cannot copy the current database"))?;
        }
        Self::open_temp(target, temp, false)
    }

    /// Starts from an empty database: a full rebuild of `target`.
    pub fn empty(target: impl AsRef<Path>) -> Result<Builder> {
        let target = target.as_ref();
        let temp = Self::temp_file(target)?;
        Self::open_temp(target, temp, true)
    }

    fn temp_file(target: &Path) -> Result<TempPath> {
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Same directory as the target, so that the final rename is atomic (same file system).
        tempfile::Builder::new()
            .prefix(&format!(".{name}.building-"))
            .tempfile_in(dir)
            .map(|f| f.into_temp_path())
            .map_err(|e| Error::with_source(dir, "cannot create temporary database", e))
    }

    fn open_temp(target: &Path, temp: TempPath, fresh: bool) -> Result<Builder> {
        let conn =
            Connection::open(&*temp).map_err(db_err(&temp, "cannot create temporary database"))?;
        let e = db_err(&temp, "cannot initialise temporary database");
        // The file is disposable until the rename, so durability during the build buys
        // nothing: the journal lives in memory (it is still needed to roll back a failed
        // import), and nothing is synced until commit.
        conn.execute_batch(
            "PRAGMA journal_mode = MEMORY; PRAGMA synchronous = OFF; PRAGMA cache_size = -65536;",
        )
        .map_err(e)?;
        if fresh {
            conn.execute_batch(SCHEMA)
                .map_err(db_err(&temp, "cannot create schema"))?;
            conn.pragma_update(None, "application_id", APPLICATION_ID)
                .map_err(db_err(&temp, "cannot set application_id"))?;
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(db_err(&temp, "cannot set user_version"))?;
        } else {
            let tables: i64 = conn
                .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
                .map_err(db_err(&temp, "cannot read copied database"))?;
            if tables == 0 {
                // There was no database to copy.
                conn.execute_batch(SCHEMA)
                    .map_err(db_err(&temp, "cannot create schema"))?;
                conn.pragma_update(None, "application_id", APPLICATION_ID)
                    .map_err(db_err(&temp, "cannot set application_id"))?;
                conn.pragma_update(None, "user_version", SCHEMA_VERSION)
                    .map_err(db_err(&temp, "cannot set user_version"))?;
            } else {
                check_schema(&conn, target)?;
            }
        }
        Ok(Builder {
            conn: Some(conn),
            temp: Some(temp),
            target: target.to_path_buf(),
        })
    }

    fn conn(&self) -> Result<&Connection> {
        self.conn
            .as_ref()
            .ok_or_else(|| Error::new(&self.target, "builder already committed"))
    }

    fn temp_path(&self) -> PathBuf {
        self.temp
            .as_ref()
            .map(|t| t.to_path_buf())
            .unwrap_or_else(|| self.target.clone())
    }

    /// Names of the sources currently in the database being built.
    pub fn sources(&self) -> Result<Vec<String>> {
        let path = self.temp_path();
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare("SELECT name FROM sources ORDER BY name")
            .map_err(db_err(&path, "cannot read sources"))?;
        let names = stmt
            .query_map([], |r| r.get(0))
            .map_err(db_err(&path, "cannot read sources"))?
            .collect::<Result<Vec<String>, _>>()
            .map_err(db_err(&path, "cannot read sources"))?;
        Ok(names)
    }

    /// Removes a source and all its records.
    pub fn remove(&mut self, source: &str) -> Result<()> {
        let path = self.temp_path();
        let conn = self
            .conn
            .as_mut()
            .ok_or_else(|| Error::new(&path, "builder already committed"))?;
        let tx = conn
            .transaction()
            .map_err(db_err(&path, "cannot start transaction"))?;
        delete_source(&tx, source).map_err(db_err(&path, "cannot remove source"))?;
        tx.commit().map_err(db_err(&path, "cannot remove source"))
    }

    /// Replaces the records of `source` with `records`, in one transaction.
    ///
    /// Records that are `Err` (or whose advisory has no id) are skipped and counted.
    /// Affected entries with a version that is invalid in their ecosystem's ordering are
    /// dropped from their advisory and counted: a version the matcher cannot compare would
    /// otherwise fail every scan that meets the package. The import fails, and the source
    /// keeps its previous records, when not one record could be stored although some were
    /// offered: that is a broken or misidentified feed, not a few bad entries.
    pub fn import<R: Into<Record>>(
        &mut self,
        source: &str,
        records: impl IntoIterator<Item = Result<R>>,
    ) -> Result<ImportReport> {
        let path = self.temp_path();
        if source.is_empty() {
            return Err(Error::new(&path, "empty source name"));
        }
        let conn = self
            .conn
            .as_mut()
            .ok_or_else(|| Error::new(&path, "builder already committed"))?;
        let dberr = |what: &'static str| db_err(&path, what);
        let tx = conn
            .transaction()
            .map_err(dberr("cannot start transaction"))?;
        delete_source(&tx, source).map_err(dberr("cannot clear source"))?;
        let mut report = ImportReport {
            source: source.to_owned(),
            records: 0,
            skipped: 0,
            dropped_affected: 0,
            fallback_versions: 0,
            errors: Vec::new(),
        };
        let mut upstream: Option<Timestamp> = None;
        {
            let mut ins_adv = tx
                .prepare(
                    "INSERT INTO advisories (source, id, published, modified, withdrawn, summary, aliases, related,
                                             severity)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(dberr("cannot prepare insert"))?;
            let mut ins_text = tx
                .prepare("INSERT INTO texts (advisory, details, refs) VALUES (?1, ?2, ?3)")
                .map_err(dberr("cannot prepare insert"))?;
            let mut ins_aff = tx
                .prepare(
                    "INSERT INTO affected (ecosystem, package_key, advisory, seq, package, ranges, versions, fix_state,
                                           vendor_severity, module)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .map_err(dberr("cannot prepare insert"))?;
            let mut ins_alias = tx
                .prepare(
                    "INSERT OR IGNORE INTO aliases (alias, advisory, relation) VALUES (?1, ?2, ?3)",
                )
                .map_err(dberr("cannot prepare insert"))?;
            let mut ins_enr = tx
                .prepare(
                    "INSERT OR REPLACE INTO enrichment (cve, feed, seq, rater, kind, value, score, modified)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(dberr("cannot prepare insert"))?;
            let mut del_enr = tx
                .prepare("DELETE FROM enrichment WHERE cve = ?1 AND feed = ?2")
                .map_err(dberr("cannot prepare delete"))?;
            let note = |report: &mut ImportReport, e: Error| {
                if report.errors.len() < MAX_REPORTED_ERRORS {
                    report.errors.push(e);
                }
            };
            for record in records {
                let record = match record {
                    Ok(r) => r.into(),
                    Err(e) => {
                        report.skipped += 1;
                        note(&mut report, e);
                        continue;
                    }
                };
                match record {
                    Record::Advisory(mut adv) => {
                        if adv.id.trim().is_empty() {
                            report.skipped += 1;
                            note(
                                &mut report,
                                Error::new(format!("feed {source}"), "advisory without id"),
                            );
                            continue;
                        }
                        adv.source = source.to_owned();
                        let before = adv.affected.len();
                        let id = adv.id.clone();
                        adv.affected.retain(|a| match validate(a) {
                            Ok(fallbacks) => {
                                for m in fallbacks {
                                    report.fallback_versions += 1;
                                    note(
                                        &mut report,
                                        Error::new(format!("feed {source}"), m)
                                            .at(format!("advisory {id}")),
                                    );
                                }
                                true
                            }
                            Err(m) => {
                                // The builder does not know the advisory's file: the feed
                                // name and advisory id find it.
                                note(
                                    &mut report,
                                    Error::new(format!("feed {source}"), m)
                                        .at(format!("advisory {id}")),
                                );
                                false
                            }
                        });
                        report.dropped_affected += (before - adv.affected.len()) as u64;
                        // Both dates: some feeds leave `modified` at the zero time.
                        upstream = upstream.max(adv.modified).max(adv.published);
                        insert_advisory(
                            &mut ins_adv,
                            &mut ins_text,
                            &mut ins_aff,
                            &mut ins_alias,
                            &adv,
                        )
                        .map_err(dberr("cannot insert advisory"))?;
                    }
                    Record::Enrichment(enr) => {
                        upstream = upstream.max(enr.modified);
                        insert_enrichment(&mut del_enr, &mut ins_enr, source, &enr)
                            .map_err(dberr("cannot insert enrichment"))?;
                    }
                }
                report.records += 1;
            }
        }
        if report.records == 0 && report.skipped > 0 {
            // Dropping `tx` rolls back: the source keeps what it had.
            let first = report
                .errors
                .first()
                .map(|e| e.to_string())
                .unwrap_or_default();
            return Err(Error::new(
                format!("feed {source}"),
                format!(
                    "all {} records failed, nothing imported (first: {first})",
                    report.skipped
                ),
            ));
        }
        tx.execute(
            "INSERT OR REPLACE INTO sources (name, upstream_date, imported_at, records, skipped) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                source,
                upstream.map(|t| t.to_string()),
                Timestamp::now().to_string(),
                report.records as i64,
                report.skipped as i64
            ],
        )
        .map_err(dberr("cannot record source"))?;
        tx.commit().map_err(dberr("cannot commit import"))?;
        Ok(report)
    }

    /// Compacts the new database, syncs it, and renames it over the target.
    pub fn commit(mut self) -> Result<()> {
        let temp = self
            .temp
            .take()
            .ok_or_else(|| Error::new(&self.target, "builder already committed"))?;
        let conn = self
            .conn
            .take()
            .ok_or_else(|| Error::new(&self.target, "builder already committed"))?;
        // No ANALYZE: every query here has one obvious index to use.
        conn.execute_batch("VACUUM;")
            .map_err(db_err(&temp, "cannot compact new database"))?;
        conn.close()
            .map_err(|(_, e)| Error::with_source(&*temp, "cannot close new database", e))?;
        fs::File::open(&*temp)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::with_source(&*temp, "cannot sync new database", e))?;
        temp.persist(&self.target).map_err(|e| {
            Error::with_source(&self.target, "cannot move new database into place", e.error)
        })?;
        // The rename is durable only once the directory is synced.
        if let Some(dir) = self.target.parent().filter(|p| !p.as_os_str().is_empty())
            && let Ok(d) = fs::File::open(dir)
        {
            // Some file systems refuse fsync on directories; the data itself is synced.
            let _ = d.sync_all();
        }
        Ok(())
    }
}

fn delete_source(tx: &Connection, source: &str) -> rusqlite::Result<()> {
    tx.execute(
        "DELETE FROM affected WHERE advisory IN (SELECT rowid FROM advisories WHERE source = ?1)",
        [source],
    )?;
    tx.execute(
        "DELETE FROM aliases WHERE advisory IN (SELECT rowid FROM advisories WHERE source = ?1)",
        [source],
    )?;
    tx.execute(
        "DELETE FROM texts WHERE advisory IN (SELECT rowid FROM advisories WHERE source = ?1)",
        [source],
    )?;
    tx.execute("DELETE FROM advisories WHERE source = ?1", [source])?;
    tx.execute("DELETE FROM enrichment WHERE feed = ?1", [source])?;
    tx.execute("DELETE FROM sources WHERE name = ?1", [source])?;
    Ok(())
}

/// Checks every range version of `a` against its ordering (`introduced: 0` is OSV's "from
/// the start", and GIT ranges hold commits, not versions). `Ok` lists the versions kept
/// although only the reference tool's fallback orders them (see
/// [`bulkhead_versions::Validity::Fallback`]), as messages.
fn validate(a: &Affected) -> Result<Vec<String>, String> {
    if a.ecosystem.is_empty() || a.package.is_empty() {
        return Err("affected entry without ecosystem or package".into());
    }
    let mut fallbacks = Vec::new();
    for r in &a.ranges {
        let scheme = match r.kind {
            RangeKind::Git => continue,
            RangeKind::Ecosystem => version_scheme(&a.ecosystem),
            RangeKind::Semver if a.ecosystem == "Go" => Some(bulkhead_versions::Ecosystem::Go),
            RangeKind::Semver => Some(bulkhead_versions::Ecosystem::Semver),
        };
        let Some(scheme) = scheme else { continue };
        for e in &r.events {
            let v = e.version();
            if matches!(e, Event::Introduced(_)) && v == "0" {
                continue;
            }
            match scheme.validate(v) {
                Ok(bulkhead_versions::Validity::Valid) => {}
                Ok(bulkhead_versions::Validity::Fallback(e)) => {
                    fallbacks.push(format!("{} {}: kept: {e}", a.ecosystem, a.package));
                }
                Err(err) => return Err(format!("{} {}: {err}", a.ecosystem, a.package)),
            }
        }
    }
    Ok(fallbacks)
}

fn insert_advisory(
    ins_adv: &mut rusqlite::Statement<'_>,
    ins_text: &mut rusqlite::Statement<'_>,
    ins_aff: &mut rusqlite::Statement<'_>,
    ins_alias: &mut rusqlite::Statement<'_>,
    adv: &Advisory,
) -> rusqlite::Result<()> {
    let severity: Vec<StoredSeverity> = adv
        .severity
        .iter()
        .map(|s| StoredSeverity {
            s: s.source.clone(),
            k: s.kind,
            v: s.value.clone(),
            n: s.score,
        })
        .collect();
    let refs: Vec<StoredReference> = adv
        .references
        .iter()
        .map(|r| StoredReference {
            t: r.kind.clone(),
            u: r.url.clone(),
        })
        .collect();
    let rowid = ins_adv.insert(params![
        adv.source,
        adv.id,
        adv.published.map(|t| t.to_string()),
        adv.modified.map(|t| t.to_string()),
        adv.withdrawn.map(|t| t.to_string()),
        adv.summary,
        to_json(&adv.aliases),
        to_json(&adv.related),
        to_json(&severity),
    ])?;
    ins_text.execute(params![rowid, adv.details, to_json(&refs)])?;
    for (seq, a) in adv.affected.iter().enumerate() {
        let ranges: Vec<StoredRange> = a
            .ranges
            .iter()
            .map(|r| StoredRange {
                kind: r.kind,
                repo: r.repo.clone(),
                events: r.events.clone(),
            })
            .collect();
        ins_aff.execute(params![
            a.ecosystem,
            package_key(&a.ecosystem, &a.package),
            rowid,
            seq as i64,
            a.package,
            to_json(&ranges),
            (!a.versions.is_empty()).then(|| to_json(&a.versions)),
            a.fix_state.map(FixState::as_str),
            a.vendor_severity,
            a.module,
        ])?;
    }
    for alias in &adv.aliases {
        ins_alias.execute(params![alias, rowid, "alias"])?;
    }
    for rel in &adv.related {
        ins_alias.execute(params![rel, rowid, "related"])?;
    }
    Ok(())
}

fn insert_enrichment(
    del: &mut rusqlite::Statement<'_>,
    stmt: &mut rusqlite::Statement<'_>,
    feed: &str,
    enr: &Enrichment,
) -> rusqlite::Result<()> {
    // A CVE met again (a later page of the same feed) replaces what was stored for it.
    del.execute(params![enr.cve, feed])?;
    for (seq, s) in enr.severity.iter().enumerate() {
        stmt.execute(params![
            enr.cve,
            feed,
            seq as i64,
            s.source,
            s.kind.as_str(),
            s.value,
            s.score,
            enr.modified.map(|t| t.to_string()),
        ])?;
    }
    Ok(())
}

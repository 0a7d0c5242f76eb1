//! Rescan on advisory update: when the advisory database file changes (`bulkhead db
//! update` and `db import` replace it by rename), every stored report is matched again
//! against the new database, without pulling the image: the inventory (OS and packages)
//! is read back from the stored JSON report.
//!
//! * The file is watched by polling its identity (device, inode, size, modification time)
//!   every `scan.rescan_poll_seconds`; a rename gives a new inode, so no change is missed
//!   however quickly two updates follow each other.
//! * One pass opens the database once (a consistent view even if it is replaced meanwhile:
//!   the open file stays readable; the next poll sees the newer one and passes again) and
//!   walks the stored reports by image id. A report already matched against exactly these
//!   database sources (the report's `database`: names, record counts, import times) is
//!   left alone, so the pass at start-up only redoes what a `db update` made while the
//!   service was down left stale.
//! * The new report is the old one with the assessment replaced (findings, summary,
//!   health, recommendations, suppressions, end of life, database, the assessment's
//!   diagnostics); `Store::update_assessment` records it like a scan (reason `rescan`):
//!   a health event when health changed or a new critical/high finding appeared, and a
//!   notification when that is a problem.
//!
//! Reports stored before the JSON report kept package `properties` lack the rpm
//! modularity label, so module-stream advisories cannot be applied to their modular
//! packages on a rescan; such a report says so in a `rescan-modularity` diagnostic (a push
//! or manual scan reads the label again).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bulkhead_store::{Error as StoreError, Store, now_ms};
use tokio::sync::watch;

use super::metrics::Metrics;
use bulkhead_model::{Assessment, DbSource, Diagnostic, Level, Package};
use bulkhead_scan::assess::{AssessOptions, ImageIdentity};
use bulkhead_scan::report::Report;

/// Reports read from the store per batch (each is a whole JSON report).
const BATCH: u32 = 20;

/// After a pass failed (the store or the database unreadable), wait at least this long
/// before the next try, so that a broken file is not re-read every poll.
const RETRY_AFTER: Duration = Duration::from_secs(60);

/// Diagnostic codes that the assessment stage produces: a rescan replaces these and keeps
/// the others (the analyzers' and the extraction's, which a rescan does not redo).
const ASSESSMENT_CODES: &[&str] = &[
    "no-advisory-db",
    "db-missing-ecosystem",
    "match-skipped",
    "version-fallback",
    "match-unsupported",
    "os-eol",
    "ignore-rule-expired",
    "ignore-rule-unused",
    "vex-not-applicable",
    "vex-statement-invalid",
    MODULARITY_CODE,
];

const MODULARITY_CODE: &str = "rescan-modularity";

/// Which file an advisory database path currently is: a rename over it changes the inode,
/// an in-place rewrite the size or the modification time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileIdentity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

/// The identity of `path`, `None` when it does not exist (or cannot be examined).
pub fn identity(path: &Path) -> Option<FileIdentity> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(FileIdentity {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
    })
}

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RescanSummary {
    /// Stored reports read.
    pub examined: usize,
    /// Already matched against this database: left alone.
    pub current: usize,
    /// Matched again and recorded.
    pub rescanned: usize,
    /// Of those, how many changed health or gained a critical/high finding (a health event).
    pub changed: usize,
    /// Of those, how many queued a notification.
    pub notified: usize,
    /// Reports that could not be matched again (unreadable report, matching error).
    pub failed: usize,
}

/// The sources of the database as a report records them (`Report::database`).
fn db_sources(db: &bulkhead_advisories::Store) -> Result<Vec<DbSource>> {
    Ok(db
        .status()
        .with_context(|| format!("cannot read the advisory database {}", db.path().display()))?
        .into_iter()
        .map(|s| DbSource {
            name: s.name,
            records: s.records,
            upstream_date: s.upstream_date.map(|t| t.to_string()),
            imported_at: s.imported_at.to_string(),
        })
        .collect())
}

/// An rpm version built for a module stream (`.module_el9…`, `.module+el8…`) whose
/// stored report lacks its modularity label.
fn modular(p: &Package) -> bool {
    p.ecosystem == "rpm"
        && (p.version.contains(".module_el") || p.version.contains(".module+el"))
        && !p.properties.iter().any(|(k, _)| k == "modularity-label")
}

/// `report` with its assessment replaced by `assessment` (and the assessment's
/// diagnostics by `diagnostics`); image, inventory, analyzers and stats stay.
pub fn with_assessment(
    mut report: Report,
    assessment: Assessment,
    mut diagnostics: Vec<Diagnostic>,
) -> Report {
    let modular: Vec<String> = report
        .packages
        .iter()
        .filter(|p| modular(p))
        .map(|p| format!("{} {}", p.name, p.version))
        .collect();
    if let Some(example) = modular.first() {
        diagnostics.push(Diagnostic {
            level: Level::Warning,
            code: MODULARITY_CODE.into(),
            analyzer: None,
            layer: None,
            message: format!(
                "{} module-stream rpm packages (e.g. {example}) were matched again without their modularity label, which the stored report does not keep: advisories of module streams were not applied to them; scan the image again for a complete match",
                modular.len()
            ),
        });
    }
    report
        .diagnostics
        .retain(|d| !ASSESSMENT_CODES.contains(&d.code.as_str()));
    report.diagnostics.extend(diagnostics);
    if let Some(os) = report.os.as_mut() {
        os.eol = assessment.eol.clone();
    }
    report.schema_version = bulkhead_model::SCHEMA_VERSION.to_string();
    report.database = Some(assessment.db);
    report.findings = assessment.findings;
    report.summary = Some(assessment.summary);
    report.health = Some(assessment.health);
    report.health_threshold = Some(assessment.health_threshold);
    report.recommendations = assessment.recommendations;
    report.suppressed = assessment.suppressed;
    report
}

/// One stored report matched again: `Ok(None)` when it was already matched against
/// `current`; the new report otherwise.
fn reassess(
    db: &bulkhead_advisories::Store,
    current: &[DbSource],
    options: &AssessOptions,
    stored: &Result<Report, String>,
) -> Result<Option<Report>> {
    let report = stored.clone().map_err(anyhow::Error::msg)?;
    if report.database.as_deref() == Some(current) {
        return Ok(None);
    }
    let inventory = report.inventory();
    let image = ImageIdentity {
        reference: &report.image.reference,
        digest: report.image.digest.as_deref(),
    };
    let (assessment, diagnostics) = bulkhead_scan::assess::assess(
        db,
        &inventory,
        report.complete,
        &image,
        &options.policy,
        jiff::Timestamp::now(),
    )?;
    Ok(Some(with_assessment(report, assessment, diagnostics)))
}

/// One pass: match every stored report that was not matched against the database at
/// `options.db` again, and record the results. `stop` is checked between batches (a
/// stopped pass is simply resumed by the next, which skips what is current). An error
/// means the pass could not go on (database unreadable, store down); a report that cannot
/// be matched is counted in `failed` and skipped.
pub async fn rescan_all(
    store: &Store,
    options: &Arc<AssessOptions>,
    metrics: &Metrics,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<RescanSummary> {
    let path = options.db.clone();
    let (mut db, current) = tokio::task::spawn_blocking(move || -> Result<_> {
        let db = bulkhead_advisories::Store::open(&path)
            .with_context(|| format!("cannot open the advisory database {}", path.display()))?;
        let current = db_sources(&db)?;
        Ok((db, current))
    })
    .await
    .context("the rescan task failed")??;
    let current = Arc::new(current);
    let mut summary = RescanSummary::default();
    let mut after = 0;
    loop {
        if stop() {
            break;
        }
        let batch = store
            .stored_reports(after, BATCH)
            .await
            .context("cannot read the stored reports")?;
        let Some(last) = batch.last() else { break };
        after = last.image_id;
        // Matching is blocking SQLite work: the whole batch in one blocking task, the
        // database handle moved in and back out.
        let (opts, cur) = (options.clone(), current.clone());
        let (back, results) = tokio::task::spawn_blocking(move || {
            let results: Vec<(i64, Result<Option<Report>>)> = batch
                .iter()
                .map(|r| (r.image_id, reassess(&db, &cur, &opts, &r.report)))
                .collect();
            (db, results)
        })
        .await
        .context("the rescan task failed")?;
        db = back;
        for (image_id, result) in results {
            summary.examined += 1;
            let report = match result {
                Ok(None) => {
                    summary.current += 1;
                    metrics.rescanned_image("current");
                    continue;
                }
                Ok(Some(report)) => report,
                Err(e) => {
                    tracing::warn!(
                        image = image_id,
                        "rescan: cannot match the image again: {e:#}"
                    );
                    summary.failed += 1;
                    metrics.rescanned_image("failed");
                    continue;
                }
            };
            match store.update_assessment(image_id, &report, now_ms()).await {
                Ok(c) => {
                    summary.rescanned += 1;
                    if c.health_event {
                        summary.changed += 1;
                        tracing::info!(
                            image = image_id,
                            from = ?c.previous_health,
                            to = %c.health,
                            new_problems = c.new_problem_findings.len(),
                            notified = c.notified,
                            "rescan changed the image's assessment"
                        );
                    }
                    if c.notified {
                        summary.notified += 1;
                    }
                    metrics.rescanned_image(if c.health_event {
                        "changed"
                    } else {
                        "unchanged"
                    });
                }
                // Deleted since the batch was read.
                Err(StoreError::NotFound(_)) => {}
                Err(StoreError::Report(m)) => {
                    tracing::warn!(
                        image = image_id,
                        "rescan: the store refused the new report: {m}"
                    );
                    summary.failed += 1;
                    metrics.rescanned_image("failed");
                }
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("cannot record the rescan of image {image_id}")));
                }
            }
        }
    }
    Ok(summary)
}

/// The background task of `bulkhead serve` that watches the advisory database and
/// rescans when it changes (and once at start).
pub struct Rescanner {
    pub store: Store,
    /// The workers' assessment options: the same database path and policy.
    pub options: Arc<AssessOptions>,
    pub metrics: Arc<Metrics>,
    pub poll: Duration,
    pub shutdown: watch::Receiver<bool>,
}

impl Rescanner {
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run())
    }

    fn db(&self) -> PathBuf {
        self.options.db.clone()
    }

    async fn run(mut self) {
        // The identity of the file the last successful pass started from.
        let mut done: Option<FileIdentity> = None;
        loop {
            if *self.shutdown.borrow() {
                return;
            }
            let mut wait = self.poll;
            let now = identity(&self.db());
            if let Some(id) = now
                && done != Some(id)
            {
                let shutdown = self.shutdown.clone();
                let stop = move || *shutdown.borrow();
                match rescan_all(&self.store, &self.options, &self.metrics, &stop).await {
                    Ok(s) => {
                        // A pass cut short by the shutdown is finished by the next start.
                        if !stop() {
                            done = Some(id);
                        }
                        self.metrics.rescan("done");
                        if s.rescanned > 0 || s.failed > 0 {
                            tracing::info!(
                                examined = s.examined,
                                rescanned = s.rescanned,
                                changed = s.changed,
                                notified = s.notified,
                                failed = s.failed,
                                "rescan against {} done",
                                self.db().display()
                            );
                        }
                    }
                    Err(e) => {
                        self.metrics.rescan("failed");
                        tracing::warn!(
                            "rescan against {} failed (tried again in {RETRY_AFTER:?}): {e:#}",
                            self.db().display()
                        );
                        wait = wait.max(RETRY_AFTER);
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                r = self.shutdown.changed() => {
                    if r.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rename_over_the_file_changes_its_identity() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("advisories.db");
        assert_eq!(identity(&db), None);
        std::fs::write(&db, b"first").expect("write");
        let first = identity(&db).expect("exists");
        assert_eq!(identity(&db), Some(first), "stable while untouched");
        // What `db update` does: a complete new file renamed over the old one, here even
        // with the same size and (possibly) the same mtime second.
        let tmp = dir.path().join("advisories.db.tmp");
        std::fs::write(&tmp, b"other").expect("write");
        std::fs::rename(&tmp, &db).expect("rename");
        let second = identity(&db).expect("exists");
        assert_ne!(first, second);
    }

    fn diagnostic(code: &str) -> Diagnostic {
        Diagnostic {
            level: Level::Warning,
            code: code.into(),
            analyzer: None,
            layer: None,
            message: code.into(),
        }
    }

    #[test]
    fn the_assessment_diagnostics_are_replaced_and_the_others_kept() {
        let report: Report = serde_json::from_value(serde_json::json!({
            "schema_version": "0.1.0",
            "image": {"reference": "r/x@sha256:00", "digest": "sha256:00", "platform": null, "layers": []},
            "os": null,
            "complete": true,
            "analyzers": ["rpm@1"],
            "packages": [{
                "name": "nginx", "version": "1:1.24.0-4.module_el9.5.0+122+220a1c6c",
                "ecosystem": "rpm", "source_name": null, "source_version": null, "arch": "x86_64",
                "license": null, "purl": "pkg:rpm/nginx", "analyzer": "rpm@1",
                "db_path": "var/lib/rpm/rpmdb.sqlite", "layer_digest": null,
                "layer_diff_id": null, "layer_created_by": null
            }],
            "database": null,
            "findings": [],
            "summary": null,
            "health": null,
            "health_threshold": null,
            "recommendations": [],
            "suppressed": [],
            "diagnostics": [
                {"level": "warning", "code": "analyzer-timeout", "message": "kept"},
                {"level": "warning", "code": "no-advisory-db", "message": "stale"},
                {"level": "warning", "code": "match-skipped", "message": "stale"}
            ],
            "stats": {"duration_ms": 1, "layers": 1, "layers_downloaded": 1, "layers_from_cache": 0,
                      "compressed_bytes": 1, "uncompressed_bytes": 1}
        }))
        .expect("a report");
        let assessment = Assessment {
            findings: Vec::new(),
            suppressed: Vec::new(),
            recommendations: Vec::new(),
            summary: Default::default(),
            health: bulkhead_model::Health::Healthy,
            health_threshold: bulkhead_model::Severity::High,
            eol: None,
            db: vec![DbSource {
                name: "osv:almalinux".into(),
                records: 3,
                upstream_date: None,
                imported_at: "2024-01-01T00:00:00Z".into(),
            }],
        };
        let new = with_assessment(report, assessment, vec![diagnostic("match-unsupported")]);
        let codes: Vec<&str> = new.diagnostics.iter().map(|d| d.code.as_str()).collect();
        assert_eq!(
            codes,
            ["analyzer-timeout", "match-unsupported", MODULARITY_CODE]
        );
        assert_eq!(new.health, Some(bulkhead_model::Health::Healthy));
        assert_eq!(new.database.as_ref().map(Vec::len), Some(1));
        assert_eq!(new.schema_version, bulkhead_model::SCHEMA_VERSION);
        // The inventory read back keeps what matching uses.
        let inv = new.inventory();
        assert_eq!(inv.packages.len(), 1);
        let p = &inv.packages[0];
        assert_eq!(p.version, "1:1.24.0-4.module_el9.5.0+122+220a1c6c");
        assert_eq!(p.ecosystem, "rpm");
        assert_eq!(p.arch.as_deref(), Some("x86_64"));
    }
}

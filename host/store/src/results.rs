//! Recording assessments (a completed scan, a rescan) and the notification deliveries
//! they cause.
//!
//! The notification event (the body POSTed to the tenant's webhook) is described on
//! [`crate::Delivery::body`].

use std::collections::{HashMap, HashSet};

use crate::queue;
use crate::report;
use crate::sql::{Dialect, Tx, Value};
use crate::{
    Completed, Delivery, Error, ImageHealth, NewFinding, Report, Result, Severity, StoredReport,
    TenantId,
};

/// Rows per multi-row INSERT, so that the parameters stay far below both databases'
/// limits (SQLite 32766, PostgreSQL 65535).
const MAX_PARAMS_PER_INSERT: usize = 2000;

async fn insert_many(
    tx: &mut dyn Tx,
    table: &str,
    columns: &[&str],
    rows: Vec<Vec<Value>>,
) -> Result<()> {
    let per_row = columns.len();
    let chunk = (MAX_PARAMS_PER_INSERT / per_row).max(1);
    for batch in rows.chunks(chunk) {
        let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
        let mut params = Vec::with_capacity(batch.len() * per_row);
        for (i, row) in batch.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for j in 0..per_row {
                if j > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("${}", i * per_row + j + 1));
            }
            sql.push(')');
            params.extend(row.iter().cloned());
        }
        tx.execute(&sql, &params).await?;
    }
    Ok(())
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Db(format!("serialising JSON: {e}")))
}

pub(crate) async fn complete(
    tx: &mut dyn Tx,
    job_id: i64,
    token: String,
    report: Report,
    health: bulkhead_model::Health,
    json: String,
    now: i64,
) -> Result<Completed> {
    // The job first: a lost lease writes nothing (the caller's transaction rolls back).
    let image_id = queue::end_lease(
        tx,
        job_id,
        token,
        "state = 'done', finished_at = $1, error = NULL",
        vec![now.into()],
    )
    .await?
    .ok_or_else(|| Error::Db(format!("job {job_id} has no image")))?;
    record(tx, image_id, report, health, json, now, "scan").await
}

pub(crate) async fn update_assessment(
    tx: &mut dyn Tx,
    image_id: i64,
    report: Report,
    health: bulkhead_model::Health,
    json: String,
    now: i64,
) -> Result<Completed> {
    record(tx, image_id, report, health, json, now, "rescan").await
}

/// Writes an assessment of image `image_id`: see docs/service-design.md, "Complete".
async fn record(
    tx: &mut dyn Tx,
    image_id: i64,
    report: Report,
    health: bulkhead_model::Health,
    json: String,
    now: i64,
    reason: &str,
) -> Result<Completed> {
    let lock = match tx.dialect() {
        // Only the image row: locking the tenant too would serialise a tenant's scans.
        Dialect::Postgres => " FOR UPDATE OF i",
        Dialect::Sqlite => "",
    };
    let image = tx
        .query_opt(
            &format!(
                "SELECT i.tenant_id, t.name, i.registry, i.repository, i.digest, i.tags, \
                 i.platform, i.report FROM images i JOIN tenants t ON t.id = i.tenant_id \
                 WHERE i.id = $1{lock}"
            ),
            &[image_id.into()],
        )
        .await?
        .ok_or_else(|| Error::NotFound(format!("image {image_id}")))?;
    let tenant = TenantId(image.int(0)?);
    let tenant_name = image.text(1)?;
    let previous_report = image.opt_text(7)?;
    let previous_health = previous_report
        .as_deref()
        .and_then(report::stored_health)
        .map(ImageHealth::from);
    let health = ImageHealth::from(health);
    let counts = report.summary.clone().unwrap_or_default();

    // Findings seen before in this image keep their first_seen_at.
    let mut first_seen: HashMap<(String, String), i64> = HashMap::new();
    for row in tx
        .query(
            "SELECT vuln_id, package, first_seen_at FROM findings WHERE image_id = $1",
            &[image_id.into()],
        )
        .await?
    {
        first_seen.insert((row.text(0)?, row.text(1)?), row.int(2)?);
    }
    // Critical and high findings this image did not have before: on a first assessment,
    // all of them (the notification of a new unhealthy image lists what makes it so).
    let mut new_problem_findings = Vec::new();
    {
        let mut seen = HashSet::new();
        for f in &report.findings {
            let key = (f.id.clone(), f.package.clone());
            let new = previous_report.is_none() || !first_seen.contains_key(&key);
            if f.severity >= Severity::High && new && seen.insert(key) {
                new_problem_findings.push(NewFinding {
                    id: f.id.clone(),
                    package: f.package.clone(),
                    severity: f.severity,
                });
            }
        }
    }

    for table in ["findings", "packages", "recommendations"] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE image_id = $1"),
            &[image_id.into()],
        )
        .await?;
    }
    let mut rows = Vec::with_capacity(report.findings.len());
    for f in &report.findings {
        let seen = first_seen
            .get(&(f.id.clone(), f.package.clone()))
            .copied()
            .unwrap_or(now);
        rows.push(vec![
            image_id.into(),
            tenant.0.into(),
            (&f.id).into(),
            to_json(&f.aliases)?.into(),
            (&f.package).into(),
            (&f.installed_version).into(),
            f.fixed_version.clone().into(),
            f.fix_state.as_str().into(),
            f.severity.as_str().into(),
            f.severity.rank().into(),
            f.cvss.as_ref().map(|c| c.score).into(),
            f.cvss.as_ref().map(|c| c.vector.clone()).into(),
            (&f.title).into(),
            (&f.ecosystem).into(),
            (&f.package_type).into(),
            f.layer_digest.clone().into(),
            seen.into(),
        ]);
    }
    insert_many(
        tx,
        "findings",
        &[
            "image_id",
            "tenant_id",
            "vuln_id",
            "aliases",
            "package",
            "installed_version",
            "fixed_version",
            "fix_state",
            "severity",
            "severity_rank",
            "cvss_score",
            "cvss_vector",
            "title",
            "ecosystem",
            "package_type",
            "layer_digest",
            "first_seen_at",
        ],
        rows,
    )
    .await?;
    let rows = report
        .packages
        .iter()
        .map(|p| {
            vec![
                image_id.into(),
                tenant.0.into(),
                (&p.name).into(),
                (&p.version).into(),
                (&p.ecosystem).into(),
                p.source_name.clone().into(),
                p.source_version.clone().into(),
                p.arch.clone().into(),
                p.license.clone().into(),
                (&p.purl).into(),
                p.layer_digest.clone().into(),
            ]
        })
        .collect();
    insert_many(
        tx,
        "packages",
        &[
            "image_id",
            "tenant_id",
            "name",
            "version",
            "ecosystem",
            "source_name",
            "source_version",
            "arch",
            "license",
            "purl",
            "layer_digest",
        ],
        rows,
    )
    .await?;
    let mut rows = Vec::with_capacity(report.recommendations.len());
    for r in &report.recommendations {
        rows.push(vec![
            image_id.into(),
            tenant.0.into(),
            (&r.package).into(),
            (&r.installed_version).into(),
            (&r.fixed_version).into(),
            to_json(&r.fixes)?.into(),
            (r.fixes.len() as i64).into(),
            r.severity.as_str().into(),
            r.severity.rank().into(),
        ]);
    }
    insert_many(
        tx,
        "recommendations",
        &[
            "image_id",
            "tenant_id",
            "package",
            "installed_version",
            "fixed_version",
            "fixes",
            "fix_count",
            "severity",
            "severity_rank",
        ],
        rows,
    )
    .await?;

    let os = report.os.as_ref();
    tx.execute(
        "UPDATE images SET platform = COALESCE($1, platform), os_id = $2, os_version = $3, \
         os_name = $4, os_eol = $5, health = $6, critical = $7, high = $8, medium = $9, \
         low = $10, negligible = $11, unknown = $12, suppressed = $13, packages = $14, \
         scanned_at = $15, updated_at = $15, last_error = NULL, report = $16 WHERE id = $17",
        &[
            report.image.platform.clone().into(),
            os.map(|o| o.id.clone()).into(),
            os.and_then(|o| o.version_id.clone()).into(),
            os.and_then(|o| o.pretty_name.clone()).into(),
            os.and_then(|o| o.eol.as_ref())
                .and_then(|e| crate::time::date_ms(&e.date))
                .into(),
            health.as_str().into(),
            counts.critical.into(),
            counts.high.into(),
            counts.medium.into(),
            counts.low.into(),
            counts.negligible.into(),
            counts.unknown.into(),
            counts.suppressed.into(),
            report.packages.len().into(),
            now.into(),
            json.into(),
            image_id.into(),
        ],
    )
    .await?;

    let health_event = previous_health != Some(health) || !new_problem_findings.is_empty();
    if health_event {
        tx.execute(
            "INSERT INTO health_events (tenant_id, image_id, at, from_health, to_health, \
             reason, new_findings) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                tenant.0.into(),
                image_id.into(),
                now.into(),
                previous_health.map(|h| h.as_str()).into(),
                health.as_str().into(),
                reason.into(),
                to_json(&new_problem_findings)?.into(),
            ],
        )
        .await?;
    }

    // Notify problems only: the image became unhealthy, or became unknown (it could not
    // be assessed: never a silent pass), or an unhealthy image that was scanned before
    // has a new critical/high finding. Nothing for a healthy image, even with a high
    // finding under a `critical` health threshold.
    let became_unhealthy =
        health == ImageHealth::Unhealthy && previous_health != Some(ImageHealth::Unhealthy);
    let became_unknown =
        health == ImageHealth::Unknown && previous_health != Some(ImageHealth::Unknown);
    let worse = health == ImageHealth::Unhealthy
        && previous_report.is_some()
        && !new_problem_findings.is_empty();
    let mut notified = false;
    if (became_unhealthy || became_unknown || worse)
        && let Some(target) = tx
            .query_opt(
                "SELECT url FROM notification_targets WHERE tenant_id = $1",
                &[tenant.0.into()],
            )
            .await?
    {
        let tags: Vec<String> = serde_json::from_str(&image.text(5)?).unwrap_or_default();
        let body = crate::NotificationEvent {
            event: if became_unhealthy {
                "image.unhealthy"
            } else if became_unknown {
                "image.unknown"
            } else {
                "image.new_findings"
            }
            .into(),
            at: crate::time::rfc3339(now),
            tenant: tenant_name.to_string(),
            image: crate::EventImage {
                id: image_id,
                registry: image.text(2)?,
                repository: image.text(3)?,
                digest: image.text(4)?,
                tags,
                platform: report.image.platform.clone().or(image.opt_text(6)?),
            },
            health: crate::HealthChange {
                from: previous_health,
                to: health,
            },
            reason: reason.to_string(),
            summary: counts.clone(),
            new_findings: new_problem_findings.clone(),
        };
        let body = to_json(&body)?;
        tx.execute(
            "INSERT INTO deliveries (tenant_id, url, event, state, attempts, next_at, \
                 created_at) VALUES ($1, $2, $3, 'pending', 0, $4, $4)",
            &[
                tenant.0.into(),
                target.text(0)?.into(),
                body.into(),
                now.into(),
            ],
        )
        .await?;
        notified = true;
    }
    Ok(Completed {
        image_id,
        previous_health,
        health,
        new_problem_findings,
        health_event,
        notified,
    })
}

pub(crate) async fn stored_reports(
    tx: &mut dyn Tx,
    after: i64,
    limit: u32,
) -> Result<Vec<StoredReport>> {
    let rows = tx
        .query(
            "SELECT id, tenant_id, report FROM images WHERE report IS NOT NULL AND id > $1 \
             ORDER BY id LIMIT $2",
            &[after.into(), i64::from(limit.clamp(1, 10_000)).into()],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(StoredReport {
                image_id: r.int(0)?,
                tenant_id: TenantId(r.int(1)?),
                // One unreadable report must not stop the rescan of the others.
                report: report::decode(
                    &r.text(2)?,
                    &format!("the stored report of image {}", r.int(0)?),
                )
                .map_err(|e| e.to_string()),
            })
        })
        .collect()
}

pub(crate) async fn claim_delivery(
    tx: &mut dyn Tx,
    now: i64,
    lease: i64,
) -> Result<Option<Delivery>> {
    let lock = match tx.dialect() {
        Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        Dialect::Sqlite => "",
    };
    let Some(row) = tx
        .query_opt(
            &format!(
                "UPDATE deliveries SET attempts = attempts + 1, next_at = $2 \
                 WHERE id = (SELECT id FROM deliveries WHERE state = 'pending' AND next_at <= $1 \
                             ORDER BY next_at, id LIMIT 1{lock}) \
                 RETURNING id, tenant_id, url, event, attempts"
            ),
            &[now.into(), now.saturating_add(lease).into()],
        )
        .await?
    else {
        return Ok(None);
    };
    let tenant = row.int(1)?;
    let url = row.text(2)?;
    // The secret of the tenant's current target, when it still points at the same URL.
    let secret = tx
        .query_opt(
            "SELECT secret FROM notification_targets WHERE tenant_id = $1 AND url = $2",
            &[tenant.into(), (&url).into()],
        )
        .await?
        .map(|r| r.text(0))
        .transpose()?;
    Ok(Some(Delivery {
        id: row.int(0)?,
        tenant_id: TenantId(tenant),
        url,
        secret,
        body: row.text(3)?,
        attempts: row.int(4)?,
    }))
}

pub(crate) async fn delivery_done(tx: &mut dyn Tx, id: i64, status: u16, now: i64) -> Result<()> {
    tx.execute(
        "UPDATE deliveries SET state = 'delivered', last_status = $1, delivered_at = $2, \
         next_at = NULL, last_error = NULL WHERE id = $3",
        &[i64::from(status).into(), now.into(), id.into()],
    )
    .await?;
    Ok(())
}

pub(crate) async fn delivery_retry(
    tx: &mut dyn Tx,
    id: i64,
    status: Option<u16>,
    error: String,
    next_at: i64,
) -> Result<()> {
    tx.execute(
        "UPDATE deliveries SET next_at = $1, last_status = $2, last_error = $3 \
         WHERE id = $4 AND state = 'pending'",
        &[
            next_at.into(),
            status.map(i64::from).into(),
            error.into(),
            id.into(),
        ],
    )
    .await?;
    Ok(())
}

pub(crate) async fn delivery_failed(
    tx: &mut dyn Tx,
    id: i64,
    status: Option<u16>,
    error: String,
) -> Result<()> {
    tx.execute(
        "UPDATE deliveries SET state = 'failed', next_at = NULL, last_status = $1, \
         last_error = $2 WHERE id = $3",
        &[status.map(i64::from).into(), error.into(), id.into()],
    )
    .await?;
    Ok(())
}

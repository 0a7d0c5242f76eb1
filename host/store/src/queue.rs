//! The scan queue (docs/service-design.md, "Queue semantics").
//!
//! Lock order on PostgreSQL is always job row, then image row (enqueue inserts the job
//! before it touches the image; claim and complete update the job first), so concurrent
//! enqueues, claims and completions cannot deadlock.

use crate::sql::{Dialect, Row, Tx, Value};
use crate::{Enqueued, Error, ImageHealth, Job, NewJob, Pushed, Result, TenantId};

/// At most this many tags are remembered per image (the newest): a registry client pushing
/// the same digest under endless tags must not grow a row without bound.
const MAX_TAGS: usize = 100;

pub(crate) const JOB_COLUMNS: &str = "id, tenant_id, registry, repository, digest, tag, \
    media_type, platform, reason, state, attempts, run_at, lease_token, lease_until, worker, \
    error, created_at, started_at, finished_at, image_id";

pub(crate) fn job_from_row(r: &Row) -> Result<Job> {
    Ok(Job {
        id: r.int(0)?,
        tenant_id: TenantId(r.int(1)?),
        registry: r.text(2)?,
        repository: r.text(3)?,
        digest: r.text(4)?,
        tag: r.opt_text(5)?,
        media_type: r.opt_text(6)?,
        platform: r.opt_text(7)?,
        reason: r.parsed(8)?,
        state: r.parsed(9)?,
        attempts: r.int(10)?,
        run_at: r.int(11)?,
        lease_token: r.opt_text(12)?,
        lease_until: r.opt_int(13)?,
        worker: r.opt_text(14)?,
        error: r.opt_text(15)?,
        created_at: r.int(16)?,
        started_at: r.opt_int(17)?,
        finished_at: r.opt_int(18)?,
        image_id: r.opt_int(19)?,
    })
}

/// Enqueues `job` (see [`crate::Store::enqueue`]); with `if_unscanned`, an image that
/// already has a result only gets the tag ([`crate::Store::enqueue_if_unscanned`]).
pub(crate) async fn enqueue(tx: &mut dyn Tx, job: NewJob, if_unscanned: bool) -> Result<Pushed> {
    for (what, v) in [
        ("registry", &job.registry),
        ("repository", &job.repository),
        ("digest", &job.digest),
    ] {
        if v.is_empty() {
            return Err(Error::Invalid(format!("enqueue: empty {what}")));
        }
    }
    let key: [Value; 4] = [
        job.tenant_id.0.into(),
        (&job.registry).into(),
        (&job.repository).into(),
        (&job.digest).into(),
    ];
    if if_unscanned {
        // The common re-push: answered without inserting (and then deleting) a job. It only
        // reads the image row, so the job-then-image lock order is kept.
        let scanned = tx
            .query_opt(
                &format!(
                    "SELECT id FROM images WHERE tenant_id = $1 AND registry = $2 \
                     AND repository = $3 AND digest = $4 AND {SCANNED}"
                ),
                &key,
            )
            .await?;
        if scanned.is_some() {
            let (image_id, _) = upsert_image(tx, &job, &key).await?;
            return Ok(Pushed::AlreadyScanned { image_id });
        }
    }

    // Insert, or find the active job that made the insert a no-op. The active job can
    // finish between the two statements (PostgreSQL, READ COMMITTED): then insert again.
    let mut outcome = None;
    for _ in 0..3 {
        let mut params = key.to_vec();
        params.extend([
            job.tag.clone().into(),
            job.media_type.clone().into(),
            job.platform.clone().into(),
            job.reason.as_str().into(),
            job.run_at.into(),
            job.now.into(),
        ]);
        let inserted = tx
            .query_opt(
                "INSERT INTO jobs (tenant_id, registry, repository, digest, tag, media_type, \
                 platform, reason, state, attempts, run_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', 0, $9, $10) \
                 ON CONFLICT (tenant_id, registry, repository, digest) \
                 WHERE state IN ('queued', 'running') DO NOTHING RETURNING id",
                &params,
            )
            .await?;
        if let Some(row) = inserted {
            outcome = Some(Enqueued::New(row.int(0)?));
            break;
        }
        let existing = tx
            .query_opt(
                "SELECT id FROM jobs WHERE tenant_id = $1 AND registry = $2 \
                 AND repository = $3 AND digest = $4 AND state IN ('queued', 'running')",
                &key,
            )
            .await?;
        if let Some(row) = existing {
            outcome = Some(Enqueued::Coalesced(row.int(0)?));
            break;
        }
    }
    let outcome = outcome.ok_or_else(|| {
        Error::Db(format!(
            "enqueue {}/{}@{}: the active job kept changing",
            job.registry, job.repository, job.digest
        ))
    })?;

    let (image_id, scanned) = upsert_image(tx, &job, &key).await?;
    if if_unscanned && scanned {
        // A job of this image completed between the check above and now (PostgreSQL: the
        // image upsert waited for its transaction, and this statement's snapshot sees its
        // result). The job inserted here was never visible to anyone: take it back.
        if let Enqueued::New(id) = outcome {
            tx.execute("DELETE FROM jobs WHERE id = $1", &[id.into()])
                .await?;
        }
        return Ok(Pushed::AlreadyScanned { image_id });
    }
    if let Enqueued::New(id) = outcome {
        tx.execute(
            "UPDATE jobs SET image_id = $1 WHERE id = $2",
            &[image_id.into(), id.into()],
        )
        .await?;
    }
    Ok(Pushed::Job(outcome))
}

/// SQL condition on `images`: a result exists, so a push need not scan it again.
const SCANNED: &str = "(report IS NOT NULL OR health = 'unsupported')";

/// The image row of `key`: created pending, or its tags extended with `job.tag`. Returns its
/// id and whether it has a result ([`SCANNED`]), read after the upsert.
async fn upsert_image(tx: &mut dyn Tx, job: &NewJob, key: &[Value; 4]) -> Result<(i64, bool)> {
    // On PostgreSQL the upsert locks the row, so the read-modify-write of `tags` below
    // cannot lose a concurrent tag.
    let mut params = key.to_vec();
    params.extend([job.platform.clone().into(), job.now.into()]);
    tx.execute(
        "INSERT INTO images (tenant_id, registry, repository, digest, tags, platform, health, \
         first_seen_at, updated_at) VALUES ($1, $2, $3, $4, '[]', $5, 'pending', $6, $6) \
         ON CONFLICT (tenant_id, registry, repository, digest) \
         DO UPDATE SET updated_at = excluded.updated_at, \
         platform = COALESCE(images.platform, excluded.platform)",
        &params,
    )
    .await?;
    let image = tx
        .query_one(
            &format!(
                "SELECT id, tags, CASE WHEN {SCANNED} THEN 1 ELSE 0 END FROM images \
                 WHERE tenant_id = $1 AND registry = $2 AND repository = $3 AND digest = $4"
            ),
            key,
        )
        .await?;
    let image_id = image.int(0)?;
    let scanned = image.int(2)? != 0;
    if let Some(tag) = &job.tag {
        // A corrupt tags value is replaced rather than blocking every future push.
        let mut tags: Vec<String> = serde_json::from_str(&image.text(1)?).unwrap_or_default();
        if !tags.contains(tag) {
            tags.push(tag.clone());
            if tags.len() > MAX_TAGS {
                tags.drain(..tags.len() - MAX_TAGS);
            }
            let json = serde_json::to_string(&tags)
                .map_err(|e| Error::Db(format!("serialising tags: {e}")))?;
            tx.execute(
                "UPDATE images SET tags = $1 WHERE id = $2",
                &[json.into(), image_id.into()],
            )
            .await?;
        }
    }
    Ok((image_id, scanned))
}

/// SQL condition on `jobs`, with `now` the placeholder of the time: the job may be
/// claimed (queued and due, or running under a lease that expired).
fn runnable(now: &str) -> String {
    format!(
        "((state = 'queued' AND run_at <= {now}) OR (state = 'running' AND lease_until < {now}))"
    )
}

pub(crate) async fn claim(
    tx: &mut dyn Tx,
    worker: String,
    lease_ms: i64,
    token: String,
    now: i64,
) -> Result<Option<Job>> {
    // Fair claiming: the tenants that have a runnable job, the least served first
    // (fewest jobs running, then the one whose last claim is the oldest, a tenant never
    // served before all others), then the oldest job of that tenant. One tenant's 200
    // pushes then delay another tenant's one push by at most the scans already running,
    // where oldest-first across tenants would make it wait for all 200.
    let tenants = tx
        .query(
            &format!(
                "SELECT r.tenant_id FROM \
                   (SELECT tenant_id, MIN(id) AS first FROM jobs WHERE {} \
                    GROUP BY tenant_id) AS r \
                 ORDER BY (SELECT COUNT(*) FROM jobs b WHERE b.tenant_id = r.tenant_id \
                           AND b.state = 'running' AND b.lease_until >= $1), \
                          (SELECT COALESCE(MAX(l.started_at), 0) FROM jobs l \
                           WHERE l.tenant_id = r.tenant_id), \
                          r.first",
                runnable("$1")
            ),
            &[now.into()],
        )
        .await?;
    // PostgreSQL: SKIP LOCKED lets several instances claim different jobs at once (a
    // tenant whose runnable jobs are all being claimed by others is passed over). SQLite:
    // the transaction holds the write lock (BEGIN IMMEDIATE), which serialises claims.
    let lock = match tx.dialect() {
        Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        Dialect::Sqlite => "",
    };
    let sql = format!(
        "UPDATE jobs SET state = 'running', lease_token = $1, lease_until = $2, \
         attempts = attempts + 1, started_at = $3, worker = $4 \
         WHERE id = (SELECT id FROM jobs WHERE tenant_id = $5 AND {} \
                     ORDER BY run_at, id LIMIT 1{lock}) \
         RETURNING {JOB_COLUMNS}",
        runnable("$3")
    );
    let mut claimed = None;
    for tenant in &tenants {
        let row = tx
            .query_opt(
                &sql,
                &[
                    token.clone().into(),
                    now.saturating_add(lease_ms).into(),
                    now.into(),
                    worker.clone().into(),
                    tenant.int(0)?.into(),
                ],
            )
            .await?;
        if row.is_some() {
            claimed = row;
            break;
        }
    }
    let Some(row) = claimed else {
        return Ok(None);
    };
    let job = job_from_row(&row)?;
    if let Some(image_id) = job.image_id {
        // Only an image without an assessment shows `scanning`: a rescan of a known image
        // keeps its health visible meanwhile.
        tx.execute(
            "UPDATE images SET health = 'scanning', updated_at = $2 \
             WHERE id = $1 AND report IS NULL",
            &[image_id.into(), now.into()],
        )
        .await?;
    }
    Ok(Some(job))
}

pub(crate) async fn heartbeat(tx: &mut dyn Tx, id: i64, token: String, until: i64) -> Result<bool> {
    Ok(tx
        .execute(
            "UPDATE jobs SET lease_until = $1 \
             WHERE id = $2 AND state = 'running' AND lease_token = $3",
            &[until.into(), id.into(), token.into()],
        )
        .await?
        == 1)
}

/// Ends a lease: moves the job from `running` (under `token`) with `set`, or
/// [`Error::LeaseLost`]. Returns the job's image id.
pub(crate) async fn end_lease(
    tx: &mut dyn Tx,
    id: i64,
    token: String,
    set: &str,
    mut params: Vec<Value>,
) -> Result<Option<i64>> {
    let n = params.len();
    params.extend([id.into(), token.into()]);
    let sql = format!(
        "UPDATE jobs SET {set}, lease_token = NULL, lease_until = NULL \
         WHERE id = ${} AND state = 'running' AND lease_token = ${} RETURNING image_id",
        n + 1,
        n + 2
    );
    match tx.query_opt(&sql, &params).await? {
        Some(row) => row.opt_int(0),
        None => Err(Error::LeaseLost(id)),
    }
}

pub(crate) async fn retry(
    tx: &mut dyn Tx,
    id: i64,
    token: String,
    error: String,
    run_at: i64,
    now: i64,
) -> Result<()> {
    let image = end_lease(
        tx,
        id,
        token,
        "state = 'queued', run_at = $1, error = $2, worker = NULL",
        vec![run_at.into(), (&error).into()],
    )
    .await?;
    if let Some(image_id) = image {
        tx.execute(
            "UPDATE images SET last_error = $1, updated_at = $2, \
             health = CASE WHEN report IS NULL THEN 'pending' ELSE health END WHERE id = $3",
            &[error.into(), now.into(), image_id.into()],
        )
        .await?;
    }
    Ok(())
}

pub(crate) async fn fail(
    tx: &mut dyn Tx,
    id: i64,
    token: String,
    error: String,
    unsupported: bool,
    now: i64,
) -> Result<()> {
    let image = end_lease(
        tx,
        id,
        token,
        "state = 'failed', error = $1, finished_at = $2",
        vec![(&error).into(), now.into()],
    )
    .await?;
    if let Some(image_id) = image {
        let health = if unsupported {
            ImageHealth::Unsupported
        } else {
            ImageHealth::Failed
        };
        tx.execute(
            "UPDATE images SET last_error = $1, updated_at = $2, \
             health = CASE WHEN report IS NULL THEN $3 ELSE health END WHERE id = $4",
            &[
                error.into(),
                now.into(),
                health.as_str().into(),
                image_id.into(),
            ],
        )
        .await?;
    }
    Ok(())
}

pub(crate) async fn depth(tx: &mut dyn Tx) -> Result<i64> {
    tx.query_one("SELECT COUNT(*) FROM jobs WHERE state = 'queued'", &[])
        .await?
        .int(0)
}

pub(crate) async fn job(tx: &mut dyn Tx, tenant: Option<TenantId>, id: i64) -> Result<Option<Job>> {
    let row = match tenant {
        Some(t) => {
            tx.query_opt(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 AND tenant_id = $2"),
                &[id.into(), t.0.into()],
            )
            .await?
        }
        None => {
            tx.query_opt(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"),
                &[id.into()],
            )
            .await?
        }
    };
    row.as_ref().map(job_from_row).transpose()
}

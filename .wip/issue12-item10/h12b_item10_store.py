p='/work/h12b/host/store/src/queue.rs'
s=open(p).read()
old=s[s.index('''    // PostgreSQL: SKIP LOCKED lets several instances claim different jobs at once. SQLite:'''):s.index('''    let job = job_from_row(&row)?;
    if let Some(image_id) = job.image_id {''')]
new='''    // Fair claiming: the tenants that have a runnable job, the least served first
    // (fewest jobs running, then the one whose last claim is the oldest, a tenant never
    // served before all others), then the oldest job of that tenant. One tenant's 200
    // pushes then delay another tenant's one push by at most the scans already running,
    // where oldest-first across tenants would make it wait for all 200.
    let tenants = tx
        .query(
            &format!(
                "SELECT r.tenant_id FROM \\
                   (SELECT tenant_id, MIN(id) AS first FROM jobs WHERE {} \\
                    GROUP BY tenant_id) AS r \\
                 ORDER BY (SELECT COUNT(*) FROM jobs b WHERE b.tenant_id = r.tenant_id \\
                           AND b.state = 'running' AND b.lease_until >= $1), \\
                          (SELECT COALESCE(MAX(l.started_at), 0) FROM jobs l \\
                           WHERE l.tenant_id = r.tenant_id), \\
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
        "UPDATE jobs SET state = 'running', lease_token = $1, lease_until = $2, \\
         attempts = attempts + 1, started_at = $3, worker = $4 \\
         WHERE id = (SELECT id FROM jobs WHERE tenant_id = $5 AND {} \\
                     ORDER BY run_at, id LIMIT 1{lock}) \\
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
'''
s=s.replace(old,new)
s=s.replace('''pub(crate) async fn claim(''','''/// SQL condition on `jobs`, with `now` the placeholder of the time: the job may be
/// claimed (queued and due, or running under a lease that expired).
fn runnable(now: &str) -> String {
    format!(
        "((state = 'queued' AND run_at <= {now}) OR (state = 'running' AND lease_until < {now}))"
    )
}

pub(crate) async fn claim(''')
open(p,'w').write(s)

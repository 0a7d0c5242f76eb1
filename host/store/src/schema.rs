//! The schema (docs/service-design.md, "Schema") and its migrations, which also create the
//! query language's views (host/query/sql/views_v1.sql).
//!
//! DDL is written once; the only dialect difference is the surrogate key (`{ID}`):
//! SQLite's `INTEGER PRIMARY KEY` (the rowid) against PostgreSQL's identity column. Every
//! other integer is `BIGINT` (integer affinity in SQLite), so values are 64-bit on both.

use crate::sql::{Db, Dialect, Tx, Value};
use crate::{Error, Result};

/// The query language's tables: views over the schema, owned by the query crate (its
/// catalog names them and their columns) and created by migration 1. Included as text, not
/// through a dependency, so that the store builds without the query crate. Once released,
/// a change to that file needs a new migration here.
const VIEWS_V1: &str = include_str!("../../query/sql/views_v1.sql");

const V1: &str = r#"
CREATE TABLE tenants (
    id {ID},
    name TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
CREATE TABLE tokens (
    id {ID},
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX tokens_tenant ON tokens (tenant_id);
CREATE TABLE ownership (
    id {ID},
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    registry TEXT NOT NULL,
    prefix TEXT NOT NULL,
    origin TEXT NOT NULL DEFAULT 'config',
    UNIQUE (registry, prefix)
);
CREATE INDEX ownership_tenant ON ownership (tenant_id);
CREATE TABLE images (
    id {ID},
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    registry TEXT NOT NULL,
    repository TEXT NOT NULL,
    digest TEXT NOT NULL,
    tags TEXT NOT NULL DEFAULT '[]',
    platform TEXT,
    os_id TEXT,
    os_version TEXT,
    os_name TEXT,
    os_eol BIGINT,
    health TEXT NOT NULL,
    critical BIGINT NOT NULL DEFAULT 0,
    high BIGINT NOT NULL DEFAULT 0,
    medium BIGINT NOT NULL DEFAULT 0,
    low BIGINT NOT NULL DEFAULT 0,
    negligible BIGINT NOT NULL DEFAULT 0,
    unknown BIGINT NOT NULL DEFAULT 0,
    suppressed BIGINT NOT NULL DEFAULT 0,
    packages BIGINT NOT NULL DEFAULT 0,
    first_seen_at BIGINT NOT NULL,
    scanned_at BIGINT,
    updated_at BIGINT NOT NULL,
    last_error TEXT,
    report TEXT,
    UNIQUE (tenant_id, registry, repository, digest)
);
CREATE INDEX images_tenant ON images (tenant_id, id);
CREATE TABLE jobs (
    id {ID},
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    registry TEXT NOT NULL,
    repository TEXT NOT NULL,
    digest TEXT NOT NULL,
    tag TEXT,
    media_type TEXT,
    platform TEXT,
    reason TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    run_at BIGINT NOT NULL,
    lease_token TEXT,
    lease_until BIGINT,
    worker TEXT,
    error TEXT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    image_id BIGINT REFERENCES images (id) ON DELETE SET NULL
);
-- Coalescing: at most one queued or running job per image, race-free on both stores.
CREATE UNIQUE INDEX jobs_active ON jobs (tenant_id, registry, repository, digest)
    WHERE state IN ('queued', 'running');
CREATE INDEX jobs_runnable ON jobs (state, run_at);
CREATE INDEX jobs_tenant ON jobs (tenant_id, id);
CREATE INDEX jobs_image ON jobs (image_id);
CREATE TABLE findings (
    id {ID},
    image_id BIGINT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    tenant_id BIGINT NOT NULL,
    vuln_id TEXT NOT NULL,
    aliases TEXT NOT NULL DEFAULT '[]',
    package TEXT NOT NULL,
    installed_version TEXT NOT NULL,
    fixed_version TEXT,
    fix_state TEXT NOT NULL,
    severity TEXT NOT NULL,
    severity_rank BIGINT NOT NULL,
    cvss_score DOUBLE PRECISION,
    cvss_vector TEXT,
    title TEXT NOT NULL,
    ecosystem TEXT NOT NULL,
    package_type TEXT NOT NULL,
    layer_digest TEXT,
    first_seen_at BIGINT NOT NULL
);
CREATE INDEX findings_image ON findings (image_id);
CREATE INDEX findings_tenant ON findings (tenant_id, severity_rank, id);
CREATE TABLE packages (
    id {ID},
    image_id BIGINT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    tenant_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    ecosystem TEXT NOT NULL,
    source_name TEXT,
    source_version TEXT,
    arch TEXT,
    license TEXT,
    purl TEXT NOT NULL,
    layer_digest TEXT
);
CREATE INDEX packages_image ON packages (image_id, name);
CREATE INDEX packages_tenant ON packages (tenant_id);
CREATE TABLE recommendations (
    id {ID},
    image_id BIGINT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    tenant_id BIGINT NOT NULL,
    package TEXT NOT NULL,
    installed_version TEXT NOT NULL,
    fixed_version TEXT NOT NULL,
    fixes TEXT NOT NULL DEFAULT '[]',
    fix_count BIGINT NOT NULL,
    severity TEXT NOT NULL,
    severity_rank BIGINT NOT NULL
);
CREATE INDEX recommendations_image ON recommendations (image_id);
CREATE INDEX recommendations_tenant ON recommendations (tenant_id, package, fixed_version);
CREATE TABLE health_events (
    id {ID},
    tenant_id BIGINT NOT NULL,
    image_id BIGINT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    at BIGINT NOT NULL,
    from_health TEXT,
    to_health TEXT NOT NULL,
    reason TEXT NOT NULL,
    new_findings TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX health_events_tenant ON health_events (tenant_id, id);
CREATE INDEX health_events_image ON health_events (image_id, id);
CREATE TABLE notification_targets (
    id {ID},
    tenant_id BIGINT NOT NULL UNIQUE REFERENCES tenants (id),
    url TEXT NOT NULL,
    secret TEXT NOT NULL
);
CREATE TABLE deliveries (
    id {ID},
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    url TEXT NOT NULL,
    event TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_at BIGINT,
    last_status BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT
);
CREATE INDEX deliveries_due ON deliveries (state, next_at);
CREATE INDEX deliveries_tenant ON deliveries (tenant_id, id);
"#;

/// The query language's value limit on PostgreSQL: the compiled query passes each text
/// output through this (SQLite has `SQLITE_LIMIT_LENGTH` instead), so that a value longer
/// than the limit is an error in the database rather than bytes sent to the service.
/// SQLSTATE 54000 (program_limit_exceeded) is what the store reads as "value too large".
const PG_VALUE_LIMIT: &str = r#"
CREATE OR REPLACE FUNCTION bulkhead_value_limit(v TEXT, max_bytes BIGINT) RETURNS TEXT
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF octet_length(v) > max_bytes THEN
        RAISE EXCEPTION 'a value of % bytes is larger than the limit of % bytes',
            octet_length(v), max_bytes USING ERRCODE = '54000';
    END IF;
    RETURN v;
END
$$;
"#;

/// Ownership changes are recorded (who, when): the entry keeps when and by which token it
/// was made (`NULL` for the configuration's), and every addition and removal through the
/// API is a row of `ownership_changes`, which outlives the entry it describes.
const V3: &str = r#"
ALTER TABLE ownership ADD COLUMN created_at BIGINT;
ALTER TABLE ownership ADD COLUMN created_by_token BIGINT;
CREATE TABLE ownership_changes (
    id {ID},
    tenant_id BIGINT NOT NULL REFERENCES tenants (id),
    at BIGINT NOT NULL,
    token_id BIGINT,
    action TEXT NOT NULL,
    registry TEXT NOT NULL,
    prefix TEXT NOT NULL
);
CREATE INDEX ownership_changes_tenant ON ownership_changes (tenant_id, id);
"#;

/// Migration `version` as SQL for `dialect`.
fn migration(version: i64, dialect: Dialect) -> Option<String> {
    let id = match dialect {
        Dialect::Sqlite => "INTEGER PRIMARY KEY",
        Dialect::Postgres => "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    };
    match version {
        1 => Some(format!("{}\n{VIEWS_V1}", V1.replace("{ID}", id))),
        2 => Some(match dialect {
            Dialect::Postgres => PG_VALUE_LIMIT.to_string(),
            // Nothing: SQLite limits value lengths per connection.
            Dialect::Sqlite => String::new(),
        }),
        3 => Some(V3.replace("{ID}", id)),
        // Fair claiming (queue.rs `claim`): per tenant, its jobs running and its last claim.
        4 => Some(
            "CREATE INDEX jobs_tenant_state ON jobs (tenant_id, state, lease_until);\n\
             CREATE INDEX jobs_tenant_started ON jobs (tenant_id, started_at);"
                .to_string(),
        ),
        _ => None,
    }
}

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i64 = 4;

/// An arbitrary constant: the PostgreSQL advisory lock that serialises migrations of
/// several `bulkhead serve` instances starting at once.
const MIGRATION_LOCK: i64 = 0x6275_6c6b_6865_6164; // "bulkhead" in ASCII

async fn migrate_tx(tx: &mut dyn Tx) -> Result<()> {
    if tx.dialect() == Dialect::Postgres {
        // `batch`: the function returns `void`, which has no value to decode.
        tx.batch(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
            .await?;
    }
    tx.batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations \
         (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .await?;
    let current = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await?
        .int(0)?;
    if current > SCHEMA_VERSION {
        return Err(Error::Db(format!(
            "the store's schema is version {current}, newer than this bulkhead knows \
             ({SCHEMA_VERSION}): upgrade bulkhead"
        )));
    }
    for version in current + 1..=SCHEMA_VERSION {
        let sql = migration(version, tx.dialect())
            .ok_or_else(|| Error::Db(format!("no migration {version}")))?;
        tx.batch(&sql)
            .await
            .map_err(|e| Error::Db(format!("migration {version}: {e}")))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
            &[Value::Int(version), Value::Int(crate::now_ms())],
        )
        .await?;
    }
    Ok(())
}

pub(crate) async fn migrate(db: &Db) -> Result<()> {
    db.write(|tx| Box::pin(migrate_tx(tx))).await
}

pub(crate) async fn version(db: &Db) -> Result<i64> {
    db.read(|tx| {
        Box::pin(async move {
            tx.query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )
            .await?
            .int(0)
        })
    })
    .await
}

-- The store's schema v1 (docs/service-design.md, "Schema"), as far as the query views read
-- it, in SQL that both SQLite and PostgreSQL accept. A stand-in for the store's own
-- migrations (host/store), so this crate's tests do not depend on the store; the views
-- themselves are the crate's (sql/views_v1.sql), as in production.
CREATE TABLE tenants (
    id BIGINT PRIMARY KEY,
    name TEXT UNIQUE NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE images (
    id BIGINT PRIMARY KEY,
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
    critical INT NOT NULL DEFAULT 0,
    high INT NOT NULL DEFAULT 0,
    medium INT NOT NULL DEFAULT 0,
    low INT NOT NULL DEFAULT 0,
    negligible INT NOT NULL DEFAULT 0,
    unknown INT NOT NULL DEFAULT 0,
    suppressed INT NOT NULL DEFAULT 0,
    packages INT NOT NULL DEFAULT 0,
    first_seen_at BIGINT NOT NULL,
    scanned_at BIGINT,
    updated_at BIGINT NOT NULL,
    last_error TEXT,
    report TEXT,
    UNIQUE (tenant_id, registry, repository, digest)
);
CREATE TABLE findings (
    id BIGINT PRIMARY KEY,
    image_id BIGINT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    tenant_id BIGINT NOT NULL,
    vuln_id TEXT NOT NULL,
    aliases TEXT NOT NULL DEFAULT '[]',
    package TEXT NOT NULL,
    installed_version TEXT,
    fixed_version TEXT,
    fix_state TEXT,
    severity TEXT NOT NULL,
    severity_rank INT NOT NULL,
    cvss_score DOUBLE PRECISION,
    cvss_vector TEXT,
    title TEXT,
    ecosystem TEXT,
    package_type TEXT,
    layer_digest TEXT,
    first_seen_at BIGINT NOT NULL
);
CREATE TABLE packages (
    id BIGINT PRIMARY KEY,
    image_id BIGINT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    tenant_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    version TEXT,
    ecosystem TEXT,
    source_name TEXT,
    source_version TEXT,
    arch TEXT,
    license TEXT,
    purl TEXT,
    layer_digest TEXT
);
CREATE TABLE recommendations (
    id BIGINT PRIMARY KEY,
    image_id BIGINT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    tenant_id BIGINT NOT NULL,
    package TEXT NOT NULL,
    installed_version TEXT,
    fixed_version TEXT,
    fixes TEXT NOT NULL DEFAULT '[]',
    fix_count INT NOT NULL DEFAULT 0,
    severity TEXT,
    severity_rank INT
);
CREATE TABLE jobs (
    id BIGINT PRIMARY KEY,
    tenant_id BIGINT NOT NULL,
    registry TEXT,
    repository TEXT,
    digest TEXT,
    tag TEXT,
    media_type TEXT,
    platform TEXT,
    reason TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INT NOT NULL DEFAULT 0,
    run_at BIGINT NOT NULL,
    lease_token TEXT,
    lease_until BIGINT,
    worker TEXT,
    error TEXT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    image_id BIGINT
);
CREATE TABLE health_events (
    id BIGINT PRIMARY KEY,
    tenant_id BIGINT NOT NULL,
    image_id BIGINT,
    at BIGINT,
    from_health TEXT,
    to_health TEXT,
    reason TEXT,
    new_findings TEXT
);

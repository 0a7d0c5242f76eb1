-- The query language's tables (docs/query.md), as views over the store's schema v1
-- (docs/service-design.md). Portable: the same text runs on SQLite and PostgreSQL.
--
-- Each view carries `tenant_id`, which the catalog never exposes: the compiler wraps every
-- reference to a view as `(SELECT * FROM <view> WHERE tenant_id = $1)`. The joins match
-- the tenant too, so a row can never pick up another tenant's image columns.
-- Column names are quoted so that PostgreSQL keeps their case.

CREATE VIEW query_images AS
SELECT i.tenant_id AS tenant_id,
       i.id AS "ImageId",
       i.registry AS "Registry",
       i.repository AS "Repository",
       i.digest AS "Digest",
       i.tags AS "Tags",
       i.platform AS "Platform",
       i.os_id AS "OsId",
       i.os_version AS "OsVersion",
       i.os_name AS "OsName",
       i.os_eol AS "OsEol",
       i.health AS "Health",
       i.critical AS "Critical",
       i.high AS "High",
       i.medium AS "Medium",
       i.low AS "Low",
       i.negligible AS "Negligible",
       i.unknown AS "Unknown",
       i.suppressed AS "Suppressed",
       i.packages AS "Packages",
       i.first_seen_at AS "FirstSeen",
       i.scanned_at AS "ScannedAt",
       i.last_error AS "LastError"
FROM images i;

CREATE VIEW query_findings AS
SELECT f.tenant_id AS tenant_id,
       f.image_id AS "ImageId",
       i.registry AS "Registry",
       i.repository AS "Repository",
       i.digest AS "Digest",
       f.vuln_id AS "VulnId",
       f.aliases AS "Aliases",
       f.package AS "Package",
       f.installed_version AS "InstalledVersion",
       f.fixed_version AS "FixedVersion",
       f.fix_state AS "FixState",
       f.severity AS "Severity",
       f.severity_rank AS "SeverityRank",
       f.cvss_score AS "CvssScore",
       f.cvss_vector AS "CvssVector",
       f.title AS "Title",
       f.ecosystem AS "Ecosystem",
       f.package_type AS "PackageType",
       f.layer_digest AS "LayerDigest",
       f.first_seen_at AS "FirstSeen"
FROM findings f
JOIN images i ON i.id = f.image_id AND i.tenant_id = f.tenant_id;

CREATE VIEW query_packages AS
SELECT p.tenant_id AS tenant_id,
       p.image_id AS "ImageId",
       i.registry AS "Registry",
       i.repository AS "Repository",
       i.digest AS "Digest",
       p.name AS "Name",
       p.version AS "Version",
       p.ecosystem AS "Ecosystem",
       p.source_name AS "SourceName",
       p.source_version AS "SourceVersion",
       p.arch AS "Arch",
       p.license AS "License",
       p.purl AS "Purl",
       p.layer_digest AS "LayerDigest"
FROM packages p
JOIN images i ON i.id = p.image_id AND i.tenant_id = p.tenant_id;

CREATE VIEW query_recommendations AS
SELECT r.tenant_id AS tenant_id,
       r.image_id AS "ImageId",
       i.registry AS "Registry",
       i.repository AS "Repository",
       i.digest AS "Digest",
       r.package AS "Package",
       r.installed_version AS "InstalledVersion",
       r.fixed_version AS "FixedVersion",
       r.fixes AS "Fixes",
       r.fix_count AS "FixCount",
       r.severity AS "Severity",
       r.severity_rank AS "SeverityRank"
FROM recommendations r
JOIN images i ON i.id = r.image_id AND i.tenant_id = r.tenant_id;

CREATE VIEW query_scans AS
SELECT j.tenant_id AS tenant_id,
       j.id AS "ScanId",
       j.image_id AS "ImageId",
       j.registry AS "Registry",
       j.repository AS "Repository",
       j.digest AS "Digest",
       j.tag AS "Tag",
       j.reason AS "Reason",
       j.state AS "State",
       j.attempts AS "Attempts",
       j.error AS "Error",
       j.created_at AS "CreatedAt",
       j.started_at AS "StartedAt",
       j.finished_at AS "FinishedAt"
FROM jobs j;

CREATE VIEW query_health_events AS
SELECT h.tenant_id AS tenant_id,
       h.image_id AS "ImageId",
       i.registry AS "Registry",
       i.repository AS "Repository",
       i.digest AS "Digest",
       h.at AS "At",
       h.from_health AS "FromHealth",
       h.to_health AS "ToHealth",
       h.reason AS "Reason",
       h.new_findings AS "NewFindings"
FROM health_events h
JOIN images i ON i.id = h.image_id AND i.tenant_id = h.tenant_id;

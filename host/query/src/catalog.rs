//! The tables a query can name, their columns and types. The catalog is the only source of
//! SQL identifiers in compiled queries: a table compiles to its view, a column to its
//! view column; nothing the user writes becomes an identifier.

use std::fmt;

/// Value types. How each is stored: string TEXT, long BIGINT, real DOUBLE PRECISION
/// (REAL in SQLite), bool BOOLEAN (0/1 in SQLite), datetime BIGINT milliseconds since the
/// epoch (UTC), timespan BIGINT milliseconds, dynamic TEXT holding JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    String,
    Long,
    Real,
    Bool,
    Datetime,
    Timespan,
    Dynamic,
}

impl Type {
    pub fn name(self) -> &'static str {
        match self {
            Type::String => "string",
            Type::Long => "long",
            Type::Real => "real",
            Type::Bool => "bool",
            Type::Datetime => "datetime",
            Type::Timespan => "timespan",
            Type::Dynamic => "dynamic",
        }
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, Type::Long | Type::Real)
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Debug)]
pub struct Column {
    pub name: &'static str,
    pub ty: Type,
    pub doc: &'static str,
}

#[derive(Clone, Debug)]
pub struct Table {
    /// The name a query uses (`Findings`).
    pub name: &'static str,
    /// The view it compiles to; it has a `tenant_id` column besides `columns`.
    pub view: &'static str,
    pub doc: &'static str,
    pub columns: Vec<Column>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

#[derive(Clone, Debug)]
pub struct Catalog {
    pub tables: Vec<Table>,
}

/// The SQL that creates the views of [`Catalog::bulkhead_v1`] (the same text for SQLite
/// and PostgreSQL). The store's migrations run it; it names the views' columns exactly as
/// the catalog does (a test checks that).
pub const VIEWS_V1_SQL: &str = include_str!("../sql/views_v1.sql");

fn col(name: &'static str, ty: Type, doc: &'static str) -> Column {
    Column { name, ty, doc }
}

/// The image's identity, repeated in every table that hangs off an image.
fn image_key() -> Vec<Column> {
    vec![
        col("ImageId", Type::Long, "the image's id (Images.ImageId)"),
        col("Registry", Type::String, "the registry's configured name"),
        col(
            "Repository",
            Type::String,
            "the repository, e.g. library/nginx",
        ),
        col("Digest", Type::String, "the manifest digest, sha256:…"),
    ]
}

impl Catalog {
    /// The tables of docs/service-design.md ("Query language"), over schema version 1.
    pub fn bulkhead_v1() -> Catalog {
        use Type::*;
        let images = {
            let mut c = image_key();
            c.extend([
                col(
                    "Tags",
                    Dynamic,
                    "JSON array of every tag seen pushed for this digest",
                ),
                col("Platform", String, "os/arch[/variant], e.g. linux/amd64"),
                col("OsId", String, "the distribution's id, e.g. debian, alpine"),
                col("OsVersion", String, "the distribution's version, e.g. 12"),
                col("OsName", String, "the distribution's pretty name"),
                col(
                    "OsEol",
                    Datetime,
                    "end of life of the distribution release, if known",
                ),
                col(
                    "Health",
                    String,
                    "healthy, unhealthy, unknown (not fully assessed), pending, scanning, failed or unsupported",
                ),
                col("Critical", Long, "number of critical findings"),
                col("High", Long, "number of high findings"),
                col("Medium", Long, "number of medium findings"),
                col("Low", Long, "number of low findings"),
                col("Negligible", Long, "number of negligible findings"),
                col("Unknown", Long, "number of findings of unknown severity"),
                col("Suppressed", Long, "number of suppressed findings"),
                col("Packages", Long, "number of installed packages"),
                col("FirstSeen", Datetime, "when the digest was first pushed"),
                col(
                    "ScannedAt",
                    Datetime,
                    "when the last successful scan finished",
                ),
                col("LastError", String, "the last scan's error, if it failed"),
            ]);
            c
        };
        let findings = {
            let mut c = image_key();
            c.extend([
                col("VulnId", String, "the vulnerability id, e.g. CVE-2024-0001"),
                col(
                    "Aliases",
                    Dynamic,
                    "JSON array of other ids of the same vulnerability",
                ),
                col("Package", String, "the affected package's name"),
                col("InstalledVersion", String, "the installed version"),
                col(
                    "FixedVersion",
                    String,
                    "the first fixed version, empty when there is no fix",
                ),
                col("FixState", String, "fixed, not-fixed, wont-fix or unknown"),
                col(
                    "Severity",
                    String,
                    "critical, high, medium, low, negligible or unknown",
                ),
                col(
                    "SeverityRank",
                    Long,
                    "0 unknown, 1 negligible, 2 low, 3 medium, 4 high, 5 critical",
                ),
                col("CvssScore", Real, "the CVSS base score"),
                col("CvssVector", String, "the CVSS vector"),
                col("Title", String, "the advisory's title"),
                col(
                    "Ecosystem",
                    String,
                    "the package's ecosystem, e.g. debian:12",
                ),
                col("PackageType", String, "deb, apk, rpm…"),
                col(
                    "LayerDigest",
                    String,
                    "the layer that installed the package",
                ),
                col(
                    "FirstSeen",
                    Datetime,
                    "when the finding first appeared on this image",
                ),
            ]);
            c
        };
        let packages = {
            let mut c = image_key();
            c.extend([
                col("Name", String, "the package's name"),
                col("Version", String, "the installed version"),
                col("Ecosystem", String, "the package's ecosystem"),
                col("SourceName", String, "the source package's name"),
                col("SourceVersion", String, "the source package's version"),
                col("Arch", String, "the architecture"),
                col("License", String, "the declared licence"),
                col("Purl", String, "the package URL"),
                col("LayerDigest", String, "the layer that installed it"),
            ]);
            c
        };
        let recommendations = {
            let mut c = image_key();
            c.extend([
                col("Package", String, "the package to upgrade"),
                col("InstalledVersion", String, "the installed version"),
                col("FixedVersion", String, "the version that fixes the most"),
                col(
                    "Fixes",
                    Dynamic,
                    "JSON array of the vulnerability ids the upgrade fixes",
                ),
                col(
                    "FixCount",
                    Long,
                    "how many vulnerabilities the upgrade fixes",
                ),
                col("Severity", String, "the worst severity it fixes"),
                col("SeverityRank", Long, "0 unknown … 5 critical"),
            ]);
            c
        };
        let scans = vec![
            col("ScanId", Long, "the scan job's id"),
            col("ImageId", Long, "the image, once known"),
            col("Registry", String, "the registry's configured name"),
            col("Repository", String, "the repository"),
            col("Digest", String, "the manifest digest"),
            col("Tag", String, "the tag pushed, if any"),
            col("Reason", String, "push, manual or rescan"),
            col("State", String, "queued, running, done or failed"),
            col("Attempts", Long, "how many times it was started"),
            col("Error", String, "the error of a failed or retried scan"),
            col("CreatedAt", Datetime, "when it was queued"),
            col("StartedAt", Datetime, "when it last started"),
            col("FinishedAt", Datetime, "when it finished"),
        ];
        let health_events = {
            let mut c = image_key();
            c.extend([
                col("At", Datetime, "when the health changed"),
                col("FromHealth", String, "the health before"),
                col("ToHealth", String, "the health after"),
                col("Reason", String, "scan or rescan"),
                col(
                    "NewFindings",
                    Dynamic,
                    "JSON array of the new findings: {id, package, severity}",
                ),
            ]);
            c
        };
        Catalog {
            tables: vec![
                Table {
                    name: "Images",
                    view: "query_images",
                    doc: "one row per image (registry, repository, digest) with its health and counts",
                    columns: images,
                },
                Table {
                    name: "Findings",
                    view: "query_findings",
                    doc: "one row per vulnerability found in a package of an image",
                    columns: findings,
                },
                Table {
                    name: "Packages",
                    view: "query_packages",
                    doc: "one row per package installed in an image",
                    columns: packages,
                },
                Table {
                    name: "Recommendations",
                    view: "query_recommendations",
                    doc: "one row per package upgrade that would fix findings of an image",
                    columns: recommendations,
                },
                Table {
                    name: "Scans",
                    view: "query_scans",
                    doc: "one row per scan job (queued, running, done or failed)",
                    columns: scans,
                },
                Table {
                    name: "HealthEvents",
                    view: "query_health_events",
                    doc: "one row per change of an image's health",
                    columns: health_events,
                },
            ],
        }
    }

    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }
}

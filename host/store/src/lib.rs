//! The scan service's durable store (docs/service-design.md is the contract).
//!
//! One SQL layer ([`sql`]) runs the same statement text on SQLite (rusqlite, bundled, WAL)
//! and PostgreSQL (tokio-postgres): statements use `$1, $2…` placeholders, SQLite binds them
//! by name. Everything the service reads or writes is a method of [`Store`]; every read
//! that serves a tenant takes its [`TenantId`] and filters on it in SQL, so another
//! tenant's rows cannot show up in a list, a count, a page boundary or a lookup by id.
//!
//! Time is milliseconds since the Unix epoch ([`now_ms`]); methods whose result depends on
//! the clock take `now` so that tests (and a service with one clock per request) pass it.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod auth;
mod cursor;
mod files;
mod queue;
mod reads;
mod report;
mod results;
pub mod schema;
pub mod sql;
mod time;

pub use auth::{prefix_matches, prefixes_overlap};
pub use bulkhead_model::{Report, Severity, Summary};
pub use sql::{
    DEFAULT_MAX_RESULT_BYTES, DEFAULT_MAX_VALUE_BYTES, Dialect, QUERY_CONNECTIONS, QueryLimits,
    QueryResult, Row, Value,
};
pub use time::{now_ms, rfc3339};

/// A tenant's id. A newtype so that an image id cannot be passed where the tenant that
/// scopes a read is expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(pub i64);

/// What can go wrong. `Db` is the store being unreachable or failing (the webhook answers
/// 503); the others are the caller's business.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database failed (connection, I/O, a constraint we did not expect). The message
    /// names the statement's purpose.
    #[error("store: {0}")]
    Db(String),
    /// `complete`/`retry`/`fail`/`heartbeat` of a job whose lease this worker no longer
    /// holds (it expired and another worker claimed the job, or the job finished): nothing
    /// was written.
    #[error("job {0}: lease lost (another worker owns it now, or it already finished)")]
    LeaseLost(i64),
    /// A unique constraint: the ownership entry, tenant or token already exists.
    #[error("already exists: {0}")]
    Conflict(String),
    /// A name that must exist does not (a tenant in `create_token`).
    #[error("not found: {0}")]
    NotFound(String),
    /// A pagination cursor that this store did not hand out.
    #[error("invalid cursor")]
    BadCursor,
    /// A report that is not the JSON of docs/report.schema.json, or has no assessment.
    #[error("invalid report: {0}")]
    Report(String),
    /// An argument out of range (role, health, severity word, limit…).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// [`Store::query`]: the statement failed in the database (the message is the
    /// database's), or it is not read-only.
    #[error("query failed: {0}")]
    Query(String),
    /// [`Store::query`]: the statement ran longer than its limit and was interrupted.
    #[error("query interrupted: it ran longer than {0:?}")]
    Timeout(Duration),
    /// [`Store::query`]: the rows hold more than this many bytes
    /// ([`QueryLimits::max_result_bytes`]); reading stopped there.
    #[error("query stopped: its result is larger than {0} bytes")]
    ResultTooLarge(usize),
    /// [`Store::query`]: a value is longer than this many bytes
    /// ([`QueryLimits::max_value_bytes`]).
    #[error("query stopped: a value is larger than {0} bytes")]
    ValueTooLarge(usize),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where the store lives.
#[derive(Clone, Debug)]
pub enum StoreConfig {
    /// A SQLite file (created when missing), WAL mode.
    Sqlite { path: std::path::PathBuf },
    /// A PostgreSQL connection string, `postgresql://user@host/db` or
    /// `host=/run/postgresql dbname=bulkhead user=bulkhead`. No TLS (unix socket or
    /// loopback); `sslmode=require` fails to connect.
    Postgres { url: String },
}

// ---------------------------------------------------------------------------------------
// Enumerations stored as text.

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
            JsonSchema,
        )]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($(#[$vm])* $variant),+ }
        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The word stored in the database and shown in the API.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
        impl std::str::FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(Error::Invalid(format!(
                        concat!("unknown ", stringify!($name), " {:?} (expected one of: {})"),
                        s,
                        [$($text),+].join(", ")
                    ))),
                }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum! {
    /// A token's role; ordered, so `role >= Role::Operator` checks a minimum.
    Role { Reader = "reader", Operator = "operator", Admin = "admin" }
}

text_enum! {
    /// An image's health in the service (docs/service-design.md, `images.health`): the
    /// assessment's verdict ([`bulkhead_model::Health`]) once it has one, else where its
    /// scanning stands.
    ImageHealth {
        Healthy = "healthy",
        Unhealthy = "unhealthy",
        /// Scanned, but part of it could not be assessed (a release or package type no
        /// advisory data covers, an analyzer that failed) and nothing assessed reaches
        /// the threshold: not a pass.
        Unknown = "unknown",
        /// Known (pushed), not scanned yet.
        Pending = "pending",
        /// Its first scan is running.
        Scanning = "scanning",
        /// Its scan failed and it was never scanned successfully.
        Failed = "failed",
        /// Not an image we scan (a Helm chart, an attestation…).
        Unsupported = "unsupported",
    }
}

impl From<bulkhead_model::Health> for ImageHealth {
    fn from(h: bulkhead_model::Health) -> Self {
        match h {
            bulkhead_model::Health::Healthy => ImageHealth::Healthy,
            bulkhead_model::Health::Unhealthy => ImageHealth::Unhealthy,
            bulkhead_model::Health::Unknown => ImageHealth::Unknown,
        }
    }
}

text_enum! {
    /// Why a job exists.
    Reason { Push = "push", Manual = "manual", Rescan = "rescan" }
}

text_enum! {
    /// A job's state.
    JobState { Queued = "queued", Running = "running", Done = "done", Failed = "failed" }
}

text_enum! {
    /// A notification delivery's state.
    DeliveryState { Pending = "pending", Delivered = "delivered", Failed = "failed" }
}

// ---------------------------------------------------------------------------------------
// Tenants and tokens.

/// A tenant as the `serve` configuration declares it ([`Store::sync_tenants`]).
#[derive(Clone, Debug, PartialEq)]
pub struct TenantSpec {
    pub name: String,
    /// `(registry name, repository prefix)`; prefix `""` owns the whole registry.
    pub ownership: Vec<(String, String)>,
    /// The notification webhook: `(url, secret)`.
    pub notify: Option<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub created_at: i64,
}

/// Who a request is: what [`Store::authenticate`] returns for a valid token.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Principal {
    pub tenant_id: TenantId,
    pub tenant_name: String,
    pub role: Role,
    pub token_id: i64,
}

/// A token as listed (never its secret, which is shown once by `create_token`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TokenInfo {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A freshly created token: `secret` is the bearer token (`bh_` + 64 hex digits); only its
/// sha256 is stored.
#[derive(Clone, Debug, PartialEq)]
pub struct NewToken {
    pub id: i64,
    pub secret: String,
}

/// One ownership entry: the tenant owns `registry` repositories under `prefix`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct Ownership {
    pub id: i64,
    pub registry: String,
    pub prefix: String,
    /// `config` (from the serve configuration, replaced at every start) or `api`.
    pub origin: String,
    /// When it was added through the API (ms since the epoch); `None` for `config`.
    pub created_at: Option<i64>,
    /// The token that added it through the API; `None` for `config`.
    pub created_by_token: Option<i64>,
}

/// Who changes an ownership entry, and when (recorded with the entry and in its history).
#[derive(Clone, Debug, PartialEq)]
pub struct OwnershipActor {
    /// The API token that asks.
    pub token_id: i64,
    pub at: i64,
}

/// One recorded ownership change ([`Store::ownership_changes`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OwnershipChange {
    pub id: i64,
    pub at: i64,
    /// The token that made it.
    pub token_id: Option<i64>,
    /// `add` or `remove`.
    pub action: String,
    pub registry: String,
    pub prefix: String,
}

/// The most ownership entries a tenant may add through the API, unless the service is
/// configured otherwise: enough for any team, few enough that a tenant cannot grow the
/// table every push is matched against without bound.
pub const DEFAULT_MAX_OWNERSHIP_ENTRIES: u32 = 100;

// ---------------------------------------------------------------------------------------
// The queue.

/// A scan to enqueue.
#[derive(Clone, Debug, PartialEq)]
pub struct NewJob {
    pub tenant_id: TenantId,
    /// The registry's configured name.
    pub registry: String,
    pub repository: String,
    /// The manifest digest (`sha256:…`): for an index, one job per platform manifest.
    pub digest: String,
    /// The tag pushed, if any (added to the image's `tags`).
    pub tag: Option<String>,
    pub media_type: Option<String>,
    /// `os/arch[/variant]`, when known (from the index).
    pub platform: Option<String>,
    pub reason: Reason,
    /// When it may run (normally `now`).
    pub run_at: i64,
    pub now: i64,
}

/// What [`Store::enqueue`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// A new queued job, with this id.
    New(i64),
    /// A queued or running job for the same (tenant, registry, repository, digest) already
    /// existed: this one.
    Coalesced(i64),
}

impl Enqueued {
    pub fn job_id(self) -> i64 {
        match self {
            Enqueued::New(id) | Enqueued::Coalesced(id) => id,
        }
    }
}

/// What [`Store::enqueue_if_unscanned`] did. A type of its own rather than a third
/// [`Enqueued`] variant: only pushes (webhook, reconcile) ask for it, and a manual scan,
/// which always enqueues, should not have to handle a case it cannot get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// The image had no result yet: a job was enqueued, or an active one joined.
    Job(Enqueued),
    /// The image already has a successful assessment, or is `unsupported`: the tag was
    /// recorded and no job exists for this push.
    AlreadyScanned { image_id: i64 },
}

/// A job, as a worker claims it and the API shows it (`Scans`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Job {
    pub id: i64,
    pub tenant_id: TenantId,
    pub registry: String,
    pub repository: String,
    pub digest: String,
    pub tag: Option<String>,
    pub media_type: Option<String>,
    pub platform: Option<String>,
    pub reason: Reason,
    pub state: JobState,
    /// Claims so far, this one included: a worker that was killed mid-scan counts too, so
    /// the service fails the job when this exceeds its `max_attempts`.
    pub attempts: i64,
    pub run_at: i64,
    /// The claim's secret: pass it back to `heartbeat`/`complete`/`retry`/`fail`.
    #[serde(skip)]
    pub lease_token: Option<String>,
    pub lease_until: Option<i64>,
    pub worker: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub image_id: Option<i64>,
}

/// A new critical/high finding (in `health_events.new_findings` and the notification).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NewFinding {
    pub id: String,
    pub package: String,
    pub severity: Severity,
}

/// What recording an assessment ([`Store::complete`], [`Store::update_assessment`]) did.
#[derive(Clone, Debug, PartialEq)]
pub struct Completed {
    pub image_id: i64,
    /// The health of the image's previous successful assessment; `None` on its first.
    pub previous_health: Option<ImageHealth>,
    pub health: ImageHealth,
    /// Critical/high findings that the previous assessment did not have (by vulnerability
    /// id and package); on the first assessment, all of them.
    pub new_problem_findings: Vec<NewFinding>,
    /// Whether a `health_events` row was appended.
    pub health_event: bool,
    /// Whether a notification delivery was enqueued (a problem, and the tenant has a
    /// notification target).
    pub notified: bool,
}

/// One stored report, for a rescan against a new advisory database.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredReport {
    pub image_id: i64,
    pub tenant_id: TenantId,
    /// The report, or why it cannot be read (it is then left as it is).
    pub report: std::result::Result<Report, String>,
}

// ---------------------------------------------------------------------------------------
// Reads.

/// A page request: `limit` (1–[`MAX_PAGE`], default [`DEFAULT_PAGE`]) and the
/// `next_cursor` of the previous page.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 500;

/// One page of results; `next_cursor` is `None` on the last page. A cursor is opaque and
/// only valid for the tenant and the listing it came from: another tenant's cursor gives
/// an empty page.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PageOf<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Image {
    pub id: i64,
    pub registry: String,
    pub repository: String,
    pub digest: String,
    pub tags: Vec<String>,
    pub platform: Option<String>,
    pub os_id: Option<String>,
    pub os_version: Option<String>,
    pub os_name: Option<String>,
    /// End of security support, ms since the epoch (midnight UTC of the date).
    pub os_eol: Option<i64>,
    pub health: ImageHealth,
    /// Finding counts by severity, and suppressed ones.
    pub counts: Summary,
    pub packages: i64,
    pub first_seen_at: i64,
    pub scanned_at: Option<i64>,
    pub updated_at: i64,
    pub last_error: Option<String>,
}

/// Filters of [`Store::images`]; every field narrows (AND).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageFilter {
    pub registry: Option<String>,
    pub repository: Option<String>,
    pub repository_prefix: Option<String>,
    pub health: Option<ImageHealth>,
    /// Images with at least one finding at or above this severity.
    pub min_severity: Option<Severity>,
    /// Images that were pushed with this tag.
    pub tag: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    pub id: i64,
    pub image_id: i64,
    pub registry: String,
    pub repository: String,
    pub digest: String,
    pub vuln_id: String,
    pub aliases: Vec<String>,
    pub package: String,
    pub installed_version: String,
    pub fixed_version: Option<String>,
    pub fix_state: String,
    pub severity: Severity,
    pub cvss_score: Option<f64>,
    pub cvss_vector: Option<String>,
    pub title: String,
    pub ecosystem: String,
    pub package_type: String,
    pub layer_digest: Option<String>,
    /// When this vulnerability was first seen in this image (kept across rescans).
    pub first_seen_at: i64,
}

/// Filters of [`Store::findings`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FindingFilter {
    pub image_id: Option<i64>,
    pub min_severity: Option<Severity>,
    /// `Some(true)`: only findings with a fixed version; `Some(false)`: only without.
    pub fixable: Option<bool>,
    pub package: Option<String>,
    pub vuln_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct Package {
    pub id: i64,
    pub image_id: i64,
    pub name: String,
    pub version: String,
    pub ecosystem: String,
    pub source_name: Option<String>,
    pub source_version: Option<String>,
    pub arch: Option<String>,
    pub license: Option<String>,
    pub purl: String,
    pub layer_digest: Option<String>,
}

/// An image named in a grouped result.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct ImageRef {
    pub id: i64,
    pub registry: String,
    pub repository: String,
    pub digest: String,
}

/// One upgrade (package → fixed version) across the tenant's unhealthy images.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct RecommendationGroup {
    pub package: String,
    pub fixed_version: String,
    /// The worst severity it fixes.
    pub severity: Severity,
    /// The vulnerability ids it fixes, over all its images, sorted.
    pub fixes: Vec<String>,
    pub image_count: i64,
    /// The images (at most 100, by id).
    pub images: Vec<ImageRef>,
}

/// Filters of [`Store::scans`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScanFilter {
    pub state: Option<JobState>,
    pub image_id: Option<i64>,
    pub repository: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HealthEvent {
    pub id: i64,
    pub image_id: i64,
    pub at: i64,
    pub from_health: Option<ImageHealth>,
    pub to_health: ImageHealth,
    pub reason: String,
    pub new_findings: Vec<NewFinding>,
}

// ---------------------------------------------------------------------------------------
// Notifications.

/// The JSON body POSTed to a tenant's notification URL, byte for byte what
/// `X-Bulkhead-Signature` signs; written once per problem ([`Store::complete`]), kept in
/// `deliveries.event`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NotificationEvent {
    /// `image.unhealthy`, `image.unknown` (it could not be fully assessed) or
    /// `image.new_findings`; also sent as `X-Bulkhead-Event`.
    pub event: String,
    /// When it happened (RFC 3339).
    pub at: String,
    /// The tenant's name.
    pub tenant: String,
    pub image: EventImage,
    pub health: HealthChange,
    /// `scan` or `rescan` (new advisory data).
    pub reason: String,
    /// The image's findings by severity after this scan.
    pub summary: Summary,
    /// Critical and high findings that are new since the previous scan.
    pub new_findings: Vec<NewFinding>,
}

/// The image a [`NotificationEvent`] is about.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventImage {
    pub id: i64,
    pub registry: String,
    pub repository: String,
    pub digest: String,
    pub tags: Vec<String>,
    pub platform: Option<String>,
}

/// An image's health before and after a scan; `from` is null on a first scan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HealthChange {
    pub from: Option<ImageHealth>,
    pub to: ImageHealth,
}

/// A delivery claimed for sending: POST `body` to `url`, signed with `secret`.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    pub id: i64,
    pub tenant_id: TenantId,
    pub url: String,
    /// The tenant's notification secret (for the signature); `None` when the target was
    /// removed from the configuration since.
    pub secret: Option<String>,
    /// The JSON event:
    ///
    /// ```json
    /// {"event": "image.unhealthy",            // or "image.unknown", "image.new_findings"
    ///  "at": "2024-05-01T12:00:00.000Z",
    ///  "tenant": "team-a",
    ///  "image": {"id": 7, "registry": "main", "repository": "team-a/web",
    ///            "digest": "sha256:…", "tags": ["1.2"], "platform": "linux/amd64"},
    ///  "health": {"from": "healthy", "to": "unhealthy"},   // from: null on a first scan
    ///  "reason": "scan",                      // or "rescan" (new advisory data)
    ///  "summary": {"critical": 1, "high": 2, "medium": 0, "low": 0, "negligible": 0,
    ///              "unknown": 0, "suppressed": 0},
    ///  "new_findings": [{"id": "CVE-…", "package": "openssl", "severity": "critical"}]}
    /// ```
    pub body: String,
    /// Attempts so far, this one included.
    pub attempts: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeliveryInfo {
    pub id: i64,
    pub url: String,
    pub event: String,
    pub state: DeliveryState,
    pub attempts: i64,
    pub next_at: Option<i64>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

// ---------------------------------------------------------------------------------------
// Metrics.

/// Counts for the metrics endpoint (all tenants).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Jobs by state (every state present, 0 when none).
    pub jobs: BTreeMap<String, i64>,
    /// Queued jobs whose `run_at` has come.
    pub jobs_ready: i64,
    /// Images by health.
    pub images: BTreeMap<String, i64>,
    /// Deliveries by state.
    pub deliveries: BTreeMap<String, i64>,
    pub tenants: i64,
}

/// A tenant's own counts (dashboard).
#[derive(Clone, Debug, Default, PartialEq, Serialize, JsonSchema)]
pub struct TenantSummary {
    pub images: BTreeMap<String, i64>,
    pub jobs: BTreeMap<String, i64>,
    pub findings: BTreeMap<String, i64>,
}

// ---------------------------------------------------------------------------------------
// Query language results.

/// What [`Store::run_query`] returns: the compiled query's columns (name and language
/// type) and its rows, each value in its JSON form.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryRows {
    pub columns: Vec<bulkhead_query::OutputColumn>,
    pub rows: Vec<Vec<serde_json::Value>>,
    /// The query has more rows than its row cap; `rows` holds the first `row_cap`.
    pub truncated: bool,
}

// ---------------------------------------------------------------------------------------
// The store.

/// The store: cheap to clone (shares its connections).
#[derive(Clone)]
pub struct Store {
    db: sql::Db,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dialect", &self.db.dialect())
            .finish()
    }
}

impl Store {
    /// Opens (creates) the store and applies pending migrations. Several processes may open
    /// the same store at once: migrations are serialised (SQLite `BEGIN IMMEDIATE`,
    /// PostgreSQL an advisory lock).
    ///
    /// A SQLite store is private to this user: its directory `0700`, its files `0600`
    /// (created so, tightened when an older store was not; another user's is refused).
    pub async fn open(config: StoreConfig) -> Result<Store> {
        if let StoreConfig::Sqlite { path } = &config {
            files::prepare(path)?;
        }
        let db = sql::Db::open(&config).await?;
        schema::migrate(&db).await?;
        if let StoreConfig::Sqlite { path } = &config {
            files::secure_companions(path)?;
        }
        Ok(Store { db })
    }

    pub fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    /// The schema version in the database (the latest migration applied).
    pub async fn schema_version(&self) -> Result<i64> {
        schema::version(&self.db).await
    }

    /// The query language's dialect for this store (what [`bulkhead_query::compile`] needs).
    pub fn query_dialect(&self) -> bulkhead_query::Dialect {
        match self.db.dialect() {
            Dialect::Sqlite => bulkhead_query::Dialect::Sqlite,
            Dialect::Postgres => bulkhead_query::Dialect::Postgres,
        }
    }

    /// Runs a query compiled for `tenant` ([`bulkhead_query::compile`] with this store's
    /// [`Store::query_dialect`]) through [`Store::query`]: at most the query's `row_cap`
    /// rows (`truncated` says there were more; `limits.max_rows` is ignored), within
    /// `limits`' time and sizes. Values come back in their JSON form for the compiler's column
    /// types ([`bulkhead_query::to_json`]).
    ///
    /// The compiler scopes every table to the tenant bound as `$1`; a query whose `$1` is
    /// not `tenant` is refused here, so a caller cannot run one compiled for someone else.
    pub async fn run_query(
        &self,
        tenant: TenantId,
        q: &bulkhead_query::CompiledQuery,
        limits: QueryLimits,
    ) -> Result<QueryRows> {
        if q.params.first() != Some(&bulkhead_query::Param::Int(tenant.0)) {
            return Err(Error::Invalid(
                "the query was not compiled for this tenant ($1 must be the tenant id)".into(),
            ));
        }
        let params: Vec<Value> = q.params.iter().map(Value::from).collect();
        let limits = QueryLimits {
            max_rows: usize::try_from(q.row_cap).unwrap_or(usize::MAX),
            ..limits
        };
        let result = self.query(&q.sql, &params, limits).await?;
        if result.columns.len() != q.columns.len() {
            return Err(Error::Query(format!(
                "the statement returned {} columns where the query has {}",
                result.columns.len(),
                q.columns.len()
            )));
        }
        let rows = result
            .rows
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .zip(&q.columns)
                    .map(|(v, col)| {
                        let v = match v {
                            Value::Null => bulkhead_query::SqlValue::Null,
                            Value::Int(i) => bulkhead_query::SqlValue::Int(i),
                            Value::Real(r) => bulkhead_query::SqlValue::Real(r),
                            Value::Text(t) => bulkhead_query::SqlValue::Text(t),
                        };
                        bulkhead_query::to_json(col.ty, v)
                    })
                    .collect()
            })
            .collect();
        Ok(QueryRows {
            columns: q.columns.clone(),
            rows,
            truncated: result.truncated,
        })
    }

    /// Runs a read-only statement (the query language's compiled SQL, `$1…` parameters):
    /// at most `limits.max_rows` rows (`truncated` tells whether there were more),
    /// interrupted with [`Error::Timeout`] at `limits`' deadline (waiting for a connection
    /// included), stopped with [`Error::ResultTooLarge`] or [`Error::ValueTooLarge`] past
    /// its sizes. A statement that writes is refused ([`Error::Query`]).
    pub async fn query(
        &self,
        sql: &str,
        params: &[Value],
        limits: QueryLimits,
    ) -> Result<QueryResult> {
        self.db.query(sql, params, limits).await
    }

    // --- tenants, ownership, tokens -----------------------------------------------------

    /// Makes the store's tenants, config-origin ownership and notification targets match
    /// the configuration: tenants are created (never deleted: their results stay),
    /// `config` ownership entries are replaced (`api` ones kept unless the same
    /// (registry, prefix) is now in the configuration), notification targets replaced.
    /// [`Error::Invalid`] (nothing changed) when prefixes of two tenants overlap: two in
    /// the configuration, or one in it and another tenant's API entry.
    pub async fn sync_tenants(&self, specs: &[TenantSpec], now: i64) -> Result<()> {
        let specs = specs.to_vec();
        self.db
            .write(move |tx| Box::pin(auth::sync_tenants(tx, specs, now)))
            .await
    }

    pub async fn tenants(&self) -> Result<Vec<Tenant>> {
        self.db.read(|tx| Box::pin(auth::tenants(tx))).await
    }

    pub async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>> {
        let name = name.to_string();
        self.db
            .read(move |tx| Box::pin(auth::tenant_by_name(tx, name)))
            .await
    }

    /// The tenant that owns `repository` on `registry`: the longest matching prefix, a
    /// prefix matching whole path segments (`team-a` owns `team-a` and `team-a/x`, not
    /// `team-ab`; `""` owns everything on the registry).
    pub async fn owner_of(&self, registry: &str, repository: &str) -> Result<Option<TenantId>> {
        let (registry, repository) = (registry.to_string(), repository.to_string());
        self.db
            .read(move |tx| Box::pin(auth::owner_of(tx, registry, repository)))
            .await
    }

    /// Adds an `api` ownership entry made by `by`, and records the change.
    /// [`Error::Conflict`] when the prefix equals, holds or lies inside a prefix another
    /// tenant owns on that registry (the message names neither), when the tenant owns it
    /// already, or when the tenant has `max_entries` API entries.
    pub async fn add_ownership(
        &self,
        tenant: TenantId,
        registry: &str,
        prefix: &str,
        by: OwnershipActor,
        max_entries: u32,
    ) -> Result<Ownership> {
        let (registry, prefix) = (registry.to_string(), prefix.to_string());
        self.db
            .write(move |tx| {
                Box::pin(auth::add_ownership(
                    tx,
                    tenant,
                    registry,
                    prefix,
                    by,
                    max_entries,
                ))
            })
            .await
    }

    /// Removes the tenant's ownership entry `id` and records the change; false when it has
    /// none with that id.
    pub async fn remove_ownership(
        &self,
        tenant: TenantId,
        id: i64,
        by: OwnershipActor,
    ) -> Result<bool> {
        self.db
            .write(move |tx| Box::pin(auth::remove_ownership(tx, tenant, id, by)))
            .await
    }

    /// The tenant's recorded ownership changes, newest first.
    pub async fn ownership_changes(
        &self,
        tenant: TenantId,
        page: &Page,
    ) -> Result<PageOf<OwnershipChange>> {
        let page = page.clone();
        self.db
            .read(move |tx| Box::pin(reads::ownership_changes(tx, tenant, page)))
            .await
    }

    pub async fn ownership(&self, tenant: TenantId) -> Result<Vec<Ownership>> {
        self.db
            .read(move |tx| Box::pin(auth::list_ownership(tx, tenant)))
            .await
    }

    /// Creates a token for the tenant named `tenant_name` ([`Error::NotFound`] when there
    /// is none). The secret is returned once; the store keeps its sha256.
    pub async fn create_token(
        &self,
        tenant_name: &str,
        role: Role,
        name: &str,
        now: i64,
    ) -> Result<NewToken> {
        let (tenant_name, name) = (tenant_name.to_string(), name.to_string());
        let secret = auth::new_secret()?;
        self.db
            .write(move |tx| Box::pin(auth::create_token(tx, tenant_name, role, name, secret, now)))
            .await
    }

    /// The principal of a bearer token, `None` for an unknown or revoked one. Looks the
    /// sha256 up (the secret itself is never compared or stored); records `last_used_at`
    /// (at most once a minute per token, to keep reads from writing).
    pub async fn authenticate(&self, secret: &str, now: i64) -> Result<Option<Principal>> {
        let hash = auth::hash_secret(secret);
        let found = self
            .db
            .read(move |tx| Box::pin(auth::lookup_token(tx, hash)))
            .await?;
        let Some((principal, last_used)) = found else {
            return Ok(None);
        };
        // Only a stale `last_used_at` costs a write: most requests stay read-only.
        if last_used.is_none_or(|t| now - t >= auth::LAST_USED_RESOLUTION_MS) {
            let id = principal.token_id;
            self.db
                .write(move |tx| Box::pin(auth::touch_token(tx, id, now)))
                .await?;
        }
        Ok(Some(principal))
    }

    /// Revokes token `id`; with `Some(tenant)` only that tenant's (the API), with `None`
    /// any (the CLI). False when there is no such (unrevoked) token.
    pub async fn revoke_token(&self, tenant: Option<TenantId>, id: i64, now: i64) -> Result<bool> {
        self.db
            .write(move |tx| Box::pin(auth::revoke_token(tx, tenant, id, now)))
            .await
    }

    pub async fn tokens(&self, tenant: TenantId) -> Result<Vec<TokenInfo>> {
        self.db
            .read(move |tx| Box::pin(auth::list_tokens(tx, tenant)))
            .await
    }

    // --- queue --------------------------------------------------------------------------

    /// Enqueues a scan, or returns the queued/running job of the same (tenant, registry,
    /// repository, digest). In the same transaction the image row is created
    /// (`pending`) or its tags extended.
    pub async fn enqueue(&self, job: NewJob) -> Result<Enqueued> {
        let pushed = self
            .db
            .write(move |tx| Box::pin(queue::enqueue(tx, job, false)))
            .await?;
        match pushed {
            Pushed::Job(e) => Ok(e),
            // Only asked for with `if_unscanned`.
            Pushed::AlreadyScanned { image_id } => Err(Error::Db(format!(
                "enqueue: image {image_id} reported as scanned without being asked"
            ))),
        }
    }

    /// [`Store::enqueue`] for a push (a registry notification, a reconcile): when the image
    /// (tenant, registry, repository, digest) already has a successful assessment, or is
    /// `unsupported`, only the tag is recorded and no job is created, so a re-push of a
    /// known digest neither pulls nor scans it again. The check and the enqueue are one
    /// transaction; a job that completes concurrently is seen (the enqueue is undone).
    pub async fn enqueue_if_unscanned(&self, job: NewJob) -> Result<Pushed> {
        self.db
            .write(move |tx| Box::pin(queue::enqueue(tx, job, true)))
            .await
    }

    /// Claims the oldest runnable job (queued and due, or running with an expired lease):
    /// `running`, a fresh lease token, `lease_until = now + lease`, attempts + 1. An image
    /// that was never assessed becomes `scanning`.
    pub async fn claim(&self, worker: &str, lease: Duration, now: i64) -> Result<Option<Job>> {
        let worker = worker.to_string();
        let lease = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 4);
        let token = auth::new_lease_token()?;
        self.db
            .write(move |tx| Box::pin(queue::claim(tx, worker, lease, token, now)))
            .await
    }

    /// Extends the lease; false when it was lost (stop working on the job).
    pub async fn heartbeat(&self, job_id: i64, lease_token: &str, until: i64) -> Result<bool> {
        let token = lease_token.to_string();
        self.db
            .write(move |tx| Box::pin(queue::heartbeat(tx, job_id, token, until)))
            .await
    }

    /// Records a successful scan, its `report` (inventory and assessment) finished at
    /// `now` (see docs/service-design.md, Complete), and marks the job `done`, all in one
    /// transaction; [`Error::LeaseLost`] (nothing written) when the job is no longer
    /// running under this lease.
    pub async fn complete(
        &self,
        job_id: i64,
        lease_token: &str,
        report: &Report,
        now: i64,
    ) -> Result<Completed> {
        let token = lease_token.to_string();
        let health = report::assessed(report)?;
        let json = report::encode(report)?;
        let report = report.clone();
        self.db
            .write(move |tx| {
                Box::pin(results::complete(
                    tx, job_id, token, report, health, json, now,
                ))
            })
            .await
    }

    /// A transient failure: back to `queued` with `run_at` (the caller computes the
    /// backoff), keeping `error`. An image that was never assessed goes back to `pending`.
    pub async fn retry(
        &self,
        job_id: i64,
        lease_token: &str,
        error: &str,
        run_at: i64,
        now: i64,
    ) -> Result<()> {
        let (token, error) = (lease_token.to_string(), error.to_string());
        self.db
            .write(move |tx| Box::pin(queue::retry(tx, job_id, token, error, run_at, now)))
            .await
    }

    /// A permanent failure: `failed` with `error`. The image's `last_error` is set; its
    /// health becomes `unsupported` (when `unsupported`) or `failed`, unless it has an
    /// earlier successful assessment, whose health it keeps.
    pub async fn fail(
        &self,
        job_id: i64,
        lease_token: &str,
        error: &str,
        unsupported: bool,
        now: i64,
    ) -> Result<()> {
        let (token, error) = (lease_token.to_string(), error.to_string());
        self.db
            .write(move |tx| Box::pin(queue::fail(tx, job_id, token, error, unsupported, now)))
            .await
    }

    /// Queued jobs (due or not).
    pub async fn queue_depth(&self) -> Result<i64> {
        self.db.read(|tx| Box::pin(queue::depth(tx))).await
    }

    /// A job by id, any tenant (for the workers; the API uses [`Store::scan`]).
    pub async fn job(&self, id: i64) -> Result<Option<Job>> {
        self.db
            .read(move |tx| Box::pin(queue::job(tx, None, id)))
            .await
    }

    // --- rescan -------------------------------------------------------------------------

    /// Images with a stored report, by id, after `after_image_id`, at most `limit`.
    pub async fn stored_reports(
        &self,
        after_image_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredReport>> {
        self.db
            .read(move |tx| Box::pin(results::stored_reports(tx, after_image_id, limit)))
            .await
    }

    /// Records a re-assessment of a stored report (reason `rescan`): same derivation as
    /// [`Store::complete`], without a job. [`Error::NotFound`] when the image is gone.
    pub async fn update_assessment(
        &self,
        image_id: i64,
        report: &Report,
        now: i64,
    ) -> Result<Completed> {
        let health = report::assessed(report)?;
        let json = report::encode(report)?;
        let report = report.clone();
        self.db
            .write(move |tx| {
                Box::pin(results::update_assessment(
                    tx, image_id, report, health, json, now,
                ))
            })
            .await
    }

    // --- reads (tenant-scoped) ----------------------------------------------------------

    /// The tenant's images, newest first.
    pub async fn images(
        &self,
        tenant: TenantId,
        filter: &ImageFilter,
        page: &Page,
    ) -> Result<PageOf<Image>> {
        let (filter, page) = (filter.clone(), page.clone());
        self.db
            .read(move |tx| Box::pin(reads::images(tx, tenant, filter, page)))
            .await
    }

    pub async fn image(&self, tenant: TenantId, id: i64) -> Result<Option<Image>> {
        self.db
            .read(move |tx| Box::pin(reads::image(tx, tenant, id)))
            .await
    }

    /// The stored JSON report of the image's last successful scan.
    pub async fn image_report(&self, tenant: TenantId, id: i64) -> Result<Option<String>> {
        self.db
            .read(move |tx| Box::pin(reads::image_report(tx, tenant, id)))
            .await
    }

    /// The tenant's findings (of one image with `filter.image_id`), worst first.
    pub async fn findings(
        &self,
        tenant: TenantId,
        filter: &FindingFilter,
        page: &Page,
    ) -> Result<PageOf<Finding>> {
        let (filter, page) = (filter.clone(), page.clone());
        self.db
            .read(move |tx| Box::pin(reads::findings(tx, tenant, filter, page)))
            .await
    }

    /// The packages of one of the tenant's images, by name.
    pub async fn packages(
        &self,
        tenant: TenantId,
        image_id: i64,
        page: &Page,
    ) -> Result<PageOf<Package>> {
        let page = page.clone();
        self.db
            .read(move |tx| Box::pin(reads::packages(tx, tenant, image_id, page)))
            .await
    }

    /// Upgrades across the tenant's unhealthy images, grouped by (package, fixed version),
    /// worst severity first, then most images.
    pub async fn recommendations(
        &self,
        tenant: TenantId,
        page: &Page,
    ) -> Result<PageOf<RecommendationGroup>> {
        let page = page.clone();
        self.db
            .read(move |tx| Box::pin(reads::recommendations(tx, tenant, page)))
            .await
    }

    /// The tenant's scan jobs, newest first.
    pub async fn scans(
        &self,
        tenant: TenantId,
        filter: &ScanFilter,
        page: &Page,
    ) -> Result<PageOf<Job>> {
        let (filter, page) = (filter.clone(), page.clone());
        self.db
            .read(move |tx| Box::pin(reads::scans(tx, tenant, filter, page)))
            .await
    }

    pub async fn scan(&self, tenant: TenantId, id: i64) -> Result<Option<Job>> {
        self.db
            .read(move |tx| Box::pin(queue::job(tx, Some(tenant), id)))
            .await
    }

    /// The tenant's health events (of one image with `image_id`), newest first.
    pub async fn health_events(
        &self,
        tenant: TenantId,
        image_id: Option<i64>,
        page: &Page,
    ) -> Result<PageOf<HealthEvent>> {
        let page = page.clone();
        self.db
            .read(move |tx| Box::pin(reads::health_events(tx, tenant, image_id, page)))
            .await
    }

    /// The tenant's notification deliveries, newest first.
    pub async fn deliveries(&self, tenant: TenantId, page: &Page) -> Result<PageOf<DeliveryInfo>> {
        let page = page.clone();
        self.db
            .read(move |tx| Box::pin(reads::deliveries(tx, tenant, page)))
            .await
    }

    pub async fn tenant_summary(&self, tenant: TenantId) -> Result<TenantSummary> {
        self.db
            .read(move |tx| Box::pin(reads::tenant_summary(tx, tenant)))
            .await
    }

    /// Counts over all tenants, for metrics.
    pub async fn stats(&self, now: i64) -> Result<Stats> {
        self.db
            .read(move |tx| Box::pin(reads::stats(tx, now)))
            .await
    }

    // --- notifications ------------------------------------------------------------------

    /// Claims the oldest pending delivery due at `now`: attempts + 1 and `next_at = now +
    /// lease`, so a sender that dies leaves it to be retried after the lease.
    pub async fn claim_delivery(&self, now: i64, lease: Duration) -> Result<Option<Delivery>> {
        let lease = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 4);
        self.db
            .write(move |tx| Box::pin(results::claim_delivery(tx, now, lease)))
            .await
    }

    /// The receiver answered 2xx.
    pub async fn delivery_done(&self, id: i64, status: u16, now: i64) -> Result<()> {
        self.db
            .write(move |tx| Box::pin(results::delivery_done(tx, id, status, now)))
            .await
    }

    /// A transient failure: try again at `next_at`.
    pub async fn delivery_retry(
        &self,
        id: i64,
        status: Option<u16>,
        error: &str,
        next_at: i64,
    ) -> Result<()> {
        let error = error.to_string();
        self.db
            .write(move |tx| Box::pin(results::delivery_retry(tx, id, status, error, next_at)))
            .await
    }

    /// Given up.
    pub async fn delivery_failed(&self, id: i64, status: Option<u16>, error: &str) -> Result<()> {
        let error = error.to_string();
        self.db
            .write(move |tx| Box::pin(results::delivery_failed(tx, id, status, error)))
            .await
    }
}

//! The `bulkhead serve` configuration file (TOML, `--config FILE`).
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:8080"
//! workers = 2                 # scans at once in this process
//! lease_seconds = 300         # a claimed job is another worker's after this without a heartbeat
//! max_attempts = 5            # transient failures (registry 5xx/429, network) before `failed`
//! backoff = { first_seconds = 5, max_seconds = 600 }   # doubling between attempts, capped
//! poll_seconds = 1.0          # how often an idle worker looks for due retries
//! reconcile_seconds = 300     # list the registries for pushes never notified; 0 = off
//! header_timeout_seconds = 10 # a connection's request headers (also when idle) or it is closed
//! body_timeout_seconds = 30   # the longest pause in a request body
//! request_timeout_seconds = 60  # body and handling of a request, or 408
//! max_connections = 1024      # open connections; more wait to be accepted
//! max_in_flight = 256         # requests handled at once; more get 503 + Retry-After
//! scans_per_minute = 60       # manual scans (POST /v1/scans) per tenant; more get 429
//! max_ownership_entries = 100 # ownership entries one tenant may add through the API
//! # metrics_listen = "127.0.0.1:9090"      # /metrics there only (default: on listen)
//! # metrics_token_env = "METRICS_TOKEN"    # /metrics needs Bearer <token> (or _file)
//!
//! [store]
//! kind = "sqlite"
//! path = "/var/lib/bulkhead/service.db"     # relative paths are relative to this file
//! # kind = "postgres"
//! # url_env = "BULKHEAD_PG_URL"              # or url_file = "/run/secrets/pg-url"
//!
//! [[registries]]
//! name = "local"                            # what tenants' `owns` and the API call it
//! url = "http://127.0.0.1:5000"
//! insecure = true                           # required for http://
//! webhook_secret_env = "LOCAL_WEBHOOK_SECRET"   # or webhook_secret_file
//! username = "scanner"                      # with password_env / password_file,
//! password_env = "LOCAL_REGISTRY_PASSWORD"  # or token_env / token_file (a bearer token)
//! token_hosts = ["auth.example.com"]        # token realms besides the registry's own HOST[:PORT]
//!                                           # that may receive its credentials (HOST or HOST:PORT)
//!
//! [[tenants]]
//! name = "team-a"
//! owns = [{ registry = "local", prefix = "team-a" }]   # prefix "" = the whole registry
//! notify_url = "https://hooks.example/bulkhead"
//! notify_secret_env = "TEAM_A_NOTIFY_SECRET"
//! # webhook_secret_env = "TEAM_A_HOOK"      # announces pushes of team-a's prefixes only;
//! #   or per entry: owns = [{ registry = "local", prefix = "team-a", webhook_secret_env = "…" }]
//!
//! [notifications]                         # the tenants' notify_url webhooks
//! max_attempts = 10                         # a delivery is `failed` after this many
//! timeout_seconds = 10                      # per attempt
//! backoff = { first_seconds = 5, max_seconds = 600 }
//!
//! [query]                                   # POST /v1/query and `bulkhead query`
//! row_cap = 10000                           # more rows than this is an error
//! timeout_seconds = 10                      # a query running longer is stopped
//! max_result_bytes = 4194304                # a larger result is stopped (422)
//! max_value_bytes = 1048576                 # the longest value a query may build (422)
//! max_concurrent_per_tenant = 2             # more at once answer 429
//! queries_per_minute = 120                  # per tenant; more answer 429
//!
//! [scan]
//! db = "/var/lib/bulkhead/advisories.db"    # default $BULKHEAD_HOME/db/advisories.db
//! health_threshold = "high"
//! rescan_poll_seconds = 5                   # how often the db file is checked for a new version
//! parallel_layers = 3
//! timeout_seconds = 1800
//! [scan.sandbox]                            # the scanner's own sections, as in config.toml
//! [scan.extract]
//! [scan.layers]
//! [scan.cache]
//! [scan.analyzers]
//! [scan.registry_limits]                    # what any registry may make us read and wait for
//! max_manifest_bytes = 4194304              # manifests, indexes, configs
//! max_token_bytes = 1048576
//! max_error_bytes = 65536
//! max_listing_bytes = 16777216              # a catalog or tags/list page
//! connect_timeout_ms = 10000
//! first_byte_timeout_ms = 30000
//! idle_timeout_ms = 30000                   # no byte for this long: the read fails
//! document_timeout_ms = 60000               # a whole manifest, token or listing page
//! min_blob_bytes_per_second = 1024          # slower layers fail
//! attempts = 5                              # tries of one request (network, 429, 5xx)
//! retry_budget_ms = 120000                  # all tries of one request together
//! max_redirects = 5
//! ```
//!
//! Secrets (webhook secrets, registry passwords and tokens, the PostgreSQL URL, notification
//! secrets) are never written in the file itself: only the name of an environment variable
//! (`*_env`) or of a file (`*_file`, one line; a trailing newline is dropped). They are held
//! in [`Secret`], which prints as `***`. Unknown keys are errors, so a typo is not silently
//! ignored; every error names the file and the key.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use bulkhead_model::Severity;
use bulkhead_scan::config::{AnalyzersConfig, CacheConfig};
use bulkhead_scan::layers::{ExtractLimits, LayerLimits};

/// Largest secret file read (a secret is a line, not a document).
const MAX_SECRET_FILE: u64 = 64 * 1024;

/// A secret value. `Debug` and `Display` print `***`, so it cannot leak into a log line or an
/// error message by accident; [`Secret::expose`] is the one way to the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a value (tests, token creation).
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that needs it (a header, a comparison, a connection).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// What went wrong with the configuration, naming the file and the key.
#[derive(Debug, thiserror::Error)]
#[error("config {file}: {message}")]
pub struct ConfigError {
    pub file: PathBuf,
    pub message: String,
}

/// The whole `serve` configuration, validated, secrets loaded.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The file it was read from.
    pub file: PathBuf,
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub registries: Vec<RegistryConfig>,
    pub tenants: Vec<TenantConfig>,
    pub notifications: NotificationsConfig,
    pub query: QueryConfig,
    pub scan: ScanConfig,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub workers: usize,
    pub lease_seconds: u64,
    pub max_attempts: u32,
    pub backoff: Backoff,
    pub poll_seconds: f64,
    /// How often the registries are listed for pushes whose notification was lost
    /// (service/reconcile.rs); 0 turns it off.
    pub reconcile_seconds: u64,
    /// A connection must send a request's headers within this, also between the requests
    /// of a keep-alive connection; else it is closed (listen.rs).
    pub header_timeout_seconds: f64,
    /// The longest pause while a request body arrives.
    pub body_timeout_seconds: f64,
    /// A request (its body and its handling) is answered within this, or 408.
    pub request_timeout_seconds: f64,
    /// Connections open at once; more wait to be accepted.
    pub max_connections: usize,
    /// Requests handled at once; more are answered 503 with `Retry-After`.
    pub max_in_flight: usize,
    /// Manual scans (`POST /v1/scans`) a tenant may ask for a minute; more get 429.
    pub scans_per_minute: u32,
    /// The most ownership entries one tenant may add through the API.
    pub max_ownership_entries: u32,
    /// Serve `/metrics` on this address instead of `listen` (e.g. an interface only the
    /// monitoring network reaches).
    pub metrics_listen: Option<SocketAddr>,
    /// `/metrics` needs `Authorization: Bearer <this>` (the variable's or file's value).
    pub metrics_token_env: Option<String>,
    pub metrics_token_file: Option<PathBuf>,
    /// The metrics token, loaded from `metrics_token_env`/`_file`.
    #[serde(skip)]
    pub metrics_token: Option<Secret>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: 2,
            lease_seconds: 300,
            max_attempts: 5,
            backoff: Backoff::default(),
            poll_seconds: 1.0,
            reconcile_seconds: 300,
            header_timeout_seconds: 10.0,
            body_timeout_seconds: 30.0,
            request_timeout_seconds: 60.0,
            max_connections: 1024,
            max_in_flight: 256,
            scans_per_minute: 60,
            max_ownership_entries: bulkhead_store::DEFAULT_MAX_OWNERSHIP_ENTRIES,
            metrics_listen: None,
            metrics_token_env: None,
            metrics_token_file: None,
            metrics_token: None,
        }
    }
}

impl ServerConfig {
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_seconds)
    }

    pub fn poll(&self) -> Duration {
        Duration::from_secs_f64(self.poll_seconds)
    }

    /// The reconcile period; `None` when it is off.
    pub fn reconcile(&self) -> Option<Duration> {
        (self.reconcile_seconds > 0).then(|| Duration::from_secs(self.reconcile_seconds))
    }
}

/// Exponential backoff between attempts of a job that failed transiently.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Backoff {
    /// Wait after the first failed attempt; doubles with every further one.
    pub first_seconds: f64,
    /// The cap.
    pub max_seconds: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            first_seconds: 5.0,
            max_seconds: 600.0,
        }
    }
}

impl Backoff {
    /// The wait before the next try after `attempts` tries (1 = the first failed).
    pub fn delay(&self, attempts: u32) -> Duration {
        let exp = attempts.saturating_sub(1).min(30) as i32;
        let secs = (self.first_seconds * 2f64.powi(exp)).min(self.max_seconds);
        Duration::from_secs_f64(secs.max(0.0))
    }
}

/// How notification deliveries are sent (`[notifications]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationsConfig {
    /// Attempts (the first included) before a delivery is `failed`.
    pub max_attempts: u32,
    /// One attempt: connect, send, and the receiver's answer.
    pub timeout_seconds: f64,
    /// Wait between attempts, doubling, capped.
    pub backoff: Backoff,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        NotificationsConfig {
            // 5 s doubling to the 10 min cap: about half an hour of attempts in all.
            max_attempts: 10,
            timeout_seconds: 10.0,
            backoff: Backoff::default(),
        }
    }
}

impl NotificationsConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_seconds)
    }
}

/// Limits of the query language (`[query]`), for `POST /v1/query` and `bulkhead query`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryConfig {
    /// The most rows a query may return; a query with more is an error that says how to
    /// narrow it (rather than a silently cut result).
    pub row_cap: u64,
    /// How long a query may take, counted from the request's arrival: waiting for a
    /// connection and writing the answer count too.
    pub timeout_seconds: u64,
    /// The most bytes a result may hold (text bytes, 8 per other value); a larger one is
    /// stopped as it is read and answered 422.
    pub max_result_bytes: u64,
    /// The longest value a query may build or return, in bytes (SQLite's
    /// `SQLITE_LIMIT_LENGTH`; a checked output on PostgreSQL); 422 beyond.
    pub max_value_bytes: u64,
    /// Queries one tenant may have running at once; another answers 429 with
    /// `Retry-After`. The store runs at most `bulkhead_store::QUERY_CONNECTIONS` (4) for
    /// all tenants together, so a tenant below that cannot take every connection.
    pub max_concurrent_per_tenant: usize,
    /// Queries a tenant may send a minute; more are answered 429 with `Retry-After`.
    pub queries_per_minute: u32,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            row_cap: 10_000,
            timeout_seconds: 10,
            max_result_bytes: bulkhead_store::DEFAULT_MAX_RESULT_BYTES as u64,
            max_value_bytes: bulkhead_store::DEFAULT_MAX_VALUE_BYTES as u64,
            max_concurrent_per_tenant: 2,
            queries_per_minute: 120,
        }
    }
}

impl QueryConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_seconds)
    }

    /// The store's limits for a query whose time started at `since`.
    pub fn limits(&self, since: std::time::Instant) -> bulkhead_store::QueryLimits {
        bulkhead_store::QueryLimits {
            max_rows: usize::try_from(self.row_cap).unwrap_or(usize::MAX),
            timeout: self.timeout(),
            since: Some(since),
            max_result_bytes: usize::try_from(self.max_result_bytes).unwrap_or(usize::MAX),
            max_value_bytes: usize::try_from(self.max_value_bytes).unwrap_or(usize::MAX),
        }
    }
}

/// Where the service keeps its state.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    Sqlite { path: PathBuf },
    Postgres { url: Secret },
}

/// One registry the service receives pushes from and pulls images of.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// The configured name (what ownership entries and the API use).
    pub name: String,
    /// `http(s)://HOST[:PORT]`, no trailing slash.
    pub url: String,
    /// `HOST[:PORT]`: what image references start with.
    pub host: String,
    /// Plain HTTP (the url is `http://`).
    pub insecure: bool,
    /// The value the registry sends in `Authorization` (with or without `Bearer `).
    pub webhook_secret: Option<Secret>,
    pub credentials: Option<RegistryCredentials>,
    /// Hosts besides `host` that may receive the credentials as a token realm.
    pub token_hosts: Vec<String>,
}

impl RegistryConfig {
    /// `HOST[:PORT]/REPOSITORY@DIGEST`, the reference a worker scans.
    pub fn reference(&self, repository: &str, digest: &str) -> String {
        format!("{}/{repository}@{digest}", self.host)
    }

    /// The registry client every path uses for this registry (worker scans go through
    /// the scanner with the same options: [`RegistryConfig::resolve_options`]).
    pub fn client(
        &self,
        limits: &bulkhead_scan::source::RegistryLimits,
    ) -> Result<
        bulkhead_scan::source::distribution::RegistryClient,
        bulkhead_scan::source::SourceError,
    > {
        bulkhead_scan::source::distribution::RegistryClient::new(
            &self.host,
            bulkhead_scan::source::distribution::ClientOptions {
                insecure: self.insecure,
                token_hosts: self.token_hosts.clone(),
                credential: self.credential(),
                limits: limits.clone(),
            },
        )
    }

    /// How the scanner reaches this registry: plain HTTP if configured, its token hosts,
    /// its credentials or none (never the host user's credential stores), and references
    /// that must name this registry.
    pub fn resolve_options(&self, options: &mut bulkhead_scan::source::ResolveOptions) {
        options.insecure_registries = if self.insecure {
            vec![self.host.clone()]
        } else {
            Vec::new()
        };
        options.token_hosts = [(self.host.clone(), self.token_hosts.clone())].into();
        options.credentials = self.credential();
        options.credential_stores = false;
        options.expected_registry = Some(self.host.clone());
    }

    /// The credential in the scanner's terms.
    pub fn credential(&self) -> Option<bulkhead_scan::source::auth::Credential> {
        use bulkhead_scan::source::auth::Credential;
        self.credentials.as_ref().map(|c| match c {
            RegistryCredentials::Basic { username, password } => Credential::Basic {
                username: username.clone(),
                password: password.expose().to_string(),
            },
            RegistryCredentials::Token(t) => Credential::Bearer(t.expose().to_string()),
        })
    }
}

#[derive(Debug, Clone)]
pub enum RegistryCredentials {
    Basic { username: String, password: Secret },
    Token(Secret),
}

/// One tenant: what it owns and where its notifications go.
#[derive(Debug, Clone)]
pub struct TenantConfig {
    pub name: String,
    pub owns: Vec<Ownership>,
    pub notify: Option<NotifyTarget>,
    /// A webhook secret that announces pushes of this tenant's configured prefixes only
    /// (all on one registry), like a Harbor project's webhook.
    pub webhook_secret: Option<Secret>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    /// A configured registry's name.
    pub registry: String,
    /// Repository prefix, without leading or trailing `/`; empty = the whole registry.
    pub prefix: String,
    /// A webhook secret that announces pushes under this prefix only.
    pub webhook_secret: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct NotifyTarget {
    pub url: String,
    pub secret: Option<Secret>,
}

/// How images are scanned.
#[derive(Debug, Clone)]
pub struct ScanConfig {
    /// The advisory database; `None`: `$BULKHEAD_HOME/db/advisories.db`.
    pub db: Option<PathBuf>,
    pub health_threshold: Severity,
    pub parallel_layers: usize,
    pub timeout: Duration,
    /// How often the advisory database file is checked for a new version (rescan).
    pub rescan_poll: Duration,
    pub sandbox: bulkhead_scan::sandbox::Limits,
    pub extract: ExtractLimits,
    pub layers: LayerLimits,
    pub cache: CacheConfig,
    pub analyzers: AnalyzersConfig,
    /// What any registry may make the service read and wait for.
    pub registry_limits: bulkhead_scan::source::RegistryLimits,
}

// ---- the file as written -------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    server: ServerConfig,
    store: RawStore,
    #[serde(default)]
    registries: Vec<RawRegistry>,
    #[serde(default)]
    tenants: Vec<RawTenant>,
    #[serde(default)]
    notifications: NotificationsConfig,
    #[serde(default)]
    query: QueryConfig,
    #[serde(default)]
    scan: RawScan,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    kind: String,
    path: Option<PathBuf>,
    url_env: Option<String>,
    url_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    name: String,
    url: String,
    #[serde(default)]
    insecure: bool,
    webhook_secret_env: Option<String>,
    webhook_secret_file: Option<PathBuf>,
    username: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    #[serde(default)]
    token_hosts: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    name: String,
    #[serde(default)]
    owns: Vec<RawOwn>,
    notify_url: Option<String>,
    notify_secret_env: Option<String>,
    notify_secret_file: Option<PathBuf>,
    webhook_secret_env: Option<String>,
    webhook_secret_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOwn {
    registry: String,
    #[serde(default)]
    prefix: String,
    webhook_secret_env: Option<String>,
    webhook_secret_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawScan {
    db: Option<PathBuf>,
    health_threshold: Severity,
    parallel_layers: usize,
    timeout_seconds: u64,
    rescan_poll_seconds: f64,
    sandbox: bulkhead_scan::sandbox::Limits,
    extract: ExtractLimits,
    layers: LayerLimits,
    cache: CacheConfig,
    analyzers: AnalyzersConfig,
    registry_limits: bulkhead_scan::source::RegistryLimits,
}

impl Default for RawScan {
    fn default() -> Self {
        RawScan {
            db: None,
            health_threshold: Severity::High,
            parallel_layers: bulkhead_scan::pipeline::DEFAULT_PARALLEL_LAYERS,
            timeout_seconds: 1800,
            rescan_poll_seconds: 5.0,
            sandbox: Default::default(),
            extract: Default::default(),
            layers: Default::default(),
            cache: Default::default(),
            analyzers: Default::default(),
            registry_limits: Default::default(),
        }
    }
}

/// Looks up an environment variable; a parameter so that tests need not touch the
/// process environment.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

impl ServeConfig {
    /// Read and validate `path`, taking secrets from the process environment and files.
    pub fn load(path: &Path) -> Result<ServeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            message: format!("cannot read it: {e}"),
        })?;
        ServeConfig::parse(path, &text, &|k| std::env::var(k).ok())
    }

    /// Parse `text` (the contents of `path`); relative paths are relative to `path`'s
    /// directory.
    pub fn parse(path: &Path, text: &str, env: EnvLookup<'_>) -> Result<ServeConfig, ConfigError> {
        let err = |message: String| ConfigError {
            file: path.to_path_buf(),
            message,
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let resolve = |p: &Path| -> PathBuf {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let secret = |key: &str,
                      env_name: &Option<String>,
                      file: &Option<PathBuf>|
         -> Result<Option<Secret>, ConfigError> {
            load_secret(key, env_name.as_deref(), file.as_deref().map(resolve), env).map_err(err)
        };

        let mut server = raw.server;
        let metrics_token = secret(
            "server.metrics_token",
            &server.metrics_token_env,
            &server.metrics_token_file,
        )?;
        server.metrics_token = metrics_token;
        if server.metrics_listen.is_some_and(|m| m == server.listen) {
            return Err(err(format!(
                "server.metrics_listen = {}: the same address as server.listen; leave it out \
                 to serve the metrics there",
                server.listen
            )));
        }
        if server.workers == 0 || server.workers > 256 {
            return Err(err(format!(
                "server.workers = {}: must be between 1 and 256",
                server.workers
            )));
        }
        if server.lease_seconds < 5 {
            return Err(err(format!(
                "server.lease_seconds = {}: must be at least 5 (workers renew the lease every third of it)",
                server.lease_seconds
            )));
        }
        if server.max_attempts == 0 {
            return Err(err("server.max_attempts must be at least 1".into()));
        }
        let b = &server.backoff;
        let backoff_ok = b.first_seconds.is_finite()
            && b.max_seconds.is_finite()
            && b.first_seconds >= 0.0
            && b.max_seconds >= b.first_seconds;
        if !backoff_ok {
            return Err(err(format!(
                "server.backoff: first_seconds ({}) and max_seconds ({}) must be finite, 0 ≤ first ≤ max",
                b.first_seconds, b.max_seconds
            )));
        }
        if !(server.poll_seconds.is_finite()
            && server.poll_seconds >= 0.01
            && server.poll_seconds <= 3600.0)
        {
            return Err(err(format!(
                "server.poll_seconds = {}: must be between 0.01 and 3600",
                server.poll_seconds
            )));
        }

        for (key, v) in [
            ("header_timeout_seconds", server.header_timeout_seconds),
            ("body_timeout_seconds", server.body_timeout_seconds),
            ("request_timeout_seconds", server.request_timeout_seconds),
        ] {
            if !(v.is_finite() && (0.1..=3600.0).contains(&v)) {
                return Err(err(format!(
                    "server.{key} = {v}: must be between 0.1 and 3600"
                )));
            }
        }
        if server.max_connections == 0 || server.max_connections > 100_000 {
            return Err(err(format!(
                "server.max_connections = {}: must be between 1 and 100000",
                server.max_connections
            )));
        }
        if server.scans_per_minute == 0 || server.scans_per_minute > 100_000 {
            return Err(err(format!(
                "server.scans_per_minute = {}: must be between 1 and 100000",
                server.scans_per_minute
            )));
        }
        if server.max_in_flight == 0 || server.max_in_flight > 100_000 {
            return Err(err(format!(
                "server.max_in_flight = {}: must be between 1 and 100000",
                server.max_in_flight
            )));
        }
        if server.max_ownership_entries > 100_000 {
            return Err(err(format!(
                "server.max_ownership_entries = {}: must be at most 100000",
                server.max_ownership_entries
            )));
        }

        let store = match raw.store.kind.as_str() {
            "sqlite" => {
                if raw.store.url_env.is_some() || raw.store.url_file.is_some() {
                    return Err(err(
                        "store: url_env / url_file are for kind = \"postgres\"".into()
                    ));
                }
                let p = raw
                    .store
                    .path
                    .ok_or_else(|| err("store: kind = \"sqlite\" needs path = \"FILE\"".into()))?;
                StoreConfig::Sqlite { path: resolve(&p) }
            }
            "postgres" => {
                if raw.store.path.is_some() {
                    return Err(err("store: path is for kind = \"sqlite\"".into()));
                }
                let url = secret("store.url", &raw.store.url_env, &raw.store.url_file)?
                    .ok_or_else(|| {
                        err("store: kind = \"postgres\" needs url_env or url_file".into())
                    })?;
                StoreConfig::Postgres { url }
            }
            other => {
                return Err(err(format!(
                    "store.kind = {other:?}: expected \"sqlite\" or \"postgres\""
                )));
            }
        };

        let mut registries: Vec<RegistryConfig> = Vec::new();
        for (i, r) in raw.registries.into_iter().enumerate() {
            let key = format!("registries[{i}] ({})", r.name);
            if !valid_name(&r.name) {
                return Err(err(format!(
                    "registries[{i}].name = {:?}: use letters, digits, '.', '_' and '-'",
                    r.name
                )));
            }
            if registries.iter().any(|o| o.name == r.name) {
                return Err(err(format!("{key}: the name is used twice")));
            }
            let (scheme, rest) = r.url.split_once("://").ok_or_else(|| {
                err(format!(
                    "{key}.url = {:?}: expected http://HOST[:PORT] or https://HOST[:PORT]",
                    r.url
                ))
            })?;
            let host = rest.trim_end_matches('/');
            if host.is_empty() || host.contains('/') || host.contains(char::is_whitespace) {
                return Err(err(format!(
                    "{key}.url = {:?}: expected a scheme and HOST[:PORT], no path",
                    r.url
                )));
            }
            // A first component without a dot, a port or "localhost" is a Docker Hub
            // namespace to the reference grammar: `harbor/app` is docker.io/harbor/app, so
            // the configured credentials would go to Docker Hub.
            let hostname = host.rsplit_once(':').map_or(host, |(h, _)| h);
            if !(host.contains('.') || host.contains(':') || hostname == "localhost") {
                return Err(err(format!(
                    "{key}.url = {:?}: a registry host needs a dot, a port or \"localhost\" (image references would read {host:?} as a Docker Hub namespace); use the full name (e.g. {host}.example.com) or add the port ({host}:443)",
                    r.url
                )));
            }
            let mut token_hosts = Vec::new();
            for (j, h) in r.token_hosts.iter().enumerate() {
                let h = h.trim();
                if h.is_empty()
                    || h.contains('/')
                    || h.contains(char::is_whitespace)
                    || h.contains('@')
                {
                    return Err(err(format!(
                        "{key}.token_hosts[{j}] = {h:?}: expected HOST or HOST:PORT"
                    )));
                }
                token_hosts.push(h.to_ascii_lowercase());
            }
            let insecure = match (scheme, r.insecure) {
                ("https", false) => false,
                ("http", true) => true,
                ("http", false) => {
                    return Err(err(format!(
                        "{key}.url is http://: plain HTTP sends credentials and images unprotected; set insecure = true to allow it"
                    )));
                }
                ("https", true) => {
                    return Err(err(format!(
                        "{key}: insecure = true means plain HTTP; use an http:// url or drop insecure"
                    )));
                }
                (other, _) => {
                    return Err(err(format!(
                        "{key}.url: scheme {other:?}: expected http or https"
                    )));
                }
            };
            let webhook_secret = secret(
                &format!("{key}.webhook_secret"),
                &r.webhook_secret_env,
                &r.webhook_secret_file,
            )?;
            let password = secret(
                &format!("{key}.password"),
                &r.password_env,
                &r.password_file,
            )?;
            let token = secret(&format!("{key}.token"), &r.token_env, &r.token_file)?;
            let credentials = match (r.username, password, token) {
                (None, None, None) => None,
                (Some(username), Some(password), None) => {
                    Some(RegistryCredentials::Basic { username, password })
                }
                (None, None, Some(t)) => Some(RegistryCredentials::Token(t)),
                (Some(_), None, None) => {
                    return Err(err(format!(
                        "{key}: username needs password_env or password_file"
                    )));
                }
                (None, Some(_), None) => {
                    return Err(err(format!("{key}: a password needs a username")));
                }
                (_, _, Some(_)) => {
                    return Err(err(format!(
                        "{key}: give either username + password or a token, not both"
                    )));
                }
            };
            registries.push(RegistryConfig {
                name: r.name,
                url: format!("{scheme}://{host}"),
                host: host.to_string(),
                insecure,
                webhook_secret,
                credentials,
                token_hosts,
            });
        }

        let mut tenants: Vec<TenantConfig> = Vec::new();
        for (i, t) in raw.tenants.into_iter().enumerate() {
            let key = format!("tenants[{i}] ({})", t.name);
            if !valid_name(&t.name) {
                return Err(err(format!(
                    "tenants[{i}].name = {:?}: use letters, digits, '.', '_' and '-'",
                    t.name
                )));
            }
            if tenants.iter().any(|o| o.name == t.name) {
                return Err(err(format!("{key}: the name is used twice")));
            }
            let mut owns = Vec::new();
            for (j, o) in t.owns.into_iter().enumerate() {
                if !registries.iter().any(|r| r.name == o.registry) {
                    return Err(err(format!(
                        "{key}.owns[{j}].registry = {:?}: no [[registries]] has that name",
                        o.registry
                    )));
                }
                let prefix = o.prefix.trim_matches('/').to_string();
                if prefix.contains("//") || prefix.contains(char::is_whitespace) {
                    return Err(err(format!(
                        "{key}.owns[{j}].prefix = {:?}: not a repository path",
                        o.prefix
                    )));
                }
                let webhook_secret = secret(
                    &format!("{key}.owns[{j}].webhook_secret"),
                    &o.webhook_secret_env,
                    &o.webhook_secret_file,
                )?;
                let own = Ownership {
                    registry: o.registry,
                    prefix,
                    webhook_secret,
                };
                // Prefixes of two tenants never overlap (equal, or one inside the
                // other): a repository has one possible owner.
                let clash = tenants.iter().find_map(|x| {
                    x.owns
                        .iter()
                        .find(|o| {
                            o.registry == own.registry
                                && bulkhead_store::prefixes_overlap(&o.prefix, &own.prefix)
                        })
                        .map(|o| (&x.name, &o.prefix))
                });
                if let Some((other, theirs)) = clash {
                    return Err(err(format!(
                        "{key}.owns[{j}]: prefix {:?} on registry {} overlaps prefix {theirs:?} \
                         of tenant {other} (the same, or one inside the other): a repository \
                         can have one owner",
                        own.prefix, own.registry
                    )));
                }
                if owns
                    .iter()
                    .any(|o: &Ownership| o.registry == own.registry && o.prefix == own.prefix)
                {
                    return Err(err(format!("{key}.owns[{j}]: listed twice")));
                }
                owns.push(own);
            }
            let notify_secret = secret(
                &format!("{key}.notify_secret"),
                &t.notify_secret_env,
                &t.notify_secret_file,
            )?;
            let notify = match (t.notify_url, notify_secret) {
                (None, None) => None,
                (None, Some(_)) => {
                    return Err(err(format!("{key}: a notify secret needs notify_url")));
                }
                (Some(url), secret) => {
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        return Err(err(format!(
                            "{key}.notify_url = {url:?}: expected an http(s):// URL"
                        )));
                    }
                    Some(NotifyTarget { url, secret })
                }
            };
            let webhook_secret = secret(
                &format!("{key}.webhook_secret"),
                &t.webhook_secret_env,
                &t.webhook_secret_file,
            )?;
            if webhook_secret.is_some() {
                let mut registries = owns.iter().map(|o| &o.registry);
                let first = registries.next();
                if first.is_none() || registries.any(|r| Some(r) != first) {
                    return Err(err(format!(
                        "{key}.webhook_secret: a tenant's webhook secret covers its owns \
                         entries, which must be on one registry; put webhook secrets on the \
                         owns entries instead"
                    )));
                }
            }
            tenants.push(TenantConfig {
                name: t.name,
                owns,
                notify,
                webhook_secret,
            });
        }
        // A webhook secret names its scope: two equal secrets would let one speak for both.
        let mut secrets: Vec<(String, &Secret)> = Vec::new();
        for r in &registries {
            secrets.extend(
                r.webhook_secret
                    .iter()
                    .map(|s| (format!("registries ({})", r.name), s)),
            );
        }
        for t in &tenants {
            secrets.extend(
                t.webhook_secret
                    .iter()
                    .map(|s| (format!("tenants ({})", t.name), s)),
            );
            for o in &t.owns {
                secrets.extend(o.webhook_secret.iter().map(|s| {
                    (
                        format!("tenants ({}).owns ({}/{})", t.name, o.registry, o.prefix),
                        s,
                    )
                }));
            }
        }
        for (i, (a, sa)) in secrets.iter().enumerate() {
            if let Some((b, _)) = secrets[..i].iter().find(|(_, sb)| sb == sa) {
                return Err(err(format!(
                    "{a} and {b} have the same webhook secret: each must be its own, or one \
                     would announce pushes for the other"
                )));
            }
        }

        let n = raw.notifications;
        if n.max_attempts == 0 {
            return Err(err("notifications.max_attempts must be at least 1".into()));
        }
        if !(n.timeout_seconds.is_finite()
            && n.timeout_seconds >= 0.1
            && n.timeout_seconds <= 300.0)
        {
            return Err(err(format!(
                "notifications.timeout_seconds = {}: must be between 0.1 and 300",
                n.timeout_seconds
            )));
        }
        let b = &n.backoff;
        if !(b.first_seconds.is_finite()
            && b.max_seconds.is_finite()
            && b.first_seconds >= 0.0
            && b.max_seconds >= b.first_seconds)
        {
            return Err(err(format!(
                "notifications.backoff: first_seconds ({}) and max_seconds ({}) must be finite, 0 ≤ first ≤ max",
                b.first_seconds, b.max_seconds
            )));
        }

        let query = raw.query;
        // A query is answered (200 or 422) before the request's own timeout cuts it off.
        if query.timeout_seconds as f64 >= server.request_timeout_seconds {
            return Err(err(format!(
                "query.timeout_seconds = {} must be shorter than server.request_timeout_seconds = {}",
                query.timeout_seconds, server.request_timeout_seconds
            )));
        }
        if query.row_cap == 0 || query.row_cap > 1_000_000 {
            return Err(err(format!(
                "query.row_cap = {}: must be between 1 and 1000000",
                query.row_cap
            )));
        }
        if query.timeout_seconds == 0 || query.timeout_seconds > 3600 {
            return Err(err(format!(
                "query.timeout_seconds = {}: must be between 1 and 3600",
                query.timeout_seconds
            )));
        }
        // SQLite takes the value limit as an int; below a KiB a digest list would not fit.
        for (key, v) in [
            ("max_result_bytes", query.max_result_bytes),
            ("max_value_bytes", query.max_value_bytes),
        ] {
            if !(1024..=1 << 30).contains(&v) {
                return Err(err(format!(
                    "query.{key} = {v}: must be between 1024 and 1073741824 (1 GiB)"
                )));
            }
        }
        if query.max_value_bytes > query.max_result_bytes {
            return Err(err(format!(
                "query.max_value_bytes = {} is larger than query.max_result_bytes = {}: \
                 no result could hold such a value",
                query.max_value_bytes, query.max_result_bytes
            )));
        }
        if query.queries_per_minute == 0 || query.queries_per_minute > 100_000 {
            return Err(err(format!(
                "query.queries_per_minute = {}: must be between 1 and 100000",
                query.queries_per_minute
            )));
        }
        if query.max_concurrent_per_tenant == 0 || query.max_concurrent_per_tenant > 64 {
            return Err(err(format!(
                "query.max_concurrent_per_tenant = {}: must be between 1 and 64",
                query.max_concurrent_per_tenant
            )));
        }

        let s = raw.scan;
        if !(s.rescan_poll_seconds.is_finite()
            && s.rescan_poll_seconds >= 0.1
            && s.rescan_poll_seconds <= 3600.0)
        {
            return Err(err(format!(
                "scan.rescan_poll_seconds = {}: must be between 0.1 and 3600",
                s.rescan_poll_seconds
            )));
        }
        if s.parallel_layers == 0 || s.parallel_layers > 64 {
            return Err(err(format!(
                "scan.parallel_layers = {}: must be between 1 and 64",
                s.parallel_layers
            )));
        }
        if s.timeout_seconds == 0 {
            return Err(err("scan.timeout_seconds must be at least 1".into()));
        }
        s.registry_limits
            .validate()
            .map_err(|e| err(format!("scan.registry_limits: {e}")))?;
        let scan = ScanConfig {
            db: s.db.as_deref().map(resolve),
            health_threshold: s.health_threshold,
            parallel_layers: s.parallel_layers,
            timeout: Duration::from_secs(s.timeout_seconds),
            rescan_poll: Duration::from_secs_f64(s.rescan_poll_seconds),
            sandbox: s.sandbox,
            extract: s.extract,
            layers: s.layers,
            cache: s.cache,
            analyzers: AnalyzersConfig {
                dirs: s.analyzers.dirs.iter().map(|d| resolve(d)).collect(),
                confine_third_party: s.analyzers.confine_third_party,
            },
            registry_limits: s.registry_limits,
        };

        Ok(ServeConfig {
            file: path.to_path_buf(),
            server,
            store,
            registries,
            tenants,
            notifications: n,
            query,
            scan,
        })
    }

    /// The registry named `name`.
    pub fn registry(&self, name: &str) -> Option<&RegistryConfig> {
        self.registries.iter().find(|r| r.name == name)
    }
}

/// Names of registries and tenants appear in URLs, metrics labels and logs: keep them plain.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A secret from an environment variable or a file; neither given: `None`.
fn load_secret(
    key: &str,
    env_name: Option<&str>,
    file: Option<PathBuf>,
    env: EnvLookup<'_>,
) -> Result<Option<Secret>, String> {
    let value = match (env_name, file) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(format!(
                "{key}: give either {key}_env or {key}_file, not both"
            ));
        }
        (Some(var), None) => env(var)
            .ok_or_else(|| format!("{key}_env: the environment variable {var} is not set"))?,
        (None, Some(path)) => {
            use std::io::Read;
            let f = std::fs::File::open(&path)
                .map_err(|e| format!("{key}_file: cannot read {}: {e}", path.display()))?;
            let mut s = String::new();
            f.take(MAX_SECRET_FILE + 1)
                .read_to_string(&mut s)
                .map_err(|e| format!("{key}_file: cannot read {}: {e}", path.display()))?;
            if s.len() as u64 > MAX_SECRET_FILE {
                return Err(format!(
                    "{key}_file: {} is larger than {MAX_SECRET_FILE} bytes; a secret file holds one line",
                    path.display()
                ));
            }
            // `echo secret > file` adds a newline that is not part of the secret.
            s.trim_end_matches(['\n', '\r']).to_string()
        }
    };
    if value.is_empty() {
        return Err(format!("{key}: the secret is empty"));
    }
    Ok(Some(Secret(value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "HOOK" => Some("hook-secret".into()),
            "PASS" => Some("registry-pass".into()),
            "PG" => Some("postgres://u:p@h/db".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn parse(text: &str) -> Result<ServeConfig, ConfigError> {
        ServeConfig::parse(Path::new("/etc/bulkhead/serve.toml"), text, &env)
    }

    const FULL: &str = r#"
[server]
listen = "127.0.0.1:9999"
workers = 3
backoff = { first_seconds = 1, max_seconds = 8 }

[store]
kind = "sqlite"
path = "state/service.db"

[[registries]]
name = "local"
url = "http://127.0.0.1:5000/"
insecure = true
webhook_secret_env = "HOOK"
username = "scanner"
password_env = "PASS"

[[tenants]]
name = "team-a"
owns = [{ registry = "local", prefix = "/team-a/" }]
notify_url = "http://127.0.0.1:1/hook"

[[tenants]]
name = "team-b"
owns = [{ registry = "local", prefix = "team-b" }]

[scan]
db = "/data/advisories.db"
health_threshold = "critical"
[scan.sandbox]
time_ms = 5000
"#;

    #[test]
    fn a_full_config_is_read_with_defaults_and_secrets() {
        let c = parse(FULL).expect("valid");
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:9999");
        assert_eq!(c.server.workers, 3);
        assert_eq!(c.server.lease_seconds, 300, "default");
        assert_eq!(c.server.max_attempts, 5, "default");
        match &c.store {
            StoreConfig::Sqlite { path } => {
                assert_eq!(path, Path::new("/etc/bulkhead/state/service.db"))
            }
            other => panic!("expected sqlite, got {other:?}"),
        }
        let r = c.registry("local").expect("registry");
        assert_eq!(r.url, "http://127.0.0.1:5000");
        assert_eq!(r.host, "127.0.0.1:5000");
        assert!(r.insecure);
        assert_eq!(
            r.webhook_secret.as_ref().map(Secret::expose),
            Some("hook-secret")
        );
        match &r.credentials {
            Some(RegistryCredentials::Basic { username, password }) => {
                assert_eq!(username, "scanner");
                assert_eq!(password.expose(), "registry-pass");
            }
            other => panic!("expected basic credentials, got {other:?}"),
        }
        assert_eq!(
            r.reference("team-a/app", "sha256:00"),
            "127.0.0.1:5000/team-a/app@sha256:00"
        );
        assert_eq!(c.tenants.len(), 2);
        assert_eq!(c.tenants[0].owns[0].prefix, "team-a", "slashes trimmed");
        assert!(c.tenants[0].notify.is_some());
        assert!(c.tenants[1].notify.is_none());
        assert_eq!(c.scan.health_threshold, Severity::Critical);
        assert_eq!(c.scan.sandbox.time_ms, 5000);
        assert_eq!(c.scan.db.as_deref(), Some(Path::new("/data/advisories.db")));
    }

    #[test]
    fn secrets_never_print() {
        let c = parse(FULL).expect("valid");
        let dump = format!("{c:?}");
        assert!(!dump.contains("hook-secret"), "{dump}");
        assert!(!dump.contains("registry-pass"), "{dump}");
        let s = Secret::new("abc");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
    }

    #[test]
    fn postgres_url_comes_from_env_or_file() {
        let c = parse("[store]\nkind = \"postgres\"\nurl_env = \"PG\"\n").expect("valid");
        match c.store {
            StoreConfig::Postgres { url } => assert_eq!(url.expose(), "postgres://u:p@h/db"),
            other => panic!("expected postgres, got {other:?}"),
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("pg-url");
        std::fs::write(&f, "postgres://x@y/z\n").expect("write");
        let text = format!(
            "[store]\nkind = \"postgres\"\nurl_file = {:?}\n",
            f.display().to_string()
        );
        let c = ServeConfig::parse(&dir.path().join("c.toml"), &text, &env).expect("valid");
        match c.store {
            StoreConfig::Postgres { url } => assert_eq!(url.expose(), "postgres://x@y/z"),
            other => panic!("expected postgres, got {other:?}"),
        }
    }

    fn error_of(text: &str) -> String {
        parse(text).expect_err("must be refused").to_string()
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        let sqlite = "[store]\nkind = \"sqlite\"\npath = \"x.db\"\n";
        let e = error_of(&format!("{sqlite}[server]\nworkerz = 2\n"));
        assert!(
            e.contains("/etc/bulkhead/serve.toml") && e.contains("workerz"),
            "{e}"
        );
        let e = error_of("[store]\nkind = \"mysql\"\n");
        assert!(e.contains("store.kind") && e.contains("mysql"), "{e}");
        let e = error_of("[store]\nkind = \"postgres\"\nurl_env = \"NOPE\"\n");
        assert!(e.contains("store.url_env") && e.contains("NOPE"), "{e}");
        let e = error_of(&format!(
            "{sqlite}[[registries]]\nname = \"r\"\nurl = \"http://h:5000\"\n"
        ));
        assert!(
            e.contains("registries[0] (r)") && e.contains("insecure"),
            "{e}"
        );
        let e = error_of(&format!(
            "{sqlite}[[registries]]\nname = \"r\"\nurl = \"https://h.example\"\nwebhook_secret_env = \"EMPTY\"\n"
        ));
        assert!(e.contains("webhook_secret") && e.contains("empty"), "{e}");
        let e = error_of(&format!(
            "{sqlite}[[registries]]\nname = \"r\"\nurl = \"https://h.example\"\nusername = \"u\"\n"
        ));
        assert!(e.contains("password_env"), "{e}");
        let e = error_of(&format!(
            "{sqlite}[[tenants]]\nname = \"t\"\nowns = [{{ registry = \"nope\" }}]\n"
        ));
        assert!(e.contains("tenants[0] (t).owns[0].registry"), "{e}");
        let e = error_of(&format!(
            "{sqlite}[[registries]]\nname = \"r\"\nurl = \"https://h.example\"\n\
             [[tenants]]\nname = \"a\"\nowns = [{{ registry = \"r\", prefix = \"x\" }}]\n\
             [[tenants]]\nname = \"b\"\nowns = [{{ registry = \"r\", prefix = \"x/\" }}]\n"
        ));
        assert!(e.contains("overlaps") && e.contains("tenant a"), "{e}");
        let e = error_of(&format!(
            "{sqlite}[[registries]]\nname = \"r\"\nurl = \"https://h.example\"\n\
             [[tenants]]\nname = \"a\"\nowns = [{{ registry = \"r\", prefix = \"\" }}]\n\
             [[tenants]]\nname = \"b\"\nowns = [{{ registry = \"r\", prefix = \"team-b/app\" }}]\n"
        ));
        assert!(
            e.contains("tenants[1] (b).owns[0]") && e.contains("overlaps"),
            "nested prefixes of two tenants: {e}"
        );
        let e = error_of(&format!("{sqlite}[server]\nworkers = 0\n"));
        assert!(e.contains("server.workers"), "{e}");
    }

    /// Issue 12, item 6: `https://harbor` would make `harbor/app` a Docker Hub reference,
    /// and the registry's password would go to Docker Hub.
    #[test]
    fn a_registry_host_that_references_would_read_as_docker_hub_is_refused() {
        let sqlite = "[store]\nkind = \"sqlite\"\npath = \"x.db\"\n";
        for url in ["https://harbor", "https://harbor/", "http://harbor"] {
            let e = error_of(&format!(
                "{sqlite}[[registries]]\nname = \"r\"\nurl = \"{url}\"\ninsecure = {}\n",
                url.starts_with("http:")
            ));
            assert!(
                e.contains("registries[0] (r).url") && e.contains("Docker Hub"),
                "{url}: {e}"
            );
        }
        for url in [
            "https://harbor.corp",
            "https://harbor:443",
            "http://localhost",
        ] {
            let c = parse(&format!(
                "{sqlite}[[registries]]\nname = \"r\"\nurl = \"{url}\"\ninsecure = {}\n",
                url.starts_with("http:")
            ))
            .unwrap_or_else(|e| panic!("{url}: {e}"));
            let r = &c.registries[0];
            // The reference a worker builds names exactly this registry.
            let reference = r.reference("team/app", &format!("sha256:{}", "a".repeat(64)));
            let parsed =
                bulkhead_scan::source::registry::parse_reference(&reference).expect("parses");
            assert_eq!(parsed.registry(), r.host, "{url}");
        }
    }

    #[test]
    fn token_hosts_and_registry_limits_are_read_and_checked() {
        let sqlite = "[store]\nkind = \"sqlite\"\npath = \"x.db\"\n";
        let c = parse(&format!(
            "{sqlite}[[registries]]\nname = \"r\"\nurl = \"https://r.example\"\ntoken_hosts = [\"Auth.Example:8443\"]\n\
             [scan.registry_limits]\nmax_manifest_bytes = 1000\nidle_timeout_ms = 500\n"
        ))
        .expect("valid");
        assert_eq!(c.registries[0].token_hosts, ["auth.example:8443"]);
        assert_eq!(c.scan.registry_limits.max_manifest_bytes, 1000);
        assert_eq!(c.scan.registry_limits.idle_timeout_ms, 500);
        assert_eq!(c.scan.registry_limits.attempts, 5, "the rest stays default");
        let mut options = bulkhead_scan::source::ResolveOptions {
            credential_stores: true,
            ..Default::default()
        };
        c.registries[0].resolve_options(&mut options);
        assert!(!options.credential_stores, "never the host user's stores");
        assert_eq!(options.expected_registry.as_deref(), Some("r.example"));
        assert_eq!(options.token_hosts["r.example"], ["auth.example:8443"]);
        let e = error_of(&format!(
            "{sqlite}[[registries]]\nname = \"r\"\nurl = \"https://r.example\"\ntoken_hosts = [\"https://x/y\"]\n"
        ));
        assert!(e.contains("token_hosts[0]"), "{e}");
        let e = error_of(&format!("{sqlite}[scan.registry_limits]\nattempts = 0\n"));
        assert!(
            e.contains("scan.registry_limits") && e.contains("attempts"),
            "{e}"
        );
        let e = error_of(&format!(
            "{sqlite}[scan.registry_limits]\nidle_timeout = 5\n"
        ));
        assert!(e.contains("idle_timeout"), "{e}");
    }

    #[test]
    fn secret_files_and_env_are_exclusive_and_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; (MAX_SECRET_FILE + 10) as usize]).expect("write");
        let e = load_secret("k", None, Some(big), &env).expect_err("too big");
        assert!(e.contains("larger"), "{e}");
        let e = load_secret("k", Some("HOOK"), Some(dir.path().join("f")), &env).expect_err("both");
        assert!(e.contains("not both"), "{e}");
        let e = load_secret("k", None, Some(dir.path().join("missing")), &env)
            .expect_err("missing file");
        assert!(e.contains("k_file") && e.contains("missing"), "{e}");
    }

    #[test]
    fn query_limits_are_read_and_checked() {
        let sqlite = "[store]\nkind = \"sqlite\"\npath = \"x.db\"\n";
        let c = parse(sqlite).expect("valid");
        assert_eq!(c.query.row_cap, 10_000);
        assert_eq!(c.query.timeout(), Duration::from_secs(10));
        let c = parse(&format!(
            "{sqlite}[query]\nrow_cap = 50\ntimeout_seconds = 2\n"
        ))
        .expect("valid");
        assert_eq!(c.query.row_cap, 50);
        assert_eq!(c.query.timeout(), Duration::from_secs(2));
        let e = error_of(&format!("{sqlite}[query]\nrow_cap = 0\n"));
        assert!(e.contains("query.row_cap"), "{e}");
        let e = error_of(&format!("{sqlite}[query]\ntimeout_seconds = 0\n"));
        assert!(e.contains("query.timeout_seconds"), "{e}");
        assert_eq!(c.query.max_result_bytes, 4 << 20);
        assert_eq!(c.query.max_value_bytes, 1 << 20);
        assert_eq!(c.query.max_concurrent_per_tenant, 2);
        let c = parse(&format!(
            "{sqlite}[query]\nmax_result_bytes = 100000\nmax_value_bytes = 5000\n\
             max_concurrent_per_tenant = 1\n"
        ))
        .expect("valid");
        let limits = c.query.limits(std::time::Instant::now());
        assert_eq!(limits.max_result_bytes, 100_000);
        assert_eq!(limits.max_value_bytes, 5000);
        assert_eq!(c.query.max_concurrent_per_tenant, 1);
        let e = error_of(&format!("{sqlite}[query]\nmax_value_bytes = 10\n"));
        assert!(e.contains("query.max_value_bytes"), "{e}");
        let e = error_of(&format!(
            "{sqlite}[query]\nmax_result_bytes = 2000\nmax_value_bytes = 4000\n"
        ));
        assert!(e.contains("larger than query.max_result_bytes"), "{e}");
        let e = error_of(&format!("{sqlite}[query]\nmax_concurrent_per_tenant = 0\n"));
        assert!(e.contains("query.max_concurrent_per_tenant"), "{e}");
        let e = error_of(&format!("{sqlite}[query]\nrows = 5\n"));
        assert!(e.contains("rows"), "{e}");
    }

    #[test]
    fn notifications_and_rescan_keys_are_read_and_checked() {
        let sqlite = "[store]\nkind = \"sqlite\"\npath = \"x.db\"\n";
        let c = parse(sqlite).expect("valid");
        assert_eq!(c.notifications, NotificationsConfig::default());
        assert_eq!(c.scan.rescan_poll, Duration::from_secs(5));
        let c = parse(&format!(
            "{sqlite}[notifications]\nmax_attempts = 3\ntimeout_seconds = 2.5\n\
             backoff = {{ first_seconds = 1, max_seconds = 4 }}\n[scan]\nrescan_poll_seconds = 0.5\n"
        ))
        .expect("valid");
        assert_eq!(c.notifications.max_attempts, 3);
        assert_eq!(c.notifications.timeout(), Duration::from_millis(2500));
        assert_eq!(c.notifications.backoff.delay(3), Duration::from_secs(4));
        assert_eq!(c.scan.rescan_poll, Duration::from_millis(500));
        let e = error_of(&format!("{sqlite}[notifications]\nmax_attempts = 0\n"));
        assert!(e.contains("notifications.max_attempts"), "{e}");
        let e = error_of(&format!("{sqlite}[notifications]\ntimeout_seconds = 0\n"));
        assert!(e.contains("notifications.timeout_seconds"), "{e}");
        let e = error_of(&format!("{sqlite}[notifications]\nretries = 3\n"));
        assert!(e.contains("retries"), "{e}");
        let e = error_of(&format!("{sqlite}[scan]\nrescan_poll_seconds = -1\n"));
        assert!(e.contains("scan.rescan_poll_seconds"), "{e}");
    }

    #[test]
    fn reconcile_is_on_by_default_and_0_turns_it_off() {
        let sqlite = "[store]\nkind = \"sqlite\"\npath = \"x.db\"\n";
        let c = parse(sqlite).expect("valid");
        assert_eq!(c.server.reconcile(), Some(Duration::from_secs(300)));
        let c = parse(&format!("[server]\nreconcile_seconds = 0\n{sqlite}")).expect("valid");
        assert_eq!(c.server.reconcile(), None);
        let c = parse(&format!("[server]\nreconcile_seconds = 7\n{sqlite}")).expect("valid");
        assert_eq!(c.server.reconcile(), Some(Duration::from_secs(7)));
        let e = error_of(&format!("[server]\nreconcile_seconds = -1\n{sqlite}"));
        assert!(e.contains("reconcile_seconds"), "{e}");
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let b = Backoff {
            first_seconds: 2.0,
            max_seconds: 10.0,
        };
        assert_eq!(b.delay(1), Duration::from_secs(2));
        assert_eq!(b.delay(2), Duration::from_secs(4));
        assert_eq!(b.delay(3), Duration::from_secs(8));
        assert_eq!(b.delay(4), Duration::from_secs(10));
        assert_eq!(b.delay(1000), Duration::from_secs(10));
    }
}

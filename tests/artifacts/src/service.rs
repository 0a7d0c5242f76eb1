//! A running `bulkhead serve` (the real binary, spawned), for end-to-end tests of the
//! scan-on-push service: its configuration written from [`ServiceOptions`], secrets passed
//! in the environment, its address read from its log, an HTTP client for its API, tokens
//! made with `bulkhead serve token create`, and kill/stop/restart for durability tests.
//!
//! ```no_run
//! use bulkhead_test_artifacts::registry::{Auth, Notifications, Options, Registry};
//! use bulkhead_test_artifacts::service::{ServiceHarness, ServiceOptions, free_port};
//! let port = free_port();
//! let hook = ServiceHarness::webhook_url_for(port);
//! let reg = Registry::start_with(Options {
//!     auth: Auth::None,
//!     notifications: Some(
//!         Notifications::new(&hook).header("Authorization", "Bearer s3cret"),
//!     ),
//! });
//! let mut opts = ServiceOptions::new(std::path::Path::new("/path/to/advisories.db"));
//! opts.port = Some(port);
//! opts.registry("local", &reg.url(), "s3cret").tenant("a", &[("local", "team-a")]);
//! let svc = ServiceHarness::start(std::path::Path::new(env!("CARGO_MANIFEST_DIR")), opts);
//! let token = svc.create_token("a", "reader");
//! let images = svc.get("/v1/images", Some(&token));
//! ```
//!
//! The binary path is the caller's (`env!("CARGO_BIN_EXE_bulkhead")` in the host's test
//! targets): this crate cannot name it.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::http::{self, Response};

/// How long to wait for the service to listen (it compiles the built-in analyzers on its
/// first start in a fresh home: seconds).
const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// How long a SIGTERM may take before [`ServiceHarness::stop`] kills.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A free loopback port, for a service whose address the registry must know before the
/// service starts (the registry's notification URL). Bound and released at once: another
/// process could take it in between, which on a test machine does not happen in practice.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

/// One `[[registries]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRegistry {
    /// The configured name.
    pub name: String,
    /// `http://HOST:PORT` (plain HTTP: the harness sets `insecure = true`).
    pub url: String,
    /// The webhook secret (passed in the environment).
    pub webhook_secret: String,
    /// Basic credentials for pulls (the password is passed in the environment).
    pub creds: Option<(String, String)>,
    /// `token_hosts`: token realms besides the registry's own `HOST:PORT` that may get the
    /// credentials (a token server on another port).
    pub token_hosts: Vec<String>,
}

/// One `[[tenants]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceTenant {
    pub name: String,
    /// `(registry, prefix)` pairs.
    pub owns: Vec<(String, String)>,
    /// More lines of its `[[tenants]]` table, verbatim (e.g. `webhook_secret_env = …`).
    pub toml: String,
}

/// Where the service keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceStore {
    /// A SQLite file in the harness's directory.
    Sqlite,
    /// A PostgreSQL connection string (passed in the environment).
    Postgres(String),
}

/// Which store a test runs the service on (the same suite runs on both: [`crate::both!`]).
pub use crate::StoreKind;

impl StoreKind {
    /// The store of one test: SQLite in the harness's directory, or a fresh database of the
    /// test binary's shared PostgreSQL cluster ([`crate::postgres::PgCluster::shared`]).
    /// `None` when PostgreSQL is unavailable outside CI (the reason is printed: the test
    /// skips); in CI that is a panic.
    pub fn store(self) -> Option<ServiceStore> {
        match self {
            StoreKind::Sqlite => Some(ServiceStore::Sqlite),
            StoreKind::Postgres => Some(ServiceStore::Postgres(
                crate::postgres::PgCluster::shared()?.database(),
            )),
        }
    }
}

/// Everything the configuration file says.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceOptions {
    /// The listening port; `None`: any free port (read back from the log).
    pub port: Option<u16>,
    pub registries: Vec<ServiceRegistry>,
    pub tenants: Vec<ServiceTenant>,
    pub workers: usize,
    pub lease_seconds: u64,
    pub max_attempts: u32,
    pub backoff_first_seconds: f64,
    pub backoff_max_seconds: f64,
    pub poll_seconds: f64,
    /// `server.reconcile_seconds`: how often the registries are listed for pushes whose
    /// notification was lost; 0 = off (the service's default is 300, and a pass runs at
    /// start).
    pub reconcile_seconds: u64,
    pub store: ServiceStore,
    /// The advisory database (`scan.db`).
    pub advisory_db: PathBuf,
    /// Appended to the generated file verbatim (e.g. `[scan.sandbox]` limits).
    pub extra_toml: String,
    /// More lines of the `[server]` table, verbatim (e.g. `max_ownership_entries = 2`).
    pub server_toml: String,
    /// More environment variables of the service (secrets the extra TOML names).
    pub env: Vec<(String, String)>,
}

impl ServiceOptions {
    /// Two workers, a 15 s lease, quick retries (0.5 s doubling to 4 s), a 0.2 s poll, the
    /// service's reconcile (every 300 s, once at start), SQLite, no registries or tenants
    /// yet.
    pub fn new(advisory_db: &Path) -> ServiceOptions {
        ServiceOptions {
            port: None,
            registries: Vec::new(),
            tenants: Vec::new(),
            workers: 2,
            lease_seconds: 15,
            max_attempts: 5,
            backoff_first_seconds: 0.5,
            backoff_max_seconds: 4.0,
            poll_seconds: 0.2,
            reconcile_seconds: 300,
            store: ServiceStore::Sqlite,
            advisory_db: advisory_db.to_path_buf(),
            extra_toml: String::new(),
            server_toml: String::new(),
            env: Vec::new(),
        }
    }

    /// Adds an anonymous registry.
    pub fn registry(&mut self, name: &str, url: &str, webhook_secret: &str) -> &mut Self {
        self.registries.push(ServiceRegistry {
            name: name.into(),
            url: url.into(),
            webhook_secret: webhook_secret.into(),
            creds: None,
            token_hosts: Vec::new(),
        });
        self
    }

    /// Adds a tenant owning `(registry, prefix)` pairs.
    pub fn tenant(&mut self, name: &str, owns: &[(&str, &str)]) -> &mut Self {
        self.tenants.push(ServiceTenant {
            name: name.into(),
            owns: owns
                .iter()
                .map(|(r, p)| (r.to_string(), p.to_string()))
                .collect(),
            toml: String::new(),
        });
        self
    }
}

/// A running `bulkhead serve`. Killed and reaped on drop; its directory (home, config,
/// SQLite store, log) is removed then.
pub struct ServiceHarness {
    bin: PathBuf,
    dir: TempDir,
    options: ServiceOptions,
    env: Vec<(String, String)>,
    child: Option<Child>,
    addr: String,
}

impl std::fmt::Debug for ServiceHarness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceHarness")
            .field("addr", &self.addr)
            .field("dir", &self.dir.path())
            .finish()
    }
}

impl ServiceHarness {
    /// `http://127.0.0.1:PORT/v1/webhooks/registry`: what a registry's notification
    /// endpoint must be for a service on `port`.
    pub fn webhook_url_for(port: u16) -> String {
        format!("http://127.0.0.1:{port}/v1/webhooks/registry")
    }

    /// A registry's notifications to the service that will listen on `port`, signed with
    /// the registry's webhook `secret` (the `Authorization` header docker-registry sends).
    pub fn notifications_for(port: u16, secret: &str) -> crate::registry::Notifications {
        crate::registry::Notifications::new(&ServiceHarness::webhook_url_for(port))
            .header("Authorization", &format!("Bearer {secret}"))
    }

    /// Starts `bin serve` with `options`; panics (with the log) if it does not come up.
    pub fn start(bin: &Path, options: ServiceOptions) -> ServiceHarness {
        ServiceHarness::try_start(bin, options)
            .unwrap_or_else(|e| panic!("starting bulkhead serve: {e}"))
    }

    /// Starts `bin serve` with `options`.
    pub fn try_start(bin: &Path, options: ServiceOptions) -> io::Result<ServiceHarness> {
        let dir = tempfile::Builder::new()
            .prefix("bulkhead-service-")
            .tempdir()?;
        std::fs::create_dir(dir.path().join("home"))?;
        let mut env = Vec::new();
        for (i, r) in options.registries.iter().enumerate() {
            env.push((
                format!("BULKHEAD_TEST_WEBHOOK_{i}"),
                r.webhook_secret.clone(),
            ));
            if let Some((_, pass)) = &r.creds {
                env.push((format!("BULKHEAD_TEST_REGISTRY_PASSWORD_{i}"), pass.clone()));
            }
        }
        if let ServiceStore::Postgres(url) = &options.store {
            env.push(("BULKHEAD_TEST_PG_URL".into(), url.clone()));
        }
        env.extend(options.env.iter().cloned());
        let mut svc = ServiceHarness {
            bin: bin.to_path_buf(),
            dir,
            options,
            env,
            child: None,
            addr: String::new(),
        };
        svc.spawn()?;
        Ok(svc)
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `$BULKHEAD_HOME` of the service.
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// The configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("serve.toml")
    }

    /// The SQLite store file (for [`ServiceStore::Sqlite`]).
    pub fn store_path(&self) -> PathBuf {
        self.dir.path().join("service.db")
    }

    /// The options it runs with.
    pub fn options(&self) -> &ServiceOptions {
        &self.options
    }

    /// The options of the next start ([`ServiceHarness::try_start_again`]): a test that
    /// changes the configuration between runs. The environment is the first start's.
    pub fn options_mut(&mut self) -> &mut ServiceOptions {
        &mut self.options
    }

    /// The service's stderr so far (every run, appended).
    pub fn log(&self) -> String {
        std::fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `bin ARGS` with the service's home, configuration and secrets (for `serve token`,
    /// `db import` into the service's home, ...).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        crate::hermetic(&mut c, &self.home())
            .args(args)
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// `bulkhead serve token create --tenant T --role R`: the secret.
    pub fn create_token(&self, tenant: &str, role: &str) -> String {
        let config = self.config_path();
        let out = self.run(&[
            "--config",
            &config.to_string_lossy(),
            "serve",
            "token",
            "create",
            "--tenant",
            tenant,
            "--role",
            role,
            "--name",
            "e2e",
        ]);
        assert!(
            out.status.success(),
            "token create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let secret = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(!secret.is_empty(), "token create printed nothing");
        secret
    }

    /// Runs `bin ARGS` (see [`ServiceHarness::command`]) to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.bin.display()))
    }

    /// `GET path` with an optional bearer token. Panics on connection errors.
    pub fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.request("GET", path, token, None)
    }

    /// `POST path` with a JSON body and an optional bearer token.
    pub fn post_json(&self, path: &str, token: Option<&str>, body: &serde_json::Value) -> Response {
        self.request("POST", path, token, Some(body))
    }

    /// Any request; panics (with the log) on connection errors.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> Response {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(a) = &auth {
            headers.push(("Authorization", a));
        }
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        http::request(method, &self.addr, path, &headers, &bytes).unwrap_or_else(|e| {
            panic!(
                "{method} {path} on {}: {e}\nservice log:\n{}",
                self.addr,
                self.log()
            )
        })
    }

    /// `GET path` that must answer 200 with JSON.
    pub fn get_json(&self, path: &str, token: &str) -> serde_json::Value {
        let r = self.get(path, Some(token));
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r.json().unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// Every item of a paged list (`{items, next_cursor}`), following the cursors.
    pub fn get_all(&self, path: &str, token: &str) -> Vec<serde_json::Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        let sep = if path.contains('?') { '&' } else { '?' };
        for _ in 0..10_000 {
            let url = match &cursor {
                Some(c) => format!("{path}{sep}cursor={}", http::percent_encode(c)),
                None => path.to_string(),
            };
            let page = self.get_json(&url, token);
            items.extend(page["items"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return items,
            }
        }
        panic!("{path}: more than 10000 pages");
    }

    /// The `/metrics` text.
    pub fn metrics(&self) -> String {
        let r = self.get("/metrics", None);
        assert_eq!(r.status, 200, "/metrics: {}", r.text());
        r.text()
    }

    /// The value of the sample `series` (e.g. `bulkhead_scans_total{outcome="done"}`) in
    /// `/metrics`; 0 when it is absent (a counter that never moved).
    pub fn metric(&self, series: &str) -> f64 {
        let text = self.metrics();
        text.lines()
            .find_map(|l| {
                l.strip_prefix(series)
                    .and_then(|rest| rest.strip_prefix(' '))
                    .and_then(|v| v.trim().parse::<f64>().ok())
            })
            .unwrap_or(0.0)
    }

    /// Polls `f` every 100 ms until it returns `Some`, or panics after `timeout` with
    /// `what` and the service log.
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f() {
                return v;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}\nservice log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL and reap (a crash: leases of running jobs stay until they expire).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM (graceful: in-flight jobs finish or are given back), then wait; SIGKILL
    /// after 30 s.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(pid) = i32::try_from(child.id())
                && let Some(pid) = rustix::process::Pid::from_raw(pid)
            {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops (SIGTERM) and starts again with the same configuration, home, store and
    /// address.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(e) = self.spawn() {
            panic!("restarting bulkhead serve: {e}");
        }
    }

    /// Starts again after [`ServiceHarness::kill`] or [`ServiceHarness::stop`].
    pub fn start_again(&mut self) {
        if let Err(e) = self.spawn() {
            panic!("restarting bulkhead serve: {e}");
        }
    }

    /// [`ServiceHarness::start_again`] that may fail: the error holds the log of the run
    /// (for a configuration the service must refuse at start).
    pub fn try_start_again(&mut self) -> io::Result<()> {
        self.spawn()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("service.log")
    }

    fn config_toml(&self) -> String {
        let o = &self.options;
        let q = |s: &str| serde_json::Value::from(s).to_string(); // JSON strings are TOML basic strings
        let mut t = String::new();
        let listen = match (self.addr.is_empty(), o.port) {
            (false, _) => self.addr.clone(),
            (true, Some(p)) => format!("127.0.0.1:{p}"),
            (true, None) => "127.0.0.1:0".into(),
        };
        let _ = writeln!(t, "[server]\nlisten = {}", q(&listen));
        let _ = writeln!(
            t,
            "workers = {}\nlease_seconds = {}\nmax_attempts = {}\npoll_seconds = {}\nreconcile_seconds = {}",
            o.workers, o.lease_seconds, o.max_attempts, o.poll_seconds, o.reconcile_seconds
        );
        let _ = writeln!(
            t,
            "backoff = {{ first_seconds = {}, max_seconds = {} }}",
            o.backoff_first_seconds, o.backoff_max_seconds
        );
        let _ = writeln!(t, "{}\n", o.server_toml);
        match &o.store {
            ServiceStore::Sqlite => {
                let _ = writeln!(
                    t,
                    "[store]\nkind = \"sqlite\"\npath = {}\n",
                    q(&self.store_path().to_string_lossy())
                );
            }
            ServiceStore::Postgres(_) => {
                let _ = writeln!(
                    t,
                    "[store]\nkind = \"postgres\"\nurl_env = \"BULKHEAD_TEST_PG_URL\"\n"
                );
            }
        }
        for (i, r) in o.registries.iter().enumerate() {
            let _ = writeln!(
                t,
                "[[registries]]\nname = {}\nurl = {}\ninsecure = true\nwebhook_secret_env = \"BULKHEAD_TEST_WEBHOOK_{i}\"",
                q(&r.name),
                q(&r.url)
            );
            if let Some((user, _)) = &r.creds {
                let _ = writeln!(
                    t,
                    "username = {}\npassword_env = \"BULKHEAD_TEST_REGISTRY_PASSWORD_{i}\"",
                    q(user)
                );
            }
            if !r.token_hosts.is_empty() {
                let hosts: Vec<String> = r.token_hosts.iter().map(|h| q(h)).collect();
                let _ = writeln!(t, "token_hosts = [{}]", hosts.join(", "));
            }
            t.push('\n');
        }
        for tenant in &o.tenants {
            let owns: Vec<String> = tenant
                .owns
                .iter()
                .map(|(r, p)| format!("{{ registry = {}, prefix = {} }}", q(r), q(p)))
                .collect();
            let _ = writeln!(
                t,
                "[[tenants]]\nname = {}\nowns = [{}]\n{}\n",
                q(&tenant.name),
                owns.join(", "),
                tenant.toml
            );
        }
        let _ = writeln!(t, "[scan]\ndb = {}\n", q(&o.advisory_db.to_string_lossy()));
        t.push_str(&o.extra_toml);
        t
    }

    fn spawn(&mut self) -> io::Result<()> {
        std::fs::write(self.config_path(), self.config_toml())?;
        let log_path = self.log_path();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let log_start = log.metadata()?.len();
        let config = self.config_path();
        let args = ["--config", &config.to_string_lossy(), "serve"].map(str::to_string);
        // The kernel kills the service if the test process dies without dropping us
        // (`setpriv --pdeathsig`, util-linux), as the registry harness does.
        let mut cmd = match crate::find_program("setpriv") {
            Some(setpriv) => {
                let mut c = Command::new(setpriv);
                c.args(["--pdeathsig", "KILL", "--"]).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        crate::hermetic(&mut cmd, &self.home())
            .args(&args)
            .env("BULKHEAD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().map_err(|e| {
            io::Error::new(e.kind(), format!("running {}: {e}", self.bin.display()))
        })?;
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                return Err(io::Error::other(format!(
                    "bulkhead serve exited with {status}\nlog:\n{}",
                    self.log()
                )));
            }
            if let Some(addr) = listening_addr(&self.log(), log_start) {
                self.addr = addr;
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        Err(io::Error::other(format!(
            "not listening after {READY_TIMEOUT:?}\nlog:\n{}",
            self.log()
        )))
    }
}

impl Drop for ServiceHarness {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The address of the first `listening on http://ADDR` line after byte `from` of the log.
fn listening_addr(log: &str, from: u64) -> Option<String> {
    let tail = log.get(usize::try_from(from).ok()?..)?;
    let i = tail.find("listening on http://")?;
    let rest = &tail[i + "listening on http://".len()..];
    let addr: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    let port = addr.rsplit_once(':')?.1;
    (!port.is_empty() && port != "0").then_some(addr)
}

/// A loopback TCP proxy in front of a registry that can hold blob downloads: with the gate
/// closed, a `GET …/blobs/…` waits at the proxy (the request is not sent on) until the gate
/// opens. Configured as the service's registry URL, it stops a scan at a known point (the
/// worker has claimed the job and fetched the manifest, and waits for a blob), which is how
/// a durability test kills the service in the middle of a scan deterministically.
///
/// Only what pulls send is understood: request heads without bodies (GET, HEAD), several
/// per connection (keep-alive). Answers are copied back unchanged. Dropping it opens the
/// gate and closes every connection.
pub struct BlobGate {
    addr: String,
    state: std::sync::Arc<GateState>,
}

#[derive(Default)]
struct GateState {
    inner: std::sync::Mutex<GateInner>,
    changed: std::sync::Condvar,
}

#[derive(Default)]
struct GateInner {
    closed: bool,
    stopping: bool,
    /// Blob requests waiting at the gate now.
    waiting: usize,
    /// Blob requests that ever had to wait.
    held: usize,
    conns: Vec<std::net::TcpStream>,
}

impl std::fmt::Debug for BlobGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobGate")
            .field("addr", &self.addr)
            .finish()
    }
}

impl BlobGate {
    /// Listens on a free loopback port and forwards to `upstream` (`HOST:PORT`), gate open.
    pub fn start(upstream: &str) -> BlobGate {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("blob gate: cannot listen: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("blob gate: {e}"))
            .to_string();
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("blob gate: {e}"));
        let state = std::sync::Arc::new(GateState::default());
        let upstream = upstream.to_string();
        let st = state.clone();
        std::thread::spawn(move || {
            loop {
                if st.lock().stopping {
                    return;
                }
                match listener.accept() {
                    Ok((client, _)) => {
                        let st = st.clone();
                        let upstream = upstream.clone();
                        std::thread::spawn(move || gate_connection(client, &upstream, &st));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        BlobGate { addr, state }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Blob downloads wait from now on.
    pub fn close(&self) {
        self.state.lock().closed = true;
    }

    /// Waiting and later blob downloads go through.
    pub fn open(&self) {
        self.state.lock().closed = false;
        self.state.changed.notify_all();
    }

    /// How many blob downloads ever waited at the gate.
    pub fn held(&self) -> usize {
        self.state.lock().held
    }

    /// Waits until at least one blob download is waiting at the gate; false after
    /// `timeout`.
    pub fn wait_for_waiting(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut inner = self.state.lock();
        while inner.waiting == 0 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            inner = self
                .state
                .changed
                .wait_timeout(inner, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        true
    }
}

impl Drop for BlobGate {
    fn drop(&mut self) {
        let mut inner = self.state.lock();
        inner.stopping = true;
        inner.closed = false;
        for c in inner.conns.drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        drop(inner);
        self.state.changed.notify_all();
    }
}

impl GateState {
    fn lock(&self) -> std::sync::MutexGuard<'_, GateInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One proxied connection: request heads client → upstream (blob GETs wait while the gate
/// is closed), everything upstream → client as it comes.
fn gate_connection(client: std::net::TcpStream, upstream: &str, st: &GateState) {
    use std::io::{Read, Write};
    let Ok(server) = std::net::TcpStream::connect(upstream) else {
        return;
    };
    {
        let mut inner = st.lock();
        if inner.stopping {
            return;
        }
        for s in [&client, &server] {
            if let Ok(c) = s.try_clone() {
                inner.conns.push(c);
            }
        }
    }
    let (Ok(mut from_server), Ok(mut to_client)) = (server.try_clone(), client.try_clone()) else {
        return;
    };
    let back = std::thread::spawn(move || {
        let _ = io::copy(&mut from_server, &mut to_client);
        let _ = to_client.shutdown(std::net::Shutdown::Both);
    });
    let (mut client, mut server) = (client, server);
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    'conn: loop {
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        // Forward every complete request head; bodies are not expected from a puller.
        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head: Vec<u8> = pending.drain(..end + 4).collect();
            let line = String::from_utf8_lossy(&head);
            let mut words = line.split_whitespace();
            let is_blob_get =
                words.next() == Some("GET") && words.next().is_some_and(|p| p.contains("/blobs/"));
            if is_blob_get {
                let mut inner = st.lock();
                if inner.closed {
                    inner.held += 1;
                    inner.waiting += 1;
                    st.changed.notify_all();
                    while inner.closed && !inner.stopping {
                        inner = st
                            .changed
                            .wait(inner)
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                    }
                    inner.waiting -= 1;
                }
            }
            if server.write_all(&head).is_err() {
                break 'conn;
            }
        }
        if pending.len() > 1 << 20 {
            // Not a puller's request (a body?): pass it on as it is.
            if server.write_all(&pending).is_err() {
                break;
            }
            pending.clear();
        }
    }
    let _ = server.shutdown(std::net::Shutdown::Write);
    let _ = back.join();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_line_is_found_after_the_offset() {
        let log = "bulkhead serve: listening on http://127.0.0.1:41000\nstopping\n\
                   bulkhead serve: listening on http://127.0.0.1:41001\n";
        assert_eq!(listening_addr(log, 0).as_deref(), Some("127.0.0.1:41000"));
        let second = log.find("stopping").expect("marker") as u64;
        assert_eq!(
            listening_addr(log, second).as_deref(),
            Some("127.0.0.1:41001")
        );
        assert_eq!(listening_addr("nothing", 0), None);
    }

    #[test]
    fn the_blob_gate_holds_blob_downloads_only_while_closed() {
        use std::io::{Read, Write};
        // An upstream that answers every request head with a fixed 200.
        let upstream = TcpListener::bind("127.0.0.1:0").expect("bind");
        let up_addr = upstream.local_addr().expect("addr").to_string();
        std::thread::spawn(move || {
            for conn in upstream.incoming() {
                let Ok(mut conn) = conn else { return };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    let mut seen = Vec::new();
                    while let Ok(n) = conn.read(&mut buf) {
                        if n == 0 {
                            return;
                        }
                        seen.extend_from_slice(&buf[..n]);
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            let _ = conn.write_all(
                                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                            );
                        }
                    }
                });
            }
        });
        let gate = BlobGate::start(&up_addr);
        let get = |path: &str| http::get(gate.addr(), path, &[]).map(|r| r.status);
        assert_eq!(get("/v2/a/blobs/sha256:00").expect("open gate"), 200);
        gate.close();
        assert_eq!(get("/v2/a/manifests/latest").expect("not a blob"), 200);
        let addr = gate.addr().to_string();
        let held = std::thread::spawn(move || http::get(&addr, "/v2/a/blobs/sha256:11", &[]));
        assert!(gate.wait_for_waiting(Duration::from_secs(10)));
        assert_eq!(gate.held(), 1);
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            !held.is_finished(),
            "the blob download went through a closed gate"
        );
        gate.open();
        let r = held.join().expect("thread").expect("after opening");
        assert_eq!(r.status, 200);
    }

    #[test]
    fn the_config_names_secrets_by_environment_variable_only() {
        let mut o = ServiceOptions::new(Path::new("/db/advisories.db"));
        o.port = Some(4242);
        o.registry("local", "http://127.0.0.1:5000", "very-secret")
            .tenant("a", &[("local", "team-a")]);
        o.registries[0].creds = Some(("u".into(), "pw-secret".into()));
        let svc = ServiceHarness {
            bin: PathBuf::from("/nonexistent"),
            dir: tempfile::tempdir().expect("tempdir"),
            options: o,
            env: Vec::new(),
            child: None,
            addr: String::new(),
        };
        let t = svc.config_toml();
        assert!(t.contains("listen = \"127.0.0.1:4242\""), "{t}");
        assert!(
            t.contains("webhook_secret_env = \"BULKHEAD_TEST_WEBHOOK_0\""),
            "{t}"
        );
        assert!(
            t.contains("password_env = \"BULKHEAD_TEST_REGISTRY_PASSWORD_0\""),
            "{t}"
        );
        assert!(
            t.contains("owns = [{ registry = \"local\", prefix = \"team-a\" }]"),
            "{t}"
        );
        assert!(
            !t.contains("very-secret") && !t.contains("pw-secret"),
            "{t}"
        );
    }
}

//! A real OCI registry (Debian's `docker-registry`, distribution 2.8) on loopback, one per
//! test, with its own config, temp storage and log.
//!
//! ```no_run
//! use bulkhead_test_artifacts::registry::{Auth, Registry};
//! let reg = Registry::start(Auth::htpasswd("scanner", "s3cret"));
//! println!("{} {:?}", reg.addr(), reg.tags("tiny"));
//! ```
//!
//! Gotchas handled here (see the registry lab notes): Debian's default config is never used
//! (it binds all interfaces and its htpasswd path is a directory); `REGISTRY_*` environment
//! variables, which override the file, are removed from the child's environment; the port is
//! `127.0.0.1:0` and read back from the log; htpasswd entries are bcrypt (`htpasswd -B`), the
//! only kind distribution accepts; the child is killed *and reaped* (`wait`) so no zombie
//! keeps looking alive and the port is free for a restart.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::http::{self, Response};
use crate::token::{self, TokenPolicy, TokenServer};

/// The registry binary of Debian's `docker-registry` package.
pub const BINARY: &str = "/usr/bin/docker-registry";

/// The external programs a registry test needs (for [`crate::require_tools`]).
pub const TOOLS: &[&str] = &[BINARY, "skopeo", "htpasswd", "openssl"];

/// How long to wait for the registry to listen and answer `/v2/` (it takes ~40-170 ms).
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// Authentication of a test registry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Auth {
    /// Anyone may push and pull.
    #[default]
    None,
    /// HTTP Basic against an htpasswd file with one bcrypt entry.
    Htpasswd {
        /// User name.
        user: String,
        /// Password.
        pass: String,
    },
    /// Bearer tokens from an in-process token server (see [`crate::token`]).
    Token {
        /// The user that may push and pull everything.
        user: String,
        /// Its password.
        pass: String,
        /// Repositories anonymous clients may pull (`"*"` = all); they never push.
        anonymous_pull: Vec<String>,
    },
}

impl Auth {
    /// [`Auth::Htpasswd`] from string slices.
    pub fn htpasswd(user: &str, pass: &str) -> Auth {
        Auth::Htpasswd {
            user: user.into(),
            pass: pass.into(),
        }
    }

    /// [`Auth::Token`] from string slices.
    pub fn token(user: &str, pass: &str, anonymous_pull: &[&str]) -> Auth {
        Auth::Token {
            user: user.into(),
            pass: pass.into(),
            anonymous_pull: anonymous_pull.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// The user and password, if this mode has them.
    pub fn creds(&self) -> Option<(&str, &str)> {
        match self {
            Auth::None => None,
            Auth::Htpasswd { user, pass } | Auth::Token { user, pass, .. } => Some((user, pass)),
        }
    }
}

/// A `notifications` endpoint: the registry POSTs event envelopes
/// (`application/vnd.docker.distribution.events.v1+json`, `{"events": [...]}`) to `url`.
/// Non-2xx answers make it retry that envelope forever, in order, from memory only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notifications {
    /// Where to POST, e.g. `http://127.0.0.1:PORT/events`.
    pub url: String,
    /// Headers sent verbatim with every POST (e.g. `Authorization: Bearer ...`).
    pub headers: Vec<(String, String)>,
    /// Drop blob events and all `pull` events (HEAD probes fire `pull` too), so only
    /// manifest pushes, mounts and deletes arrive.
    pub manifest_pushes_only: bool,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Failures before the registry backs off.
    pub threshold: u32,
    /// Back-off between retries.
    pub backoff: Duration,
}

impl Notifications {
    /// An endpoint at `url` with no headers, all events, 1 s timeout, threshold 3, 1 s
    /// back-off (the values the lab measured with).
    pub fn new(url: &str) -> Notifications {
        Notifications {
            url: url.into(),
            headers: Vec::new(),
            manifest_pushes_only: false,
            timeout: Duration::from_secs(1),
            threshold: 3,
            backoff: Duration::from_secs(1),
        }
    }

    /// Adds a header sent with every POST.
    pub fn header(mut self, name: &str, value: &str) -> Notifications {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Everything [`Registry::start_with`] can set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Authentication mode.
    pub auth: Auth,
    /// Optional webhook endpoint.
    pub notifications: Option<Notifications>,
}

/// A running registry. Killed and reaped on drop; its temp dir (config, storage, log,
/// htpasswd, token key) is removed then.
pub struct Registry {
    dir: TempDir,
    options: Options,
    addr: String,
    child: Option<Child>,
    token: Option<TokenServer>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("addr", &self.addr)
            .field("dir", &self.dir.path())
            .field("auth", &self.options.auth)
            .finish()
    }
}

impl Registry {
    /// Starts a registry with `auth` and no notifications; panics (with the log) if it does
    /// not come up.
    pub fn start(auth: Auth) -> Registry {
        Registry::start_with(Options {
            auth,
            notifications: None,
        })
    }

    /// Starts a registry with `options`; panics (with the log) if it does not come up.
    pub fn start_with(options: Options) -> Registry {
        Registry::try_start_with(options)
            .unwrap_or_else(|e| panic!("starting the test registry: {e}"))
    }

    /// Starts a registry with `options`.
    pub fn try_start_with(options: Options) -> io::Result<Registry> {
        let dir = tempfile::Builder::new()
            .prefix("bulkhead-registry-")
            .tempdir()?;
        std::fs::create_dir(dir.path().join("storage"))?;
        let token = match &options.auth {
            Auth::Token {
                user,
                pass,
                anonymous_pull,
            } => Some(TokenServer::start(
                dir.path(),
                TokenPolicy {
                    user: user.clone(),
                    pass: pass.clone(),
                    anonymous_pull: anonymous_pull.clone(),
                },
            )?),
            Auth::Htpasswd { user, pass } => {
                write_htpasswd(&dir.path().join("htpasswd"), user, pass)?;
                None
            }
            Auth::None => None,
        };
        let mut reg = Registry {
            dir,
            options,
            addr: "127.0.0.1:0".into(),
            child: None,
            token,
        };
        reg.spawn()?;
        Ok(reg)
    }

    /// `127.0.0.1:PORT`, the registry's address (also what skopeo and image references use).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The authentication mode.
    pub fn auth(&self) -> &Auth {
        &self.options.auth
    }

    /// The user and password that may push, if the registry has auth.
    pub fn creds(&self) -> Option<(&str, &str)> {
        self.options.auth.creds()
    }

    /// The token server, for [`Auth::Token`] registries.
    pub fn token_server(&self) -> Option<&TokenServer> {
        self.token.as_ref()
    }

    /// The registry's storage root (`storage.filesystem.rootdirectory`).
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The config file written for this registry.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("registry.yml")
    }

    /// The registry's log so far (stdout and stderr of every run, appended).
    pub fn log(&self) -> String {
        std::fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The registry process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the registry (kill and reap) and starts it again with the same config, storage
    /// and address. Its in-memory state (e.g. undelivered notifications) is lost, as in a
    /// real restart. Panics (with the log) if it does not come back.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(e) = self.spawn() {
            panic!("restarting the test registry: {e}");
        }
    }

    /// Kills and reaps the registry process; [`Registry::restart`] brings it back.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            // wait() reaps it: a killed child stays a zombie until its parent waits, and a
            // zombie still answers kill(pid, 0) as if it were alive.
            let _ = child.wait();
        }
    }

    /// `GET path` as the registry's user (Basic for htpasswd, the Bearer challenge flow for
    /// token auth, nothing without auth). Panics on connection errors.
    pub fn get(&self, path: &str) -> Response {
        self.get_as(path, self.creds(), &[])
            .unwrap_or_else(|e| panic!("GET {path} from {}: {e}\nlog:\n{}", self.addr, self.log()))
    }

    /// `GET path` without credentials (for a token registry: with an anonymous token).
    /// Panics on connection errors.
    pub fn get_anonymous(&self, path: &str) -> Response {
        self.get_as(path, None, &[])
            .unwrap_or_else(|e| panic!("GET {path} from {}: {e}\nlog:\n{}", self.addr, self.log()))
    }

    /// `GET path` with `creds` and extra `headers`, answering the registry's auth challenge
    /// the way a registry client does: Basic credentials for a `Basic` challenge; for a
    /// `Bearer` challenge, a token from its realm for the challenged scope (anonymous when
    /// `creds` is `None`), then the request again with that token.
    pub fn get_as(
        &self,
        path: &str,
        creds: Option<(&str, &str)>,
        headers: &[(&str, &str)],
    ) -> io::Result<Response> {
        let first = http::get(&self.addr, path, headers)?;
        if first.status != 401 {
            return Ok(first);
        }
        let Some(challenge) = first.header("WWW-Authenticate") else {
            return Ok(first);
        };
        let (scheme, params) = http::parse_challenge(challenge);
        let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let auth = if scheme.eq_ignore_ascii_case("basic") {
            match creds {
                Some((u, p)) => http::basic_auth(u, p),
                None => return Ok(first),
            }
        } else if scheme.eq_ignore_ascii_case("bearer") {
            let realm = param("realm")
                .ok_or_else(|| io::Error::other(format!("no realm in {challenge:?}")))?;
            let (realm_addr, realm_path) = http::split_url(realm)
                .ok_or_else(|| io::Error::other(format!("unsupported realm {realm:?}")))?;
            let mut query = Vec::new();
            if let Some(s) = param("service") {
                query.push(format!("service={}", http::percent_encode(s)));
            }
            if let Some(s) = param("scope") {
                query.push(format!("scope={}", http::percent_encode(s)));
            }
            let basic = creds.map(|(u, p)| http::basic_auth(u, p));
            let token_headers: Vec<(&str, &str)> = basic
                .as_deref()
                .map(|b| vec![("Authorization", b)])
                .unwrap_or_default();
            let token_resp = http::get(
                &realm_addr,
                &format!("{realm_path}?{}", query.join("&")),
                &token_headers,
            )?;
            if token_resp.status != 200 {
                return Ok(token_resp);
            }
            let token = token_resp.json()?["token"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| io::Error::other(format!("no token in {}", token_resp.text())))?;
            format!("Bearer {token}")
        } else {
            return Ok(first);
        };
        let mut with_auth: Vec<(&str, &str)> = headers.to_vec();
        with_auth.push(("Authorization", &auth));
        http::get(&self.addr, path, &with_auth)
    }

    /// The tags of repository `name` (sorted; the registry's order is not), as the
    /// registry's user. Empty when the repository does not exist.
    pub fn tags(&self, name: &str) -> Vec<String> {
        let resp = self.get(&format!("/v2/{name}/tags/list"));
        if resp.status == 404 {
            return Vec::new();
        }
        assert_eq!(resp.status, 200, "tags/list of {name}: {}", resp.text());
        let json = resp.json().unwrap_or_else(|e| panic!("{e}"));
        let mut tags: Vec<String> = json["tags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        tags.sort();
        tags
    }

    /// The repositories in `/v2/_catalog` (sorted), as the registry's user.
    pub fn catalog(&self) -> Vec<String> {
        let resp = self.get("/v2/_catalog");
        assert_eq!(resp.status, 200, "_catalog: {}", resp.text());
        let json = resp.json().unwrap_or_else(|e| panic!("{e}"));
        let mut repos: Vec<String> = json["repositories"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        repos.sort();
        repos
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    /// Writes the config (with the current address: port 0 the first time, the chosen port
    /// on restarts) and starts the process, then waits until it is ready.
    fn spawn(&mut self) -> io::Result<()> {
        let config = self.config_yaml();
        std::fs::write(self.config_path(), &config)?;
        let log_path = self.log_path();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let log_start = log.metadata()?.len();
        // If the test process dies without dropping the Registry (killed by a timeout, say),
        // the kernel kills the registry too: `setpriv --pdeathsig KILL` (util-linux) execs
        // the registry with a parent-death signal, which survives the exec.
        let mut cmd = match crate::find_program("setpriv") {
            Some(setpriv) => {
                let mut c = Command::new(setpriv);
                c.args(["--pdeathsig", "KILL", "--", BINARY]);
                c
            }
            None => Command::new(BINARY),
        };
        cmd.arg("serve")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .current_dir(self.dir.path());
        // REGISTRY_* variables override the config file (REGISTRY_HTTP_ADDR moves the
        // listener): none may leak in from the developer's or CI's environment.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("REGISTRY_") {
                cmd.env_remove(k);
            }
        }
        let child = spawn_from_keeper(cmd)
            .map_err(|e| io::Error::new(e.kind(), format!("running {BINARY}: {e}")))?;
        self.child = Some(child);
        match self.wait_ready(log_start) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.stop();
                Err(io::Error::other(format!(
                    "{e}\nconfig:\n{config}\nlog:\n{}",
                    self.log()
                )))
            }
        }
    }

    fn wait_ready(&mut self, log_start: u64) -> io::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut listening = None;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                return Err(io::Error::other(format!(
                    "the registry exited with {status}"
                )));
            }
            if listening.is_none() {
                listening = listening_addr(&self.log(), log_start);
                if let Some(a) = &listening {
                    self.addr = a.clone();
                }
            }
            if listening.is_some() {
                // /v2/ answers 200 without auth and 401 with it: both mean it serves.
                if let Ok(r) = http::get(&self.addr, "/v2/", &[])
                    && (r.status == 200 || r.status == 401)
                {
                    return self.check_notifications();
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(io::Error::other(format!(
            "not ready after {READY_TIMEOUT:?} (listening on: {listening:?})"
        )))
    }

    /// Unknown config keys are silently ignored, so a typo would disable the webhook without
    /// a word: the registry logs `configuring endpoint NAME (URL)` when it took the endpoint.
    fn check_notifications(&self) -> io::Result<()> {
        if let Some(n) = &self.options.notifications {
            let want = format!("configuring endpoint {ENDPOINT_NAME} ({})", n.url);
            if !self.log().contains(&want) {
                return Err(io::Error::other(format!("the log does not say {want:?}")));
            }
        }
        Ok(())
    }

    fn config_yaml(&self) -> String {
        let q = |s: &str| serde_json::Value::from(s).to_string(); // JSON strings are YAML scalars
        let dir = self.dir.path();
        let mut y = String::new();
        let _ = writeln!(y, "version: 0.1");
        let _ = writeln!(
            y,
            "log:\n  level: info\n  formatter: text\n  fields:\n    service: registry"
        );
        let _ = writeln!(
            y,
            "storage:\n  filesystem:\n    rootdirectory: {}",
            q(&self.storage().to_string_lossy())
        );
        let _ = writeln!(
            y,
            "  delete:\n    enabled: true\n  cache:\n    blobdescriptor: inmemory"
        );
        let _ = writeln!(
            y,
            "  maintenance:\n    uploadpurging:\n      enabled: false"
        );
        let _ = writeln!(y, "http:\n  addr: {}", q(&self.addr));
        let _ = writeln!(
            y,
            "  secret: bulkhead-test-secret\n  headers:\n    X-Content-Type-Options: [nosniff]"
        );
        match &self.options.auth {
            Auth::None => {}
            Auth::Htpasswd { .. } => {
                let path = dir.join("htpasswd");
                let _ = writeln!(
                    y,
                    "auth:\n  htpasswd:\n    realm: bulkhead-test\n    path: {}",
                    q(&path.to_string_lossy())
                );
            }
            Auth::Token { .. } => {
                if let Some(t) = &self.token {
                    let _ = writeln!(y, "auth:\n  token:\n    realm: {}", q(&t.realm()));
                    let _ = writeln!(
                        y,
                        "    service: {}\n    issuer: {}",
                        q(token::SERVICE),
                        q(token::ISSUER)
                    );
                    let _ = writeln!(y, "    rootcertbundle: {}", q(&t.cert().to_string_lossy()));
                }
            }
        }
        if let Some(n) = &self.options.notifications {
            let _ = writeln!(
                y,
                "notifications:\n  events:\n    includereferences: true\n  endpoints:"
            );
            let _ = writeln!(y, "    - name: {ENDPOINT_NAME}\n      url: {}", q(&n.url));
            if !n.headers.is_empty() {
                let _ = writeln!(y, "      headers:");
                for (k, v) in &n.headers {
                    let _ = writeln!(y, "        {}: [{}]", q(k), q(v));
                }
            }
            let _ = writeln!(y, "      timeout: {}ms", n.timeout.as_millis());
            let _ = writeln!(y, "      threshold: {}", n.threshold);
            let _ = writeln!(y, "      backoff: {}ms", n.backoff.as_millis());
            if n.manifest_pushes_only {
                let _ = writeln!(y, "      ignoredmediatypes: [application/octet-stream]");
                let _ = writeln!(y, "      ignore:\n        actions: [pull]");
            }
        }
        y
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Spawns `cmd` from one thread that lives as long as the test process. The parent-death
/// signal fires when the *thread* that forked the child ends, and test threads end with
/// their test: a registry kept in a `static` and shared by several tests must not die with
/// the first one.
fn spawn_from_keeper(cmd: Command) -> io::Result<Child> {
    type Request = (Command, mpsc::Sender<io::Result<Child>>);
    static KEEPER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        // If the thread cannot start, requests fail below with a clear error.
        let _ = std::thread::Builder::new()
            .name("registry-keeper".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            });
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    keeper
        .lock()
        .map_err(|_| io::Error::other("registry keeper lock poisoned"))?
        .send((cmd, reply_tx))
        .map_err(|_| io::Error::other("registry keeper thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("registry keeper thread is gone"))?
}

/// The `name` of the notifications endpoint in the config.
pub const ENDPOINT_NAME: &str = "bulkhead";

/// The address in the first `listening on 127.0.0.1:NNNNN` line after byte `from` of the log.
fn listening_addr(log: &str, from: u64) -> Option<String> {
    let tail = log.get(usize::try_from(from).ok()?..)?;
    let i = tail.find("listening on ")?;
    let rest = &tail[i + "listening on ".len()..];
    let addr: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    let port = addr.rsplit_once(':')?.1;
    (!port.is_empty() && port != "0").then_some(addr)
}

/// Writes an htpasswd file with one bcrypt entry made by `htpasswd -Bbn` (distribution
/// rejects the MD5 `$apr1$` entries that htpasswd makes by default).
fn write_htpasswd(path: &Path, user: &str, pass: &str) -> io::Result<()> {
    let out = Command::new("htpasswd")
        .args(["-Bbn", user, pass])
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("running htpasswd (apache2-utils): {e}")))?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "htpasswd -Bbn failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let mut f = File::create(path)?;
    io::Write::write_all(&mut f, &out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_line_is_found_after_the_offset() {
        let log = "time=\"x\" level=info msg=\"listening on 127.0.0.1:40001\"\n\
                   time=\"y\" level=info msg=\"listening on 127.0.0.1:40002\" go.version=go1.19\n";
        assert_eq!(listening_addr(log, 0).as_deref(), Some("127.0.0.1:40001"));
        let second = log.find("time=\"y\"").expect("second line") as u64;
        assert_eq!(
            listening_addr(log, second).as_deref(),
            Some("127.0.0.1:40002")
        );
        assert_eq!(listening_addr("nothing here", 0), None);
    }
}

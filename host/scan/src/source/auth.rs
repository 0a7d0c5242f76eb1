//! Registry credentials, found the way `docker`, `podman` and `skopeo` find them.
//!
//! Precedence (first hit wins):
//! 1. explicit credentials: `--username/--password`, `--registry-token`, or the environment
//!    ([`from_env`]: `BULKHEAD_REGISTRY_TOKEN`, or `BULKHEAD_USERNAME` + `BULKHEAD_PASSWORD`);
//! 2. the config files of [`config_files`], in order: `$REGISTRY_AUTH_FILE`,
//!    `$DOCKER_CONFIG/config.json` (else `~/.docker/config.json`),
//!    `$XDG_RUNTIME_DIR/containers/auth.json`, `$XDG_CONFIG_HOME/containers/auth.json`
//!    (else `~/.config/containers/auth.json`). A file that does not exist is skipped.
//!
//! Within one file, as docker does: a `credHelpers` entry for the registry, else `credsStore`,
//! names a helper `docker-credential-NAME` that is run with `get` and the server URL on stdin;
//! without a helper (or when the helper has nothing for this registry) the `auths` entry is used.
//!
//! An identity token (OAuth2 refresh token: `identitytoken` in `auths`, or a helper answering
//! with username `<token>`) is returned as `Basic { username: "<token>", password: TOKEN }`,
//! which is how the credential-helper protocol itself encodes it; see
//! [`Credential::is_identity_token`]. It is *not* a [`Credential::Bearer`]: a registry does not
//! accept a refresh token as an access token. A client that implements the OAuth2
//! `grant_type=refresh_token` exchange recognises it by that username; `oci-client` does not and
//! sends it as HTTP Basic to the token endpoint, which is what registries that hand out
//! identity tokens (e.g. Azure Container Registry) accept from `docker login` as well.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;

use super::SourceError;

/// The username with which docker's credential helpers mark an identity token.
pub const IDENTITY_TOKEN_USERNAME: &str = "<token>";

/// How long a credential helper may take. Helpers may go to the network (ecr-login, gcloud) or
/// wake a keyring, so this is generous; it exists so that a hung helper cannot hang a scan.
pub const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// The key docker uses for Docker Hub in `auths` and with credential stores.
const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";
/// Host names that all mean Docker Hub.
const DOCKER_HUB_ALIASES: &[&str] = &["docker.io", "index.docker.io", "registry-1.docker.io"];
/// A config file is a few KB; anything this large is not one.
const MAX_CONFIG_BYTES: u64 = 4 << 20;
/// A helper answers with one small JSON object.
const MAX_HELPER_OUTPUT: usize = 1 << 20;
/// What `docker-credential-helpers` prints (on stdout, exit status 1) when it has nothing.
const HELPER_NOT_FOUND: &str = "credentials not found in native keychain";

/// A credential for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// Username and password (or a personal access token used as one). Username
    /// [`IDENTITY_TOKEN_USERNAME`] marks an identity (refresh) token in `password`.
    Basic { username: String, password: String },
    /// A bearer token used as is (`--registry-token`, `registrytoken` in `auths`).
    Bearer(String),
}

impl Credential {
    /// Whether this is an identity token (`Basic` with username `<token>`), which a client that
    /// speaks OAuth2 should exchange with `grant_type=refresh_token` rather than send as Basic.
    pub fn is_identity_token(&self) -> bool {
        matches!(self, Credential::Basic { username, .. } if username == IDENTITY_TOKEN_USERNAME)
    }
}

impl std::fmt::Debug for Credential {
    // Secrets are never printed, not even in debug logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credential::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

/// Credentials for `registry` (a `host[:port]` as in the reference, `docker.io` for Docker Hub;
/// a `https://host/v1/` form is accepted too): `explicit` (flags/env) wins; else the config
/// files of [`config_files`], with credential helpers found on `$PATH`. `None` means anonymous.
///
/// Credential helpers are run synchronously (up to [`HELPER_TIMEOUT`]); async callers should
/// call this from `spawn_blocking`.
pub fn lookup(
    registry: &str,
    explicit: Option<&Credential>,
) -> Result<Option<Credential>, SourceError> {
    if let Some(c) = explicit {
        return Ok(Some(c.clone()));
    }
    lookup_in(&config_files(), registry, &Helpers::from_env())
}

/// Explicit credentials from the environment:
/// - `BULKHEAD_REGISTRY_TOKEN`: a bearer token sent to the registry as is;
/// - `BULKHEAD_USERNAME` and `BULKHEAD_PASSWORD`: HTTP Basic (the password may be a personal
///   access token).
///
/// Empty variables count as unset. Setting only one of username/password, or a token together
/// with a username, is an error rather than a silent guess.
pub fn from_env() -> Result<Option<Credential>, SourceError> {
    let var = |k: &str| std::env::var(k).ok();
    from_parts(
        var("BULKHEAD_USERNAME"),
        var("BULKHEAD_PASSWORD"),
        var("BULKHEAD_REGISTRY_TOKEN"),
    )
    .map_err(|message| SourceError::Invalid {
        what: "BULKHEAD_* environment".into(),
        message,
    })
}

/// Build an explicit credential from a username, password and token (as given by flags or the
/// environment); empty strings count as absent. `Err` says which combination is wrong.
pub fn from_parts(
    username: Option<String>,
    password: Option<String>,
    token: Option<String>,
) -> Result<Option<Credential>, String> {
    let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
    match (nonempty(username), nonempty(password), nonempty(token)) {
        (None, None, None) => Ok(None),
        (None, None, Some(t)) => Ok(Some(Credential::Bearer(t))),
        (Some(username), Some(password), None) => {
            Ok(Some(Credential::Basic { username, password }))
        }
        (Some(_), None, None) => Err("a username needs a password".into()),
        (None, Some(_), None) => Err("a password needs a username".into()),
        (_, _, Some(_)) => {
            Err("give either a registry token or a username and password, not both".into())
        }
    }
}

/// The config files consulted by [`lookup`], in order, from the environment. Files that do
/// not exist are listed too (and skipped when read).
pub fn config_files() -> Vec<PathBuf> {
    config_files_from(|k| std::env::var_os(k), dirs::home_dir())
}

/// [`config_files`] over a given environment and home directory.
fn config_files_from(
    get: impl Fn(&str) -> Option<OsString>,
    home: Option<PathBuf>,
) -> Vec<PathBuf> {
    let var = |k: &str| get(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let mut files = Vec::new();
    files.extend(var("REGISTRY_AUTH_FILE"));
    match var("DOCKER_CONFIG") {
        Some(dir) => files.push(dir.join("config.json")),
        None => files.extend(home.as_ref().map(|h| h.join(".docker/config.json"))),
    }
    files.extend(var("XDG_RUNTIME_DIR").map(|d| d.join("containers/auth.json")));
    match var("XDG_CONFIG_HOME") {
        Some(dir) => files.push(dir.join("containers/auth.json")),
        None => files.extend(
            home.as_ref()
                .map(|h| h.join(".config/containers/auth.json")),
        ),
    }
    let mut seen = std::collections::HashSet::new();
    files.retain(|f| seen.insert(f.clone()));
    files
}

/// Where credential helpers are looked for, and how long they may run.
#[derive(Clone, Debug)]
pub struct Helpers {
    /// Directories searched for `docker-credential-NAME`, in order.
    pub search_path: Vec<PathBuf>,
    /// Time limit for one helper run.
    pub timeout: Duration,
}

impl Helpers {
    /// The absolute directories of `$PATH`. Empty and relative entries are dropped so that a
    /// config file cannot make us run a program from the current directory.
    pub fn from_env() -> Self {
        let search_path = std::env::var_os("PATH")
            .map(|p| {
                std::env::split_paths(&p)
                    .filter(|d| d.is_absolute())
                    .collect()
            })
            .unwrap_or_default();
        Helpers {
            search_path,
            timeout: HELPER_TIMEOUT,
        }
    }
}

/// [`lookup`] without explicit credentials, over the given config files and helpers: the first
/// file that has a credential for `registry` wins; missing files are skipped.
pub fn lookup_in(
    files: &[PathBuf],
    registry: &str,
    helpers: &Helpers,
) -> Result<Option<Credential>, SourceError> {
    for file in files {
        if let Some(c) = lookup_in_file(file, registry, helpers)? {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

/// One config file's credential for `registry`. A missing file is `Ok(None)`.
pub fn lookup_in_file(
    file: &Path,
    registry: &str,
    helpers: &Helpers,
) -> Result<Option<Credential>, SourceError> {
    let Some(config) = read_config(file)? else {
        return Ok(None);
    };
    let registry = canonical_host(registry);
    let what = |key: &str| format!("{}: {key}", file.display());

    // The `auths` key that names this registry, if any. Docker matches keys by host name
    // (dropping scheme and path); prefer the key that is exactly the host, then one without a
    // repository path, so that `quay.io/org` scoping (podman) does not shadow a plain entry.
    let entry = config
        .auths
        .iter()
        .flatten()
        .filter(|(key, _)| canonical_host(key) == registry)
        .min_by_key(|(key, _)| (key_rank(key, &registry), key.as_str()));

    let helper = config
        .cred_helpers
        .iter()
        .flatten()
        .filter(|(key, _)| canonical_host(key) == registry)
        .min_by_key(|(key, _)| (key_rank(key, &registry), key.as_str()))
        .map(|(key, name)| (format!("credHelpers.{key:?}"), name))
        .or_else(|| {
            config
                .creds_store
                .as_ref()
                .map(|name| ("credsStore".to_string(), name))
        })
        .filter(|(_, name)| !name.is_empty());

    if let Some((field, name)) = helper {
        let context = HelperContext {
            file,
            field: &field,
            registry: &registry,
        };
        // The server URL a store has the secret under is the one `login` used: the `auths` key
        // that docker (or podman) wrote next to it; else docker's own name for the registry.
        let canonical = if registry == "docker.io" {
            DOCKER_HUB_SERVER.to_string()
        } else {
            registry.clone()
        };
        let mut urls: Vec<&str> = entry.map(|(key, _)| key.as_str()).into_iter().collect();
        if !urls.contains(&canonical.as_str()) {
            urls.push(&canonical);
        }
        for url in urls {
            if let Some(c) = run_helper(name, url, helpers, &context)? {
                return Ok(Some(c));
            }
        }
        // The helper has nothing for this registry: docker would go anonymous here; an inline
        // entry is still a better answer than none (podman's order), so fall through to it.
    }

    match entry {
        Some((key, Some(e))) => e.credential(&what(&format!("auths.{key:?}"))),
        _ => Ok(None),
    }
}

/// The subset of docker's `config.json` (and podman's `auth.json`) that matters here.
#[derive(Deserialize)]
struct ConfigFile {
    #[serde(default, alias = "Auths")]
    auths: Option<BTreeMap<String, Option<AuthEntry>>>,
    #[serde(
        default,
        rename = "credHelpers",
        alias = "CredHelpers",
        alias = "credhelpers"
    )]
    cred_helpers: Option<BTreeMap<String, String>>,
    #[serde(
        default,
        rename = "credsStore",
        alias = "CredsStore",
        alias = "credsstore"
    )]
    creds_store: Option<String>,
}

/// One `auths` entry. Docker's Go decoder matches field names case-insensitively, hence the
/// aliases for the spellings seen in the wild.
#[derive(Deserialize)]
struct AuthEntry {
    #[serde(default, alias = "Auth")]
    auth: Option<String>,
    #[serde(default, alias = "Username")]
    username: Option<String>,
    #[serde(default, alias = "Password")]
    password: Option<String>,
    #[serde(default, alias = "identityToken", alias = "IdentityToken")]
    identitytoken: Option<String>,
    #[serde(default, alias = "registryToken", alias = "RegistryToken")]
    registrytoken: Option<String>,
}

impl AuthEntry {
    /// The credential this entry holds, in the daemon's order of preference: a registry token
    /// is used as is, an identity token replaces the password, `auth` overrides the separate
    /// `username`/`password` fields (as docker's config loader does).
    fn credential(&self, what: &str) -> Result<Option<Credential>, SourceError> {
        let nonempty =
            |s: &Option<String>| s.as_deref().filter(|s| !s.is_empty()).map(str::to_string);
        if let Some(t) = nonempty(&self.registrytoken) {
            return Ok(Some(Credential::Bearer(t)));
        }
        if let Some(t) = nonempty(&self.identitytoken) {
            return Ok(Some(Credential::Basic {
                username: IDENTITY_TOKEN_USERNAME.into(),
                password: t,
            }));
        }
        if let Some(auth) = nonempty(&self.auth) {
            let invalid = |message: &str| SourceError::Invalid {
                what: what.to_string(),
                message: message.into(),
            };
            // Padding is optional in practice (hand-written files); the alphabet is standard.
            let engine = base64::engine::GeneralPurpose::new(
                &base64::alphabet::STANDARD,
                base64::engine::GeneralPurposeConfig::new()
                    .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
            );
            let decoded = engine
                .decode(auth.trim())
                .map_err(|_| invalid("\"auth\" is not base64"))?;
            let decoded = String::from_utf8(decoded)
                .map_err(|_| invalid("\"auth\" does not decode to UTF-8"))?;
            let (username, password) = decoded
                .split_once(':')
                .ok_or_else(|| invalid("\"auth\" does not decode to \"username:password\""))?;
            return Ok(Some(Credential::Basic {
                username: username.into(),
                password: password.into(),
            }));
        }
        if let Some(username) = nonempty(&self.username) {
            return Ok(Some(Credential::Basic {
                username,
                password: self.password.clone().unwrap_or_default(),
            }));
        }
        Ok(None)
    }
}

/// Read and parse a config file; `None` if it does not exist.
fn read_config(file: &Path) -> Result<Option<ConfigFile>, SourceError> {
    let io = |e: std::io::Error| SourceError::Io {
        what: file.display().to_string(),
        message: e.to_string(),
    };
    let f = match std::fs::File::open(file) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        // Docker, too, only warns: a root-owned file left by `sudo docker login` must not stop
        // anonymous pulls.
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            tracing::warn!(file = %file.display(), "cannot read registry credentials: {e}");
            return Ok(None);
        }
        Err(e) => return Err(io(e)),
    };
    let mut bytes = Vec::new();
    f.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(SourceError::TooLarge {
            what: file.display().to_string(),
            limit_name: "registry config file size".into(),
            limit: MAX_CONFIG_BYTES,
        });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        // Docker treats an empty config file as an empty config.
        return Ok(None);
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| SourceError::Invalid {
            what: file.display().to_string(),
            message: format!("not a registry config file: {e}"),
        })
}

/// The registry host named by a reference host or a config key: scheme and path dropped,
/// lower-cased, Docker Hub's aliases folded into `docker.io`.
fn canonical_host(key: &str) -> String {
    let key = key.trim();
    let lower = key.to_ascii_lowercase();
    let rest = ["https://", "http://"]
        .iter()
        .find_map(|s| lower.strip_prefix(s))
        .unwrap_or(&lower);
    let host = rest.split('/').next().unwrap_or_default();
    if DOCKER_HUB_ALIASES.contains(&host) {
        "docker.io".to_string()
    } else {
        host.to_string()
    }
}

/// Preference among keys that name the same registry: the bare host, then a URL without a
/// repository path (`https://host`, `https://host/v1/`), then repository-scoped keys.
fn key_rank(key: &str, registry: &str) -> u8 {
    let lower = key.trim().to_ascii_lowercase();
    if lower == registry {
        return 0;
    }
    let rest = ["https://", "http://"]
        .iter()
        .find_map(|s| lower.strip_prefix(s))
        .unwrap_or(&lower);
    match rest.split_once('/') {
        None | Some((_, "" | "v1/" | "v1" | "v2/" | "v2")) => 1,
        Some(_) => 2,
    }
}

/// What a helper error message needs to name: the helper's origin and the registry.
struct HelperContext<'a> {
    file: &'a Path,
    field: &'a str,
    registry: &'a str,
}

/// Run `docker-credential-NAME get` with `server_url` on stdin. `Ok(None)` when the helper has
/// no credentials for it. No shell is involved; output is bounded; secrets never reach errors.
fn run_helper(
    name: &str,
    server_url: &str,
    helpers: &Helpers,
    ctx: &HelperContext,
) -> Result<Option<Credential>, SourceError> {
    let program = format!("docker-credential-{name}");
    let what = format!(
        "{program} ({} in {}, for registry {})",
        ctx.field,
        ctx.file.display(),
        ctx.registry
    );
    // The name comes from a file; it must not be able to point outside the search path.
    if name.is_empty()
        || name.starts_with('.')
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(SourceError::Invalid {
            what,
            message: format!("{name:?} is not a credential helper name"),
        });
    }
    let fail = |message: String| SourceError::Io {
        what: what.clone(),
        message,
    };
    let exe = helpers
        .search_path
        .iter()
        .map(|dir| dir.join(&program))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| {
            fail(format!(
                "not found in PATH; install it, or remove {} from {}",
                ctx.field,
                ctx.file.display()
            ))
        })?;

    tracing::debug!(helper = %exe.display(), registry = ctx.registry, "asking credential helper");
    let mut child = spawn(&exe).map_err(|e| fail(format!("cannot run {}: {e}", exe.display())))?;

    // Readers run on their own threads so that a helper filling one pipe cannot deadlock us, and
    // report through a channel so that a grandchild keeping a pipe open cannot hang us either.
    let (tx, rx) = mpsc::channel();
    for (is_stdout, pipe) in [
        (
            true,
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ),
        (
            false,
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let out = pipe.map_or(Ok(Vec::new()), read_bounded);
            // The receiver may have given up already; nothing to do then.
            let _ = tx.send((is_stdout, out));
        });
    }
    drop(tx);
    if let Some(mut stdin) = child.stdin.take() {
        // On a thread too: a helper that never reads must not block us on a full pipe. One that
        // exits without reading closes the pipe: not our error to report (its exit status is).
        let input = server_url.to_string();
        std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
    }

    let deadline = Instant::now() + helpers.timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!(
                    "did not answer within {} s",
                    helpers.timeout.as_secs_f32()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(fail(format!("waiting for it failed: {e}"))),
        }
    };
    let (mut stdout, mut stderr) = (None, None);
    // Output still arriving after exit comes from a grandchild; give it a moment, not forever.
    let grace = Instant::now() + Duration::from_secs(1);
    while stdout.is_none() || stderr.is_none() {
        match rx.recv_timeout(grace.saturating_duration_since(Instant::now())) {
            Ok((true, out)) => stdout = Some(out),
            Ok((false, out)) => stderr = Some(out),
            Err(_) => break,
        }
    }
    // A pipe still open after the grace period (held by a grandchild) counts as empty.
    let (stdout, stderr) = (
        stdout.unwrap_or(Ok(Vec::new())),
        stderr.unwrap_or(Ok(Vec::new())),
    );
    let (Ok(stdout), Ok(stderr)) = (stdout, stderr) else {
        return Err(fail(format!("printed more than {MAX_HELPER_OUTPUT} bytes")));
    };

    if !status.success() {
        // Helpers print their error on stdout (the docker-credential-helpers protocol), some on
        // stderr; a failing helper has no secret to print, so both are shown.
        let out = String::from_utf8_lossy(&stdout);
        let out = out.trim();
        if out.eq_ignore_ascii_case(HELPER_NOT_FOUND) {
            return Ok(None);
        }
        let err = String::from_utf8_lossy(&stderr);
        let message = [out, err.trim()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        let message = truncate(&message, 500);
        return Err(fail(format!(
            "{status}{}{message}",
            if message.is_empty() { "" } else { ": " }
        )));
    }

    #[derive(Deserialize)]
    struct Answer {
        #[serde(default, alias = "username")]
        #[serde(rename = "Username")]
        username: String,
        #[serde(default, alias = "secret")]
        #[serde(rename = "Secret")]
        secret: String,
    }
    // serde's messages may quote the offending value, which may be the secret: report only the
    // kind of error and its position.
    let answer: Answer = serde_json::from_slice(&stdout).map_err(|e| {
        fail(format!(
            "answered with something that is not {{\"Username\", \"Secret\"}} JSON ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })?;
    if answer.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credential::Basic {
        username: answer.username,
        password: answer.secret,
    }))
}

/// Start the helper with all three pipes.
fn spawn(exe: &Path) -> std::io::Result<Child> {
    let mut tries = 0;
    loop {
        match Command::new(exe)
            .arg("get")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            // ETXTBSY: another thread of this process forked while the helper file was open for
            // writing (it was just installed, typically by a test); it clears at that child's exec.
            Err(e) if e.kind() == ErrorKind::ExecutableFileBusy && tries < 20 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(25));
            }
            other => return other,
        }
    }
}

/// Read all of `r`, keeping at most [`MAX_HELPER_OUTPUT`] bytes; `Err(())` if there was more.
/// Reading goes on to the end so that the writer is never blocked on a full pipe.
fn read_bounded(mut r: Box<dyn Read + Send>) -> Result<Vec<u8>, ()> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    let mut overflow = false;
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) if !overflow && kept.len() + n <= MAX_HELPER_OUTPUT => {
                kept.extend_from_slice(&buf[..n])
            }
            Ok(_) => overflow = true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if overflow { Err(()) } else { Ok(kept) }
}

/// At most `max` characters of `s`, marked when cut.
fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// base64("user:pass") and base64("alice:s3cr:et"), as printed by coreutils `base64`.
    const USER_PASS: &str = "dXNlcjpwYXNz";
    const ALICE: &str = "YWxpY2U6czNjcjpldA==";

    fn basic(u: &str, p: &str) -> Credential {
        Credential::Basic {
            username: u.into(),
            password: p.into(),
        }
    }

    fn no_helpers() -> Helpers {
        Helpers {
            search_path: Vec::new(),
            timeout: Duration::from_secs(5),
        }
    }

    /// A temp dir with `config.json` holding `json`.
    fn config(json: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("config.json");
        std::fs::write(&file, json).expect("write config");
        (dir, file)
    }

    fn lookup_json(json: &str, registry: &str) -> Result<Option<Credential>, SourceError> {
        let (_dir, file) = config(json);
        lookup_in_file(&file, registry, &no_helpers())
    }

    /// Install an executable `docker-credential-NAME` shell script into `dir`.
    fn helper(dir: &Path, name: &str, body: &str) {
        let path = dir.join(format!("docker-credential-{name}"));
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write helper");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("chmod helper");
    }

    fn helpers_in(dir: &Path) -> Helpers {
        Helpers {
            search_path: vec![dir.to_path_buf()],
            timeout: Duration::from_secs(20),
        }
    }

    #[test]
    fn every_auths_key_form_matches_its_host() {
        for key in [
            "registry.example.com",
            "https://registry.example.com",
            "https://registry.example.com/v1/",
            "http://registry.example.com/v2/",
            "REGISTRY.example.com",
            "registry.example.com/some/repo",
        ] {
            let json = format!(r#"{{"auths": {{"{key}": {{"auth": "{USER_PASS}"}}}}}}"#);
            assert_eq!(
                lookup_json(&json, "registry.example.com").expect(key),
                Some(basic("user", "pass")),
                "{key}"
            );
            assert_eq!(
                lookup_json(&json, "other.example.com").expect(key),
                None,
                "{key}"
            );
        }
    }

    #[test]
    fn ports_must_match() {
        let json = format!(r#"{{"auths": {{"localhost:5000": {{"auth": "{USER_PASS}"}}}}}}"#);
        assert_eq!(
            lookup_json(&json, "localhost:5000").expect("ok"),
            Some(basic("user", "pass"))
        );
        assert_eq!(lookup_json(&json, "localhost").expect("ok"), None);
        assert_eq!(lookup_json(&json, "localhost:5001").expect("ok"), None);
        let json =
            format!(r#"{{"auths": {{"https://localhost:5000/v1/": {{"auth": "{USER_PASS}"}}}}}}"#);
        assert_eq!(
            lookup_json(&json, "localhost:5000").expect("ok"),
            Some(basic("user", "pass"))
        );
    }

    #[test]
    fn docker_hub_aliases_are_one_registry() {
        for key in [
            "https://index.docker.io/v1/",
            "docker.io",
            "index.docker.io",
            "registry-1.docker.io",
        ] {
            let json = format!(r#"{{"auths": {{"{key}": {{"auth": "{USER_PASS}"}}}}}}"#);
            for registry in [
                "docker.io",
                "index.docker.io",
                "registry-1.docker.io",
                "https://index.docker.io/v1/",
            ] {
                assert_eq!(
                    lookup_json(&json, registry).expect("ok"),
                    Some(basic("user", "pass")),
                    "{key} / {registry}"
                );
            }
            assert_eq!(lookup_json(&json, "ghcr.io").expect("ok"), None, "{key}");
        }
    }

    #[test]
    fn exact_key_beats_repository_scoped_key() {
        let json = format!(
            r#"{{"auths": {{"quay.io/aaa": {{"auth": "{USER_PASS}"}}, "quay.io": {{"auth": "{ALICE}"}}}}}}"#
        );
        assert_eq!(
            lookup_json(&json, "quay.io").expect("ok"),
            Some(basic("alice", "s3cr:et"))
        );
    }

    #[test]
    fn entry_forms() {
        // The password keeps everything after the first colon.
        let json = format!(r#"{{"auths": {{"r.io": {{"auth": "{ALICE}"}}}}}}"#);
        assert_eq!(
            lookup_json(&json, "r.io").expect("ok"),
            Some(basic("alice", "s3cr:et"))
        );
        // Unpadded base64 (hand-written files).
        let json = format!(
            r#"{{"auths": {{"r.io": {{"auth": "{}"}}}}}}"#,
            ALICE.trim_end_matches('=')
        );
        assert_eq!(
            lookup_json(&json, "r.io").expect("ok"),
            Some(basic("alice", "s3cr:et"))
        );
        // Separate fields; `auth` wins over them.
        let json = r#"{"auths": {"r.io": {"username": "bob", "password": "pw"}}}"#;
        assert_eq!(
            lookup_json(json, "r.io").expect("ok"),
            Some(basic("bob", "pw"))
        );
        let json = format!(
            r#"{{"auths": {{"r.io": {{"auth": "{USER_PASS}", "username": "bob", "password": "pw"}}}}}}"#
        );
        assert_eq!(
            lookup_json(&json, "r.io").expect("ok"),
            Some(basic("user", "pass"))
        );
        // Identity token: marked by username <token>, and preferred over `auth`.
        let json = format!(
            r#"{{"auths": {{"r.io": {{"auth": "{USER_PASS}", "identitytoken": "refresh-xyz"}}}}}}"#
        );
        let c = lookup_json(&json, "r.io").expect("ok").expect("credential");
        assert_eq!(c, basic("<token>", "refresh-xyz"));
        assert!(c.is_identity_token());
        assert!(!basic("user", "pass").is_identity_token());
        // Registry token: a bearer token, preferred over everything.
        let json = r#"{"auths": {"r.io": {"registrytoken": "bearer-abc", "identitytoken": "x"}}}"#;
        assert_eq!(
            lookup_json(json, "r.io").expect("ok"),
            Some(Credential::Bearer("bearer-abc".into()))
        );
        // Docker Desktop's empty placeholders, and null.
        assert_eq!(
            lookup_json(r#"{"auths": {"r.io": {}}}"#, "r.io").expect("ok"),
            None
        );
        assert_eq!(
            lookup_json(r#"{"auths": {"r.io": {"auth": ""}}}"#, "r.io").expect("ok"),
            None
        );
        assert_eq!(
            lookup_json(r#"{"auths": {"r.io": null}}"#, "r.io").expect("ok"),
            None
        );
        assert_eq!(
            lookup_json(r#"{"auths": null, "proxies": {}}"#, "r.io").expect("ok"),
            None
        );
        assert_eq!(lookup_json("{}", "r.io").expect("ok"), None);
        assert_eq!(lookup_json("", "r.io").expect("ok"), None);
    }

    #[test]
    fn missing_file_is_anonymous() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("config.json");
        assert_eq!(lookup_in(&[file], "r.io", &no_helpers()).expect("ok"), None);
    }

    #[test]
    fn malformed_files_are_errors_naming_the_file() {
        for json in [
            "{not json",
            r#"{"auths": []}"#,
            r#"{"auths": {"r.io": {"auth": 5}}}"#,
            r#"{"credsStore": {"x": 1}}"#,
        ] {
            let (_dir, file) = config(json);
            let err = lookup_in_file(&file, "r.io", &no_helpers()).expect_err(json);
            assert!(matches!(err, SourceError::Invalid { .. }), "{json}: {err}");
            assert!(
                err.to_string().contains(&file.display().to_string()),
                "{json}: {err}"
            );
        }
        // Bad `auth` values name the file and the key.
        for auth in ["!!!notbase64", "bm9jb2xvbg=="] {
            let (_dir, file) = config(&format!(r#"{{"auths": {{"r.io": {{"auth": "{auth}"}}}}}}"#));
            let err = lookup_in_file(&file, "r.io", &no_helpers())
                .expect_err(auth)
                .to_string();
            assert!(
                err.contains(&file.display().to_string()) && err.contains("r.io"),
                "{err}"
            );
        }
    }

    #[test]
    fn first_file_with_a_credential_wins() {
        let (_d1, empty) = config(r#"{"auths": {"other.io": {"username": "o", "password": "o"}}}"#);
        let (_d2, second) = config(r#"{"auths": {"r.io": {"username": "two", "password": "2"}}}"#);
        let (_d3, third) = config(r#"{"auths": {"r.io": {"username": "three", "password": "3"}}}"#);
        let files = [
            PathBuf::from("/nonexistent/config.json"),
            empty,
            second,
            third,
        ];
        assert_eq!(
            lookup_in(&files, "r.io", &no_helpers()).expect("ok"),
            Some(basic("two", "2"))
        );
    }

    #[test]
    fn config_files_follow_docker_and_podman() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        let home = Some(PathBuf::from("/home/u"));
        assert_eq!(
            config_files_from(env(&[]), home.clone()),
            [
                PathBuf::from("/home/u/.docker/config.json"),
                PathBuf::from("/home/u/.config/containers/auth.json")
            ]
        );
        assert_eq!(
            config_files_from(
                env(&[
                    ("REGISTRY_AUTH_FILE", "/a/auth.json"),
                    ("DOCKER_CONFIG", "/d"),
                    ("XDG_RUNTIME_DIR", "/run/user/1"),
                    ("XDG_CONFIG_HOME", ""),
                ]),
                home
            ),
            [
                PathBuf::from("/a/auth.json"),
                PathBuf::from("/d/config.json"),
                PathBuf::from("/run/user/1/containers/auth.json"),
                PathBuf::from("/home/u/.config/containers/auth.json"),
            ]
        );
    }

    #[test]
    fn explicit_credentials_win_and_combine_strictly() {
        let explicit = Credential::Bearer("t".into());
        assert_eq!(lookup("r.io", Some(&explicit)).expect("ok"), Some(explicit));
        let s = |v: &str| Some(v.to_string());
        assert_eq!(from_parts(None, None, None), Ok(None));
        assert_eq!(from_parts(s(""), s(""), s("")), Ok(None));
        assert_eq!(
            from_parts(None, None, s("tok")),
            Ok(Some(Credential::Bearer("tok".into())))
        );
        assert_eq!(from_parts(s("u"), s("p"), None), Ok(Some(basic("u", "p"))));
        assert!(from_parts(s("u"), None, None).is_err());
        assert!(from_parts(None, s("p"), None).is_err());
        assert!(from_parts(s("u"), s("p"), s("tok")).is_err());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let shown = format!(
            "{:?} {:?}",
            basic("user", "hunter2"),
            Credential::Bearer("tok-123".into())
        );
        assert!(
            shown.contains("user") && !shown.contains("hunter2") && !shown.contains("tok-123"),
            "{shown}"
        );
    }

    /// A helper that answers with the server URL it was asked for (as the username), checking
    /// that it was called with `get`.
    const ECHO_HELPER: &str = r#"[ "$1" = get ] || exit 3
url=$(cat)
printf '{"ServerURL":"%s","Username":"%s","Secret":"s-%s"}' "$url" "$url" "$0""#;

    #[test]
    fn cred_helpers_beat_creds_store_which_beats_auths() {
        let bin = tempfile::tempdir().expect("tempdir");
        helper(bin.path(), "per-registry", ECHO_HELPER);
        helper(bin.path(), "store", ECHO_HELPER);
        let (_d, file) = config(&format!(
            r#"{{"auths": {{"ghcr.io": {{"auth": "{USER_PASS}"}}, "https://index.docker.io/v1/": {{}}}},
                "credHelpers": {{"ghcr.io": "per-registry"}}, "credsStore": "store"}}"#
        ));
        let h = helpers_in(bin.path());
        let per_registry = bin
            .path()
            .join("docker-credential-per-registry")
            .display()
            .to_string();
        let store = bin
            .path()
            .join("docker-credential-store")
            .display()
            .to_string();
        assert_eq!(
            lookup_in_file(&file, "ghcr.io", &h).expect("ok"),
            Some(basic("ghcr.io", &format!("s-{per_registry}")))
        );
        // Docker Hub is asked for under docker's server URL, whatever alias the reference used.
        assert_eq!(
            lookup_in_file(&file, "registry-1.docker.io", &h).expect("ok"),
            Some(basic("https://index.docker.io/v1/", &format!("s-{store}")))
        );
        assert_eq!(
            lookup_in_file(&file, "quay.io", &h).expect("ok"),
            Some(basic("quay.io", &format!("s-{store}")))
        );
    }

    #[test]
    fn helper_server_url_is_the_login_key() {
        let bin = tempfile::tempdir().expect("tempdir");
        helper(bin.path(), "store", ECHO_HELPER);
        let (_d, file) =
            config(r#"{"auths": {"https://r.example.com": {}}, "credsStore": "store"}"#);
        let c = lookup_in_file(&file, "r.example.com", &helpers_in(bin.path()))
            .expect("ok")
            .expect("credential");
        assert!(
            matches!(c, Credential::Basic { username, .. } if username == "https://r.example.com")
        );
    }

    #[test]
    fn helper_not_found_answer_falls_back_to_auths() {
        let bin = tempfile::tempdir().expect("tempdir");
        helper(
            bin.path(),
            "empty",
            "echo 'credentials not found in native keychain'; exit 1",
        );
        let (_d, file) = config(&format!(
            r#"{{"auths": {{"r.io": {{"auth": "{USER_PASS}"}}}}, "credsStore": "empty"}}"#
        ));
        let h = helpers_in(bin.path());
        assert_eq!(
            lookup_in_file(&file, "r.io", &h).expect("ok"),
            Some(basic("user", "pass"))
        );
        assert_eq!(lookup_in_file(&file, "other.io", &h).expect("ok"), None);
    }

    #[test]
    fn helper_identity_token() {
        let bin = tempfile::tempdir().expect("tempdir");
        helper(
            bin.path(),
            "idt",
            r#"cat >/dev/null; echo '{"ServerURL":"r.io","Username":"<token>","Secret":"refresh"}'"#,
        );
        let (_d, file) = config(r#"{"credHelpers": {"r.io": "idt"}}"#);
        let c = lookup_in_file(&file, "r.io", &helpers_in(bin.path()))
            .expect("ok")
            .expect("credential");
        assert!(c.is_identity_token());
        assert_eq!(c, basic("<token>", "refresh"));
    }

    #[test]
    fn missing_helper_is_named() {
        let bin = tempfile::tempdir().expect("tempdir");
        let (_d, file) = config(r#"{"credsStore": "desktop"}"#);
        let err = lookup_in_file(&file, "docker.io", &helpers_in(bin.path()))
            .expect_err("no helper")
            .to_string();
        assert!(
            err.contains("docker-credential-desktop") && err.contains("docker.io"),
            "{err}"
        );
        assert!(
            err.contains("credsStore") && err.contains(&file.display().to_string()),
            "{err}"
        );
        // Not executable = not installed.
        std::fs::write(bin.path().join("docker-credential-desktop"), "#!/bin/sh\n").expect("write");
        assert!(lookup_in_file(&file, "docker.io", &helpers_in(bin.path())).is_err());
    }

    #[test]
    fn helper_names_cannot_escape_the_search_path() {
        let bin = tempfile::tempdir().expect("tempdir");
        for name in ["../x", "/bin/sh", ".hidden"] {
            let (_d, file) = config(&format!(r#"{{"credsStore": "{name}"}}"#));
            let err = lookup_in_file(&file, "r.io", &helpers_in(bin.path())).expect_err(name);
            assert!(matches!(err, SourceError::Invalid { .. }), "{name}: {err}");
        }
    }

    #[test]
    fn failing_helper_reports_its_message() {
        let bin = tempfile::tempdir().expect("tempdir");
        helper(bin.path(), "broken", "echo 'keyring locked' >&2; exit 7");
        let (_d, file) = config(r#"{"credHelpers": {"r.io": "broken"}}"#);
        let err = lookup_in_file(&file, "r.io", &helpers_in(bin.path()))
            .expect_err("fails")
            .to_string();
        assert!(
            err.contains("docker-credential-broken") && err.contains("r.io"),
            "{err}"
        );
        assert!(err.contains("keyring locked") && err.contains('7'), "{err}");
    }

    #[test]
    fn malformed_helper_answer_does_not_leak_it() {
        let bin = tempfile::tempdir().expect("tempdir");
        helper(
            bin.path(),
            "bad",
            r#"echo '{"Username":"u","Secret":987654321}'"#,
        );
        let (_d, file) = config(r#"{"credsStore": "bad"}"#);
        let err = lookup_in_file(&file, "r.io", &helpers_in(bin.path()))
            .expect_err("bad JSON")
            .to_string();
        assert!(
            err.contains("docker-credential-bad") && !err.contains("987654321"),
            "{err}"
        );
    }

    #[test]
    fn hung_helper_times_out() {
        let bin = tempfile::tempdir().expect("tempdir");
        // `sleep` is a grandchild that keeps the pipes open after the shell is killed.
        helper(bin.path(), "slow", "sleep 30");
        let (_d, file) = config(r#"{"credsStore": "slow"}"#);
        let h = Helpers {
            search_path: vec![bin.path().to_path_buf()],
            timeout: Duration::from_millis(300),
        };
        let start = Instant::now();
        let err = lookup_in_file(&file, "r.io", &h)
            .expect_err("times out")
            .to_string();
        assert!(err.contains("within"), "{err}");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "took {:?}",
            start.elapsed()
        );
    }

    #[test]
    fn chatty_helper_is_bounded() {
        let bin = tempfile::tempdir().expect("tempdir");
        helper(bin.path(), "chatty", "head -c 3000000 /dev/zero");
        let (_d, file) = config(r#"{"credsStore": "chatty"}"#);
        let err = lookup_in_file(&file, "r.io", &helpers_in(bin.path()))
            .expect_err("too much")
            .to_string();
        assert!(err.contains("more than"), "{err}");
    }

    #[test]
    fn host_names_are_canonical() {
        assert_eq!(canonical_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(canonical_host("Registry-1.Docker.IO"), "docker.io");
        assert_eq!(
            canonical_host("http://localhost:5000/v2/"),
            "localhost:5000"
        );
        assert_eq!(canonical_host("quay.io/org/repo"), "quay.io");
        assert_eq!(truncate("abcdef", 3), "abc…");
        assert_eq!(truncate("ab", 3), "ab");
    }
}

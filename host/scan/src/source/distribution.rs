//! The registry client: the OCI distribution API over `reqwest`, used by every path that
//! talks to a registry (`bulkhead scan`, the service's worker, `inspect` and reconcile).
//!
//! A registry is untrusted input: it may be compromised, or simply broken. So, whatever it
//! sends, work and memory stay bounded ([`RegistryLimits`]):
//!
//! * **Sizes are enforced as the bytes arrive.** A document (manifest, index, config),
//!   a token answer, an error body and a listing page each have their own limit; a
//!   `Content-Length` above it fails before the body is read, and a body without one is
//!   cut off at the limit. Blobs are streamed, never held: the stream ends with an error
//!   past the size the manifest gave, and a blob whose announced length differs from that
//!   size is refused before its first byte.
//! * **Time is bounded** per request (connect, first byte), per read (idle), per document
//!   (a server that drips one byte a second still fails), per blob (a minimum rate) and
//!   over retries (a number of tries and a total budget).
//! * **Credentials stay with their registry.** Redirects are followed here, at most
//!   `max_redirects`, never in a loop, never to plain HTTP from HTTPS, and carry no
//!   `Authorization` to any other host. The token realm of a `WWW-Authenticate: Bearer`
//!   challenge gets the credentials only over HTTPS (plain HTTP only for a registry
//!   configured insecure) and only on the registry's own `HOST[:PORT]` or a host listed in
//!   its `token_hosts`. A 401 after authenticating is an error, not another round.
//! * **Identity tokens** (`identitytoken` in `~/.docker/config.json`, or a credential
//!   helper's `<token>` user) go through the OAuth2 refresh-token exchange, as Docker does.
//!
//! Why not `oci-client` (which this replaced): it reads every manifest and error body
//! whole into memory before any limit can apply (a 1.5 GB manifest took 3.2 GB RSS), sends
//! the configured credentials to whatever realm a challenge names, follows redirects with
//! reqwest's default policy, and offers no per-read or per-document timeouts. None of
//! that can be changed from outside the crate, and what it does beyond that (the request
//! shapes of five endpoints) is small; so the HTTP stack stays `reqwest` (already the
//! project's) and the protocol is this module.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::{Method, StatusCode, Url, header};
use serde::{Deserialize, Serialize};

use super::auth::{Credential, IDENTITY_TOKEN_USERNAME};
use super::manifest::MANIFEST_TYPES;
use super::{BlobStream, SourceError};

/// Docker Hub's names in references, its API host and its token service.
const DOCKER_HUB_ALIASES: &[&str] = &["docker.io", "index.docker.io", "registry-1.docker.io"];
const DOCKER_HUB_API: &str = "registry-1.docker.io";
const DOCKER_HUB_AUTH: &str = "auth.docker.io";
/// The OAuth2 client id sent with a refresh-token exchange (Docker sends `docker`).
const CLIENT_ID: &str = "bulkhead";

/// Bounds on what one registry may make us read and wait for. `[registries.limits]` in
/// the CLI's config, `[scan.registry_limits]` in the service's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryLimits {
    /// Largest manifest, index or image config, in bytes (also for OCI layouts and
    /// archives). The distribution spec asks registries to accept at least 4 MiB.
    pub max_manifest_bytes: u64,
    /// Largest answer of a token service.
    pub max_token_bytes: u64,
    /// Largest error body read (for its message; the rest is dropped).
    pub max_error_bytes: u64,
    /// Largest page of `/v2/_catalog` or `tags/list`.
    pub max_listing_bytes: u64,
    /// Connecting (TCP and TLS).
    pub connect_timeout_ms: u64,
    /// From sending a request to the answer's headers.
    pub first_byte_timeout_ms: u64,
    /// Longest wait for the next bytes of a body.
    pub idle_timeout_ms: u64,
    /// Whole-body time for a document, token answer, error body or listing page.
    pub document_timeout_ms: u64,
    /// Slowest blob accepted, averaged over each `idle_timeout_ms` window.
    pub min_blob_bytes_per_second: u64,
    /// Tries of one request when it fails in a way that may heal (network, 429, 5xx).
    pub attempts: u32,
    /// Total time the tries of one request may take, waits included.
    pub retry_budget_ms: u64,
    /// Redirects followed per request.
    pub max_redirects: u32,
}

impl Default for RegistryLimits {
    fn default() -> Self {
        RegistryLimits {
            max_manifest_bytes: 4 << 20,
            max_token_bytes: 1 << 20,
            max_error_bytes: 64 << 10,
            max_listing_bytes: 16 << 20,
            connect_timeout_ms: 10_000,
            first_byte_timeout_ms: 30_000,
            idle_timeout_ms: 30_000,
            document_timeout_ms: 60_000,
            min_blob_bytes_per_second: 1024,
            attempts: 5,
            retry_budget_ms: 120_000,
            max_redirects: 5,
        }
    }
}

impl RegistryLimits {
    /// `Err` names the first setting that makes no sense (a zero timeout or try count).
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [
            ("max_manifest_bytes", self.max_manifest_bytes),
            ("max_token_bytes", self.max_token_bytes),
            ("max_listing_bytes", self.max_listing_bytes),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("first_byte_timeout_ms", self.first_byte_timeout_ms),
            ("idle_timeout_ms", self.idle_timeout_ms),
            ("document_timeout_ms", self.document_timeout_ms),
            ("attempts", u64::from(self.attempts)),
        ] {
            if value == 0 {
                return Err(format!("{name} must be greater than 0"));
            }
        }
        Ok(())
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }
}

/// How to reach one registry.
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// Plain HTTP (and plain-HTTP token realms) allowed.
    pub insecure: bool,
    /// Hosts (`HOST` for any port, or `HOST:PORT`) besides the registry's own that may
    /// receive its credentials as a token realm.
    pub token_hosts: Vec<String>,
    /// `None`: anonymous.
    pub credential: Option<Credential>,
    pub limits: RegistryLimits,
}

/// A client for one registry. Cheap to share (`Arc`); tokens are cached per scope.
pub struct RegistryClient {
    http: reqwest::Client,
    /// `scheme://HOST[:PORT]/` of the API.
    base: Url,
    /// The registry as references name it, for messages.
    registry: String,
    insecure: bool,
    token_hosts: Vec<String>,
    credential: Option<Credential>,
    limits: RegistryLimits,
    /// `Authorization` values that answered a challenge, per scope.
    authorizations: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("base", &self.base.as_str())
            .field("credential", &self.credential)
            .finish_non_exhaustive()
    }
}

/// The pull scope of a repository.
pub fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

/// The scope of `/v2/_catalog`.
pub const CATALOG_SCOPE: &str = "registry:catalog:*";

/// Whether `host` (as a reference names it) is Docker Hub.
pub fn is_docker_hub(host: &str) -> bool {
    DOCKER_HUB_ALIASES.contains(&host.to_ascii_lowercase().as_str())
}

/// Only printable ASCII can go into a header; anything else is refused before a request.
fn header_safe(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// At most 300 characters of a server's text, control characters replaced.
fn short(s: &str) -> String {
    let s = crate::text::sanitize(s.trim());
    if s.chars().count() <= 300 {
        s
    } else {
        format!("{}…", s.chars().take(300).collect::<String>())
    }
}

/// `HOST[:PORT]` of a URL, the port only when it is not the scheme's default.
fn authority(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

impl RegistryClient {
    /// A client for `registry` (`HOST[:PORT]` as in a reference; Docker Hub's names are
    /// mapped to its API host).
    pub fn new(registry: &str, opts: ClientOptions) -> Result<RegistryClient, SourceError> {
        // reqwest is built without a crypto provider; install ours once. An error only
        // means one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let invalid = |message: String| SourceError::Invalid {
            what: registry.to_string(),
            message,
        };
        opts.limits.validate().map_err(invalid)?;
        let sendable = match &opts.credential {
            None => true,
            Some(Credential::Basic { username, password }) => {
                header_safe(username) && header_safe(password)
            }
            Some(Credential::Bearer(t)) => header_safe(t),
        };
        if !sendable {
            return Err(SourceError::Unauthorized {
                registry: registry.to_string(),
                message: "the credentials have characters that cannot be sent".into(),
            });
        }
        let hub = is_docker_hub(registry);
        let api_host = if hub { DOCKER_HUB_API } else { registry };
        let scheme = if opts.insecure { "http" } else { "https" };
        let base = Url::parse(&format!("{scheme}://{api_host}/"))
            .map_err(|e| invalid(format!("not a registry host: {e}")))?;
        if base.host_str().is_none() || base.path() != "/" || base.query().is_some() {
            return Err(invalid("not a registry HOST[:PORT]".into()));
        }
        let mut token_hosts: Vec<String> = opts
            .token_hosts
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        if hub {
            token_hosts.push(DOCKER_HUB_AUTH.to_string());
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("bulkhead/", env!("CARGO_PKG_VERSION")))
            // Redirects are followed by `exchange`, which decides where credentials go.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(RegistryLimits::ms(opts.limits.connect_timeout_ms))
            .build()
            .map_err(|e| SourceError::Network {
                what: registry.to_string(),
                message: format!(
                    "cannot set up the HTTP client: {}",
                    crate::text::http_error(e)
                ),
            })?;
        Ok(RegistryClient {
            http,
            base,
            registry: registry.to_string(),
            insecure: opts.insecure,
            token_hosts,
            credential: opts.credential,
            limits: opts.limits,
            authorizations: Mutex::new(HashMap::new()),
        })
    }

    /// The registry as references name it.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub fn limits(&self) -> &RegistryLimits {
        &self.limits
    }

    fn url(&self, path: &str, query: &[(&str, &str)], what: &str) -> Result<Url, SourceError> {
        let mut url = self.base.join(path).map_err(|e| SourceError::Invalid {
            what: what.to_string(),
            message: format!("cannot build a URL: {e}"),
        })?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// A manifest or index by tag or digest, every manifest type accepted, at most
    /// `max_manifest_bytes`.
    pub async fn manifest(
        &self,
        repository: &str,
        reference: &str,
        what: &str,
    ) -> Result<Vec<u8>, SourceError> {
        let url = self.url(&format!("v2/{repository}/manifests/{reference}"), &[], what)?;
        let scope = pull_scope(repository);
        let accept = MANIFEST_TYPES.join(", ");
        self.retry(what, || async {
            let r = self
                .exchange(Method::GET, url.clone(), Some(&accept), &scope, what)
                .await?;
            self.read_body(
                r,
                self.limits.max_manifest_bytes,
                "max_manifest_bytes",
                what,
            )
            .await
        })
        .await
    }

    /// The digest a tag names now: a `HEAD` of the manifest (`Docker-Content-Digest`), or
    /// the digest of the manifest itself when the registry does not say.
    pub async fn manifest_digest(
        &self,
        repository: &str,
        reference: &str,
        what: &str,
    ) -> Result<String, SourceError> {
        let url = self.url(&format!("v2/{repository}/manifests/{reference}"), &[], what)?;
        let scope = pull_scope(repository);
        let accept = MANIFEST_TYPES.join(", ");
        let head = self
            .retry(what, || async {
                let r = self
                    .exchange(Method::HEAD, url.clone(), Some(&accept), &scope, what)
                    .await?;
                Ok(r.headers()
                    .get("docker-content-digest")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string))
            })
            .await?;
        match head {
            Some(d) => Ok(d),
            None => {
                let bytes = self.manifest(repository, reference, what).await?;
                Ok(super::manifest::sha256_digest(&bytes))
            }
        }
    }

    /// A small blob (an image config), whole, checked against its descriptor's size and
    /// digest.
    pub async fn small_blob(
        &self,
        repository: &str,
        digest: &str,
        size: u64,
        what: &str,
    ) -> Result<Vec<u8>, SourceError> {
        if size > self.limits.max_manifest_bytes {
            return Err(SourceError::TooLarge {
                what: what.to_string(),
                limit_name: "max_manifest_bytes".into(),
                limit: self.limits.max_manifest_bytes,
            });
        }
        let url = self.url(&format!("v2/{repository}/blobs/{digest}"), &[], what)?;
        let scope = pull_scope(repository);
        let bytes = self
            .retry(what, || async {
                let r = self
                    .exchange(Method::GET, url.clone(), None, &scope, what)
                    .await?;
                check_announced(&r, size, what)?;
                self.read_body(r, size, "the size its descriptor gives", what)
                    .await
            })
            .await?;
        super::manifest::verify_blob(what, &bytes, digest, Some(size))?;
        Ok(bytes)
    }

    /// A blob as a stream of `size` bytes (the size the manifest gives). The stream fails
    /// past `size`, when no byte comes for `idle_timeout_ms`, or when the blob arrives
    /// slower than `min_blob_bytes_per_second`; the layer pipeline checks the digest.
    pub async fn blob(
        &self,
        repository: &str,
        digest: &str,
        size: u64,
        what: &str,
    ) -> Result<BlobStream, SourceError> {
        let url = self.url(&format!("v2/{repository}/blobs/{digest}"), &[], what)?;
        let scope = pull_scope(repository);
        let response = self
            .retry(what, || async {
                let r = self
                    .exchange(Method::GET, url.clone(), None, &scope, what)
                    .await?;
                check_announced(&r, size, what)?;
                Ok(r)
            })
            .await?;
        let state = BlobState {
            response,
            size,
            read: 0,
            idle: RegistryLimits::ms(self.limits.idle_timeout_ms),
            min_rate: self.limits.min_blob_bytes_per_second,
            window_start: Instant::now(),
            window_bytes: 0,
            done: false,
        };
        let stream = futures::stream::unfold(state, |mut s| async move {
            if s.done {
                return None;
            }
            let item = s.next().await;
            match item {
                Ok(Some(chunk)) => Some((Ok(chunk), s)),
                Ok(None) => None,
                Err(e) => {
                    s.done = true;
                    Some((Err(e), s))
                }
            }
        });
        Ok(Box::pin(tokio_util::io::StreamReader::new(stream)))
    }

    /// One page of `tags/list` (`n` entries after `last`).
    pub async fn tags(
        &self,
        repository: &str,
        n: usize,
        last: Option<&str>,
    ) -> Result<Vec<String>, SourceError> {
        #[derive(Deserialize)]
        struct Tags {
            tags: Option<Vec<String>>,
        }
        let what = format!("{}/{repository}: tags/list", self.registry);
        let page: Tags = self
            .listing(
                &format!("v2/{repository}/tags/list"),
                n,
                last,
                &pull_scope(repository),
                &what,
            )
            .await?;
        Ok(page.tags.unwrap_or_default())
    }

    /// One page of `/v2/_catalog` (needs a token for [`CATALOG_SCOPE`]).
    pub async fn catalog(&self, n: usize, last: Option<&str>) -> Result<Vec<String>, SourceError> {
        #[derive(Deserialize)]
        struct Catalog {
            repositories: Option<Vec<String>>,
        }
        let what = format!("{}: _catalog", self.registry);
        let page: Catalog = self
            .listing("v2/_catalog", n, last, CATALOG_SCOPE, &what)
            .await?;
        Ok(page.repositories.unwrap_or_default())
    }

    async fn listing<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        n: usize,
        last: Option<&str>,
        scope: &str,
        what: &str,
    ) -> Result<T, SourceError> {
        let n = n.to_string();
        let mut query = vec![("n", n.as_str())];
        if let Some(l) = last {
            query.push(("last", l));
        }
        let url = self.url(path, &query, what)?;
        let body = self
            .retry(what, || async {
                let r = self
                    .exchange(Method::GET, url.clone(), None, scope, what)
                    .await?;
                self.read_body(r, self.limits.max_listing_bytes, "max_listing_bytes", what)
                    .await
            })
            .await?;
        serde_json::from_slice(&body).map_err(|e| SourceError::Invalid {
            what: what.to_string(),
            message: format!("not a listing: {e}"),
        })
    }

    /// Run `op` until it succeeds, fails for good, runs out of tries or out of the retry
    /// budget. Only failures that may heal (the network, 429, 5xx) are tried again.
    async fn retry<T, F, Fut>(&self, what: &str, op: F) -> Result<T, SourceError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, SourceError>>,
    {
        let started = Instant::now();
        let budget = RegistryLimits::ms(self.limits.retry_budget_ms);
        let mut backoff = Duration::from_millis(200);
        let mut attempt = 1;
        loop {
            // The whole try is bounded too, so the budget holds even if one try hangs.
            let left = budget.saturating_sub(started.elapsed());
            let result = match tokio::time::timeout(left.max(Duration::from_millis(1)), op()).await
            {
                Ok(r) => r,
                Err(_) => Err(SourceError::Network {
                    what: what.to_string(),
                    message: format!(
                        "not done within the retry budget (retry_budget_ms = {})",
                        self.limits.retry_budget_ms
                    ),
                }),
            };
            match result {
                Ok(v) => return Ok(v),
                Err(e)
                    if e.disposition() == super::Disposition::Transient
                        && attempt < self.limits.attempts
                        && started.elapsed() + backoff < budget =>
                {
                    tracing::debug!("{e}; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    attempt += 1;
                }
                Err(mut e) => {
                    if attempt > 1
                        && let SourceError::Network { message, .. } = &mut e
                    {
                        message.push_str(&format!(" (after {attempt} tries)"));
                    }
                    return Err(e);
                }
            }
        }
    }

    /// The `Authorization` for a request to the registry in `scope`: one that answered a
    /// challenge before, or a configured bearer token.
    fn authorization(&self, scope: &str) -> Option<String> {
        if let Ok(cache) = self.authorizations.lock()
            && let Some(a) = cache.get(scope)
        {
            return Some(a.clone());
        }
        match &self.credential {
            Some(Credential::Bearer(t)) => Some(format!("Bearer {t}")),
            _ => None,
        }
    }

    /// Whether `url` is on the registry's API host (scheme, host and port).
    fn is_registry(&self, url: &Url) -> bool {
        url.scheme() == self.base.scheme() && authority(url) == authority(&self.base)
    }

    /// One request, its redirects and authentication answered; the answer when it is a
    /// success, else the error its status and body mean.
    async fn exchange(
        &self,
        method: Method,
        start: Url,
        accept: Option<&str>,
        scope: &str,
        what: &str,
    ) -> Result<reqwest::Response, SourceError> {
        let mut url = start;
        let mut visited: Vec<Url> = vec![url.clone()];
        // The scheme of the challenge answered, once one was.
        let mut answered: Option<String> = None;
        loop {
            let own = self.is_registry(&url);
            let mut request = self.http.request(method.clone(), url.clone());
            if let Some(a) = accept {
                request = request.header(header::ACCEPT, a);
            }
            // Credentials only ever go to the registry itself.
            if own && let Some(a) = self.authorization(scope) {
                request = request.header(header::AUTHORIZATION, a);
            }
            let response = self.send(request, what).await?;
            let status = response.status();
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                let next = self.redirect_target(&url, &response, what)?;
                if visited.contains(&next) {
                    return Err(SourceError::Invalid {
                        what: what.to_string(),
                        message: format!("a redirect loop (back to {})", short(next.as_str())),
                    });
                }
                if visited.len() > self.limits.max_redirects as usize {
                    return Err(SourceError::Invalid {
                        what: what.to_string(),
                        message: format!(
                            "more than {} redirects (max_redirects)",
                            self.limits.max_redirects
                        ),
                    });
                }
                visited.push(next.clone());
                url = next;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED && own {
                let refused = match (&answered, &self.credential) {
                    (Some(scheme), _) if scheme.eq_ignore_ascii_case("basic") => {
                        Some("refused the username and password")
                    }
                    (Some(_), _) => Some(
                        "refused the token its token service issued (no access with these credentials, or a 401 loop between the registry and its token service)",
                    ),
                    (None, Some(Credential::Bearer(_))) => Some("refused the bearer token"),
                    (None, _) => None,
                };
                if let Some(why) = refused {
                    let body = self.error_text(response).await;
                    return Err(SourceError::Unauthorized {
                        registry: self.registry.clone(),
                        message: format!("{what}: HTTP 401: {why}{body}"),
                    });
                }
                let challenge = response
                    .headers()
                    .get(header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let answer = self.answer(&challenge, scope, what).await?;
                if let Ok(mut cache) = self.authorizations.lock() {
                    cache.insert(scope.to_string(), answer);
                }
                answered = Some(parse_challenge(&challenge).0);
                continue;
            }
            if status.is_success() {
                return Ok(response);
            }
            return Err(self.status_error(response, what).await);
        }
    }

    /// Send with the first-byte timeout.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<reqwest::Response, SourceError> {
        let limit = self.limits.first_byte_timeout_ms;
        match tokio::time::timeout(RegistryLimits::ms(limit), request.send()).await {
            Err(_) => Err(SourceError::Network {
                what: what.to_string(),
                message: format!("no answer within {limit} ms (first_byte_timeout_ms)"),
            }),
            Ok(Err(e)) => {
                let mut message = crate::text::http_error(e);
                // rustls' words for "the server answered TLS with plain HTTP".
                if message.contains("InvalidContentType") {
                    let r = &self.registry;
                    message.push_str(&format!(
                        " (does {r} speak plain HTTP? allow it with --insecure-registry {r})"
                    ));
                }
                Err(SourceError::Network {
                    what: what.to_string(),
                    message,
                })
            }
            Ok(Ok(r)) => Ok(r),
        }
    }

    /// Where a redirect goes, if it may be followed: an absolute or relative `Location`,
    /// HTTPS (or plain HTTP where the registry is insecure).
    fn redirect_target(
        &self,
        from: &Url,
        response: &reqwest::Response,
        what: &str,
    ) -> Result<Url, SourceError> {
        let invalid = |message: String| SourceError::Invalid {
            what: what.to_string(),
            message,
        };
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| invalid(format!("HTTP {} without a Location", response.status())))?;
        let next = from
            .join(location)
            .map_err(|e| invalid(format!("a redirect to an invalid URL: {e}")))?;
        match next.scheme() {
            "https" => Ok(next),
            "http" if self.insecure => Ok(next),
            other => Err(invalid(format!(
                "refusing a redirect to {other}:// ({})",
                short(next.as_str())
            ))),
        }
    }

    /// The `Authorization` that answers a challenge: Basic credentials, or a token from
    /// the challenge's realm (if that realm may have the credentials).
    async fn answer(
        &self,
        challenge: &str,
        scope: &str,
        what: &str,
    ) -> Result<String, SourceError> {
        let unauthorized = |message: String| SourceError::Unauthorized {
            registry: self.registry.clone(),
            message: format!("{what}: {message}"),
        };
        let (scheme, params) = parse_challenge(challenge);
        let param = |k: &str| {
            params
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        let basic = match &self.credential {
            Some(Credential::Basic { username, password })
                if username != IDENTITY_TOKEN_USERNAME =>
            {
                Some((username.clone(), password.clone()))
            }
            _ => None,
        };
        if scheme.eq_ignore_ascii_case("basic") {
            let (u, p) = basic.ok_or_else(|| {
                unauthorized("HTTP 401: the registry asks for a username and password".into())
            })?;
            let pair = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            return Ok(format!("Basic {pair}"));
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(unauthorized(format!(
                "HTTP 401 with an unsupported authentication scheme {:?}",
                short(&scheme)
            )));
        }
        let realm = param("realm")
            .ok_or_else(|| unauthorized("HTTP 401: a Bearer challenge without a realm".into()))?;
        let mut realm = self.check_realm(&realm, what)?;
        // The challenge's scope when it names one (the catalog's), else ours.
        let scope = param("scope").unwrap_or_else(|| scope.to_string());
        let service = param("service");
        let request = if let Some(Credential::Basic { username, password }) = &self.credential
            && username == IDENTITY_TOKEN_USERNAME
        {
            // OAuth2 refresh-token grant, as `docker login` tokens are used by Docker.
            let mut form = vec![
                ("grant_type", "refresh_token"),
                ("client_id", CLIENT_ID),
                ("refresh_token", password.as_str()),
                ("scope", scope.as_str()),
            ];
            if let Some(s) = &service {
                form.push(("service", s.as_str()));
            }
            let body = serde_urlencoded::to_string(&form).map_err(|e| SourceError::Invalid {
                what: what.to_string(),
                message: format!("cannot encode the token request: {e}"),
            })?;
            self.http
                .post(realm.clone())
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body)
        } else {
            {
                let mut q = realm.query_pairs_mut();
                q.append_pair("scope", &scope);
                if let Some(s) = &service {
                    q.append_pair("service", s);
                }
            }
            let mut request = self.http.get(realm.clone());
            if let Some((u, p)) = &basic {
                request = request.basic_auth(u, Some(p));
            }
            request
        };
        realm.set_query(None);
        let token_what = format!("{what}: token service {}", short(realm.as_str()));
        let response = self.send(request, &token_what).await?;
        let status = response.status();
        if !status.is_success() {
            let body = self.error_text(response).await;
            // Its own troubles may heal; any other answer is a refusal (or not a token
            // service at all), and asking again would not change it.
            return Err(if status.as_u16() == 429 || status.is_server_error() {
                SourceError::Network {
                    what: token_what,
                    message: format!("HTTP {status}{body}"),
                }
            } else {
                unauthorized(format!(
                    "the token service {} refused: HTTP {status}{body}",
                    short(realm.as_str())
                ))
            });
        }
        let body = self
            .read_body(
                response,
                self.limits.max_token_bytes,
                "max_token_bytes",
                &token_what,
            )
            .await?;
        #[derive(Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let t: Token = serde_json::from_slice(&body).map_err(|e| SourceError::Invalid {
            what: token_what.clone(),
            message: format!("not a token answer: {e}"),
        })?;
        let token = t
            .token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| SourceError::Invalid {
                what: token_what.clone(),
                message: "no token in the answer".into(),
            })?;
        if !header_safe(&token) {
            return Err(SourceError::Invalid {
                what: token_what,
                message: "the token has characters that cannot be sent".into(),
            });
        }
        Ok(format!("Bearer {token}"))
    }

    /// The realm as a URL, if it may receive this registry's credentials: HTTPS (plain
    /// HTTP only for an insecure registry), on the registry's `HOST[:PORT]` or a host
    /// listed in `token_hosts`.
    fn check_realm(&self, realm: &str, what: &str) -> Result<Url, SourceError> {
        let refuse = |why: String| SourceError::Unauthorized {
            registry: self.registry.clone(),
            message: format!("{what}: refusing the token realm {}: {why}", short(realm)),
        };
        let url = Url::parse(realm).map_err(|e| refuse(format!("not a URL ({e})")))?;
        match url.scheme() {
            "https" => {}
            "http" if self.insecure => {}
            "http" => {
                return Err(refuse(
                    "plain HTTP for a registry reached over HTTPS".into(),
                ));
            }
            other => return Err(refuse(format!("scheme {other:?}"))),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refuse("it carries credentials of its own".into()));
        }
        let at = authority(&url);
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let allowed =
            at == authority(&self.base) || self.token_hosts.iter().any(|h| *h == at || *h == host);
        if !allowed {
            return Err(refuse(format!(
                "{at} is not the registry's host; if it is the registry's token service, list it in the registry's token_hosts (--token-host {at})"
            )));
        }
        Ok(url)
    }

    /// A bounded, sanitised excerpt of an error body, `": …"` or empty.
    async fn error_text(&self, response: reqwest::Response) -> String {
        let max = self.limits.max_error_bytes;
        let mut body = Vec::new();
        let deadline = Instant::now() + RegistryLimits::ms(self.limits.document_timeout_ms);
        let mut response = response;
        while (body.len() as u64) < max {
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = left.min(RegistryLimits::ms(self.limits.idle_timeout_ms));
            match tokio::time::timeout(wait, response.chunk()).await {
                Ok(Ok(Some(c))) => body.extend_from_slice(&c),
                _ => break,
            }
        }
        body.truncate(max as usize);
        let text = String::from_utf8_lossy(&body);
        #[derive(Deserialize)]
        struct Envelope {
            errors: Vec<OciError>,
        }
        #[derive(Deserialize)]
        struct OciError {
            code: Option<String>,
            message: Option<String>,
        }
        let text = match serde_json::from_slice::<Envelope>(&body) {
            Ok(env) => env
                .errors
                .iter()
                .map(|e| {
                    format!(
                        "{}: {}",
                        e.code.as_deref().unwrap_or("?"),
                        e.message.as_deref().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
            Err(_) => text.into_owned(),
        };
        let text = short(&text);
        if text.is_empty() {
            String::new()
        } else {
            format!(": {text}")
        }
    }

    /// Our error for an unsuccessful answer.
    async fn status_error(&self, response: reqwest::Response, what: &str) -> SourceError {
        let status = response.status();
        let body = self.error_text(response).await;
        match status.as_u16() {
            // Docker Hub answers 401 for repositories that do not exist, too.
            401 => SourceError::Unauthorized {
                registry: self.registry.clone(),
                message: format!("{what}: HTTP 401 (or the repository does not exist){body}"),
            },
            403 => SourceError::Unauthorized {
                registry: self.registry.clone(),
                message: format!("{what}: HTTP 403{body}"),
            },
            404 => SourceError::NotFound {
                what: what.to_string(),
            },
            // Rate limits and the server's own troubles may heal; so may anything else
            // a registry answers that we do not understand (a proxy in between).
            _ => SourceError::Network {
                what: what.to_string(),
                message: format!("HTTP {status}{body}"),
            },
        }
    }

    /// A whole body, failing as soon as it passes `max` (or announces more), when no byte
    /// comes for `idle_timeout_ms`, or when it takes longer than `document_timeout_ms`.
    async fn read_body(
        &self,
        mut response: reqwest::Response,
        max: u64,
        limit_name: &str,
        what: &str,
    ) -> Result<Vec<u8>, SourceError> {
        let too_large = || SourceError::TooLarge {
            what: what.to_string(),
            limit_name: limit_name.to_string(),
            limit: max,
        };
        let announced = response.content_length();
        if announced.is_some_and(|n| n > max) {
            return Err(too_large());
        }
        let idle = self.limits.idle_timeout_ms;
        let whole = self.limits.document_timeout_ms;
        let deadline = Instant::now() + RegistryLimits::ms(whole);
        let mut body = Vec::with_capacity(announced.unwrap_or(0).min(64 << 10) as usize);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (wait, which) = if left < RegistryLimits::ms(idle) {
                (
                    left,
                    format!("not complete within {whole} ms (document_timeout_ms)"),
                )
            } else {
                (
                    RegistryLimits::ms(idle),
                    format!("no data for {idle} ms (idle_timeout_ms)"),
                )
            };
            let chunk = match tokio::time::timeout(wait, response.chunk()).await {
                Err(_) => {
                    return Err(SourceError::Network {
                        what: what.to_string(),
                        message: format!("{which}, after {} bytes", body.len()),
                    });
                }
                Ok(Err(e)) => {
                    let mut message = crate::text::http_error(e);
                    if let Some(n) = announced {
                        message.push_str(&format!(
                            " (Content-Length said {n} bytes, {} arrived)",
                            body.len()
                        ));
                    }
                    return Err(SourceError::Network {
                        what: what.to_string(),
                        message,
                    });
                }
                Ok(Ok(None)) => break,
                Ok(Ok(Some(c))) => c,
            };
            if body.len() as u64 + chunk.len() as u64 > max {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        if let Some(n) = announced
            && n != body.len() as u64
        {
            return Err(SourceError::Invalid {
                what: what.to_string(),
                message: format!("Content-Length said {n} bytes, the body has {}", body.len()),
            });
        }
        Ok(body)
    }
}

/// A blob the registry announces with another length than the manifest's is refused
/// before its first byte.
fn check_announced(r: &reqwest::Response, size: u64, what: &str) -> Result<(), SourceError> {
    match r.content_length() {
        Some(n) if n != size => Err(SourceError::Invalid {
            what: what.to_string(),
            message: format!("the registry announces {n} bytes, the manifest says {size}"),
        }),
        _ => Ok(()),
    }
}

/// A blob being read: its bounds and its progress.
struct BlobState {
    response: reqwest::Response,
    size: u64,
    read: u64,
    idle: Duration,
    min_rate: u64,
    window_start: Instant,
    window_bytes: u64,
    done: bool,
}

impl BlobState {
    async fn next(&mut self) -> std::io::Result<Option<bytes::Bytes>> {
        use std::io::{Error, ErrorKind};
        let chunk = match tokio::time::timeout(self.idle, self.response.chunk()).await {
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::TimedOut,
                    format!(
                        "the registry stalled: no data for {} ms after {} of {} bytes (idle_timeout_ms)",
                        self.idle.as_millis(),
                        self.read,
                        self.size
                    ),
                ));
            }
            Ok(Err(e)) => {
                return Err(Error::other(format!(
                    "{} after {} of {} bytes",
                    crate::text::http_error(e),
                    self.read,
                    self.size
                )));
            }
            Ok(Ok(c)) => c,
        };
        let Some(chunk) = chunk else {
            if self.read != self.size {
                return Err(Error::new(
                    ErrorKind::UnexpectedEof,
                    format!(
                        "the blob ended after {} bytes, the manifest says {}",
                        self.read, self.size
                    ),
                ));
            }
            return Ok(None);
        };
        self.read += chunk.len() as u64;
        if self.read > self.size {
            return Err(Error::new(
                ErrorKind::InvalidData,
                format!("more bytes than the {} the manifest says", self.size),
            ));
        }
        self.window_bytes += chunk.len() as u64;
        let elapsed = self.window_start.elapsed();
        if elapsed >= self.idle {
            let rate = self.window_bytes as f64 / elapsed.as_secs_f64();
            if rate < self.min_rate as f64 {
                return Err(Error::new(
                    ErrorKind::TimedOut,
                    format!(
                        "the registry sends {rate:.0} bytes/s, below min_blob_bytes_per_second ({})",
                        self.min_rate
                    ),
                ));
            }
            self.window_start = Instant::now();
            self.window_bytes = 0;
        }
        Ok(Some(chunk))
    }
}

/// `SCHEME k="v", k2=v2` (RFC 7235): the scheme and the parameters, quoted values
/// unescaped. Malformed parts are skipped.
pub fn parse_challenge(header: &str) -> (String, Vec<(String, String)>) {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if name.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        params.push((name.trim().to_string(), value.trim().to_string()));
    }
    (scheme.to_string(), params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(registry: &str, insecure: bool, token_hosts: &[&str]) -> RegistryClient {
        RegistryClient::new(
            registry,
            ClientOptions {
                insecure,
                token_hosts: token_hosts.iter().map(|s| s.to_string()).collect(),
                credential: Some(Credential::Basic {
                    username: "u".into(),
                    password: "p".into(),
                }),
                limits: RegistryLimits::default(),
            },
        )
        .expect("client")
    }

    #[test]
    fn realms_are_checked_before_credentials_go_there() {
        let c = client("r.example.com", false, &[]);
        assert!(c.check_realm("https://r.example.com/token", "m").is_ok());
        for bad in [
            "http://r.example.com/token",
            "https://evil.example.com/token",
            "https://r.example.com:8443/token",
            "https://user:pw@r.example.com/token",
            "file:///etc/passwd",
            "not a url",
        ] {
            let e = c.check_realm(bad, "m").expect_err(bad);
            assert!(matches!(e, SourceError::Unauthorized { .. }), "{bad}: {e}");
            assert!(e.to_string().contains("refusing the token realm"), "{e}");
        }
        let c = client(
            "127.0.0.1:5000",
            true,
            &["127.0.0.1:5001", "auth.example.com"],
        );
        assert!(c.check_realm("http://127.0.0.1:5000/token", "m").is_ok());
        assert!(c.check_realm("http://127.0.0.1:5001/token", "m").is_ok());
        assert!(c.check_realm("http://127.0.0.1:5002/token", "m").is_err());
        assert!(c.check_realm("https://auth.example.com:444/t", "m").is_ok());
        let hub = client("docker.io", false, &[]);
        assert!(hub.check_realm("https://auth.docker.io/token", "m").is_ok());
        assert_eq!(hub.base.as_str(), "https://registry-1.docker.io/");
    }

    #[test]
    fn unsendable_credentials_and_bad_limits_are_refused() {
        let e = RegistryClient::new(
            "r.io",
            ClientOptions {
                credential: Some(Credential::Bearer("abc\ndef".into())),
                ..Default::default()
            },
        )
        .expect_err("newline");
        assert!(matches!(e, SourceError::Unauthorized { .. }), "{e}");
        let e = RegistryClient::new(
            "r.io",
            ClientOptions {
                limits: RegistryLimits {
                    idle_timeout_ms: 0,
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .expect_err("zero timeout");
        assert!(e.to_string().contains("idle_timeout_ms"), "{e}");
        assert!(RegistryClient::new("r.io/path", ClientOptions::default()).is_err());
    }

    #[test]
    fn challenges_are_parsed() {
        let (scheme, params) = parse_challenge(
            r#"Bearer realm="http://127.0.0.1:5001/token",service="bulkhead-test",scope="registry:catalog:*""#,
        );
        assert_eq!(scheme, "Bearer");
        assert_eq!(
            params,
            vec![
                (
                    "realm".to_string(),
                    "http://127.0.0.1:5001/token".to_string()
                ),
                ("service".to_string(), "bulkhead-test".to_string()),
                ("scope".to_string(), "registry:catalog:*".to_string()),
            ]
        );
        let (scheme, params) = parse_challenge(r#"Basic realm="a \"quoted\", realm""#);
        assert_eq!(scheme, "Basic");
        assert_eq!(
            params,
            vec![("realm".to_string(), "a \"quoted\", realm".to_string())]
        );
        let (scheme, params) = parse_challenge("Bearer realm=https://auth, service = x");
        assert_eq!(scheme, "Bearer");
        assert_eq!(params[0], ("realm".to_string(), "https://auth".to_string()));
        assert_eq!(params[1], ("service".to_string(), "x".to_string()));
        assert_eq!(parse_challenge("").1, vec![]);
        assert_eq!(parse_challenge(r#"Bearer realm="unterminated"#).1.len(), 1);
    }
}

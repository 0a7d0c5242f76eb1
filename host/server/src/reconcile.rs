//! Reconcile: find the pushes whose notification never arrived, by listing the registry.
//!
//! Distribution keeps undelivered notifications in memory only: a push made while the
//! service is down is delivered once it is back (the registry retries forever), but if the
//! *registry* restarts meanwhile, or its endpoint is misconfigured for a while, the event is
//! gone. So every `server.reconcile_seconds` (and once at start) each configured registry
//! is listed: `/v2/_catalog`, then for every repository a tenant owns `tags/list`, and a
//! `HEAD` of every tag's manifest. A tag whose manifest the store does not know under that
//! tag is enqueued like a push (`Store::enqueue_if_unscanned`, reason `push`): a manifest
//! never seen is scanned, a known one gets the tag recorded. An index is fetched once to
//! list its platform manifests (indexes are immutable, so that is remembered by digest).
//!
//! The pull account must be allowed to list the catalog (with token authentication: a
//! token for `registry:catalog:*`, which is asked for). What it does not find: manifests
//! pushed by digest only (no tag lists them).
//!
//! Every instance sharing a store reconciles; the enqueue coalesces, so that costs reads,
//! not duplicate scans.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bulkhead_store::{Enqueued, ImageFilter, NewJob, Page, Pushed, Reason, Store, now_ms};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use tokio::sync::{Notify, watch};

use super::config::{RegistryConfig, RegistryCredentials, ServeConfig};
use bulkhead_scan::source::SourceError;

/// Entries asked for per catalog or tag page.
const PAGE: usize = 1000;
/// Most repositories, and most tags of one repository, looked at per pass: a registry that
/// pages forever must not keep a pass (or its memory) going forever.
const MAX_NAMES: usize = 100_000;
/// Consecutive failed look-ups after which a registry's pass is abandoned (it is down, or
/// refuses us): the next pass tries again.
const MAX_CONSECUTIVE_ERRORS: usize = 5;
/// Indexes remembered (digest → platform manifests) before the memory is cleared.
const MAX_CACHED_INDEXES: usize = 10_000;
/// Per-request timeouts of the listing client.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The reconcile loop's parts.
#[derive(Clone)]
pub struct Reconciler {
    pub store: Store,
    pub config: Arc<ServeConfig>,
    /// Signalled after a pass enqueued something.
    pub wake: Arc<Notify>,
    /// True once the service is stopping.
    pub shutdown: watch::Receiver<bool>,
}

/// What one pass over one registry did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Owned repositories listed.
    pub repositories: usize,
    /// Tags looked at.
    pub tags: usize,
    /// Manifests enqueued (new jobs).
    pub enqueued: usize,
    /// Manifests whose job was already queued or running.
    pub coalesced: usize,
    /// Tags recorded on manifests that already had a result.
    pub recorded: usize,
    /// Tags that could not be looked up (deleted meanwhile, refused…).
    pub errors: usize,
}

/// A platform manifest of an index: (digest, media type, platform).
type Child = (String, String, Option<String>);

impl Reconciler {
    /// Starts the loop: a pass at once, then one `every` after each pass ends, until
    /// shutdown. `None` when `server.reconcile_seconds` is 0 (off).
    pub fn spawn(self) -> Option<tokio::task::JoinHandle<()>> {
        let every = self.config.server.reconcile()?;
        Some(tokio::spawn(self.run(every)))
    }

    async fn run(mut self, every: Duration) {
        let mut indexes: HashMap<String, Vec<Child>> = HashMap::new();
        loop {
            if *self.shutdown.borrow() {
                return;
            }
            let mut stop = self.shutdown.clone();
            tokio::select! {
                _ = self.pass(&mut indexes) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                // Stopping, or nobody left to say so: either way, no more passes.
                changed = self.shutdown.changed() => if changed.is_err() { return },
            }
        }
    }

    /// One pass over every configured registry.
    async fn pass(&self, indexes: &mut HashMap<String, Vec<Child>>) {
        for registry in &self.config.registries {
            if indexes.len() > MAX_CACHED_INDEXES {
                indexes.clear();
            }
            // In a task of its own: oci-client unwraps some header values built from server
            // data (tokens), and a panic there must end this pass, not the loop.
            let task = {
                let this = self.clone();
                let registry = registry.clone();
                let mut cache = std::mem::take(indexes);
                tokio::spawn(async move {
                    let r = this.registry_pass(&registry, &mut cache).await;
                    (r, cache)
                })
            };
            match task.await {
                Ok((result, cache)) => {
                    *indexes = cache;
                    match result {
                        Ok(o) if o.enqueued + o.coalesced + o.recorded + o.errors > 0 => {
                            tracing::info!(
                                registry = %registry.name,
                                repositories = o.repositories,
                                tags = o.tags,
                                enqueued = o.enqueued,
                                coalesced = o.coalesced,
                                recorded = o.recorded,
                                errors = o.errors,
                                "reconcile: found pushes that were not notified"
                            );
                        }
                        Ok(o) => tracing::debug!(
                            registry = %registry.name,
                            repositories = o.repositories,
                            tags = o.tags,
                            "reconcile: nothing missing"
                        ),
                        Err(e) => tracing::warn!(
                            registry = %registry.name,
                            "reconcile: {e}; trying again in the next pass"
                        ),
                    }
                }
                Err(e) => tracing::warn!(
                    registry = %registry.name,
                    "reconcile: the pass failed: {e}; trying again in the next pass"
                ),
            }
        }
    }

    /// Lists one registry and enqueues what the store does not know.
    async fn registry_pass(
        &self,
        registry: &RegistryConfig,
        indexes: &mut HashMap<String, Vec<Child>>,
    ) -> Result<Outcome, String> {
        let lister = Lister::new(registry)?;
        let repositories = paged(MAX_NAMES, |last| lister.catalog(last))
            .await
            .map_err(|e| format!("cannot list the catalog of {}: {e}", registry.url))?;
        let mut outcome = Outcome::default();
        for repository in repositories {
            let tenant = match self.store.owner_of(&registry.name, &repository).await {
                Ok(Some(t)) => t,
                Ok(None) => continue,
                Err(e) => return Err(format!("the store failed: {e}")),
            };
            outcome.repositories += 1;
            let tags = match paged(MAX_NAMES, |last| lister.tags(&repository, last)).await {
                Ok(t) => t,
                Err(e) => {
                    // Deleted since the catalog was read, or refused: the next pass sees.
                    tracing::debug!(repository, "reconcile: cannot list tags: {e}");
                    outcome.errors += 1;
                    continue;
                }
            };
            let mut known = self
                .known(tenant, &registry.name, &repository)
                .await
                .map_err(|e| format!("the store failed: {e}"))?;
            let mut consecutive_errors = 0;
            for tag in tags {
                outcome.tags += 1;
                let digest = match lister.digest(&repository, &tag).await {
                    Ok(d) => {
                        consecutive_errors = 0;
                        d
                    }
                    Err(e) => {
                        tracing::debug!(repository, tag, "reconcile: cannot resolve: {e}");
                        outcome.errors += 1;
                        consecutive_errors += 1;
                        if consecutive_errors >= MAX_CONSECUTIVE_ERRORS {
                            return Err(format!(
                                "{consecutive_errors} look-ups in a row failed, the last: {e}"
                            ));
                        }
                        continue;
                    }
                };
                if !missing(&known, &digest, &tag) {
                    continue;
                }
                let targets: Vec<Child> = if known.contains_key(&digest) {
                    // A manifest the store has, under other tags.
                    vec![(digest.clone(), String::new(), None)]
                } else if let Some(children) = indexes.get(&digest) {
                    children.clone()
                } else {
                    match super::registry::inspect(registry, &repository, &digest).await {
                        Ok(found) => {
                            let children: Vec<Child> = found
                                .manifests
                                .into_iter()
                                .map(|m| (m.digest, m.media_type, m.platform))
                                .collect();
                            if children.len() != 1 || children[0].0 != digest {
                                indexes.insert(digest.clone(), children.clone());
                            }
                            children
                        }
                        // Not an image (a Helm chart, a signature): enqueued all the same,
                        // so that its owner sees it `unsupported`, as the webhook does.
                        Err(SourceError::Unsupported { .. }) => {
                            vec![(digest.clone(), String::new(), None)]
                        }
                        Err(e) => {
                            tracing::debug!(repository, tag, "reconcile: cannot inspect: {e}");
                            outcome.errors += 1;
                            continue;
                        }
                    }
                };
                for (child, media_type, platform) in targets {
                    if !missing(&known, &child, &tag) {
                        continue;
                    }
                    let now = now_ms();
                    let job = NewJob {
                        tenant_id: tenant,
                        registry: registry.name.clone(),
                        repository: repository.clone(),
                        digest: child.clone(),
                        tag: Some(tag.clone()),
                        media_type: (!media_type.is_empty()).then_some(media_type),
                        platform,
                        reason: Reason::Push,
                        run_at: now,
                        now,
                    };
                    // Another tag of this manifest later in the list needs no look-up.
                    known.entry(child.clone()).or_default().insert(tag.clone());
                    match self.store.enqueue_if_unscanned(job).await {
                        Ok(Pushed::Job(Enqueued::New(_))) => {
                            outcome.enqueued += 1;
                            self.wake.notify_waiters();
                        }
                        Ok(Pushed::Job(Enqueued::Coalesced(_))) => outcome.coalesced += 1,
                        Ok(Pushed::AlreadyScanned { .. }) => outcome.recorded += 1,
                        Err(e) => return Err(format!("the store failed: {e}")),
                    }
                }
            }
        }
        Ok(outcome)
    }

    /// The manifests the store has for `repository`, each with the tags it was seen under.
    async fn known(
        &self,
        tenant: bulkhead_store::TenantId,
        registry: &str,
        repository: &str,
    ) -> Result<Known, bulkhead_store::Error> {
        let filter = ImageFilter {
            registry: Some(registry.to_string()),
            repository: Some(repository.to_string()),
            ..Default::default()
        };
        let mut known = Known::new();
        let mut page = Page {
            limit: Some(bulkhead_store::MAX_PAGE),
            cursor: None,
        };
        loop {
            let got = self.store.images(tenant, &filter, &page).await?;
            for image in got.items {
                known.entry(image.digest).or_default().extend(image.tags);
            }
            match got.next_cursor {
                Some(c) => page.cursor = Some(c),
                None => return Ok(known),
            }
        }
    }
}

/// What the store knows of one repository: manifest digest → tags it was seen under.
type Known = HashMap<String, BTreeSet<String>>;

/// Whether `digest` under `tag` is news to the store.
fn missing(known: &Known, digest: &str, tag: &str) -> bool {
    !known.get(digest).is_some_and(|tags| tags.contains(tag))
}

/// Every name of a paged listing: `fetch(last)` returns the page after `last`. Stops at
/// the first page that adds no new name (an empty page, or a registry that ignores `last`
/// and answers the same list again: Distribution 2.8 does for tags), or at `max` names.
async fn paged<F, Fut>(max: usize, mut fetch: F) -> Result<Vec<String>, String>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<Vec<String>, String>>,
{
    let mut seen = HashSet::new();
    let mut names = Vec::new();
    let mut last: Option<String> = None;
    while names.len() < max {
        let page = fetch(last.clone()).await?;
        let before = names.len();
        for name in page {
            if names.len() >= max {
                break;
            }
            if seen.insert(name.clone()) {
                last = Some(name.clone());
                names.push(name);
            }
        }
        if names.len() == before {
            break;
        }
    }
    Ok(names)
}

/// Lists one registry with its configured credentials: tags and manifests through
/// oci-client, the catalog through plain HTTP (see [`Lister::catalog`]).
struct Lister {
    client: Client,
    http: reqwest::Client,
    auth: RegistryAuth,
    host: String,
    /// `http(s)://HOST[:PORT]`.
    base: String,
    insecure: bool,
}

impl Lister {
    fn new(registry: &RegistryConfig) -> Result<Lister, String> {
        // oci-client's reqwest is built without a crypto provider; install ours once. An
        // error only means one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let auth = match &registry.credentials {
            None => RegistryAuth::Anonymous,
            Some(RegistryCredentials::Basic { username, password }) => {
                RegistryAuth::Basic(username.clone(), password.expose().to_string())
            }
            Some(RegistryCredentials::Token(t)) => RegistryAuth::Bearer(t.expose().to_string()),
        };
        // oci-client puts credentials into a header and panics on bytes a header cannot
        // carry.
        let printable = |s: &str| s.bytes().all(|b| (0x20..0x7f).contains(&b));
        let sendable = match &auth {
            RegistryAuth::Anonymous => true,
            RegistryAuth::Basic(u, p) => printable(u) && printable(p),
            RegistryAuth::Bearer(t) => printable(t),
        };
        if !sendable {
            return Err("the configured credentials have characters that cannot be sent".into());
        }
        let config = ClientConfig {
            protocol: if registry.insecure {
                ClientProtocol::HttpsExcept(vec![registry.host.clone()])
            } else {
                ClientProtocol::Https
            },
            platform_resolver: None,
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(READ_TIMEOUT),
            user_agent: concat!("bulkhead/", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        };
        let client =
            Client::try_from(config).map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("bulkhead/", env!("CARGO_PKG_VERSION")))
            // Credentials go to the registry and its token realm, nowhere a redirect says.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(READ_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        Ok(Lister {
            client,
            http,
            auth,
            host: registry.host.clone(),
            base: registry.url.clone(),
            insecure: registry.insecure,
        })
    }

    fn reference(&self, repository: &str, tag: &str) -> Result<Reference, String> {
        let name = format!("{}/{repository}:{tag}", self.host);
        name.parse()
            .map_err(|e| format!("{name}: not an image reference: {e}"))
    }

    /// One page of `/v2/_catalog`, requested here rather than through oci-client: on a
    /// registry with token authentication the catalog needs a token for the scope
    /// `registry:catalog:*`, and oci-client only ever asks for repository scopes.
    async fn catalog(&self, last: Option<String>) -> Result<Vec<String>, String> {
        let url = format!("{}/v2/_catalog", self.base);
        let mut query = vec![("n", PAGE.to_string())];
        if let Some(l) = last {
            query.push(("last", l));
        }
        let mut authorization = match &self.auth {
            RegistryAuth::Bearer(t) => Some(format!("Bearer {t}")),
            _ => None,
        };
        for _ in 0..2 {
            let mut request = self.http.get(&url).query(&query);
            if let Some(a) = &authorization {
                request = request.header(reqwest::header::AUTHORIZATION, a);
            }
            let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
            let status = response.status();
            if status == reqwest::StatusCode::UNAUTHORIZED && authorization.is_none() {
                let challenge = response
                    .headers()
                    .get(reqwest::header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                authorization = Some(self.answer(&challenge).await?);
                continue;
            }
            if !status.is_success() {
                return Err(format!("{url}: HTTP {status}"));
            }
            let body = read_limited(response, MAX_LISTING_BYTES)
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            #[derive(serde::Deserialize)]
            struct Catalog {
                repositories: Option<Vec<String>>,
            }
            let catalog: Catalog =
                serde_json::from_slice(&body).map_err(|e| format!("{url}: {e}"))?;
            return Ok(catalog.repositories.unwrap_or_default());
        }
        Err(format!(
            "{url}: HTTP 401 with the credentials the registry asked for"
        ))
    }

    /// The `Authorization` value that answers a `WWW-Authenticate` challenge: the
    /// configured Basic credentials, or a token from the challenge's realm for its scope.
    async fn answer(&self, challenge: &str) -> Result<String, String> {
        let (scheme, params) = parse_challenge(challenge);
        let param = |k: &str| {
            params
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        let basic = match &self.auth {
            RegistryAuth::Basic(u, p) => Some((u.clone(), p.clone())),
            _ => None,
        };
        if scheme.eq_ignore_ascii_case("basic") {
            let (u, p) =
                basic.ok_or("the registry asks for credentials and none are configured")?;
            use base64::Engine as _;
            let pair = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            return Ok(format!("Basic {pair}"));
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(format!("unsupported authentication scheme {scheme:?}"));
        }
        let realm = param("realm").ok_or("a Bearer challenge without a realm")?;
        // The realm gets the credentials: plain HTTP only where the registry is, too.
        let realm_ok =
            realm.starts_with("https://") || (self.insecure && realm.starts_with("http://"));
        if !realm_ok {
            return Err(format!("refusing the token realm {realm:?}"));
        }
        let mut query = vec![(
            "scope",
            param("scope").unwrap_or_else(|| "registry:catalog:*".to_string()),
        )];
        if let Some(service) = param("service") {
            query.push(("service", service));
        }
        let mut request = self.http.get(&realm).query(&query);
        if let Some((u, p)) = basic {
            request = request.basic_auth(u, Some(p));
        }
        let response = request.send().await.map_err(|e| format!("{realm}: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("the token service {realm} answered HTTP {status}"));
        }
        let body = read_limited(response, MAX_LISTING_BYTES)
            .await
            .map_err(|e| format!("{realm}: {e}"))?;
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let t: Token = serde_json::from_slice(&body).map_err(|e| format!("{realm}: {e}"))?;
        let token = t
            .token
            .or(t.access_token)
            .ok_or_else(|| format!("{realm}: no token in the answer"))?;
        Ok(format!("Bearer {token}"))
    }

    async fn tags(&self, repository: &str, last: Option<String>) -> Result<Vec<String>, String> {
        let reference = self.reference(repository, "latest")?;
        let r = tokio::time::timeout(
            READ_TIMEOUT,
            self.client
                .list_tags(&reference, &self.auth, Some(PAGE), last.as_deref()),
        )
        .await
        .map_err(|_| format!("no answer within {READ_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
        Ok(r.tags)
    }

    /// The digest `repository:tag` names now (a HEAD of the manifest).
    async fn digest(&self, repository: &str, tag: &str) -> Result<String, String> {
        let reference = self.reference(repository, tag)?;
        let digest = tokio::time::timeout(
            READ_TIMEOUT,
            self.client.fetch_manifest_digest(&reference, &self.auth),
        )
        .await
        .map_err(|_| format!("no answer within {READ_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
        if super::webhook::valid_digest(&digest) {
            Ok(digest)
        } else {
            Err(format!("{repository}:{tag}: unusable digest {digest:?}"))
        }
    }
}

/// Largest catalog page or token answer read.
const MAX_LISTING_BYTES: usize = 16 << 20;

/// The body, or an error past `max` bytes (a registry's answer is data we did not ask to
/// be unbounded).
async fn read_limited(mut response: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > max {
            return Err(format!("answer larger than {max} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `SCHEME k="v", k2=v2` (RFC 7235): the scheme and the parameters, quoted values
/// unescaped. Malformed parts are skipped.
fn parse_challenge(header: &str) -> (String, Vec<(String, String)>) {
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
    use std::cell::Cell;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn paging_follows_last_and_stops_at_an_empty_page() {
        let all = names(&["a", "b", "c", "d", "e"]);
        let calls = Cell::new(0);
        let got = block_on(paged(100, |last| {
            calls.set(calls.get() + 1);
            let start = match last {
                Some(l) => all
                    .iter()
                    .position(|n| *n == l)
                    .map_or(all.len(), |i| i + 1),
                None => 0,
            };
            let page: Vec<String> = all.iter().skip(start).take(2).cloned().collect();
            async move { Ok(page) }
        }))
        .expect("paged");
        assert_eq!(got, all);
        assert_eq!(calls.get(), 4, "three pages of 2, 2, 1, then an empty one");
    }

    #[test]
    fn a_registry_that_ignores_last_is_read_once() {
        // Distribution 2.8's tags/list returns every tag, unsorted, whatever `last` says.
        let all = names(&["v2", "latest", "v1"]);
        let calls = Cell::new(0);
        let got = block_on(paged(100, |_| {
            calls.set(calls.get() + 1);
            let page = all.clone();
            async move { Ok(page) }
        }))
        .expect("paged");
        assert_eq!(got, all);
        assert_eq!(calls.get(), 2);
    }

    #[test]
    fn an_endless_listing_is_cut_at_the_limit_and_errors_pass_through() {
        let n = Cell::new(0u64);
        let got = block_on(paged(25, |_| {
            let start = n.get();
            n.set(start + 10);
            let page: Vec<String> = (start..start + 10).map(|i| format!("r{i}")).collect();
            async move { Ok(page) }
        }))
        .expect("paged");
        assert_eq!(got.len(), 25);
        let e = block_on(paged(25, |_| async { Err("HTTP 401".to_string()) }));
        assert_eq!(e, Err("HTTP 401".to_string()));
    }

    #[test]
    fn challenges_are_parsed() {
        // Distribution's token challenge for the catalog, and htpasswd's.
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

    #[test]
    fn only_a_digest_not_known_under_the_tag_is_missing() {
        let mut known = Known::new();
        known.insert("sha256:aa".into(), ["v1".to_string()].into());
        known.insert("sha256:bb".into(), BTreeSet::new());
        assert!(!missing(&known, "sha256:aa", "v1"));
        // The tag moved to a digest the store has under other tags, or to a new one.
        assert!(missing(&known, "sha256:aa", "v2"));
        assert!(missing(&known, "sha256:bb", "v1"));
        assert!(missing(&known, "sha256:cc", "v1"));
    }
}

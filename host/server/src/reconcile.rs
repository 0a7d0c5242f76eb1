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

use bulkhead_scan::source::distribution::RegistryClient;
use bulkhead_store::{Enqueued, ImageFilter, NewJob, Page, Pushed, Reason, Store, now_ms};
use tokio::sync::{Notify, watch};

use super::config::{RegistryConfig, ServeConfig};
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
            // In a task of its own: a panic anywhere in a pass must end this pass, not the
            // loop.
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
        let lister = Lister {
            client: registry
                .client(&self.config.scan.registry_limits)
                .map_err(|e| e.to_string())?,
        };
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
                    match super::registry::inspect(
                        registry,
                        &self.config.scan.registry_limits,
                        &repository,
                        &digest,
                    )
                    .await
                    {
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

/// Lists one registry with its configured credentials, through the registry client every
/// path uses (bounded pages and times; the catalog asks for a `registry:catalog:*` token).
struct Lister {
    client: RegistryClient,
}

impl Lister {
    async fn catalog(&self, last: Option<String>) -> Result<Vec<String>, String> {
        self.client
            .catalog(PAGE, last.as_deref())
            .await
            .map_err(|e| e.to_string())
    }

    async fn tags(&self, repository: &str, last: Option<String>) -> Result<Vec<String>, String> {
        self.client
            .tags(repository, PAGE, last.as_deref())
            .await
            .map_err(|e| e.to_string())
    }

    /// The digest `repository:tag` names now (a HEAD of the manifest).
    async fn digest(&self, repository: &str, tag: &str) -> Result<String, String> {
        let what = format!("{}/{repository}:{tag}", self.client.registry());
        let digest = self
            .client
            .manifest_digest(repository, tag, &what)
            .await
            .map_err(|e| e.to_string())?;
        if super::webhook::valid_digest(&digest) {
            Ok(digest)
        } else {
            Err(format!(
                "{what}: unusable digest {:?}",
                digest.chars().take(100).collect::<String>()
            ))
        }
    }
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

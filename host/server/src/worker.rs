//! The workers: claim a job, keep its lease alive while scanning, record the result.
//!
//! * Claims come from the store (`FOR UPDATE SKIP LOCKED` / `BEGIN IMMEDIATE`), so any number
//!   of workers and processes share one queue; a worker that dies (kill -9) leaves a lease
//!   that expires, and the job is claimed again: interrupted scans run again, none is lost.
//! * The scan is the CLI's pipeline (`scan::scan`) with the sandbox and analyzers loaded
//!   once per process; the reference is `HOST/REPOSITORY@DIGEST` on the configured registry,
//!   with its credentials.
//! * `complete` only writes while the job still runs under this worker's lease, so a job
//!   completes at most once; a worker that lost its lease drops its result silently.
//! * Failures are classified: transient (the registry's 5xx/429, the network, a timeout, no
//!   advisory database yet) go back to the queue with exponential backoff until
//!   `max_attempts`; permanent ones (manifest unknown, refused credentials, a hostile image)
//!   fail at once; media types we do not scan (Helm charts, attestations, schema 1) make
//!   the image `unsupported`.
//! * Every claimed job scans: a push of an image that already has a result never becomes a
//!   job (the webhook and the reconcile enqueue with `Store::enqueue_if_unscanned`, which
//!   records the tag instead), and a manual scan is meant to scan again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bulkhead_store::{Error as StoreError, Job, Report, Store, now_ms};
use tokio::sync::{Notify, watch};

use super::config::ServeConfig;
use super::metrics::Metrics;
use bulkhead_scan::image::Disposition;
use bulkhead_scan::pipeline::Pipeline;
use bulkhead_scan::source::Source;

/// What the workers share.
#[derive(Clone)]
pub struct Workers {
    pub store: Store,
    pub config: Arc<ServeConfig>,
    /// Built once per process; the registry's credentials and protocol are set per job.
    pub scan: Arc<Pipeline>,
    pub metrics: Arc<Metrics>,
    /// Signalled when a job is enqueued, so an idle worker need not wait for its poll.
    pub wake: Arc<Notify>,
    /// True once the service is stopping: no new claims.
    pub shutdown: watch::Receiver<bool>,
    /// How long an in-flight scan may go on after shutdown before it is abandoned.
    pub grace: Duration,
}

/// How a failed scan is treated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// May succeed later: back to the queue with backoff.
    Transient(String),
    /// Will fail again: `failed` now.
    Permanent(String),
    /// Not an image we scan: `failed`, image `unsupported`.
    Unsupported(String),
}

/// Sort a scan error into [`Failure`]s by its type (the scanner's [`Disposition`]), never
/// by its text.
pub fn classify(e: &anyhow::Error) -> Failure {
    let message = format!("{e:#}");
    match bulkhead_scan::scan::disposition(e) {
        Disposition::Transient => Failure::Transient(message),
        Disposition::Permanent => Failure::Permanent(message),
        Disposition::Unsupported => Failure::Unsupported(message),
    }
}

impl Workers {
    /// Start `n` workers; they end when `shutdown` turns true (after their current job).
    pub fn spawn(&self, n: usize) -> Vec<tokio::task::JoinHandle<()>> {
        let run = uuid::Uuid::new_v4().simple().to_string();
        (0..n)
            .map(|i| {
                let w = self.clone();
                let id = format!("pid{}-{}-w{i}", std::process::id(), &run[..8]);
                tokio::spawn(async move { w.run(id).await })
            })
            .collect()
    }

    async fn run(mut self, id: String) {
        let lease = self.config.server.lease();
        let poll = self.config.server.poll();
        loop {
            if *self.shutdown.borrow() {
                return;
            }
            match self.store.claim(&id, lease, now_ms()).await {
                Ok(Some(job)) => {
                    tracing::info!(
                        worker = %id,
                        job = job.id,
                        attempt = job.attempts,
                        "scanning {}/{}@{}",
                        job.registry,
                        job.repository,
                        job.digest
                    );
                    self.job(job).await;
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(worker = %id, "cannot claim a job: {e}"),
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = self.shutdown.changed() => {}
            }
        }
    }

    async fn job(&self, job: Job) {
        let Some(token) = job.lease_token.clone() else {
            tracing::error!(job = job.id, "claimed without a lease token; leaving it");
            return;
        };
        let max = i64::from(self.config.server.max_attempts);
        if job.attempts > max {
            let last = job
                .error
                .clone()
                .unwrap_or_else(|| "the worker stopped mid-scan".into());
            let message = format!(
                "gave up after {} attempts (server.max_attempts = {max}); last error: {last}",
                job.attempts - 1
            );
            self.finish_failed(&job, &token, &message, false).await;
            return;
        }
        let Some(registry) = self.config.registry(&job.registry) else {
            let message = format!(
                "registry {:?} is not in the configuration ({}) any more",
                job.registry,
                self.config.file.display()
            );
            self.finish_failed(&job, &token, &message, false).await;
            return;
        };
        let db = self
            .scan
            .options
            .assess
            .as_ref()
            .map(|a| a.db.clone())
            .unwrap_or_default();
        if !db.exists() {
            let message = format!(
                "no advisory database at {}: import one (`bulkhead db import FEED --db FILE`) or set scan.db",
                db.display()
            );
            self.finish_transient(&job, &token, &message).await;
            return;
        }

        let source = Source::Registry(registry.reference(&job.repository, &job.digest));
        let mut options = self.scan.options.clone();
        registry.resolve_options(&mut options.resolve);

        let (lost_tx, mut lost_rx) = watch::channel(false);
        let heartbeat = tokio::spawn(heartbeat(
            self.store.clone(),
            job.id,
            token.clone(),
            self.config.server.lease(),
            lost_tx,
        ));
        let started = Instant::now();
        let scan = self.scan.scan_with(&source, &options);
        let mut shutdown = self.shutdown.clone();
        let grace = self.grace;
        let stopping = async move {
            while !*shutdown.borrow() {
                if shutdown.changed().await.is_err() {
                    // The sender is gone: nobody will ever ask us to stop.
                    std::future::pending::<()>().await;
                }
            }
            tokio::time::sleep(grace).await;
        };
        let lost = async move {
            // Ends when the heartbeat reports the lease lost; `Ref` must not be held.
            let _ = lost_rx.wait_for(|lost| *lost).await.map(|_| ());
        };
        enum Ended<T> {
            Scanned(T),
            LeaseLost,
            Stopping,
        }
        let ended = tokio::select! {
            r = tokio::time::timeout(self.config.scan.timeout, scan) => Ended::Scanned(r),
            _ = lost => Ended::LeaseLost,
            _ = stopping => Ended::Stopping,
        };
        heartbeat.abort();
        let outcome = match ended {
            Ended::Scanned(r) => Some(r),
            Ended::LeaseLost => None,
            Ended::Stopping => {
                // Give the job back now rather than when its lease runs out.
                let now = now_ms();
                if let Err(e) = self
                    .store
                    .retry(job.id, &token, "interrupted: the service stopped", now, now)
                    .await
                {
                    tracing::warn!(
                        job = job.id,
                        "cannot give the job back ({e}); it runs again when its lease expires"
                    );
                }
                self.metrics.scan_outcome("abandoned");
                return;
            }
        };
        let Some(outcome) = outcome else {
            tracing::info!(
                job = job.id,
                "lease lost while scanning: another worker has the job"
            );
            self.metrics.scan_outcome("lease_lost");
            return;
        };
        match outcome {
            Err(_) => {
                let message = format!(
                    "the scan took longer than scan.timeout_seconds ({}s)",
                    self.config.scan.timeout.as_secs()
                );
                self.finish_transient(&job, &token, &message).await;
            }
            Ok(Err(e)) => match classify(&e) {
                Failure::Transient(m) => self.finish_transient(&job, &token, &m).await,
                Failure::Permanent(m) => self.finish_failed(&job, &token, &m, false).await,
                Failure::Unsupported(m) => self.finish_failed(&job, &token, &m, true).await,
            },
            Ok(Ok(result)) => {
                self.metrics.scan_duration(started.elapsed());
                self.complete(&job, &token, result.report(), "done").await;
            }
        }
    }

    /// Record a report; a store that is briefly unavailable is tried again, since the scan
    /// itself was the expensive part.
    async fn complete(&self, job: &Job, token: &str, report: Report, outcome: &'static str) {
        let mut delay = Duration::from_millis(500);
        for attempt in 1..=4 {
            match self.store.complete(job.id, token, &report, now_ms()).await {
                Ok(c) => {
                    tracing::info!(
                        job = job.id,
                        image = c.image_id,
                        health = %c.health,
                        outcome,
                        "recorded {}/{}@{}",
                        job.registry,
                        job.repository,
                        job.digest
                    );
                    self.metrics.scan_outcome(outcome);
                    return;
                }
                Err(StoreError::Db(e)) if attempt < 4 => {
                    tracing::warn!(job = job.id, "cannot record the result ({e}); retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(StoreError::Report(m)) => {
                    let message = format!("the scan's report was refused by the store: {m}");
                    self.finish_failed(job, token, &message, false).await;
                    return;
                }
                Err(e) => {
                    self.store_error(job, e);
                    return;
                }
            }
        }
    }

    async fn finish_transient(&self, job: &Job, token: &str, message: &str) {
        let max = i64::from(self.config.server.max_attempts);
        if job.attempts >= max {
            let m = format!("gave up after {} attempts: {message}", job.attempts);
            self.finish_failed(job, token, &m, false).await;
            return;
        }
        let attempts = u32::try_from(job.attempts.max(1)).unwrap_or(u32::MAX);
        let delay = self.config.server.backoff.delay(attempts);
        let now = now_ms();
        let run_at = now.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 4));
        tracing::warn!(
            job = job.id,
            attempt = job.attempts,
            "scan failed, retrying in {delay:?}: {message}"
        );
        match self.store.retry(job.id, token, message, run_at, now).await {
            Ok(()) => self.metrics.scan_outcome("retried"),
            Err(e) => self.store_error(job, e),
        }
    }

    async fn finish_failed(&self, job: &Job, token: &str, message: &str, unsupported: bool) {
        tracing::warn!(
            job = job.id,
            unsupported,
            "scan of {}/{}@{} failed: {message}",
            job.registry,
            job.repository,
            job.digest
        );
        match self
            .store
            .fail(job.id, token, message, unsupported, now_ms())
            .await
        {
            Ok(()) => self
                .metrics
                .scan_outcome(if unsupported { "unsupported" } else { "failed" }),
            Err(e) => self.store_error(job, e),
        }
    }

    fn store_error(&self, job: &Job, e: StoreError) {
        match e {
            StoreError::LeaseLost(_) => {
                tracing::info!(job = job.id, "lease lost: another worker has the job");
                self.metrics.scan_outcome("lease_lost");
            }
            e => tracing::warn!(
                job = job.id,
                "cannot record the job's end ({e}); it runs again when its lease expires"
            ),
        }
    }
}

/// Renew the lease every third of its length; tell the worker when it is lost.
async fn heartbeat(
    store: Store,
    job: i64,
    token: String,
    lease: Duration,
    lost: watch::Sender<bool>,
) {
    let every = lease / 3;
    loop {
        tokio::time::sleep(every).await;
        let until =
            now_ms().saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 4));
        match store.heartbeat(job, &token, until).await {
            Ok(true) => {}
            Ok(false) | Err(StoreError::LeaseLost(_)) => {
                let _ = lost.send(true);
                return;
            }
            // The store may come back before the lease runs out; if it does not, the
            // claim of another worker wins and `complete` says so.
            Err(e) => tracing::warn!(job, "cannot renew the lease: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulkhead_scan::layers::stream::LayerError;
    use bulkhead_scan::source::SourceError;

    fn source(e: SourceError) -> anyhow::Error {
        anyhow::Error::new(e).context("scanning 127.0.0.1:5000/x@sha256:00")
    }

    #[test]
    fn errors_are_classified_by_type() {
        let t = classify(&source(SourceError::Network {
            what: "m".into(),
            message: "HTTP 503".into(),
        }));
        assert!(
            matches!(t, Failure::Transient(ref m) if m.contains("HTTP 503")),
            "{t:?}"
        );
        assert!(matches!(
            classify(&source(SourceError::NotFound { what: "m".into() })),
            Failure::Permanent(_)
        ));
        assert!(matches!(
            classify(&source(SourceError::Unauthorized {
                registry: "r".into(),
                message: "401".into()
            })),
            Failure::Permanent(_)
        ));
        assert!(matches!(
            classify(&source(SourceError::DigestMismatch {
                what: "m".into(),
                expected: "a".into(),
                actual: "b".into()
            })),
            Failure::Permanent(_)
        ));
        // The parser's own words for a Helm chart and for an unknown manifest type.
        for detail in [
            "not a container image: config media type \"application/vnd.cncf.helm.config.v1+json\" (an artifact such as a Helm chart or a signature?)",
            "unsupported manifest media type \"application/vnd.oci.artifact.manifest.v1+json\"",
        ] {
            let got = classify(&source(SourceError::Unsupported {
                what: "m".into(),
                message: detail.into(),
            }));
            assert!(matches!(got, Failure::Unsupported(_)), "{detail}: {got:?}");
        }
        assert!(matches!(
            classify(&source(SourceError::Invalid {
                what: "m".into(),
                message: "a manifest without layers".into()
            })),
            Failure::Permanent(_)
        ));
        let short = anyhow::Error::new(LayerError::SizeMismatch {
            blob: "b".into(),
            expected: 10,
            actual: 3,
        });
        assert!(matches!(classify(&short), Failure::Transient(_)));
        let bomb = anyhow::Error::new(LayerError::Bomb {
            blob: "b".into(),
            ratio: 100,
        });
        assert!(matches!(classify(&bomb), Failure::Permanent(_)));
        assert!(matches!(
            classify(&anyhow::anyhow!("something else")),
            Failure::Permanent(_)
        ));
    }

    #[test]
    fn the_parser_still_says_what_classify_looks_for() {
        // The parser types what is not an image, so that Helm charts become `unsupported`
        // rather than `failed`.
        let limits = bulkhead_scan::source::manifest::Limits {
            max_manifest_bytes: 1 << 20,
            max_layers: 10,
        };
        let helm = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{"mediaType":"application/vnd.cncf.helm.config.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":1},
            "layers":[]}"#;
        let artifact =
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.artifact.manifest.v1+json"}"#;
        let schema1 = br#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        for doc in [&helm[..], &artifact[..], &schema1[..]] {
            let e = bulkhead_scan::source::manifest::parse_document(doc, "m", &limits)
                .expect_err("not an image");
            assert!(matches!(e, SourceError::Unsupported { .. }), "{e:?}");
            assert!(matches!(
                classify(&anyhow::Error::new(e)),
                Failure::Unsupported(_)
            ));
        }
    }
}

//! The pipeline, in order. This is the only module that knows the order of the stages:
//!
//! 1. `source`: resolve the reference to a manifest, a config and blobs (registry, OCI
//!    layout, docker archive), or walk a directory (`dir:`, one layer);
//! 2. for each layer, in parallel but merged in order: look up the layer cache; on a miss,
//!    `layers`: stream the blob once (digests, decompression, limits), extract the files
//!    the analyzers asked for into a scratch tree and record whiteouts;
//! 3. `sandbox`: run every analyzer that has no cached result over the layer's tree, each
//!    under its limits; store what they found;
//! 4. `merge`: stack the layer inventories into the image inventory (whiteouts, database
//!    replacement, the layer that introduced each package) and the release files the host
//!    read into the image's OS (analyzers' OS claims are only checked);
//! 5. `assess`: match the inventory against the advisory database, classify (severity,
//!    filters, suppressions, health, recommendations, end of life);
//! 6. `report`: hand the result, with every diagnostic, to the reporters.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::analyzers::Registry;
use crate::layers::cache::LayerCache;
use crate::layers::{ExtractLimits, LayerLimits, Selector, Whiteouts};
use crate::merge::{LayerInput, LayerResult};
use crate::sandbox::{Loaded, Outcome, Sandbox, Verdict, WIT_VERSIONS};
use crate::source::{BlobSource, Image, LayerDesc, ResolveOptions, Source};
use crate::text::sanitize;
use bulkhead_model::report::{ImageInfo, Layer, Stats};
use bulkhead_model::{Analysis, Assessment, Diagnostic, Inventory, Level, Os, Package, Report};

/// Everything a scan needs besides the analyzers.
#[derive(Clone, Debug, Default)]
pub struct ScanOptions {
    pub resolve: ResolveOptions,
    pub extract: ExtractLimits,
    pub layers: LayerLimits,
    /// The layer result cache; `None` disables it.
    pub cache: Option<Arc<LayerCache>>,
    /// Layers downloaded and analysed at once.
    pub parallel_layers: usize,
    /// Match against advisories; `None`: inventory only.
    pub assess: Option<Arc<crate::assess::AssessOptions>>,
    /// Told about layer bytes as they are downloaded (the CLI draws a progress bar).
    pub progress: Option<Arc<dyn Progress>>,
}

/// What to do about a scan that failed with `e`: the first typed cause in its chain
/// decides (a source error, a layer error); anything else will fail again.
pub fn disposition(e: &anyhow::Error) -> crate::image::Disposition {
    for cause in e.chain() {
        if let Some(s) = cause.downcast_ref::<crate::image::SourceError>() {
            return s.disposition();
        }
        if let Some(l) = cause.downcast_ref::<crate::layers::stream::LayerError>() {
            return l.disposition();
        }
    }
    crate::image::Disposition::Permanent
}

/// An observer of download progress. The scanner only reports; how progress is shown
/// (a terminal bar, nothing in the service) is the caller's business.
pub trait Progress: Send + Sync + std::fmt::Debug {
    /// A layer of `bytes` (compressed) starts downloading.
    fn layer(&self, bytes: u64);
    /// `bytes` more of some layer arrived.
    fn advance(&self, bytes: u64);
    /// Every layer is done.
    fn finish(&self);
}

/// What a scan produced.
#[derive(Debug)]
pub struct ScanResult {
    pub reference: String,
    pub image: Option<Image>,
    pub inventory: Inventory,
    pub diagnostics: Vec<Diagnostic>,
    /// `name@version` of every analyzer that ran.
    pub analyzers: Vec<String>,
    pub stats: Stats,
    /// Findings and their classification; `None` when not matched.
    pub assessment: Option<Assessment>,
}

impl ScanResult {
    /// False when any part of the inventory is missing: an analyzer failed or was
    /// stopped, or a file could not be analysed.
    pub fn complete(&self) -> bool {
        !self.diagnostics.iter().any(|d| d.level == Level::Error)
    }
}

impl ScanResult {
    /// The JSON report of this scan ([`Report`]): what every format renders and the
    /// service stores. Owned files are inventory evidence, not report content.
    pub fn report(&self) -> Report {
        let assessment: Option<&Assessment> = self.assessment.as_ref();
        Report {
            schema_version: bulkhead_model::SCHEMA_VERSION.to_string(),
            image: ImageInfo {
                reference: self.reference.clone(),
                digest: self.image.as_ref().and_then(|i| i.manifest_digest.clone()),
                platform: self
                    .image
                    .as_ref()
                    .and_then(|i| i.platform.as_ref())
                    .map(|p| p.to_string()),
                layers: self
                    .image
                    .iter()
                    .flat_map(|i| &i.layers)
                    .map(|l| Layer {
                        digest: l.digest.clone(),
                        diff_id: l.diff_id.clone(),
                        media_type: l.media_type.clone(),
                        size: l.size,
                        created_by: l.created_by.clone(),
                    })
                    .collect(),
            },
            os: self.inventory.os.clone().map(|o| Os {
                eol: assessment.and_then(|a| a.eol.clone()),
                ..o
            }),
            complete: self.complete(),
            analyzers: self.analyzers.clone(),
            packages: self
                .inventory
                .packages
                .iter()
                .map(|p| Package {
                    files: Vec::new(),
                    ..p.clone()
                })
                .collect(),
            database: assessment.map(|a| a.db.clone()),
            findings: assessment.map(|a| a.findings.clone()).unwrap_or_default(),
            summary: assessment.map(|a| a.summary.clone()),
            health: assessment.map(|a| a.health),
            health_threshold: assessment.map(|a| a.health_threshold),
            suppressed: assessment.map(|a| a.suppressed.clone()).unwrap_or_default(),
            recommendations: assessment
                .map(|a| a.recommendations.clone())
                .unwrap_or_default(),
            diagnostics: self.diagnostics.clone(),
            stats: self.stats.clone(),
        }
    }
}

/// One analyzer's verdict on one layer, as the cache keeps it. Failures are never
/// cached: they are retried on the next scan.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Cached {
    Analysis(Box<Analysis>),
    NotApplicable,
}

/// The shape of cached values (the model's `Analysis` and `Diagnostic`): part of every
/// key, so that entries written by another shape are never misread, only missed.
const CACHE_FORMAT: &str = "m3";

/// What the cache keeps about a layer regardless of analyzers.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LayerRecord {
    whiteouts: Whiteouts,
    diagnostics: Vec<Diagnostic>,
    /// The release files the host read from the layer (it decides the OS from them).
    release: crate::release::ReleaseFiles,
}

/// Scan `source` with every analyzer of `registry`.
pub async fn scan(
    sandbox: Arc<Sandbox>,
    registry: &Registry,
    source: &Source,
    opts: &ScanOptions,
) -> Result<ScanResult> {
    let started = Instant::now();
    // The host's own requests (release files) next to the analyzers'.
    let host_requests = crate::release::requests();
    let selector = Arc::new(
        Selector::new(registry.requests().chain(host_requests.iter()))
            .map_err(|e| anyhow::anyhow!("an analyzer's file request is invalid: {e}"))?,
    );
    let mut result = match source {
        Source::Dir(root) => {
            scan_dir(sandbox, registry, source, root.clone(), selector, opts).await?
        }
        _ => {
            let (image, blobs) = crate::source::resolve(source, &opts.resolve).await?;
            scan_image(sandbox, registry, source, image, blobs, selector, opts).await?
        }
    };
    if let Some(cache) = &opts.cache {
        match cache.evict() {
            Ok(e) if e.removed > 0 => tracing::info!(
                removed = e.removed,
                bytes = e.bytes_after,
                "layer cache trimmed"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("cannot trim the layer cache: {e}"),
        }
    }
    if let Some(assess) = &opts.assess {
        assess_result(&mut result, assess.clone()).await?;
    }
    result.stats.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(result)
}

/// Stage 5. The database is opened per scan: `db update` swaps the file atomically, and
/// the next scan sees the new one.
async fn assess_result(
    result: &mut ScanResult,
    opts: Arc<crate::assess::AssessOptions>,
) -> Result<()> {
    if !opts.db.exists() {
        let message = format!(
            "no advisory database at {}: packages were inventoried but not matched; run `bulkhead db update` (online) or `bulkhead db import FEED…`",
            opts.db.display()
        );
        if opts.require_db {
            anyhow::bail!("{message}");
        }
        result
            .diagnostics
            .push(Diagnostic::warning("no-advisory-db", message));
        return Ok(());
    }
    let inventory = result.inventory.clone();
    let complete = result.complete();
    let reference = result.reference.clone();
    let digest = result
        .image
        .as_ref()
        .and_then(|i| i.manifest_digest.clone());
    let (assessment, diagnostics) = tokio::task::spawn_blocking(move || {
        let store = bulkhead_advisories::Store::open(&opts.db)
            .with_context(|| format!("cannot open the advisory database {}", opts.db.display()))?;
        let image = crate::assess::ImageIdentity {
            reference: &reference,
            digest: digest.as_deref(),
        };
        crate::assess::assess(
            &store,
            &inventory,
            complete,
            &image,
            &opts.policy,
            jiff::Timestamp::now(),
        )
    })
    .await
    .context("the matching task failed")??;
    result.diagnostics.extend(diagnostics);
    result.assessment = Some(assessment);
    Ok(())
}

async fn scan_dir(
    sandbox: Arc<Sandbox>,
    registry: &Registry,
    source: &Source,
    root: std::path::PathBuf,
    selector: Arc<Selector>,
    opts: &ScanOptions,
) -> Result<ScanResult> {
    let name = source.to_string();
    let limits = opts.extract.clone();
    let (tree, mut diagnostics) = tokio::task::spawn_blocking(move || {
        let mut diags = Vec::new();
        let tree = crate::source::dir::extract(&root, &selector, &limits, &mut diags);
        (tree, diags)
    })
    .await
    .context("the extraction task failed")?;
    let tree = tree?;
    let release = crate::release::read_tree(tree.path());
    let layer = LayerMeta {
        name: name.clone(),
        digest: None,
        created_by: None,
    };
    let outcomes = run_analyzers(&sandbox, registry.analyzers(), tree.path()).await?;
    let mut results = Vec::new();
    for (analyzer, outcome) in outcomes {
        if let Some(r) = interpret(&analyzer, &layer, outcome, &mut diagnostics) {
            results.push(r);
        }
    }
    drop(tree);
    let mut inputs = [LayerInput {
        whiteouts: Whiteouts::default(),
        release,
        results,
    }];
    confine(registry, &mut inputs, &mut diagnostics);
    let merged = crate::merge::merge(inputs);
    diagnostics.extend(merged.diagnostics);
    Ok(ScanResult {
        reference: name,
        image: None,
        inventory: merged.inventory,
        diagnostics,
        analyzers: registry.analyzers().iter().map(|a| a.id()).collect(),
        stats: Stats {
            layers: 1,
            ..Stats::default()
        },
        assessment: None,
    })
}

/// How a layer is named in results.
#[derive(Debug, Clone)]
struct LayerMeta {
    name: String,
    digest: Option<String>,
    created_by: Option<String>,
}

/// One layer's contribution, before merging.
struct LayerOutput {
    input: LayerInput,
    diagnostics: Vec<Diagnostic>,
    downloaded: bool,
    compressed_bytes: u64,
    uncompressed_bytes: u64,
}

async fn scan_image(
    sandbox: Arc<Sandbox>,
    registry: &Registry,
    source: &Source,
    image: Image,
    blobs: Arc<dyn BlobSource>,
    selector: Arc<Selector>,
    opts: &ScanOptions,
) -> Result<ScanResult> {
    let fingerprint = requests_fingerprint(registry);
    let progress = opts.progress.clone();
    let parallel = opts.parallel_layers.max(1);
    let outputs: Vec<Result<LayerOutput>> = futures::stream::iter(image.layers.iter().cloned())
        .map(|layer| {
            let ctx = LayerContext {
                sandbox: sandbox.clone(),
                analyzers: registry.analyzers().to_vec(),
                blobs: blobs.clone(),
                selector: selector.clone(),
                opts: opts.clone(),
                fingerprint: fingerprint.clone(),
                progress: progress.clone(),
            };
            async move { ctx.layer(layer).await }
        })
        .buffered(parallel)
        .collect()
        .await;
    if let Some(p) = &progress {
        p.finish();
    }

    let mut diagnostics = Vec::new();
    let mut inputs = Vec::new();
    let mut stats = Stats {
        layers: image.layers.len(),
        ..Stats::default()
    };
    for output in outputs {
        let output = output?;
        diagnostics.extend(output.diagnostics);
        inputs.push(output.input);
        if output.downloaded {
            stats.layers_downloaded += 1;
        } else {
            stats.layers_from_cache += 1;
        }
        stats.compressed_bytes += output.compressed_bytes;
        stats.uncompressed_bytes += output.uncompressed_bytes;
    }
    confine(registry, &mut inputs, &mut diagnostics);
    let merged = crate::merge::merge(inputs);
    diagnostics.extend(merged.diagnostics);
    // A file recognised by its path is named by what it held (`docker-archive:` or
    // `oci-archive:`, as its resolver named the image); any other source as written.
    let reference = match source {
        Source::Archive(_) => image.reference.clone(),
        _ => source.to_string(),
    };
    Ok(ScanResult {
        reference,
        inventory: merged.inventory,
        image: Some(image),
        diagnostics,
        analyzers: registry.analyzers().iter().map(|a| a.id()).collect(),
        stats,
        assessment: None,
    })
}

/// What every layer task shares.
struct LayerContext {
    sandbox: Arc<Sandbox>,
    analyzers: Vec<Arc<Loaded>>,
    blobs: Arc<dyn BlobSource>,
    selector: Arc<Selector>,
    opts: ScanOptions,
    fingerprint: String,
    progress: Option<Arc<dyn Progress>>,
}

impl LayerContext {
    async fn layer(self, layer: LayerDesc) -> Result<LayerOutput> {
        let meta = LayerMeta {
            name: layer.diff_id.clone(),
            digest: Some(layer.digest.clone()),
            created_by: layer.created_by.clone(),
        };
        let mut output = LayerOutput {
            input: LayerInput::default(),
            diagnostics: Vec::new(),
            downloaded: false,
            compressed_bytes: 0,
            uncompressed_bytes: 0,
        };
        if layer.foreign {
            output.diagnostics.push(Diagnostic {
                level: Level::Info,
                code: "foreign-layer-skipped".into(),
                analyzer: None,
                layer: Some(layer.diff_id.clone()),
                message: format!(
                    "layer {} is foreign (non-distributable) and was not downloaded",
                    layer.digest
                ),
            });
            return Ok(output);
        }
        let cache = self.opts.cache.clone();
        let record_key = format!(
            "layer/{CACHE_FORMAT}/{}/{}",
            layer.diff_id, self.fingerprint
        );
        // One analysis per layer at a time in this process; a second scan of the same
        // layer waits and then finds the first one's results in the cache.
        let _claim = match &cache {
            Some(c) => Some(c.claim(&record_key).await),
            None => None,
        };
        let record: Option<LayerRecord> = cache.as_ref().and_then(|c| c.get(&record_key));
        let mut cached: Vec<(Arc<Loaded>, Cached)> = Vec::new();
        let mut missing: Vec<Arc<Loaded>> = Vec::new();
        for a in &self.analyzers {
            match cache
                .as_ref()
                .and_then(|c| c.get::<Cached>(&analysis_key(&layer, a)))
            {
                Some(v) => cached.push((a.clone(), v)),
                None => missing.push(a.clone()),
            }
        }

        let mut fresh: Vec<(Arc<Loaded>, Outcome)> = Vec::new();
        let whiteouts;
        let release;
        if let (Some(record), true) = (&record, missing.is_empty()) {
            whiteouts = record.whiteouts.clone();
            release = record.release.clone();
            output.diagnostics.extend(record.diagnostics.clone());
        } else {
            output.downloaded = true;
            let stream = self.blobs.open(&layer).await?;
            let stream: crate::source::BlobStream = match &self.progress {
                Some(p) => {
                    p.layer(layer.size);
                    let p = p.clone();
                    Box::pin(tokio_util::io::InspectReader::new(
                        stream,
                        move |b: &[u8]| p.advance(b.len() as u64),
                    ))
                }
                None => stream,
            };
            let bridge = tokio_util::io::SyncIoBridge::new(stream);
            let (selector, extract, limits, desc) = (
                self.selector.clone(),
                self.opts.extract.clone(),
                self.opts.layers.clone(),
                layer.clone(),
            );
            let (files, diags) = tokio::task::spawn_blocking(move || {
                let mut diags = Vec::new();
                let files = crate::layers::stream::process(
                    bridge, &desc, &selector, &extract, &limits, &mut diags,
                );
                (files, diags)
            })
            .await
            .context("the layer task failed")?;
            let files = files?;
            output.compressed_bytes = files.compressed_bytes;
            output.uncompressed_bytes = files.uncompressed_bytes;
            whiteouts = files.whiteouts.clone();
            release = crate::release::read_tree(files.tree.path());
            if let Some(c) = &cache {
                let record = LayerRecord {
                    whiteouts: whiteouts.clone(),
                    diagnostics: diags.clone(),
                    release: release.clone(),
                };
                if let Err(e) = c.put(&record_key, &record) {
                    tracing::warn!("cannot write the layer cache: {e}");
                }
            }
            output.diagnostics.extend(diags);
            // A layer without any requested file cannot interest any analyzer.
            if files.tree.files() == 0 {
                for a in missing.drain(..) {
                    if let Some(c) = &cache
                        && let Err(e) = c.put(&analysis_key(&layer, &a), &Cached::NotApplicable)
                    {
                        tracing::warn!("cannot write the layer cache: {e}");
                    }
                    cached.push((a, Cached::NotApplicable));
                }
            } else {
                fresh = run_analyzers(&self.sandbox, &missing, files.tree.path()).await?;
            }
            drop(files);
        }

        for (analyzer, verdict) in cached {
            if let Cached::Analysis(analysis) = verdict {
                output
                    .input
                    .results
                    .push(layer_result(&analyzer, &meta, *analysis));
            }
        }
        for (analyzer, outcome) in fresh {
            let cacheable = match &outcome.result {
                Ok(Verdict::Analysis(a)) => Some(Cached::Analysis(Box::new(a.clone()))),
                Ok(Verdict::NotApplicable) => Some(Cached::NotApplicable),
                _ => None,
            };
            if let (Some(c), Some(v)) = (&cache, cacheable)
                && let Err(e) = c.put(&analysis_key(&layer, &analyzer), &v)
            {
                tracing::warn!("cannot write the layer cache: {e}");
            }
            if let Some(r) = interpret(&analyzer, &meta, outcome, &mut output.diagnostics) {
                output.input.results.push(r);
            }
        }
        output.input.whiteouts = whiteouts;
        output.input.release = release;
        Ok(output)
    }
}

/// The cache key of an analyzer's verdict on a layer.
fn analysis_key(layer: &LayerDesc, a: &Loaded) -> String {
    format!(
        "analysis/{CACHE_FORMAT}/{}/{}/{}/wit{}",
        layer.diff_id, a.meta.name, a.meta.version, a.wit_version
    )
}

/// A layer's extraction depends on every analyzer's requests: fingerprint them.
fn requests_fingerprint(registry: &Registry) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(WIT_VERSIONS[0].as_bytes());
    // The host's own requests are part of what a layer's extraction holds.
    for r in crate::release::requests() {
        h.update(format!("host/{:?}/{}", r.pattern, r.max_size).as_bytes());
    }
    for a in registry.analyzers() {
        h.update(a.id().as_bytes());
        for r in &a.meta.requests {
            h.update(format!("{:?}/{}", r.pattern, r.max_size).as_bytes());
        }
    }
    hex::encode(&h.finalize()[..16])
}

/// Run `analyzers` over the tree at `root`, concurrently.
async fn run_analyzers(
    sandbox: &Arc<Sandbox>,
    analyzers: &[Arc<Loaded>],
    root: &std::path::Path,
) -> Result<Vec<(Arc<Loaded>, Outcome)>> {
    let runs: Vec<_> = analyzers
        .iter()
        .map(|a| {
            let sandbox = sandbox.clone();
            let analyzer = a.clone();
            let root = root.to_path_buf();
            tokio::spawn(async move {
                let outcome = sandbox.analyze(&analyzer, &root).await;
                (analyzer, outcome)
            })
        })
        .collect();
    let mut out = Vec::with_capacity(runs.len());
    for run in runs {
        out.push(run.await.context("an analyzer task failed")?);
    }
    Ok(out)
}

fn layer_result(analyzer: &Loaded, layer: &LayerMeta, analysis: Analysis) -> LayerResult {
    LayerResult {
        layer: layer.name.clone(),
        layer_digest: layer.digest.clone(),
        created_by: layer.created_by.clone(),
        analyzer: analyzer.meta.name.clone(),
        analyzer_id: analyzer.id(),
        builtin: analyzer.origin == bulkhead_model::Origin::BuiltIn,
        ecosystem: analyzer.meta.ecosystem.clone(),
        analysis,
    }
}

/// With third-party analyzers confined (`analyzers.confine_third_party`): drop the packages
/// they report from files a built-in analyzer reads, with a diagnostic naming them.
fn confine(registry: &Registry, inputs: &mut [LayerInput], diagnostics: &mut Vec<Diagnostic>) {
    for r in inputs
        .iter_mut()
        .flat_map(|i| i.results.iter_mut())
        .filter(|r| !r.builtin)
    {
        let mut paths = std::collections::BTreeSet::new();
        r.analysis.packages.retain(|p| {
            let reserved = registry.reserved_for_builtin(&p.db_path);
            if reserved {
                paths.insert(p.db_path.clone());
            }
            !reserved
        });
        if !paths.is_empty() {
            diagnostics.push(Diagnostic {
                level: Level::Warning,
                code: "analyzer-confined".into(),
                analyzer: Some(r.analyzer_id.clone()),
                layer: Some(r.layer.clone()),
                message: format!(
                    "{} reported packages from {}, which a built-in analyzer reads; they were dropped: third-party analyzers are confined to paths no built-in analyzer covers (analyzers.confine_third_party)",
                    r.analyzer_id,
                    paths.into_iter().collect::<Vec<_>>().join(", ")
                ),
            });
        }
    }
}

/// Turn one sandbox outcome into a layer result and diagnostics.
fn interpret(
    analyzer: &Loaded,
    layer: &LayerMeta,
    outcome: Outcome,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<LayerResult> {
    let id = analyzer.id();
    let diag = |level: Level, code: &str, message: String| Diagnostic {
        level,
        code: code.to_string(),
        analyzer: Some(id.clone()),
        layer: Some(layer.name.clone()),
        message,
    };
    if outcome.stderr_truncated {
        diagnostics.push(diag(
            Level::Warning,
            "analyzer-stderr-limit",
            format!("{id} wrote more to stderr than the stderr limit; the rest was discarded"),
        ));
    }
    match outcome.result {
        Ok(Verdict::Analysis(analysis)) => {
            for w in &analysis.warnings {
                let place = match (w.file.is_empty(), w.line) {
                    (true, _) => String::new(),
                    (false, 0) => format!("{}: ", w.file),
                    (false, l) => format!("{}:{l}: ", w.file),
                };
                diagnostics.push(diag(
                    Level::Warning,
                    "analyzer-warning",
                    format!("{place}{}", w.message),
                ));
            }
            Some(layer_result(analyzer, layer, analysis))
        }
        Ok(Verdict::NotApplicable) => None,
        Ok(Verdict::ParseError {
            file,
            line,
            message,
        }) => {
            diagnostics.push(diag(
                Level::Error,
                "analyzer-parse-error",
                format!("{id} cannot parse {file}:{line}: {message}"),
            ));
            None
        }
        Ok(Verdict::IoError(message)) => {
            diagnostics.push(diag(
                Level::Error,
                "analyzer-io-error",
                format!("{id}: {message}"),
            ));
            None
        }
        Err(e) => {
            let mut message = format!("analyzer {id} ({}) {e}", analyzer.origin);
            let stderr = outcome.stderr.trim();
            if !stderr.is_empty() {
                let tail: String = stderr
                    .chars()
                    .rev()
                    .take(512)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                message.push_str(&format!("; its stderr: {}", sanitize(&tail)));
            }
            diagnostics.push(diag(Level::Error, e.code(), message));
            None
        }
    }
}

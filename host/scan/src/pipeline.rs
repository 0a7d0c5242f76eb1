//! The one place a scan pipeline is put together from configuration: the sandbox, the
//! analyzers, the layer cache and the scan options. The CLI builds one per command, the
//! service one per process (shared by its workers); both go through [`Pipeline::build`],
//! so a limit or a default cannot differ between them by accident.

use std::sync::Arc;

use anyhow::{Context, Result};

use crate::analyzers::{Registry, Sources};
use crate::assess::AssessOptions;
use crate::home::Home;
use crate::layers::cache::LayerCache;
use crate::layers::{ExtractLimits, LayerLimits};
use crate::sandbox::{Limits, Sandbox};
use crate::scan::{Progress, ScanOptions, ScanResult};
use crate::source::{ResolveOptions, Source};

/// Layers downloaded and analysed at once, unless configured otherwise: three keep two
/// cores busy (one layer hashing and inflating while another is analysed) without
/// holding many scratch trees at once.
pub const DEFAULT_PARALLEL_LAYERS: usize = 3;

/// What a pipeline is made of; every field comes from configuration or flags.
#[derive(Debug)]
pub struct PipelineSpec {
    pub sandbox: Limits,
    pub analyzers: Sources,
    pub extract: ExtractLimits,
    pub layers: LayerLimits,
    /// Bound of the layer result cache in `$BULKHEAD_HOME/layers`; `None` disables it.
    pub cache_max_bytes: Option<u64>,
    pub parallel_layers: usize,
    pub resolve: ResolveOptions,
    /// Match against advisories; `None`: inventory only.
    pub assess: Option<AssessOptions>,
    pub progress: Option<Arc<dyn Progress>>,
}

impl PipelineSpec {
    /// The built-in analyzers plus those of `$BULKHEAD_HOME/analyzers` and `dirs`.
    pub fn sources(
        home: &Home,
        builtin: bool,
        paths: Vec<std::path::PathBuf>,
        dirs: &[std::path::PathBuf],
    ) -> Sources {
        let mut all = vec![home.analyzers()];
        all.extend(dirs.iter().cloned());
        Sources {
            builtin,
            paths,
            dirs: all,
            // The caller sets it from `analyzers.confine_third_party` (and the CLI flag).
            confine: false,
        }
    }
}

/// A ready pipeline: analyzers compiled and loaded once, shared by every scan.
#[derive(Debug)]
pub struct Pipeline {
    pub sandbox: Arc<Sandbox>,
    pub analyzers: Arc<Registry>,
    pub options: ScanOptions,
}

impl Pipeline {
    pub async fn build(home: &Home, spec: PipelineSpec) -> Result<Pipeline> {
        let cache = match spec.cache_max_bytes {
            None => None,
            Some(max) => {
                let dir = home.layers();
                Some(Arc::new(LayerCache::open(&dir, max).with_context(
                    || format!("cannot open the layer cache {}", dir.display()),
                )?))
            }
        };
        let sandbox = Arc::new(Sandbox::new(&home.components(), spec.sandbox)?);
        let analyzers = Arc::new(Registry::load(&sandbox, &spec.analyzers).await?);
        Ok(Pipeline {
            sandbox,
            analyzers,
            options: ScanOptions {
                resolve: spec.resolve,
                extract: spec.extract,
                layers: spec.layers,
                cache,
                parallel_layers: spec.parallel_layers.max(1),
                assess: spec.assess.map(Arc::new),
                progress: spec.progress,
            },
        })
    }

    /// Scan `source` with the pipeline's own options.
    pub async fn scan(&self, source: &Source) -> Result<ScanResult> {
        self.scan_with(source, &self.options).await
    }

    /// Scan `source` with options derived from the pipeline's (the service's workers
    /// change the registry credentials per job).
    pub async fn scan_with(&self, source: &Source, options: &ScanOptions) -> Result<ScanResult> {
        crate::scan::scan(self.sandbox.clone(), &self.analyzers, source, options).await
    }
}

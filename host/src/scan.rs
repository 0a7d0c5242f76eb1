//! The pipeline, in order. This is the only module that knows the order of the stages:
//!
//! 1. `source`: resolve the reference (today `dir:PATH`, one layer);
//! 2. `layers`: select the files the analyzers asked for and extract them safely into a
//!    scratch tree per layer;
//! 3. `sandbox`: run every analyzer over every layer tree, each under its limits;
//! 4. `merge`: stack the layer inventories into the image inventory;
//! 5. `report`: hand the result, with every diagnostic, to the reporters.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::analyzers::Registry;
use crate::layers::{ExtractLimits, Selector};
use crate::merge::{Inventory, LayerResult};
use crate::model::{Diagnostic, Level};
use crate::report::sanitize;
use crate::sandbox::{Loaded, Outcome, Sandbox, Verdict};
use crate::source::Source;

/// What a scan produced.
#[derive(Debug)]
pub struct ScanResult {
    pub reference: String,
    pub inventory: Inventory,
    pub diagnostics: Vec<Diagnostic>,
    /// `name@version` of every analyzer that ran.
    pub analyzers: Vec<String>,
    pub timings: Timings,
}

impl ScanResult {
    /// False when any part of the inventory is missing: an analyzer failed or was
    /// stopped, or a file could not be analysed.
    pub fn complete(&self) -> bool {
        !self.diagnostics.iter().any(|d| d.level == Level::Error)
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Timings {
    pub extract: Duration,
    pub analyze: Duration,
    pub total: Duration,
}

/// Scan `source` with every analyzer of `registry`.
pub async fn scan(
    sandbox: Arc<Sandbox>,
    registry: &Registry,
    source: &Source,
    extract_limits: &ExtractLimits,
) -> Result<ScanResult> {
    let started = Instant::now();
    let mut diagnostics = Vec::new();
    let selector = Selector::new(registry.requests())
        .map_err(|e| anyhow::anyhow!("an analyzer's file request is invalid: {e}"))?;

    let (layer_name, tree) = match source {
        Source::Dir(root) => {
            let root = root.clone();
            let limits = extract_limits.clone();
            let (tree, diags) = tokio::task::spawn_blocking(move || {
                let mut diags = Vec::new();
                let tree = crate::source::dir::extract(&root, &selector, &limits, &mut diags);
                (tree, diags)
            })
            .await
            .context("the extraction task failed")?;
            diagnostics.extend(diags);
            (source.to_string(), tree?)
        }
    };
    let extracted = started.elapsed();

    let mut results = Vec::new();
    let runs = registry.analyzers().iter().map(|a| {
        let sandbox = sandbox.clone();
        let analyzer = a.clone();
        let root = tree.path().to_path_buf();
        tokio::spawn(async move {
            let outcome = sandbox.analyze(&analyzer, &root).await;
            (analyzer, outcome)
        })
    });
    let runs: Vec<_> = runs.collect();
    for run in runs {
        let (analyzer, outcome) = run.await.context("an analyzer task failed")?;
        if let Some(r) = interpret(&analyzer, &layer_name, outcome, &mut diagnostics) {
            results.push(r);
        }
    }
    drop(tree);
    let analyzed = started.elapsed();

    let inventory = crate::merge::merge(results);
    Ok(ScanResult {
        reference: source.to_string(),
        inventory,
        diagnostics,
        analyzers: registry.analyzers().iter().map(|a| a.id()).collect(),
        timings: Timings {
            extract: extracted,
            analyze: analyzed - extracted,
            total: started.elapsed(),
        },
    })
}

/// Turn one sandbox outcome into a layer result and diagnostics.
fn interpret(
    analyzer: &Loaded,
    layer: &str,
    outcome: Outcome,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<LayerResult> {
    let id = analyzer.id();
    let diag = |level: Level, code: &str, message: String| Diagnostic {
        level,
        code: code.to_string(),
        analyzer: Some(id.clone()),
        layer: Some(layer.to_string()),
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
            Some(LayerResult {
                layer: layer.to_string(),
                analyzer: analyzer.meta.name.clone(),
                analyzer_id: id.clone(),
                ecosystem: analyzer.meta.ecosystem.clone(),
                analysis,
            })
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

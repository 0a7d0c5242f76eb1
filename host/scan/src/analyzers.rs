//! The analyzers of a run: the built-in ones embedded in the binary, plus third-party
//! modules from `--analyzer PATH`, `$BULKHEAD_HOME/analyzers/` and configured
//! directories. Every module passes the sandbox's load checks before a scan starts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::layers::Selector;
use crate::sandbox::{Loaded, Sandbox};
use bulkhead_model::{FileRequest, Origin};

include!(concat!(env!("OUT_DIR"), "/builtin.rs"));

/// Where to find analyzers.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// Load the analyzers embedded in the binary.
    pub builtin: bool,
    /// Modules named one by one (`--analyzer PATH`).
    pub paths: Vec<PathBuf>,
    /// Directories whose `*.wasm` files are loaded (missing directories are fine).
    pub dirs: Vec<PathBuf>,
    /// Confine third-party analyzers to ecosystems and paths no built-in analyzer covers
    /// (`analyzers.confine_third_party`, `--confine-analyzers`).
    pub confine: bool,
}

/// The loaded analyzers, in a stable order: built-in first, then third-party by path.
#[derive(Debug)]
pub struct Registry {
    analyzers: Vec<Arc<Loaded>>,
    /// When third-party analyzers are confined: the files the built-in analyzers read.
    /// A package a third-party analyzer reports from one of them is dropped.
    confined: Option<Selector>,
}

impl Registry {
    /// Load every analyzer from `sources`. A module that fails to load is an error that
    /// names it: a scan must not silently run without an analyzer the user installed.
    pub async fn load(sandbox: &Sandbox, sources: &Sources) -> Result<Self> {
        let mut analyzers: Vec<Arc<Loaded>> = Vec::new();
        if sources.builtin {
            for (package, bytes, ahead) in BUILTIN {
                let loaded = sandbox
                    .load_with(bytes, Origin::BuiltIn, ahead.as_ref())
                    .await
                    .with_context(|| {
                        format!("built-in analyzer {package} failed to load; this is a bug")
                    })?;
                analyzers.push(Arc::new(loaded));
            }
        }
        let mut paths = sources.paths.clone();
        for dir in &sources.dirs {
            paths.extend(wasm_files(dir)?);
        }
        for path in paths {
            let bytes = std::fs::read(&path)
                .with_context(|| format!("cannot read analyzer {}", path.display()))?;
            let loaded = sandbox.load(&bytes, Origin::Path(path.clone())).await?;
            if sources.confine
                && let Some(builtin) = analyzers.iter().find(|a| {
                    a.origin == Origin::BuiltIn && a.meta.ecosystem == loaded.meta.ecosystem
                })
            {
                bail!(
                    "{}: analyzer {} declares ecosystem {:?}, which the built-in analyzer {} covers; third-party analyzers are confined to ecosystems and paths no built-in covers (analyzers.confine_third_party / --confine-analyzers)",
                    path.display(),
                    loaded.id(),
                    loaded.meta.ecosystem,
                    builtin.id()
                );
            }
            if let Some(other) = analyzers.iter().find(|a| a.meta.name == loaded.meta.name) {
                bail!(
                    "{}: analyzer name {:?} is already taken by {} ({}); rename one of them",
                    path.display(),
                    loaded.meta.name,
                    other.id(),
                    other.origin
                );
            }
            analyzers.push(Arc::new(loaded));
        }
        let confined = if sources.confine {
            let builtin = analyzers
                .iter()
                .filter(|a| a.origin == Origin::BuiltIn)
                .flat_map(|a| a.meta.requests.iter());
            Some(Selector::new(builtin).map_err(|e| {
                anyhow::anyhow!("a built-in analyzer's file request is invalid: {e}; this is a bug")
            })?)
        } else {
            None
        };
        Ok(Registry {
            analyzers,
            confined,
        })
    }

    pub fn analyzers(&self) -> &[Arc<Loaded>] {
        &self.analyzers
    }

    /// With confined third-party analyzers: whether `path` is a file a built-in analyzer
    /// reads (a third-party analyzer's package from it is dropped). `false` otherwise.
    pub fn reserved_for_builtin(&self, path: &str) -> bool {
        self.confined
            .as_ref()
            .is_some_and(|s| s.wants(path.trim_start_matches('/')).is_some())
    }

    /// Every analyzer's file requests.
    pub fn requests(&self) -> impl Iterator<Item = &FileRequest> {
        self.analyzers.iter().flat_map(|a| a.meta.requests.iter())
    }

    /// One row per analyzer for `bulkhead analyzers list`.
    pub fn listing(&self) -> Vec<Listing> {
        self.analyzers
            .iter()
            .map(|a| Listing {
                name: a.meta.name.clone(),
                version: a.meta.version.clone(),
                wit_version: a.wit_version.clone(),
                ecosystem: a.meta.ecosystem.clone(),
                origin: a.origin.to_string(),
                sha256: a.sha256.clone(),
                requests: a
                    .meta
                    .requests
                    .iter()
                    .map(|r| RequestListing {
                        pattern: r.pattern.to_string(),
                        kind: kind(r),
                        max_size: r.max_size,
                    })
                    .collect(),
            })
            .collect()
    }
}

fn kind(r: &FileRequest) -> &'static str {
    match r.pattern {
        bulkhead_model::PathPattern::Exact(_) => "exact",
        bulkhead_model::PathPattern::Prefix(_) => "prefix",
        bulkhead_model::PathPattern::Suffix(_) => "suffix",
        bulkhead_model::PathPattern::Glob(_) => "glob",
    }
}

/// `*.wasm` files of `dir`, sorted; none when the directory does not exist.
fn wasm_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let read = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot list analyzers in {}", dir.display()));
        }
    };
    let mut out = Vec::new();
    for entry in read {
        let path = entry
            .with_context(|| format!("cannot list analyzers in {}", dir.display()))?
            .path();
        if path.extension().is_some_and(|e| e == "wasm") && path.is_file() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// What `bulkhead analyzers list --format json` prints per analyzer.
#[derive(Debug, Serialize)]
pub struct Listing {
    pub name: String,
    pub version: String,
    pub wit_version: String,
    pub ecosystem: String,
    pub origin: String,
    pub sha256: String,
    pub requests: Vec<RequestListing>,
}

#[derive(Debug, Serialize)]
pub struct RequestListing {
    pub kind: &'static str,
    pub pattern: String,
    pub max_size: u64,
}

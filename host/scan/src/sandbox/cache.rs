//! The on-disk cache of compiled components (`.cwasm`).
//!
//! Compiling a component with Cranelift takes 100–250 ms; mapping a cached artifact takes
//! about 0.1 ms. But `Component::deserialize_file` trusts its input completely (it is
//! native code), so the cache directory must be writable by this user only: it is created
//! with mode 0700, and a directory or file that anyone else could have written is refused.
//! Entries are keyed by the engine's compatibility hash and the module's sha256, and are
//! written to a temporary file and renamed, so a crash never leaves a half-written entry.
//! The built-in analyzers usually need neither: build.rs compiled them ahead of time
//! ([`Ahead`]), and the cache is only used when this engine differs from the build's (a
//! binary run on a CPU with other features than the build machine's, a build with
//! `BULKHEAD_NO_AHEAD_OF_TIME`).

use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

use super::{Ahead, LoadError};
use bulkhead_model::Origin;

pub(super) struct ComponentCache {
    dir: PathBuf,
}

impl ComponentCache {
    pub(super) fn open(dir: &Path) -> Result<Self, LoadError> {
        let err = |reason: String| LoadError::Cache {
            path: dir.to_path_buf(),
            reason,
        };
        crate::home::private_dir(dir).map_err(|e| err(format!("{e:#}")))?;
        Ok(ComponentCache {
            dir: dir.to_path_buf(),
        })
    }

    /// The compiled component for `bytes`: the artifact compiled ahead of time when it
    /// fits this engine, else from the cache, else freshly compiled (and cached).
    pub(super) fn component(
        &self,
        engine: &Engine,
        bytes: &[u8],
        sha256: &str,
        origin: &Origin,
        ahead: Option<&Ahead>,
    ) -> Result<Component, LoadError> {
        let key = super::compiler::artifact_key(engine, sha256);
        if let Some(ahead) = ahead.filter(|a| a.key == key) {
            // SAFETY: `deserialize` requires a trusted artifact from
            // `Engine::precompile_component` of a compatible engine. `ahead.artifact` is
            // part of this executable: build.rs wrote it with `precompile_component` from
            // this very component (its sha256 is in the key) and included it with
            // `include_bytes!`; nothing at run time can change it. The key also contains
            // the compatibility hash of the engine that compiled it, equal to this
            // engine's, and wasmtime checks its own version and settings in the
            // artifact's header again before using it.
            match unsafe { Component::deserialize(engine, ahead.artifact) } {
                Ok(c) => return Ok(c),
                Err(e) => tracing::warn!(
                    "the built-in analyzer compiled ahead of time does not load, compiling it: {e:#}"
                ),
            }
        }
        let path = self.dir.join(format!("{key}.cwasm"));
        if crate::home::written_by_us(&path) {
            // SAFETY: `deserialize_file` requires that the file is a trusted artifact from
            // `Engine::precompile_component` of a compatible engine. The key includes the
            // engine's compatibility hash; the file was written by this host (atomically,
            // by rename) into a directory that `private_dir` verified is owned by this user
            // with mode 0700, and `written_by_us` verified that the file itself is owned by
            // this user and not writable by group or others. No tenant can plant it.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "stale component cache entry, recompiling: {e:#}")
                }
            }
        }
        let compiled = engine
            .precompile_component(bytes)
            .map_err(|e| LoadError::Compile {
                origin: origin.clone(),
                reason: format!("{e:#}"),
            })?;
        let cache_err = |reason: String| LoadError::Cache {
            path: path.clone(),
            reason,
        };
        let mut tmp =
            tempfile::NamedTempFile::new_in(&self.dir).map_err(|e| cache_err(e.to_string()))?;
        std::io::Write::write_all(&mut tmp, &compiled).map_err(|e| cache_err(e.to_string()))?;
        tmp.as_file()
            .sync_all()
            .map_err(|e| cache_err(e.to_string()))?;
        tmp.persist(&path).map_err(|e| cache_err(e.to_string()))?;
        // SAFETY: as above; the file was written just now by this process, in a private
        // directory, from `precompile_component` on this very engine.
        unsafe { Component::deserialize_file(engine, &path) }.map_err(|e| LoadError::Compile {
            origin: origin.clone(),
            reason: format!("{e:#}"),
        })
    }
}

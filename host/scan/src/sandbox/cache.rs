//! The on-disk cache of compiled components (`.cwasm`).
//!
//! Compiling a component with Cranelift takes 100–250 ms; mapping a cached artifact takes
//! about 0.1 ms. But `Component::deserialize_file` trusts its input completely (it is
//! native code), so the cache directory must be writable by this user only: it is created
//! with mode 0700, and a directory or file that anyone else could have written is refused.
//! Entries are keyed by the engine's compatibility hash and the module's sha256, and are
//! written to a temporary file and renamed, so a crash never leaves a half-written entry.

use std::hash::Hasher;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::LoadError;
use bulkhead_model::Origin;

pub(super) struct ComponentCache {
    dir: PathBuf,
}

/// Feeds `Hash` output into sha256, to turn `precompile_compatibility_hash` into a key
/// that is stable across runs (std's hashers are randomly seeded).
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
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

    fn key(&self, engine: &Engine, sha256: &str) -> PathBuf {
        let mut h = ShaHasher(Sha256::new());
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut h);
        h.0.update(sha256.as_bytes());
        let key = hex::encode(h.0.finalize());
        self.dir.join(format!("{}.cwasm", &key[..32]))
    }

    /// The compiled component for `bytes`, from the cache or freshly compiled.
    pub(super) fn component(
        &self,
        engine: &Engine,
        bytes: &[u8],
        sha256: &str,
        origin: &Origin,
    ) -> Result<Component, LoadError> {
        let path = self.key(engine, sha256);
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

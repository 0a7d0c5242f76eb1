//! The scratch tree: a private temporary directory holding only the files analyzers asked
//! for. Every write goes through `cap_std::fs::Dir`, which resolves paths strictly inside
//! the tree: even a name that slipped past [`super::clean_path`] cannot escape it. Only
//! directories and regular files are created (mode 0644/0755, never setuid, never a link
//! or device), so the analyzers' read-only mount sees nothing but plain data.

use std::io::Read;
use std::path::Path;

use cap_std::ambient_authority;
use cap_std::fs::{Dir, DirBuilder, OpenOptions};

use super::{ExtractError, ExtractLimits};

/// A per-layer tree of extracted files, deleted when dropped.
pub struct ScratchTree {
    tmp: tempfile::TempDir,
    dir: Dir,
    source_name: String,
    limits: ExtractLimits,
    bytes: u64,
    files: u64,
}

impl std::fmt::Debug for ScratchTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScratchTree")
            .field("path", &self.tmp.path())
            .field("files", &self.files)
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl ScratchTree {
    /// A new empty tree for the layer or directory called `source_name` (used in errors).
    pub fn new(source_name: &str, limits: &ExtractLimits) -> Result<Self, ExtractError> {
        let io = |e: std::io::Error| ExtractError::Io {
            source_name: source_name.to_string(),
            path: std::env::temp_dir().display().to_string(),
            message: format!("cannot create a scratch directory: {e}"),
        };
        let tmp = tempfile::Builder::new()
            .prefix("bulkhead-layer-")
            .tempdir()
            .map_err(io)?;
        let dir = Dir::open_ambient_dir(tmp.path(), ambient_authority()).map_err(io)?;
        Ok(ScratchTree {
            tmp,
            dir,
            source_name: source_name.to_string(),
            limits: limits.clone(),
            bytes: 0,
            files: 0,
        })
    }

    /// The host path to mount into the sandbox.
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn files(&self) -> u64 {
        self.files
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Open an extracted file of this tree (to copy it to a link's path).
    pub fn open(&self, rel: &str) -> Result<cap_std::fs::File, ExtractError> {
        self.dir.open(rel).map_err(|e| ExtractError::Io {
            source_name: self.source_name.clone(),
            path: rel.to_string(),
            message: format!("cannot reopen: {e}"),
        })
    }

    /// Write `reader`'s content as the regular file `rel` (a clean relative path), reading
    /// at most `max` bytes. Returns `Ok(false)` when the content turned out larger than
    /// `max` (nothing is kept then).
    pub fn write_file(
        &mut self,
        rel: &str,
        reader: impl Read,
        max: u64,
    ) -> Result<bool, ExtractError> {
        let err = |message: String| ExtractError::Io {
            source_name: self.source_name.clone(),
            path: rel.to_string(),
            message,
        };
        let max = max.min(self.limits.max_file_bytes);
        if let Some((parent, _)) = rel.rsplit_once('/') {
            let mut b = DirBuilder::new();
            b.recursive(true);
            self.dir
                .create_dir_with(parent, &b)
                .map_err(|e| err(format!("cannot create directory: {e}")))?;
        }
        let mut opts = OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        let mut file = self
            .dir
            .open_with(rel, &opts)
            .map_err(|e| err(format!("cannot create: {e}")))?;
        let budget = self.limits.max_total_bytes.saturating_sub(self.bytes);
        let cap = max.min(budget);
        let written = std::io::copy(&mut reader.take(cap.saturating_add(1)), &mut file)
            .map_err(|e| err(format!("cannot write: {e}")))?;
        if written > cap {
            drop(file);
            let _ = self.dir.remove_file(rel);
            if written > budget {
                return Err(ExtractError::TooManyBytes {
                    source_name: self.source_name.clone(),
                    limit: self.limits.max_total_bytes,
                });
            }
            return Ok(false);
        }
        self.bytes += written;
        self.files += 1;
        Ok(true)
    }
}

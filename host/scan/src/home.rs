//! Where Bulkhead keeps its state: `$BULKHEAD_HOME` (default: the platform cache
//! directory, `~/.cache/bulkhead` on Linux). Tests and users can point it anywhere.
//!
//! ```text
//! $BULKHEAD_HOME/
//!   components/   compiled analyzers (.cwasm), mode 0700: native code, host-written only
//!   analyzers/    third-party analyzer modules (*.wasm) loaded on every scan
//!   layers/       per-layer analysis cache
//!   db/           advisory database
//!   config.toml   optional configuration
//! ```

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The resolved state directory.
#[derive(Clone, Debug)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// `explicit` (a flag), else `$BULKHEAD_HOME`, else the platform cache directory.
    pub fn resolve(explicit: Option<&Path>) -> Result<Self> {
        let root = match explicit {
            Some(p) => p.to_path_buf(),
            None => match std::env::var_os("BULKHEAD_HOME") {
                Some(p) if !p.is_empty() => PathBuf::from(p),
                _ => dirs::cache_dir()
                    .context("no cache directory on this platform: set BULKHEAD_HOME")?
                    .join("bulkhead"),
            },
        };
        Ok(Home { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn components(&self) -> PathBuf {
        self.root.join("components")
    }
    pub fn analyzers(&self) -> PathBuf {
        self.root.join("analyzers")
    }
    pub fn layers(&self) -> PathBuf {
        self.root.join("layers")
    }
    pub fn db(&self) -> PathBuf {
        self.root.join("db")
    }
    pub fn config_file(&self) -> PathBuf {
        self.root.join("config.toml")
    }
}

/// Create `dir` (and its parents) if needed with mode 0700, and check that it is a
/// directory owned by this user that nobody else can write.
pub fn private_dir(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let meta =
        std::fs::symlink_metadata(dir).with_context(|| format!("cannot stat {}", dir.display()))?;
    if !meta.is_dir() {
        bail!(
            "{} is not a directory (a symlink?); remove it",
            dir.display()
        );
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        bail!(
            "{} belongs to uid {}, not to this user (uid {me}); compiled analyzers are native code, so Bulkhead only loads them from a directory it owns",
            dir.display(),
            meta.uid()
        );
    }
    if meta.mode() & 0o022 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).with_context(
            || {
                format!(
                    "{} is writable by others and cannot be fixed",
                    dir.display()
                )
            },
        )?;
    }
    Ok(())
}

/// True when `file` is a regular file owned by this user and not writable by others.
pub fn written_by_us(file: &Path) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(file) else {
        return false;
    };
    meta.is_file() && meta.uid() == rustix::process::geteuid().as_raw() && meta.mode() & 0o022 == 0
}

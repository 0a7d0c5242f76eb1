//! Where images come from, named like skopeo's transports. Today: `dir:PATH`, a root
//! filesystem on disk. Registries (`NAME[:TAG|@DIGEST]`), `oci:DIR[:TAG]` and
//! `docker-archive:FILE` come with the image pipeline.

pub mod dir;

use std::path::PathBuf;

/// A parsed image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A root filesystem directory, analysed as one layer.
    Dir(PathBuf),
}

impl Source {
    /// Parse a reference given on the command line.
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("dir:") {
            if path.is_empty() {
                return Err("dir: needs a path, e.g. dir:/path/to/rootfs".into());
            }
            return Ok(Source::Dir(PathBuf::from(path)));
        }
        for transport in ["oci:", "docker-archive:", "docker://"] {
            if s.starts_with(transport) {
                return Err(format!(
                    "{s}: the {transport} transport is not supported by this build yet; scan a root filesystem with dir:PATH"
                ));
            }
        }
        Err(format!(
            "{s}: pulling images from registries is not supported by this build yet; scan a root filesystem with dir:PATH"
        ))
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Dir(p) => write!(f, "dir:{}", p.display()),
        }
    }
}

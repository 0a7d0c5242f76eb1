//! Where images come from, named like skopeo's transports:
//!
//! | form | module |
//! |---|---|
//! | `NAME[:TAG\|@DIGEST]` (`alpine:3.19` = `docker.io/library/alpine:3.19`) | [`registry`] |
//! | `oci:DIR[:TAG]` (OCI image layout) | [`oci_layout`] |
//! | `docker-archive:FILE` (`docker save` tar, plain or gzipped) | [`docker_archive`] |
//! | `dir:PATH` (a root filesystem, one layer) | [`dir`] |
//!
//! The first three resolve to an [`Image`] (one platform's manifest and config) and a
//! [`BlobSource`] that opens its layer blobs; `dir:` is walked directly.

pub mod auth;
pub mod dir;
pub mod distribution;
pub mod docker_archive;

pub mod manifest;
pub mod oci_layout;
pub mod registry;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

pub use crate::image::{
    BlobSource, BlobStream, Compression, Disposition, Image, LayerDesc, Platform, SourceError,
};
pub use distribution::RegistryLimits;

/// A parsed image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// An image in a registry, as the user wrote it (normalised when resolved).
    Registry(String),
    /// An OCI image layout directory and an optional tag (`org.opencontainers.image.ref.name`).
    OciLayout { dir: PathBuf, tag: Option<String> },
    /// A `docker save` archive, plain or gzipped.
    DockerArchive(PathBuf),
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
        if let Some(rest) = s.strip_prefix("oci:") {
            // oci:DIR[:TAG]; a tag never contains '/', a directory may contain ':'.
            let (dir, tag) = match rest.rsplit_once(':') {
                Some((d, t)) if !t.contains('/') && !d.is_empty() => (d, Some(t.to_string())),
                _ => (rest, None),
            };
            if dir.is_empty() {
                return Err("oci: needs a directory, e.g. oci:/path/to/layout:tag".into());
            }
            return Ok(Source::OciLayout {
                dir: PathBuf::from(dir),
                tag: tag.filter(|t| !t.is_empty()),
            });
        }
        if let Some(file) = s.strip_prefix("docker-archive:") {
            if file.is_empty() {
                return Err("docker-archive: needs a file, e.g. docker-archive:image.tar".into());
            }
            return Ok(Source::DockerArchive(PathBuf::from(file)));
        }
        let name = s.strip_prefix("docker://").unwrap_or(s);
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(format!(
                "{s:?} is not an image reference (NAME[:TAG|@DIGEST], oci:DIR, docker-archive:FILE or dir:PATH)"
            ));
        }
        Ok(Source::Registry(name.to_string()))
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Registry(r) => write!(f, "{r}"),
            Source::OciLayout { dir, tag: Some(t) } => write!(f, "oci:{}:{t}", dir.display()),
            Source::OciLayout { dir, tag: None } => write!(f, "oci:{}", dir.display()),
            Source::DockerArchive(p) => write!(f, "docker-archive:{}", p.display()),
            Source::Dir(p) => write!(f, "dir:{}", p.display()),
        }
    }
}

/// Limits and choices for resolving an image.
#[derive(Clone, Debug)]
pub struct ResolveOptions {
    /// The platform to select from an index (default: the host's).
    pub platform: Platform,
    /// Registries (`HOST[:PORT]`) that may be reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// Per registry (`HOST[:PORT]`), the hosts besides its own that may receive its
    /// credentials as a token realm (`token_hosts`, `--token-host`).
    pub token_hosts: BTreeMap<String, Vec<String>>,
    /// Credentials given on the command line, in the environment or in the service's
    /// configuration; they take precedence over the credential stores.
    pub credentials: Option<auth::Credential>,
    /// Whether the user's credential stores (`~/.docker/config.json`, Podman's
    /// `auth.json`, credential helpers) may be read when `credentials` is `None`. The CLI
    /// does, as docker does; the service never does (anonymous means anonymous).
    pub credential_stores: bool,
    /// The registry a reference must name (the service's configured host): a reference
    /// that parses to another registry is refused rather than sent there.
    pub expected_registry: Option<String>,
    /// Sizes and times a registry may make us read and wait for; `max_manifest_bytes`
    /// bounds the documents of every source.
    pub registry: RegistryLimits,
    /// Largest number of layers accepted.
    pub max_layers: usize,
}

impl Default for ResolveOptions {
    fn default() -> Self {
        ResolveOptions {
            platform: Platform::host(),
            insecure_registries: Vec::new(),
            token_hosts: BTreeMap::new(),
            credentials: None,
            credential_stores: false,
            expected_registry: None,
            registry: RegistryLimits::default(),
            max_layers: 256,
        }
    }
}

/// Resolve an image source to its manifest, config and blobs. `dir:` has none.
pub async fn resolve(
    source: &Source,
    opts: &ResolveOptions,
) -> Result<(Image, Arc<dyn BlobSource>), SourceError> {
    match source {
        Source::Registry(r) => registry::resolve(r, opts).await,
        Source::OciLayout { dir, tag } => oci_layout::resolve(dir, tag.as_deref(), opts).await,
        Source::DockerArchive(file) => docker_archive::resolve(file, opts).await,
        Source::Dir(p) => Err(SourceError::Invalid {
            what: format!("dir:{}", p.display()),
            message: "a directory has no manifest; it is walked directly".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_like_skopeo() {
        assert_eq!(
            Source::parse("alpine:3.19"),
            Ok(Source::Registry("alpine:3.19".into()))
        );
        assert_eq!(
            Source::parse("docker://alpine"),
            Ok(Source::Registry("alpine".into()))
        );
        assert_eq!(
            Source::parse("oci:/tmp/layout:v1"),
            Ok(Source::OciLayout {
                dir: "/tmp/layout".into(),
                tag: Some("v1".into())
            })
        );
        assert_eq!(
            Source::parse("oci:/tmp/layout"),
            Ok(Source::OciLayout {
                dir: "/tmp/layout".into(),
                tag: None
            })
        );
        assert_eq!(
            Source::parse("docker-archive:a.tar"),
            Ok(Source::DockerArchive("a.tar".into()))
        );
        assert_eq!(Source::parse("dir:/"), Ok(Source::Dir("/".into())));
        assert!(Source::parse("dir:").is_err());
        assert!(Source::parse("").is_err());
    }
}

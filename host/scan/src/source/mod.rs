//! Where images come from, named like skopeo's transports:
//!
//! | form | module |
//! |---|---|
//! | `NAME[:TAG\|@DIGEST]` (`alpine:3.19` = `docker.io/library/alpine:3.19`) | [`registry`] |
//! | `oci:DIR[:TAG]` (OCI image layout) | [`oci_layout`] |
//! | `oci-archive:FILE[:TAG]` (an OCI image layout in a tar) | [`oci_layout`] on [`archive`] |
//! | `docker-archive:FILE` (`docker save` tar, plain or gzipped) | [`docker_archive`] on [`archive`] |
//! | `archive:FILE` (either, told by what it holds) | [`docker_archive`] or [`oci_layout`] |
//! | `dir:PATH` (a root filesystem, one layer) | [`dir`] |
//!
//! Aliases users bring from other tools: `registry:` and `docker:` (Syft) for a registry
//! image, `oci-dir:` for `oci:`, `fs:` for `dir:`. Without a scheme, an argument that names
//! an existing file or directory is that file or directory ([`Source::recognise`]): a
//! file is an `archive:`.
//!
//! All but `dir:` resolve to an [`Image`] (one platform's manifest and config) and a
//! [`BlobSource`] that opens its layer blobs; `dir:` is walked directly.

pub mod archive;
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
    /// An OCI image layout in a tar archive, plain or gzipped, and an optional tag.
    OciArchive { file: PathBuf, tag: Option<String> },
    /// A `docker save` archive, plain or gzipped.
    DockerArchive(PathBuf),
    /// A `docker save` or an OCI archive, told apart by what it holds (`manifest.json`
    /// or `oci-layout`; Docker 25 writes both, and is read as `docker save`).
    Archive(PathBuf),
    /// A root filesystem directory, analysed as one layer.
    Dir(PathBuf),
}

/// The schemes a reference may start with, for the message that lists them.
pub const SCHEMES: &str = "registry: (or docker:, or none: NAME[:TAG|@DIGEST]), oci:DIR[:TAG] \
     (or oci-dir:), oci-archive:FILE[:TAG], docker-archive:FILE, archive:FILE (either \
     archive), dir:PATH (or fs:)";

/// How [`Source::recognise`] decided what an argument is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recognised {
    /// The argument said it (a scheme), or it is a registry reference.
    AsWritten,
    /// An existing file or directory, recognised by what it holds.
    FromPath,
}

impl Source {
    /// What a command-line argument names: a reference with a scheme as written; else an
    /// existing file or directory as what it holds (an OCI layout directory, a root
    /// filesystem directory, a `docker save` or OCI archive, gzipped or not); else a registry
    /// reference, unless it looks like a scheme this tool does not know (then the error
    /// lists the valid ones). The file system is read only for an argument without a
    /// known scheme.
    pub fn recognise(s: &str) -> Result<(Self, Recognised), String> {
        if has_known_scheme(s) {
            return Source::parse(s).map(|src| (src, Recognised::AsWritten));
        }
        let path = std::path::Path::new(s);
        if !s.is_empty()
            && let Ok(meta) = std::fs::metadata(path)
        {
            let source = if meta.is_dir() {
                if path.join("oci-layout").is_file() {
                    Source::OciLayout {
                        dir: path.to_path_buf(),
                        tag: None,
                    }
                } else {
                    Source::Dir(path.to_path_buf())
                }
            } else {
                Source::Archive(path.to_path_buf())
            };
            return Ok((source, Recognised::FromPath));
        }
        if let Some((scheme, rest)) = s.split_once(':')
            && looks_like_scheme(scheme, rest)
        {
            return Err(format!(
                "{s:?}: unknown scheme {scheme:?} and no such file or directory; the valid \
                 forms are {SCHEMES}"
            ));
        }
        // A path that is not there: a file name a registry reference would not have, or
        // one that starts like a path. Registries are not asked about it (once five
        // attempts over the network, then an error without a hint).
        const ARCHIVES: &[&str] = &[".tar", ".tar.gz", ".tgz", ".tar.zst"];
        if s.starts_with(['/', '.', '~']) || ARCHIVES.iter().any(|x| s.ends_with(x)) {
            return Err(format!(
                "{s:?}: no such file or directory (a registry image would be written \
                 registry:{s})"
            ));
        }
        Source::parse(s).map(|src| (src, Recognised::AsWritten))
    }

    /// Parse a reference given on the command line.
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(rest) = s
            .strip_prefix("registry:")
            .or_else(|| s.strip_prefix("docker:").filter(|r| !r.starts_with("//")))
        {
            return Source::parse(rest.trim_start_matches('/')).and_then(|src| match src {
                Source::Registry(_) => Ok(src),
                _ => Err(format!(
                    "{s:?}: registry: names an image in a registry, NAME[:TAG|@DIGEST]"
                )),
            });
        }
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (file, tag) = path_and_tag(rest);
            if file.is_empty() {
                return Err("oci-archive: needs a file, e.g. oci-archive:image.tar:tag".into());
            }
            return Ok(Source::OciArchive {
                file: PathBuf::from(file),
                tag,
            });
        }
        if let Some(file) = s.strip_prefix("archive:") {
            if file.is_empty() {
                return Err("archive: needs a file, e.g. archive:image.tar".into());
            }
            return Ok(Source::Archive(PathBuf::from(file)));
        }
        if let Some(rest) = s
            .strip_prefix("docker-daemon:")
            .or_else(|| s.strip_prefix("podman:"))
        {
            return Err(format!(
                "{s:?}: Bulkhead does not talk to a container engine; save the image (docker \
                 save {rest} -o image.tar) and scan docker-archive:image.tar"
            ));
        }
        let s = match s.strip_prefix("oci-dir:") {
            Some(rest) => return Source::parse(&format!("oci:{rest}")),
            None => s,
        };
        if let Some(path) = s.strip_prefix("dir:").or_else(|| s.strip_prefix("fs:")) {
            if path.is_empty() {
                return Err("dir: needs a path, e.g. dir:/path/to/rootfs".into());
            }
            return Ok(Source::Dir(PathBuf::from(path)));
        }
        if let Some(rest) = s.strip_prefix("oci:") {
            let (dir, tag) = path_and_tag(rest);
            if dir.is_empty() {
                return Err("oci: needs a directory, e.g. oci:/path/to/layout:tag".into());
            }
            return Ok(Source::OciLayout {
                dir: PathBuf::from(dir),
                tag,
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

/// `PATH[:TAG]` as skopeo reads it after `oci:` and `oci-archive:`: a tag never contains
/// '/', a path may contain ':'.
fn path_and_tag(rest: &str) -> (&str, Option<String>) {
    match rest.rsplit_once(':') {
        Some((p, t)) if !t.contains('/') && !p.is_empty() => {
            (p, Some(t.to_string()).filter(|t| !t.is_empty()))
        }
        _ => (rest, None),
    }
}

/// Every scheme [`Source::parse`] understands (and the engine ones it explains).
const KNOWN_SCHEMES: &[&str] = &[
    "registry:",
    "docker:",
    "docker://",
    "oci:",
    "oci-dir:",
    "oci-archive:",
    "docker-archive:",
    "archive:",
    "docker-daemon:",
    "podman:",
    "dir:",
    "fs:",
];

fn has_known_scheme(s: &str) -> bool {
    KNOWN_SCHEMES.iter().any(|k| s.starts_with(k))
}

/// Whether `scheme:rest` reads as a scheme rather than `NAME:TAG` or `HOST:PORT/NAME`: a
/// tag never holds `/`, and a port is digits; so `scheme:/path` or `scheme:dir/file` with a
/// scheme that is not a host name.
fn looks_like_scheme(scheme: &str, rest: &str) -> bool {
    let word = !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'+')
        && scheme != "localhost";
    let port = rest
        .split('/')
        .next()
        .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    word && rest.contains('/') && !port
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Registry(r) => write!(f, "{r}"),
            Source::OciLayout { dir, tag: Some(t) } => write!(f, "oci:{}:{t}", dir.display()),
            Source::OciLayout { dir, tag: None } => write!(f, "oci:{}", dir.display()),
            Source::OciArchive { file, tag: Some(t) } => {
                write!(f, "oci-archive:{}:{t}", file.display())
            }
            Source::OciArchive { file, tag: None } => write!(f, "oci-archive:{}", file.display()),
            Source::DockerArchive(p) => write!(f, "docker-archive:{}", p.display()),
            Source::Archive(p) => write!(f, "archive:{}", p.display()),
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
        Source::OciArchive { file, tag } => {
            oci_layout::resolve_archive(file, tag.as_deref(), opts).await
        }
        Source::DockerArchive(file) => docker_archive::resolve(file, opts).await,
        Source::Archive(file) => resolve_archive(file, opts).await,
        Source::Dir(p) => Err(SourceError::Invalid {
            what: format!("dir:{}", p.display()),
            message: "a directory has no manifest; it is walked directly".into(),
        }),
    }
}

/// `archive:FILE`: one pass over the archive, then `docker save` if it has a
/// `manifest.json` (Docker 25 writes an OCI layout too, and the same image either way),
/// else an OCI layout if it has an `oci-layout`. The image is named by what was found.
async fn resolve_archive(
    file: &std::path::Path,
    opts: &ResolveOptions,
) -> Result<(Image, Arc<dyn BlobSource>), SourceError> {
    let limits = manifest::Limits::from(opts);
    let index =
        archive::ArchiveIndex::open(file, &format!("archive:{}", file.display()), &limits).await?;
    if index.has("manifest.json") {
        let name = Source::DockerArchive(file.to_path_buf()).to_string();
        let (image, locations) = docker_archive::build(&index, &name, &limits)?;
        Ok((image, Arc::new(index.blobs(file, &name, locations))))
    } else if index.has("oci-layout") {
        let name = Source::OciArchive {
            file: file.to_path_buf(),
            tag: None,
        }
        .to_string();
        oci_layout::in_archive(&index, file, &name, None, opts)
    } else {
        Err(SourceError::Invalid {
            what: file.display().to_string(),
            message: "neither a `docker save` archive (no manifest.json) nor an OCI archive \
                      (no oci-layout); a root filesystem in a tar is not read: extract it \
                      and scan dir:PATH"
                .into(),
        })
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
        // Other tools' spellings.
        assert_eq!(Source::parse("fs:/"), Ok(Source::Dir("/".into())));
        assert_eq!(
            Source::parse("oci-dir:/tmp/layout:v1"),
            Source::parse("oci:/tmp/layout:v1")
        );
        for alias in [
            "registry:alpine:3.19",
            "docker:alpine:3.19",
            "docker://alpine:3.19",
        ] {
            assert_eq!(
                Source::parse(alias),
                Ok(Source::Registry("alpine:3.19".into())),
                "{alias}"
            );
        }
        assert!(Source::parse("registry:oci:x").is_err());
        assert_eq!(
            Source::parse("oci-archive:/tmp/img.tar:v1"),
            Ok(Source::OciArchive {
                file: "/tmp/img.tar".into(),
                tag: Some("v1".into())
            })
        );
        assert_eq!(
            Source::parse("oci-archive:img.tar"),
            Ok(Source::OciArchive {
                file: "img.tar".into(),
                tag: None
            })
        );
        assert_eq!(
            Source::parse("archive:img.tar"),
            Ok(Source::Archive("img.tar".into()))
        );
        assert!(Source::parse("oci-archive:").is_err());
        assert!(Source::parse("archive:").is_err());
        // Every form prints as it parses.
        for s in [
            "oci-archive:/tmp/img.tar:v1",
            "oci-archive:img.tar",
            "archive:img.tar",
            "docker-archive:a.tar",
            "oci:/tmp/layout:v1",
        ] {
            assert_eq!(
                Source::parse(s).map(|src| src.to_string()),
                Ok(s.to_string())
            );
        }
        assert!(Source::parse("dir:").is_err());
        assert!(Source::parse("").is_err());
    }

    #[test]
    fn existing_paths_are_recognised_and_unknown_schemes_listed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("rootfs");
        std::fs::create_dir(&root).expect("mkdir");
        let layout = dir.path().join("layout");
        std::fs::create_dir(&layout).expect("mkdir");
        std::fs::write(layout.join("oci-layout"), "{}").expect("write");
        let archive = dir.path().join("image.tar");
        std::fs::write(&archive, "").expect("write");
        let s = |p: &std::path::Path| p.to_str().expect("utf-8 temp path").to_string();
        assert_eq!(
            Source::recognise(&s(&root)),
            Ok((Source::Dir(root.clone()), Recognised::FromPath))
        );
        assert_eq!(
            Source::recognise(&s(&layout)),
            Ok((
                Source::OciLayout {
                    dir: layout.clone(),
                    tag: None
                },
                Recognised::FromPath
            ))
        );
        assert_eq!(
            Source::recognise(&s(&archive)),
            Ok((Source::Archive(archive.clone()), Recognised::FromPath))
        );
        // An explicit scheme wins over the path.
        assert_eq!(
            Source::recognise(&format!("dir:{}", s(&archive))),
            Ok((Source::Dir(archive.clone()), Recognised::AsWritten))
        );
        // Registry references stay registry references.
        for r in [
            "alpine:3.19",
            "localhost:5000/app:v1",
            "ghcr.io/a/b@sha256:00",
        ] {
            assert!(
                matches!(
                    Source::recognise(r),
                    Ok((Source::Registry(_), Recognised::AsWritten))
                ),
                "{r}"
            );
        }
        let e = Source::recognise("img/missing.tar").expect_err("no such file");
        assert!(e.contains("no such file or directory"), "{e}");
        assert!(matches!(
            Source::recognise("registry:img/missing.tar"),
            Ok((Source::Registry(_), _))
        ));
        let e = Source::recognise("oci-archve:/tmp/x.tar").expect_err("a typo of a scheme");
        assert!(
            e.contains("unknown scheme \"oci-archve\"") && e.contains("docker-archive:FILE"),
            "{e}"
        );
    }
}

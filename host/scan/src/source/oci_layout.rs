//! `oci:DIR[:TAG]`: an OCI image layout directory (`oci-layout`, `index.json`,
//! `blobs/sha256/<hex>`), as written by skopeo, umoci, buildah or `docker buildx
//! --output type=oci,tar=false`; and `oci-archive:FILE[:TAG]`, the same layout in a tar
//! (indexed by [`super::archive`], never extracted).
//!
//! The image is picked from `index.json` by its `org.opencontainers.image.ref.name`
//! annotation (or is the only one), nested indexes are followed with platform selection,
//! and the manifest, index and config blobs are verified (sha256 and size) before they
//! are parsed. Layer blobs are opened as files; the layer pipeline verifies them.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::archive::{ArchiveIndex, Node};
use super::manifest::{self, Descriptor, Document, Index, Limits, MAX_INDEX_DEPTH, REF_NAME};
use super::{BlobSource, BlobStream, Image, LayerDesc, ResolveOptions, SourceError};

/// Resolve `oci:DIR[:TAG]` to one platform's image.
pub async fn resolve(
    dir: &Path,
    tag: Option<&str>,
    opts: &ResolveOptions,
) -> Result<(Image, Arc<dyn BlobSource>), SourceError> {
    let name = reference("oci", dir, tag);
    // A handful of small files, read with blocking calls off the async threads.
    let (layout, what, tag_owned, opts_owned) = (
        InDir(dir.to_path_buf()),
        name.clone(),
        tag.map(str::to_string),
        opts.clone(),
    );
    let image = tokio::task::spawn_blocking(move || {
        resolve_in(&layout, &what, tag_owned.as_deref(), &opts_owned)
    })
    .await
    .map_err(|e| SourceError::Io {
        what: name.clone(),
        message: format!("the layout reader failed: {e}"),
    })??;
    Ok((
        image,
        Arc::new(OciBlobs {
            dir: dir.to_path_buf(),
            name,
        }),
    ))
}

/// Resolve `oci-archive:FILE[:TAG]`: an OCI image layout in a tar (plain or gzipped), as
/// written by `skopeo copy … oci-archive:`, `podman save --format oci-archive` or `docker
/// buildx build --output type=oci`. Read in one pass, nothing extracted.
pub async fn resolve_archive(
    file: &Path,
    tag: Option<&str>,
    opts: &ResolveOptions,
) -> Result<(Image, Arc<dyn BlobSource>), SourceError> {
    let name = reference("oci-archive", file, tag);
    let index = ArchiveIndex::open(file, &name, &Limits::from(opts)).await?;
    in_archive(&index, file, &name, tag, opts)
}

/// The image of the OCI layout in an archive already indexed (`name` names it), and a
/// blob source that opens its layers in the archive.
pub(super) fn in_archive(
    index: &ArchiveIndex,
    file: &Path,
    name: &str,
    tag: Option<&str>,
    opts: &ResolveOptions,
) -> Result<(Image, Arc<dyn BlobSource>), SourceError> {
    let limits = Limits::from(opts);
    let layout = InArchive {
        index,
        name,
        limits: &limits,
    };
    let image = resolve_in(&layout, name, tag, opts)?;
    let mut locations = HashMap::new();
    for layer in &image.layers {
        let what = format!("{name}: layer {}", layer.digest);
        let path = blob_path(&layer.digest, &what)?;
        match index.file(&path, name)? {
            Node::File { at, .. } => {
                locations.insert(layer.digest.clone(), *at);
            }
            _ => {
                return Err(SourceError::Invalid {
                    what,
                    message: format!("{path} is not a regular file"),
                });
            }
        }
    }
    Ok((image, Arc::new(index.blobs(file, name, locations))))
}

/// `SCHEME:PATH[:TAG]`, the name of a layout in messages and reports.
fn reference(scheme: &str, path: &Path, tag: Option<&str>) -> String {
    match tag {
        Some(t) => format!("{scheme}:{}:{t}", path.display()),
        None => format!("{scheme}:{}", path.display()),
    }
}

/// Where a layout's files are read from: a directory or an indexed archive.
trait Layout {
    /// At most `cap` bytes of the regular file at `rel` (a path inside the layout);
    /// `what` names it in errors. Larger is an error: the file is not what its
    /// descriptor says, or is absurd.
    fn read(&self, rel: &str, cap: u64, what: &str) -> Result<Vec<u8>, SourceError>;
    /// What the layout should be, for the error when it has no `oci-layout` file.
    fn expected(&self) -> String;
}

/// A layout directory.
struct InDir(PathBuf);

impl Layout for InDir {
    fn read(&self, rel: &str, cap: u64, what: &str) -> Result<Vec<u8>, SourceError> {
        read_capped(&self.0.join(rel), cap, what)
    }
    fn expected(&self) -> String {
        format!("is {} an OCI image layout?", self.0.display())
    }
}

/// A layout inside an archive: its small documents were kept by the one pass.
struct InArchive<'a> {
    index: &'a ArchiveIndex,
    name: &'a str,
    limits: &'a Limits,
}

impl Layout for InArchive<'_> {
    fn read(&self, rel: &str, cap: u64, what: &str) -> Result<Vec<u8>, SourceError> {
        let bytes = self
            .index
            .document(rel, self.name, self.limits)
            .map_err(|e| match e {
                SourceError::NotFound { .. } => SourceError::NotFound {
                    what: what.to_string(),
                },
                other => other,
            })?;
        if bytes.len() as u64 > cap {
            return Err(SourceError::Invalid {
                what: what.to_string(),
                message: format!("{rel} is larger than {cap} bytes"),
            });
        }
        Ok(bytes.to_vec())
    }
    fn expected(&self) -> String {
        "is it an OCI archive? A `docker save` archive is docker-archive:FILE".into()
    }
}

/// The image `tag` names (or the only one) in a layout, with its manifest, index and
/// config blobs verified.
fn resolve_in(
    layout: &dyn Layout,
    name: &str,
    tag: Option<&str>,
    opts: &ResolveOptions,
) -> Result<Image, SourceError> {
    let limits = Limits::from(opts);
    let layout_file = layout
        .read("oci-layout", 64 << 10, &format!("{name}: oci-layout"))
        .map_err(|e| match e {
            SourceError::NotFound { .. } => SourceError::NotFound {
                what: format!("{name}: oci-layout ({})", layout.expected()),
            },
            other => other,
        })?;
    let version = serde_json::from_slice::<serde_json::Value>(&layout_file)
        .ok()
        .and_then(|v| {
            v.get("imageLayoutVersion")
                .and_then(|s| s.as_str().map(str::to_string))
        });
    if version.is_none() {
        return Err(SourceError::Invalid {
            what: format!("{name}: oci-layout"),
            message: "no imageLayoutVersion".into(),
        });
    }

    let index_what = format!("{name}: index.json");
    let index_bytes = layout.read("index.json", limits.max_manifest_bytes, &index_what)?;
    let index = match manifest::parse_document(&index_bytes, &index_what, &limits)? {
        Document::Index(i) => i,
        Document::Manifest(_) => {
            return Err(SourceError::Invalid {
                what: index_what,
                message: "is a manifest, not an index".into(),
            });
        }
    };
    let mut desc = pick(&index, tag, name, opts)?.clone();

    // Follow nested indexes down to one platform's manifest.
    let mut depth = 0;
    let (manifest, manifest_digest) = loop {
        let what = format!("{name}: manifest {}", desc.digest);
        let bytes = read_blob(layout, &desc, &limits, &what)?;
        match manifest::parse_document(&bytes, &what, &limits)? {
            Document::Manifest(m) => break (m, desc.digest.clone()),
            Document::Index(i) => {
                depth += 1;
                if depth > MAX_INDEX_DEPTH {
                    return Err(SourceError::Invalid {
                        what,
                        message: format!("indexes nested more than {MAX_INDEX_DEPTH} deep"),
                    });
                }
                desc = manifest::select_platform(&i, &opts.platform, name)?.clone();
            }
        }
    };

    let config_what = format!("{name}: config {}", manifest.config.digest);
    let config_bytes = read_blob(layout, &manifest.config, &limits, &config_what)?;
    let config = manifest::parse_config(&config_bytes, &config_what, &limits)?;
    manifest::build_image(
        name,
        Some(manifest_digest),
        &manifest.config.digest,
        &manifest,
        &config,
        &limits,
    )
}

/// The entry of the layout's `index.json` that `tag` names, or the only one.
fn pick<'a>(
    index: &'a Index,
    tag: Option<&str>,
    name: &str,
    opts: &ResolveOptions,
) -> Result<&'a Descriptor, SourceError> {
    let tags = || {
        let mut t: Vec<String> = index
            .manifests
            .iter()
            .map(|d| match d.annotations.get(REF_NAME) {
                Some(r) => r.clone(),
                None => format!("(untagged {})", d.digest),
            })
            .collect();
        t.dedup();
        if t.is_empty() {
            "none".to_string()
        } else {
            t.join(", ")
        }
    };
    let candidates: Vec<&Descriptor> = match tag {
        Some(t) => index
            .manifests
            .iter()
            .filter(|d| d.annotations.get(REF_NAME).is_some_and(|r| r == t))
            .collect(),
        None => index.manifests.iter().collect(),
    };
    match candidates.as_slice() {
        [] => Err(SourceError::NotFound {
            what: format!("{name} (images in the layout: {})", tags()),
        }),
        [one] => Ok(one),
        // Several entries under one name (or no name) that say their platform: an index
        // written flat into index.json. Anything else is ambiguous.
        many if many.iter().all(|d| d.platform.is_some()) => {
            let flat = Index {
                media_type: manifest::OCI_INDEX.into(),
                manifests: many.iter().map(|d| (*d).clone()).collect(),
            };
            let chosen = manifest::select_platform(&flat, &opts.platform, name)?;
            candidates
                .into_iter()
                .find(|d| d.digest == chosen.digest)
                .ok_or_else(|| SourceError::Invalid {
                    what: name.to_string(),
                    message: "platform selection lost its entry".into(),
                })
        }
        many => Err(SourceError::Invalid {
            what: name.to_string(),
            message: format!(
                "{} images match; name one as oci:DIR:TAG (images in the layout: {})",
                many.len(),
                tags()
            ),
        }),
    }
}

/// `blobs/sha256/<hex>`, the path of a blob in a layout, for a checked digest.
fn blob_path(digest: &str, what: &str) -> Result<String, SourceError> {
    let hex = manifest::digest_hex(digest, what)?;
    Ok(format!("blobs/sha256/{hex}"))
}

/// Read a small blob (manifest, index, config) and verify its digest and size.
fn read_blob(
    layout: &dyn Layout,
    desc: &Descriptor,
    limits: &Limits,
    what: &str,
) -> Result<Vec<u8>, SourceError> {
    limits.check_size(what, desc.size)?;
    let bytes = layout.read(&blob_path(&desc.digest, what)?, desc.size, what)?;
    manifest::verify_blob(what, &bytes, &desc.digest, Some(desc.size))?;
    Ok(bytes)
}

/// Read at most `cap` bytes of a regular file; longer is an error.
fn read_capped(path: &Path, cap: u64, what: &str) -> Result<Vec<u8>, SourceError> {
    let io = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::NotFound {
            SourceError::NotFound {
                what: what.to_string(),
            }
        } else {
            SourceError::Io {
                what: format!("{what} ({})", path.display()),
                message: e.to_string(),
            }
        }
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(SourceError::Invalid {
            what: what.to_string(),
            message: format!("{} is not a regular file", path.display()),
        });
    }
    let mut bytes = Vec::new();
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > cap {
        return Err(SourceError::Invalid {
            what: what.to_string(),
            message: format!("{} is larger than {cap} bytes", path.display()),
        });
    }
    Ok(bytes)
}

/// Opens layer blobs from the layout's `blobs/sha256/`.
struct OciBlobs {
    dir: PathBuf,
    name: String,
}

#[async_trait::async_trait]
impl BlobSource for OciBlobs {
    async fn open(&self, layer: &LayerDesc) -> Result<BlobStream, SourceError> {
        let what = format!("{}: blob {}", self.name, layer.digest);
        let path = self.dir.join(blob_path(&layer.digest, &what)?);
        let file = tokio::fs::File::open(&path).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                SourceError::NotFound { what: what.clone() }
            } else {
                SourceError::Io {
                    what: format!("{what} ({})", path.display()),
                    message: e.to_string(),
                }
            }
        })?;
        // tokio files read through the blocking pool; big reads mean fewer hops.
        Ok(Box::pin(tokio::io::BufReader::with_capacity(
            256 << 10,
            file,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/images")
            .join(rel)
    }

    /// trivy's `multi` layout, plus the `oci-layout` file it lacks.
    fn multi_layout() -> tempfile::TempDir {
        let t = tempfile::tempdir().expect("tempdir");
        let src = fixture("trivy-multi");
        let blob = "blobs/sha256/56f658ee7c94c1a65099c680916c12f6b81ae4c586c662a8146791054fa466ab";
        std::fs::create_dir_all(t.path().join("blobs/sha256")).expect("mkdir");
        std::fs::copy(src.join("index.json"), t.path().join("index.json")).expect("copy");
        std::fs::copy(src.join(blob), t.path().join(blob)).expect("copy");
        std::fs::write(
            t.path().join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .expect("write");
        t
    }

    #[tokio::test]
    async fn nested_index_by_tag_and_platform() {
        // index.json → (tag tg11) index blob → amd64 / arm manifests. The manifests
        // themselves are not in the fixture, so resolution must stop exactly at the
        // selected manifest's blob, which tells which platform was chosen.
        let dir = multi_layout();
        let opts = ResolveOptions {
            platform: "linux/arm".parse().expect("platform"),
            ..Default::default()
        };
        let e = resolve(dir.path(), Some("tg11"), &opts)
            .await
            .map(|(i, _)| i)
            .expect_err("manifest blob is absent");
        let text = e.to_string();
        assert!(matches!(e, SourceError::NotFound { .. }), "{text}");
        assert!(
            text.contains(
                "sha256:d4797ba2a3f15e3fe4c13398104f2199cc3fe22da004c9d382a60b74990136ad"
            ),
            "{text}"
        );

        let opts = ResolveOptions {
            platform: "linux/riscv64".parse().expect("platform"),
            ..Default::default()
        };
        match resolve(dir.path(), Some("tg11"), &opts).await {
            Err(SourceError::PlatformMissing { available, .. }) => {
                assert_eq!(available, ["linux/amd64", "linux/arm"])
            }
            other => panic!("expected PlatformMissing, got {:?}", other.map(|(i, _)| i)),
        }
        match resolve(dir.path(), Some("nope"), &opts).await {
            Err(e @ SourceError::NotFound { .. }) => {
                assert!(e.to_string().contains("tg11"), "lists the tags: {e}")
            }
            other => panic!("expected NotFound, got {:?}", other.map(|(i, _)| i)),
        }
        std::fs::remove_file(dir.path().join("oci-layout")).expect("rm");
        let e = resolve(dir.path(), Some("tg11"), &opts)
            .await
            .map(|(i, _)| i)
            .expect_err("not a layout");
        assert!(e.to_string().contains("oci-layout"), "{e}");
    }
}

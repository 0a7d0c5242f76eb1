//! `oci:DIR[:TAG]`: an OCI image layout directory (`oci-layout`, `index.json`,
//! `blobs/sha256/<hex>`), as written by skopeo, umoci, buildah or `docker buildx
//! --output type=oci`.
//!
//! The image is picked from `index.json` by its `org.opencontainers.image.ref.name`
//! annotation (or is the only one), nested indexes are followed with platform selection,
//! and the manifest, index and config blobs are verified (sha256 and size) before they
//! are parsed. Layer blobs are opened as files; the layer pipeline verifies them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::AsyncReadExt;

use super::manifest::{self, Descriptor, Document, Index, Limits, MAX_INDEX_DEPTH, REF_NAME};
use super::{BlobSource, BlobStream, Image, LayerDesc, ResolveOptions, SourceError};

/// Resolve `oci:DIR[:TAG]` to one platform's image.
pub async fn resolve(
    dir: &Path,
    tag: Option<&str>,
    opts: &ResolveOptions,
) -> Result<(Image, Arc<dyn BlobSource>), SourceError> {
    let name = match tag {
        Some(t) => format!("oci:{}:{t}", dir.display()),
        None => format!("oci:{}", dir.display()),
    };
    let limits = Limits::from(opts);

    let layout_file = dir.join("oci-layout");
    let layout = read_capped(&layout_file, 64 << 10, &format!("{name}: oci-layout"))
        .await
        .map_err(|e| match e {
            SourceError::NotFound { .. } => SourceError::NotFound {
                what: format!(
                    "{name}: oci-layout (is {} an OCI image layout?)",
                    dir.display()
                ),
            },
            other => other,
        })?;
    let version = serde_json::from_slice::<serde_json::Value>(&layout)
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
    let index_bytes = read_capped(
        &dir.join("index.json"),
        limits.max_manifest_bytes,
        &index_what,
    )
    .await?;
    let index = match manifest::parse_document(&index_bytes, &index_what, &limits)? {
        Document::Index(i) => i,
        Document::Manifest(_) => {
            return Err(SourceError::Invalid {
                what: index_what,
                message: "is a manifest, not an index".into(),
            });
        }
    };
    let mut desc = pick(&index, tag, &name, opts)?.clone();

    // Follow nested indexes down to one platform's manifest.
    let mut depth = 0;
    let (manifest, manifest_digest) = loop {
        let what = format!("{name}: manifest {}", desc.digest);
        let bytes = read_blob(dir, &desc, &limits, &what).await?;
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
                desc = manifest::select_platform(&i, &opts.platform, &name)?.clone();
            }
        }
    };

    let config_what = format!("{name}: config {}", manifest.config.digest);
    let config_bytes = read_blob(dir, &manifest.config, &limits, &config_what).await?;
    let config = manifest::parse_config(&config_bytes, &config_what, &limits)?;
    let image = manifest::build_image(
        &name,
        Some(manifest_digest),
        &manifest.config.digest,
        &manifest,
        &config,
        &limits,
    )?;
    Ok((
        image,
        Arc::new(OciBlobs {
            dir: dir.to_path_buf(),
            name,
        }),
    ))
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

/// `DIR/blobs/sha256/<hex>` for a checked digest.
fn blob_path(dir: &Path, digest: &str, what: &str) -> Result<PathBuf, SourceError> {
    let hex = manifest::digest_hex(digest, what)?;
    Ok(dir.join("blobs").join("sha256").join(hex))
}

/// Read a small blob (manifest, index, config) and verify its digest and size.
async fn read_blob(
    dir: &Path,
    desc: &Descriptor,
    limits: &Limits,
    what: &str,
) -> Result<Vec<u8>, SourceError> {
    limits.check_size(what, desc.size)?;
    let path = blob_path(dir, &desc.digest, what)?;
    let bytes = read_capped(&path, desc.size, what).await?;
    manifest::verify_blob(what, &bytes, &desc.digest, Some(desc.size))?;
    Ok(bytes)
}

/// Read at most `cap` bytes of a regular file; longer is `TooLarge`-like: the file is
/// not what its descriptor says, or is absurd.
async fn read_capped(path: &Path, cap: u64, what: &str) -> Result<Vec<u8>, SourceError> {
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
    let file = tokio::fs::File::open(path).await.map_err(io)?;
    let meta = file.metadata().await.map_err(io)?;
    if !meta.is_file() {
        return Err(SourceError::Invalid {
            what: what.to_string(),
            message: format!("{} is not a regular file", path.display()),
        });
    }
    let mut bytes = Vec::new();
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .await
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
        let path = blob_path(&self.dir, &layer.digest, &what)?;
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

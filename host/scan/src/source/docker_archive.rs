//! `docker-archive:FILE`: a `docker save` tarball, plain or gzip-compressed, indexed in
//! one pass by [`super::archive`].
//!
//! The archive says little about its layers: `manifest.json` lists each image's
//! `Config` and `Layers` as paths inside the archive (`<id>/layer.tar` in the legacy
//! format, `blobs/sha256/<hex>` since Docker 25), and the config has the diff_ids.
//!
//! The blob digest each layer gets is what the layer pipeline verifies against the raw
//! bytes: `blobs/sha256/<hex>` names it; an uncompressed tar's digest *is* its diff_id
//! (so nothing is hashed here, and a damaged layer still fails verification); only a
//! compressed layer at a legacy path is hashed during the pass.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use super::archive::{self, ArchiveBlobs, ArchiveIndex, Location, Node};
use super::manifest::{self, Descriptor, Limits};
use super::{BlobSource, Compression, Image, ResolveOptions, SourceError};

/// Resolve `docker-archive:FILE`. Archives holding more than one image are refused
/// (with their tags listed): the reference form has no way to pick one yet.
pub async fn resolve(
    file: &Path,
    opts: &ResolveOptions,
) -> Result<(Image, Arc<dyn BlobSource>), SourceError> {
    let (image, blobs) = open(file, opts).await?;
    Ok((image, Arc::new(blobs)))
}

/// [`resolve`], with the blob source's own type (the tests count its work).
async fn open(file: &Path, opts: &ResolveOptions) -> Result<(Image, ArchiveBlobs), SourceError> {
    let name = format!("docker-archive:{}", file.display());
    let limits = Limits::from(opts);
    let index = ArchiveIndex::open(file, &name, &limits).await?;
    let (image, locations) = build(&index, &name, &limits)?;
    Ok((image, index.blobs(file, &name, locations)))
}

/// The image a `docker save` archive held in memory describes: the one pass over the
/// archive and `manifest.json` → config → layers, as [`resolve`] does for a file. For
/// the fuzz targets; `name` names the archive in errors.
#[doc(hidden)]
pub fn image_of_bytes(bytes: &[u8], name: &str, limits: &Limits) -> Result<Image, SourceError> {
    let index = ArchiveIndex::of_bytes(bytes, name, limits)?;
    build(&index, name, limits).map(|(image, _)| image)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveManifest {
    config: String,
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Turn the index into an image, manifest.json → config → layers, and where each layer
/// is (by digest).
pub(super) fn build(
    index: &ArchiveIndex,
    name: &str,
    limits: &Limits,
) -> Result<(Image, HashMap<String, Location>), SourceError> {
    let manifest_what = format!("{name}: manifest.json");
    let bytes = index
        .document("manifest.json", name, limits)
        .map_err(|e| match e {
            SourceError::NotFound { .. } => SourceError::Invalid {
                what: name.to_string(),
                message: "no manifest.json: not a `docker save` archive".into(),
            },
            other => other,
        })?;
    let images: Vec<ArchiveManifest> =
        serde_json::from_slice(bytes).map_err(|e| SourceError::Invalid {
            what: manifest_what.clone(),
            message: e.to_string(),
        })?;
    let entry = match images.as_slice() {
        [one] => one,
        [] => {
            return Err(SourceError::Invalid {
                what: manifest_what,
                message: "lists no image".into(),
            });
        }
        many => {
            let tags: Vec<String> = many
                .iter()
                .map(|m| {
                    m.repo_tags
                        .as_ref()
                        .map_or_else(|| m.config.clone(), |t| t.join(" "))
                })
                .collect();
            return Err(SourceError::Invalid {
                what: name.to_string(),
                message: format!(
                    "holds {} images ({}); save one image per archive (docker save IMAGE)",
                    many.len(),
                    tags.join(", ")
                ),
            });
        }
    };
    if entry.layers.len() > limits.max_layers {
        return Err(SourceError::TooLarge {
            what: format!("{manifest_what} ({} layers)", entry.layers.len()),
            limit_name: "max_layers".into(),
            limit: limits.max_layers as u64,
        });
    }

    let config_what = format!("{name}: {}", entry.config);
    let config_bytes = index.document(&entry.config, name, limits)?;
    let config_digest = manifest::sha256_digest(config_bytes);
    if let Some(claimed) = archive::clean(&entry.config)
        .as_deref()
        .and_then(archive::named_digest)
        && claimed != config_digest
    {
        return Err(SourceError::DigestMismatch {
            what: config_what,
            expected: claimed,
            actual: config_digest,
        });
    }
    let config = manifest::parse_config(config_bytes, &config_what, limits)?;
    if config.diff_ids.len() != entry.layers.len() {
        return Err(SourceError::Invalid {
            what: name.to_string(),
            message: format!(
                "manifest.json lists {} layers but the config has {} rootfs.diff_ids",
                entry.layers.len(),
                config.diff_ids.len()
            ),
        });
    }

    let mut locations = HashMap::new();
    let mut layers = Vec::with_capacity(entry.layers.len());
    for (layer_path, diff_id) in entry.layers.iter().zip(&config.diff_ids) {
        let Node::File {
            at,
            compression,
            sha256,
            ..
        } = index.file(layer_path, name)?
        else {
            return Err(SourceError::Invalid {
                what: format!("{name}: {layer_path}"),
                message: "not a file".into(),
            });
        };
        let digest = match (
            archive::clean(layer_path)
                .as_deref()
                .and_then(archive::named_digest),
            compression,
            sha256,
        ) {
            (Some(named), _, _) => named,
            (None, Compression::None, _) => diff_id.clone(),
            (None, _, Some(computed)) => computed.clone(),
            (None, _, None) => {
                return Err(SourceError::Invalid {
                    what: format!("{name}: {layer_path}"),
                    message: "a compressed layer whose digest was not computed".into(),
                });
            }
        };
        let media_type = match compression {
            Compression::None => manifest::DOCKER_LAYER_TAR,
            Compression::Gzip => manifest::DOCKER_LAYER_GZIP,
            Compression::Zstd => manifest::OCI_LAYER_ZSTD,
        };
        locations.entry(digest.clone()).or_insert(*at);
        layers.push(Descriptor {
            media_type: media_type.to_string(),
            digest,
            size: at.size,
            platform: None,
            annotations: Default::default(),
        });
    }
    let manifest = manifest::Manifest {
        media_type: manifest::DOCKER_MANIFEST.to_string(),
        config: Descriptor {
            media_type: manifest::DOCKER_CONFIG.to_string(),
            digest: config_digest.clone(),
            size: config_bytes.len() as u64,
            platform: None,
            annotations: Default::default(),
        },
        layers,
    };
    // No registry manifest exists for a saved image: manifest_digest stays None.
    let image = manifest::build_image(name, None, &config_digest, &manifest, &config, limits)?;
    Ok((image, locations))
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    /// Issue 22: a gzipped archive is inflated once, however many layers it has (it was
    /// inflated from the start again for every layer: quadratic work).
    #[tokio::test]
    async fn a_gzipped_archive_with_100_layers_is_inflated_once() {
        const LAYERS: usize = 100;
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        let mut layer_paths = Vec::new();
        let mut diff_ids = Vec::new();
        for i in 0..LAYERS {
            let content = format!("layer {i}\n").repeat(2000);
            let layer = archive::tests::tar_of(&[(&format!("etc/file{i}"), content.as_bytes())]);
            diff_ids.push(manifest::sha256_digest(&layer));
            let path = format!("{i:03}/layer.tar");
            layer_paths.push(path.clone());
            files.push((path, layer));
        }
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        })
        .to_string();
        let config_name = format!("{}.json", &manifest::sha256_digest(config.as_bytes())[7..]);
        let manifest_json = serde_json::json!([{
            "Config": config_name, "RepoTags": ["many:layers"], "Layers": layer_paths,
        }])
        .to_string();
        files.push((config_name.clone(), config.into_bytes()));
        files.push(("manifest.json".into(), manifest_json.into_bytes()));
        let entries: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice()))
            .collect();
        let plain = archive::tests::tar_of(&entries);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("many.tar.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).expect("gzip");
        std::fs::write(&path, gz.finish().expect("gzip")).expect("write");

        let (image, blobs) = open(&path, &ResolveOptions::default())
            .await
            .expect("resolves");
        assert_eq!(image.layers.len(), LAYERS);
        let inflated = blobs.inflated;
        assert!(
            inflated > 0 && inflated <= plain.len() as u64,
            "one pass inflates at most the archive once: {inflated} of {}",
            plain.len()
        );
        // Every layer, read back, is the layer that went in, and none is inflated from the
        // archive again: it is gone, only the one decompressed copy is read.
        std::fs::remove_file(&path).expect("remove the archive");
        for (layer, (_, want)) in image.layers.iter().zip(&files) {
            let mut got = Vec::new();
            let mut stream = BlobSource::open(&blobs, layer).await.expect("opens");
            tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut got)
                .await
                .expect("reads");
            assert_eq!(&got, want, "{}", layer.digest);
        }
        println!(
            "{LAYERS}-layer gzipped archive: {} bytes inflated in all, archive {} bytes uncompressed (was ~{} with one inflation per layer)",
            inflated,
            plain.len(),
            plain.len() as u64 * LAYERS as u64 / 2
        );
    }
}

//! Manifests, indexes and image configs, as every image source reads them: OCI image
//! manifests and indexes, Docker v2 schema 2 manifests and manifest lists, and the image
//! config they point to.
//!
//! Everything here is pure (bytes in, model out) so that registries, OCI layouts and
//! `docker save` archives share one parser and one set of checks. Input is untrusted:
//! sizes and counts are bounded by [`Limits`], every digest must be `sha256:<64 hex>`
//! (sources turn digests into file paths and URLs, so nothing else may pass), and every
//! error names the document it came from.

use std::collections::BTreeMap;

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::{Compression, Image, LayerDesc, Platform, ResolveOptions, SourceError};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// Every manifest type we can read, for a registry's `Accept` header. A registry asked
/// without the OCI types answers 404 for OCI images, and without the Docker types it
/// converts v2 manifests to schema 1 on the fly (with another digest).
pub const MANIFEST_TYPES: [&str; 4] = [
    OCI_INDEX,
    OCI_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST,
];

/// The annotation that names an image in an OCI layout's `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Nested indexes followed at most (index → index → manifest is already unusual).
pub const MAX_INDEX_DEPTH: usize = 4;

/// Uncompressed Docker layer type: Docker itself never pushes it, but it names the
/// uncompressed `layer.tar` of a `docker save` archive.
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// Bounds on the documents of one image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest manifest, index or config, in bytes.
    pub max_manifest_bytes: u64,
    /// Most layers in one image.
    pub max_layers: usize,
}

impl From<&ResolveOptions> for Limits {
    fn from(o: &ResolveOptions) -> Self {
        Limits {
            max_manifest_bytes: o.registry.max_manifest_bytes,
            max_layers: o.max_layers,
        }
    }
}

impl Limits {
    /// `TooLarge` unless a document of `len` bytes is acceptable.
    pub fn check_size(&self, what: &str, len: u64) -> Result<(), SourceError> {
        if len > self.max_manifest_bytes {
            return Err(SourceError::TooLarge {
                what: what.to_string(),
                limit_name: "max_manifest_bytes".into(),
                limit: self.max_manifest_bytes,
            });
        }
        Ok(())
    }

    fn check_layers(&self, what: &str, n: usize) -> Result<(), SourceError> {
        if n > self.max_layers {
            return Err(SourceError::TooLarge {
                what: format!("{what} ({n} layers)"),
                limit_name: "max_layers".into(),
                limit: self.max_layers as u64,
            });
        }
        Ok(())
    }
}

/// A content descriptor: what a manifest or index says about a blob it references.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    /// Empty when the document left it out.
    pub media_type: String,
    /// Always `sha256:<64 lowercase hex>` (checked when parsed).
    pub digest: String,
    pub size: u64,
    pub platform: Option<Platform>,
    pub annotations: BTreeMap<String, String>,
}

/// One platform's image manifest (OCI or Docker v2 schema 2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// An image index (OCI) or manifest list (Docker).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Index {
    pub media_type: String,
    pub manifests: Vec<Descriptor>,
}

/// A manifest document: one image, or an index of images.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Document {
    Manifest(Manifest),
    Index(Index),
}

/// What the layer pipeline needs from an image config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `os/architecture[/variant]`, when the config names both os and architecture.
    pub platform: Option<Platform>,
    /// `rootfs.diff_ids`: digests of the uncompressed layer tars, base first.
    pub diff_ids: Vec<String>,
    pub history: Vec<History>,
}

/// One `history[]` entry of a config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct History {
    pub created_by: Option<String>,
    /// The step made no layer (`ENV`, `CMD`, …).
    pub empty_layer: bool,
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The hex part of a `sha256:<64 lowercase hex>` digest, or `Invalid`. Sources build
/// blob paths and URLs from it, so anything else (another algorithm, `..`, `/`,
/// upper case) is refused here.
pub fn digest_hex<'a>(digest: &'a str, what: &str) -> Result<&'a str, SourceError> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(hex)
        }
        _ => Err(SourceError::Invalid {
            what: what.to_string(),
            message: format!(
                "unsupported digest {:?}: expected sha256:<64 lowercase hex digits>",
                truncate(digest)
            ),
        }),
    }
}

/// `DigestMismatch` unless `bytes` has `digest` (and `size`, when given).
pub fn verify_blob(
    what: &str,
    bytes: &[u8],
    digest: &str,
    size: Option<u64>,
) -> Result<(), SourceError> {
    let actual = sha256_digest(bytes);
    if actual != digest {
        return Err(SourceError::DigestMismatch {
            what: what.to_string(),
            expected: digest.to_string(),
            actual,
        });
    }
    if let Some(size) = size
        && size != bytes.len() as u64
    {
        return Err(SourceError::Invalid {
            what: what.to_string(),
            message: format!("size is {} bytes, the descriptor says {size}", bytes.len()),
        });
    }
    Ok(())
}

// What serde reads. Fields the model does not need are ignored; fields it needs are
// checked after parsing, so that errors can say what is wrong in our words.

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDocument {
    schema_version: Option<i64>,
    media_type: Option<String>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawDescriptor>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: String,
    size: u64,
    platform: Option<RawPlatform>,
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct RawPlatform {
    architecture: String,
    os: String,
    variant: Option<String>,
}

#[derive(Deserialize)]
struct RawConfig {
    architecture: Option<String>,
    os: Option<String>,
    variant: Option<String>,
    rootfs: Option<RawRootfs>,
    history: Option<Vec<RawHistory>>,
}

#[derive(Deserialize)]
struct RawRootfs {
    #[serde(rename = "type")]
    kind: String,
    diff_ids: Vec<String>,
}

#[derive(Deserialize)]
struct RawHistory {
    created_by: Option<String>,
    #[serde(default)]
    empty_layer: bool,
}

fn invalid(what: &str, message: impl Into<String>) -> SourceError {
    SourceError::Invalid {
        what: what.to_string(),
        message: message.into(),
    }
}

fn unsupported(what: &str, message: impl Into<String>) -> SourceError {
    SourceError::Unsupported {
        what: what.to_string(),
        message: message.into(),
    }
}

/// At most 100 characters of untrusted text, for error messages.
fn truncate(s: &str) -> String {
    if s.chars().count() <= 100 {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(100).collect::<String>())
    }
}

fn descriptor(raw: RawDescriptor, what: &str) -> Result<Descriptor, SourceError> {
    digest_hex(&raw.digest, what)?;
    Ok(Descriptor {
        media_type: raw.media_type.unwrap_or_default(),
        digest: raw.digest,
        size: raw.size,
        platform: raw.platform.map(|p| Platform {
            os: p.os,
            architecture: p.architecture,
            variant: p.variant.filter(|v| !v.is_empty()),
        }),
        annotations: raw.annotations.unwrap_or_default(),
    })
}

/// Parse a manifest or index. `what` names the document in errors. A document without
/// `mediaType` (allowed by OCI) is told apart by having `manifests` or `layers`.
pub fn parse_document(bytes: &[u8], what: &str, limits: &Limits) -> Result<Document, SourceError> {
    limits.check_size(what, bytes.len() as u64)?;
    let raw: RawDocument =
        serde_json::from_slice(bytes).map_err(|e| invalid(what, format!("not a manifest: {e}")))?;
    match raw.schema_version {
        Some(2) => {}
        Some(1) => {
            return Err(unsupported(
                what,
                "Docker schema 1 manifests are not supported (push the image again with a current client)",
            ));
        }
        Some(v) => return Err(unsupported(what, format!("unsupported schemaVersion {v}"))),
        None => return Err(invalid(what, "not a manifest: no schemaVersion")),
    }
    let is_index = match raw.media_type.as_deref() {
        Some(OCI_INDEX | DOCKER_MANIFEST_LIST) => true,
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => false,
        Some(other) => {
            return Err(unsupported(
                what,
                format!("unsupported manifest media type {:?}", truncate(other)),
            ));
        }
        None => match (
            raw.manifests.is_some(),
            raw.layers.is_some() || raw.config.is_some(),
        ) {
            (true, false) => true,
            (false, true) => false,
            _ => {
                return Err(invalid(
                    what,
                    "no mediaType, and not recognisable as an index (manifests) or a manifest (config, layers)",
                ));
            }
        },
    };
    if is_index {
        let manifests = raw
            .manifests
            .ok_or_else(|| invalid(what, "an index without manifests"))?;
        if manifests.len() > limits.max_layers.max(64) * 4 {
            // An index lists platforms, not layers; a few hundred is already absurd.
            return Err(SourceError::TooLarge {
                what: format!("{what} ({} entries)", manifests.len()),
                limit_name: "max_layers".into(),
                limit: (limits.max_layers.max(64) * 4) as u64,
            });
        }
        let manifests = manifests
            .into_iter()
            .enumerate()
            .map(|(i, d)| descriptor(d, &format!("{what}: manifests[{i}]")))
            .collect::<Result<_, _>>()?;
        return Ok(Document::Index(Index {
            media_type: raw.media_type.unwrap_or_else(|| OCI_INDEX.to_string()),
            manifests,
        }));
    }
    let config = raw
        .config
        .ok_or_else(|| invalid(what, "a manifest without config"))?;
    let layers = raw
        .layers
        .ok_or_else(|| invalid(what, "a manifest without layers"))?;
    limits.check_layers(what, layers.len())?;
    let config = descriptor(config, &format!("{what}: config"))?;
    if !matches!(config.media_type.as_str(), OCI_CONFIG | DOCKER_CONFIG) {
        return Err(unsupported(
            what,
            format!(
                "not a container image: config media type {:?} (an artifact such as a Helm chart or a signature?)",
                truncate(&config.media_type)
            ),
        ));
    }
    let layers = layers
        .into_iter()
        .enumerate()
        .map(|(i, d)| descriptor(d, &format!("{what}: layers[{i}]")))
        .collect::<Result<_, _>>()?;
    Ok(Document::Manifest(Manifest {
        media_type: raw.media_type.unwrap_or_else(|| OCI_MANIFEST.to_string()),
        config,
        layers,
    }))
}

/// A manifest or index as a registry sent it: the checks every registry path makes on
/// the bytes received, in order (size, the digest asked for, the size the index gave,
/// then the parse). Returns the document and its digest. The fuzz target
/// `registry_documents` runs this on arbitrary bytes.
pub fn received(
    bytes: &[u8],
    what: &str,
    limits: &Limits,
    expected_digest: Option<&str>,
    expected_size: Option<u64>,
) -> Result<(Document, String), SourceError> {
    limits.check_size(what, bytes.len() as u64)?;
    let digest = sha256_digest(bytes);
    if let Some(want) = expected_digest
        && want != digest
    {
        return Err(SourceError::DigestMismatch {
            what: what.to_string(),
            expected: want.to_string(),
            actual: digest,
        });
    }
    if let Some(size) = expected_size
        && size != bytes.len() as u64
    {
        return Err(invalid(
            what,
            format!("{} bytes, the index says {size}", bytes.len()),
        ));
    }
    let document = parse_document(bytes, what, limits)?;
    if let Document::Index(index) = &document
        && index.manifests.iter().any(|d| d.digest == digest)
    {
        return Err(invalid(what, "the index lists itself"));
    }
    Ok((document, digest))
}

/// Parse an image config: platform, `rootfs.diff_ids` and `history`.
pub fn parse_config(bytes: &[u8], what: &str, limits: &Limits) -> Result<Config, SourceError> {
    limits.check_size(what, bytes.len() as u64)?;
    let raw: RawConfig = serde_json::from_slice(bytes)
        .map_err(|e| invalid(what, format!("not an image config: {e}")))?;
    let rootfs = raw
        .rootfs
        .ok_or_else(|| invalid(what, "an image config without rootfs"))?;
    if rootfs.kind != "layers" {
        return Err(invalid(
            what,
            format!(
                "rootfs.type is {:?}, expected \"layers\"",
                truncate(&rootfs.kind)
            ),
        ));
    }
    limits.check_layers(what, rootfs.diff_ids.len())?;
    for (i, d) in rootfs.diff_ids.iter().enumerate() {
        digest_hex(d, &format!("{what}: rootfs.diff_ids[{i}]"))?;
    }
    let platform = match (raw.os, raw.architecture) {
        (Some(os), Some(architecture)) if !os.is_empty() && !architecture.is_empty() => {
            Some(Platform {
                os,
                architecture,
                variant: raw.variant.filter(|v| !v.is_empty()),
            })
        }
        _ => None,
    };
    let history = raw
        .history
        .unwrap_or_default()
        .into_iter()
        .map(|h| History {
            created_by: h.created_by,
            empty_layer: h.empty_layer,
        })
        .collect();
    Ok(Config {
        platform,
        diff_ids: rootfs.diff_ids,
        history,
    })
}

/// How a layer of `media_type` is compressed, and whether it is foreign
/// (non-distributable: not pushed to registries, usually Windows base layers).
pub fn layer_compression(media_type: &str) -> Option<(Compression, bool)> {
    Some(match media_type {
        "application/vnd.oci.image.layer.v1.tar" | DOCKER_LAYER_TAR => (Compression::None, false),
        "application/vnd.oci.image.layer.v1.tar+gzip" | DOCKER_LAYER_GZIP => {
            (Compression::Gzip, false)
        }
        OCI_LAYER_ZSTD => (Compression::Zstd, false),
        "application/vnd.oci.image.layer.nondistributable.v1.tar"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar" => (Compression::None, true),
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => (Compression::Gzip, true),
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => (Compression::Zstd, true),
        _ => return None,
    })
}

/// Whether an index entry is an attestation or signature rather than an image: BuildKit
/// gives attestation manifests the platform `unknown/unknown`.
fn is_attestation(d: &Descriptor) -> bool {
    d.platform
        .as_ref()
        .is_some_and(|p| p.os == "unknown" && p.architecture == "unknown")
        || d.annotations
            .get("vnd.docker.reference.type")
            .is_some_and(|t| t == "attestation-manifest")
}

/// Whether an index entry can be an image (a manifest, or an index to follow).
fn is_image_entry(d: &Descriptor) -> bool {
    matches!(
        d.media_type.as_str(),
        "" | OCI_MANIFEST | DOCKER_MANIFEST | OCI_INDEX | DOCKER_MANIFEST_LIST
    ) && !is_attestation(d)
}

/// Pick the entry of `index` for platform `want`: the first image entry whose platform
/// [`Platform::matches`] it. Attestation manifests are skipped. `reference` names the
/// image in the error, which lists the platforms that are there.
pub fn select_platform<'a>(
    index: &'a Index,
    want: &Platform,
    reference: &str,
) -> Result<&'a Descriptor, SourceError> {
    let candidates: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| is_image_entry(d))
        .collect();
    if let Some(d) = candidates
        .iter()
        .find(|d| d.platform.as_ref().is_some_and(|p| want.matches(p)))
    {
        return Ok(d);
    }
    let mut available: Vec<String> = candidates
        .iter()
        .map(|d| {
            d.platform
                .as_ref()
                .map_or_else(|| format!("unspecified ({})", d.digest), |p| p.to_string())
        })
        .collect();
    available.dedup();
    Err(SourceError::PlatformMissing {
        reference: reference.to_string(),
        requested: want.to_string(),
        available,
    })
}

/// Assemble the [`Image`]: zip the manifest's layers with the config's diff_ids and
/// attach to each layer the `created_by` of the history step that made it.
pub fn build_image(
    reference: &str,
    manifest_digest: Option<String>,
    config_digest: &str,
    manifest: &Manifest,
    config: &Config,
    limits: &Limits,
) -> Result<Image, SourceError> {
    limits.check_layers(reference, manifest.layers.len())?;
    if manifest.layers.len() != config.diff_ids.len() {
        return Err(invalid(
            reference,
            format!(
                "the manifest has {} layers but the config has {} rootfs.diff_ids",
                manifest.layers.len(),
                config.diff_ids.len()
            ),
        ));
    }
    // History steps that made a layer, in order. When their number differs from the
    // number of layers the history cannot be matched to layers (it was edited, or
    // written by a tool that forgot `empty_layer`): no attribution beats a wrong one.
    let made_layers: Vec<&History> = config.history.iter().filter(|h| !h.empty_layer).collect();
    let attributable = made_layers.len() == manifest.layers.len();
    let layers = manifest
        .layers
        .iter()
        .zip(&config.diff_ids)
        .enumerate()
        .map(|(i, (l, diff_id))| {
            let (compression, foreign) = layer_compression(&l.media_type).ok_or_else(|| {
                invalid(
                    reference,
                    format!(
                        "layer {i} ({}) has an unsupported media type {:?}",
                        l.digest,
                        truncate(&l.media_type)
                    ),
                )
            })?;
            Ok(LayerDesc {
                digest: l.digest.clone(),
                media_type: l.media_type.clone(),
                size: l.size,
                diff_id: diff_id.clone(),
                compression,
                created_by: if attributable {
                    made_layers[i].created_by.clone()
                } else {
                    None
                },
                foreign,
            })
        })
        .collect::<Result<Vec<_>, SourceError>>()?;
    Ok(Image {
        reference: reference.to_string(),
        manifest_digest,
        config_digest: config_digest.to_string(),
        platform: config.platform.clone(),
        layers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real documents (see tests/fixtures/images/SOURCES.md).
    const TRIVY_DOCKER_MANIFEST: &[u8] =
        include_bytes!("../../../../tests/fixtures/images/trivy-docker-manifest.json");
    const TRIVY_MULTI_INDEX: &[u8] = include_bytes!(
        "../../../../tests/fixtures/images/trivy-multi/blobs/sha256/56f658ee7c94c1a65099c680916c12f6b81ae4c586c662a8146791054fa466ab"
    );
    const TRIVY_SINGLE_INDEX: &[u8] =
        include_bytes!("../../../../tests/fixtures/images/trivy-single-index.json");
    const OCI_MANIFEST_BLOB: &[u8] = include_bytes!(
        "../../../../tests/fixtures/images/test.oci/blobs/sha256/afb744871f99e0ff8e6f253244836ed34c5d805fdb096d3a205ffaf5e9073cab"
    );
    const OCI_CONFIG_BLOB: &[u8] = include_bytes!(
        "../../../../tests/fixtures/images/test.oci/blobs/sha256/b23a8f6569ae9ae331226205fa72f480ce5310707d0bc97e611f83fbbbde4604"
    );

    fn limits() -> Limits {
        Limits {
            max_manifest_bytes: 4 << 20,
            max_layers: 256,
        }
    }

    fn platform(s: &str) -> Platform {
        s.parse().expect("valid platform")
    }

    fn manifest(bytes: &[u8]) -> Manifest {
        match parse_document(bytes, "test", &limits()).expect("parses") {
            Document::Manifest(m) => m,
            Document::Index(_) => panic!("expected a manifest"),
        }
    }

    fn index(bytes: &[u8]) -> Index {
        match parse_document(bytes, "test", &limits()).expect("parses") {
            Document::Index(i) => i,
            Document::Manifest(_) => panic!("expected an index"),
        }
    }

    fn err_text(r: Result<impl std::fmt::Debug, SourceError>) -> String {
        r.expect_err("must fail").to_string()
    }

    #[test]
    fn docker_v2_manifest() {
        let m = manifest(TRIVY_DOCKER_MANIFEST);
        assert_eq!(m.media_type, DOCKER_MANIFEST);
        assert_eq!(
            m.config.digest,
            "sha256:2073e0bcb60ee98548d313ead5eacbfe16d9054f8800a32bedd859922a99a6e1"
        );
        assert_eq!(m.config.size, 6666);
        let sizes: Vec<u64> = m.layers.iter().map(|l| l.size).collect();
        assert_eq!(sizes, [27092260, 23882249, 204]);
        assert_eq!(
            m.layers[2].digest,
            "sha256:bf317aa10aa501e00f87c2ff5a414079c4f3083ab086c91f57878dbbffa70507"
        );
        assert!(
            m.layers
                .iter()
                .all(|l| layer_compression(&l.media_type) == Some((Compression::Gzip, false)))
        );
    }

    #[test]
    fn oci_manifest_and_config_build_an_image() {
        let m = manifest(OCI_MANIFEST_BLOB);
        assert_eq!(
            m.media_type, OCI_MANIFEST,
            "no mediaType field: sniffed from config/layers"
        );
        let c = parse_config(OCI_CONFIG_BLOB, "config", &limits()).expect("config parses");
        assert_eq!(c.platform, Some(platform("linux/amd64")));
        let img = build_image(
            "oci:x",
            Some(sha256_digest(OCI_MANIFEST_BLOB)),
            &m.config.digest,
            &m,
            &c,
            &limits(),
        )
        .expect("image");
        assert_eq!(
            img.manifest_digest.as_deref(),
            Some("sha256:afb744871f99e0ff8e6f253244836ed34c5d805fdb096d3a205ffaf5e9073cab")
        );
        assert_eq!(
            img.config_digest,
            "sha256:b23a8f6569ae9ae331226205fa72f480ce5310707d0bc97e611f83fbbbde4604"
        );
        assert_eq!(
            img.layers,
            vec![LayerDesc {
                digest: "sha256:cdd16bd695eda2819e7637648f573c2ca64896c4f7bff9732ac9db734ca3bc2c".into(),
                media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                size: 2610,
                diff_id: "sha256:9c27e219663c25e0f28493790cc0b88bc973ba3b1686355f221c38a36978ac63".into(),
                compression: Compression::Gzip,
                // the second history entry is `empty_layer` (CMD) and is skipped
                created_by: Some(
                    "/bin/sh -c #(nop) COPY file:7bf12aab75c3867a023fe3b8bd6d113d43a4fcc415f3cc27cbcf0fff37b65a02 in / ".into()
                ),
                foreign: false,
            }]
        );
    }

    #[test]
    fn oci_index_platform_selection() {
        let i = index(TRIVY_MULTI_INDEX);
        assert_eq!(
            i.media_type, OCI_INDEX,
            "no mediaType field: sniffed from manifests"
        );
        let amd64 = select_platform(&i, &platform("linux/amd64"), "r").expect("amd64");
        assert_eq!(
            amd64.digest,
            "sha256:56ae38f2f5c54b98311b8b2463d4861368c451ac17098f4227d84946b42ab96d"
        );
        let arm = select_platform(&i, &platform("linux/arm/v7"), "r");
        assert!(
            arm.is_err(),
            "linux/arm without variant does not satisfy a v7 request"
        );
        let arm = select_platform(&i, &platform("linux/arm"), "r").expect("arm");
        assert_eq!(
            arm.digest,
            "sha256:d4797ba2a3f15e3fe4c13398104f2199cc3fe22da004c9d382a60b74990136ad"
        );
        match select_platform(&i, &platform("linux/s390x"), "example:1") {
            Err(SourceError::PlatformMissing {
                reference,
                requested,
                available,
            }) => {
                assert_eq!(reference, "example:1");
                assert_eq!(requested, "linux/s390x");
                assert_eq!(available, ["linux/amd64", "linux/arm"]);
            }
            other => panic!("expected PlatformMissing, got {other:?}"),
        }
    }

    #[test]
    fn oci_layout_index_with_ref_name() {
        let i = index(TRIVY_SINGLE_INDEX);
        assert_eq!(i.manifests.len(), 1);
        assert_eq!(
            i.manifests[0].annotations.get(REF_NAME).map(String::as_str),
            Some("3.14")
        );
        assert_eq!(i.manifests[0].platform, None);
    }

    /// A Docker manifest list as the distribution spec describes it, plus the attestation
    /// entry BuildKit adds; arm64 without a variant counts as v8.
    #[test]
    fn docker_manifest_list_skips_attestations() {
        let list = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_LIST}","manifests":[
              {{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":566,"digest":"sha256:{a}",
                "platform":{{"architecture":"unknown","os":"unknown"}},
                "annotations":{{"vnd.docker.reference.type":"attestation-manifest"}}}},
              {{"mediaType":"{DOCKER_MANIFEST}","size":7143,"digest":"sha256:{b}",
                "platform":{{"architecture":"ppc64le","os":"linux"}}}},
              {{"mediaType":"{DOCKER_MANIFEST}","size":7682,"digest":"sha256:{c}",
                "platform":{{"architecture":"arm64","os":"linux","features":["sse4"]}}}}]}}"#,
            a = "a".repeat(64),
            b = "b".repeat(64),
            c = "c".repeat(64)
        );
        let i = index(list.as_bytes());
        assert_eq!(i.media_type, DOCKER_MANIFEST_LIST);
        let d = select_platform(&i, &platform("linux/arm64/v8"), "r").expect("arm64");
        assert_eq!(d.digest, format!("sha256:{}", "c".repeat(64)));
        match select_platform(&i, &platform("linux/amd64"), "r") {
            Err(SourceError::PlatformMissing { available, .. }) => {
                assert_eq!(
                    available,
                    ["linux/ppc64le", "linux/arm64"],
                    "the attestation is not a platform"
                );
            }
            other => panic!("expected PlatformMissing, got {other:?}"),
        }
    }

    #[test]
    fn layer_media_types() {
        use Compression::*;
        let cases = [
            ("application/vnd.oci.image.layer.v1.tar", (None, false)),
            ("application/vnd.oci.image.layer.v1.tar+gzip", (Gzip, false)),
            ("application/vnd.oci.image.layer.v1.tar+zstd", (Zstd, false)),
            (
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                (Gzip, false),
            ),
            (
                "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                (Gzip, true),
            ),
            (
                "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                (Gzip, true),
            ),
            (
                "application/vnd.oci.image.layer.nondistributable.v1.tar",
                (None, true),
            ),
        ];
        for (mt, want) in cases {
            assert_eq!(layer_compression(mt), Some(want), "{mt}");
        }
        assert_eq!(
            layer_compression("application/vnd.in-toto+json"),
            Option::None
        );
    }

    #[test]
    fn unknown_layer_media_type_is_named() {
        let mut m = manifest(OCI_MANIFEST_BLOB);
        m.layers[0].media_type = "application/vnd.example.layer.v1.tar+lz4".into();
        let c = parse_config(OCI_CONFIG_BLOB, "config", &limits()).expect("config");
        let e = err_text(build_image(
            "ref",
            None,
            &m.config.digest,
            &m,
            &c,
            &limits(),
        ));
        assert!(
            e.contains("application/vnd.example.layer.v1.tar+lz4"),
            "{e}"
        );
    }

    #[test]
    fn layer_and_diff_id_counts_must_agree() {
        let m = manifest(TRIVY_DOCKER_MANIFEST);
        let c = parse_config(OCI_CONFIG_BLOB, "config", &limits()).expect("config");
        let e = build_image("ref", None, &m.config.digest, &m, &c, &limits())
            .expect_err("3 layers, 1 diff_id");
        assert!(matches!(e, SourceError::Invalid { .. }), "{e}");
        assert!(
            e.to_string().contains("3 layers") && e.to_string().contains("1 rootfs.diff_ids"),
            "{e}"
        );
    }

    #[test]
    fn history_is_attributed_only_when_it_lines_up() {
        let m = manifest(OCI_MANIFEST_BLOB);
        let mut c = parse_config(OCI_CONFIG_BLOB, "config", &limits()).expect("config");
        c.history.iter_mut().for_each(|h| h.empty_layer = false);
        let img = build_image("ref", None, &m.config.digest, &m, &c, &limits()).expect("image");
        assert_eq!(
            img.layers[0].created_by,
            Option::None,
            "2 layer-making steps for 1 layer"
        );
    }

    #[test]
    fn limits_are_enforced() {
        let tiny = Limits {
            max_manifest_bytes: 100,
            max_layers: 256,
        };
        assert!(matches!(
            parse_document(OCI_MANIFEST_BLOB, "m", &tiny),
            Err(SourceError::TooLarge { .. })
        ));
        assert!(matches!(
            parse_config(OCI_CONFIG_BLOB, "c", &tiny),
            Err(SourceError::TooLarge { .. })
        ));
        let few = Limits {
            max_manifest_bytes: 4 << 20,
            max_layers: 2,
        };
        let e = parse_document(TRIVY_DOCKER_MANIFEST, "m", &few).expect_err("3 layers > 2");
        assert!(
            matches!(&e, SourceError::TooLarge { limit_name, limit: 2, .. } if limit_name == "max_layers"),
            "{e}"
        );
    }

    #[test]
    fn hostile_documents_are_errors() {
        let l = limits();
        for (doc, needle) in [
            (&b"{"[..], "not a manifest"),
            (b"[]", "not a manifest"),
            (b"{\"schemaVersion\":1,\"fsLayers\":[]}", "schema 1"),
            (b"{\"schemaVersion\":3}", "schemaVersion 3"),
            (b"{\"schemaVersion\":2}", "not recognisable"),
            (b"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.artifact.manifest.v1+json\"}", "unsupported manifest media type"),
            (b"{\"schemaVersion\":2,\"manifests\":[],\"layers\":[]}", "not recognisable"),
            (
                b"{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"x\",\"digest\":\"sha256:../../../etc/passwd\",\"size\":1}]}",
                "unsupported digest",
            ),
            (
                b"{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"x\",\"digest\":\"sha512:00\",\"size\":1}]}",
                "unsupported digest",
            ),
            (b"{\"schemaVersion\":2,\"manifests\":[{\"digest\":\"sha256:00\",\"size\":-1}]}", "not a manifest"),
        ] {
            let e = err_text(parse_document(doc, "doc.json", &l));
            assert!(e.starts_with("doc.json"), "{e}");
            assert!(e.contains(needle), "{needle}: {e}");
        }
        let helm = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.cncf.helm.config.v1+json","digest":"sha256:{h}","size":1}},"layers":[]}}"#,
            h = "0".repeat(64)
        );
        assert!(
            err_text(parse_document(helm.as_bytes(), "m", &l)).contains("not a container image")
        );
        for (cfg, needle) in [
            (&b"{}"[..], "without rootfs"),
            (
                b"{\"rootfs\":{\"type\":\"foo\",\"diff_ids\":[]}}",
                "rootfs.type",
            ),
            (
                b"{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"md5:00\"]}}",
                "diff_ids[0]",
            ),
            (
                b"{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":\"x\"}}",
                "not an image config",
            ),
        ] {
            let e = err_text(parse_config(cfg, "cfg.json", &l));
            assert!(e.contains(needle), "{needle}: {e}");
        }
    }

    #[test]
    fn digests_are_checked() {
        assert!(digest_hex(&format!("sha256:{}", "0".repeat(64)), "d").is_ok());
        assert!(digest_hex(&format!("sha256:{}", "A".repeat(64)), "d").is_err());
        assert!(digest_hex(&format!("sha256:{}/", "0".repeat(63)), "d").is_err());
        assert!(digest_hex("sha256:", "d").is_err());
        let d = sha256_digest(OCI_CONFIG_BLOB);
        assert_eq!(
            d,
            "sha256:b23a8f6569ae9ae331226205fa72f480ce5310707d0bc97e611f83fbbbde4604"
        );
        assert!(verify_blob("c", OCI_CONFIG_BLOB, &d, Some(584)).is_ok());
        assert!(verify_blob("c", OCI_CONFIG_BLOB, &d, Some(583)).is_err());
        assert!(matches!(
            verify_blob("c", b"x", &d, None),
            Err(SourceError::DigestMismatch { .. })
        ));
    }
}

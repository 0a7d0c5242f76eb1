//! The image model every source produces: a manifest's layers with their digests and
//! diff_ids, the config's history, and a way to open each blob as a byte stream.
//!
//! Sources resolve and validate metadata (manifest, config, platform); they never
//! decompress or interpret layers. The layer pipeline (`crate::layers`) opens each blob
//! through [`BlobSource`], verifies its digest and diff_id while streaming, and extracts
//! only what analyzers asked for.

use std::fmt;
use std::pin::Pin;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncRead;

/// `os/architecture[/variant]`, as `--platform` takes it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this binary runs on, in OCI terms (`linux/amd64`, `linux/arm64/v8`).
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "x86" => ("386", None),
            "arm" => ("arm", Some("v7")),
            "powerpc64" => ("ppc64le", None),
            "s390x" => ("s390x", None),
            "riscv64" => ("riscv64", None),
            other => (other, None),
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: variant.map(str::to_string),
        }
    }

    /// Whether an image or index entry for `candidate` satisfies this request. A request
    /// without a variant accepts any variant; `arm64` without a variant in the
    /// candidate counts as `v8`, as containerd does.
    pub fn matches(&self, candidate: &Platform) -> bool {
        if self.os != candidate.os || self.architecture != candidate.architecture {
            return false;
        }
        match (&self.variant, &candidate.variant) {
            (None, _) => true,
            (Some(want), Some(have)) => want == have,
            (Some(want), None) => self.architecture == "arm64" && want == "v8",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &&str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, v] if ok(os) && ok(arch) && ok(v) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(v.to_string()),
            }),
            _ => Err(format!(
                "invalid platform {s:?}: expected os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8"
            )),
        }
    }
}

/// How a layer blob is compressed, from its media type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// One layer of the selected manifest, with what the config says about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerDesc {
    /// Digest of the blob as stored (compressed): `sha256:…`.
    pub digest: String,
    pub media_type: String,
    /// Size of the blob in bytes, from the manifest.
    pub size: u64,
    /// Digest of the uncompressed tar, from the config's `rootfs.diff_ids`.
    pub diff_id: String,
    pub compression: Compression,
    /// `created_by` of the config history entry that made this layer.
    pub created_by: Option<String>,
    /// A foreign / non-distributable layer (Windows base layers): not downloaded.
    pub foreign: bool,
}

/// A resolved image: one platform's manifest and config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// The reference as the user gave it.
    pub reference: String,
    /// Digest of the manifest (not of an index), when known.
    pub manifest_digest: Option<String>,
    pub config_digest: String,
    pub platform: Option<Platform>,
    /// Layers in application order (base first).
    pub layers: Vec<LayerDesc>,
}

/// The raw bytes of a blob, as stored. Callers verify the digest.
pub type BlobStream = Pin<Box<dyn AsyncRead + Send>>;

/// Something that can open an image's blobs.
#[async_trait::async_trait]
pub trait BlobSource: Send + Sync {
    /// Open `layer`'s blob. The stream yields the stored (compressed) bytes; it must not
    /// be trusted to be the right length or content: the layer pipeline verifies both.
    async fn open(&self, layer: &LayerDesc) -> Result<BlobStream, SourceError>;
}

/// Why a source could not produce an image or a blob. Every variant names its input.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{what}: not found")]
    NotFound { what: String },
    /// The argument is not a registry reference (checked before any registry is asked).
    #[error("{reference}: not an image reference: {message}")]
    BadReference { reference: String, message: String },
    #[error(
        "{registry}: authentication failed ({message}); check credentials (--username/--password, ~/.docker/config.json)"
    )]
    Unauthorized { registry: String, message: String },
    #[error("{reference}: no image for platform {requested}; available: {}", available.join(", "))]
    PlatformMissing {
        reference: String,
        requested: String,
        available: Vec<String>,
    },
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{what}: {limit_name} exceeded ({limit})")]
    TooLarge {
        what: String,
        limit_name: String,
        limit: u64,
    },
    #[error("{what}: invalid: {message}")]
    Invalid { what: String, message: String },
    /// A valid document that is not a container image Bulkhead scans (a Helm chart, a
    /// signature, an artifact manifest, a Docker schema 1 manifest).
    #[error("{what}: not a scannable image: {message}")]
    Unsupported { what: String, message: String },
    #[error("{what}: {message}")]
    Io { what: String, message: String },
    #[error("{what}: network error: {message}")]
    Network { what: String, message: String },
}

/// What a caller should do about a failed scan: the error's type decides, never its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// It may succeed later (network, a blob cut short): try again.
    Transient,
    /// It will fail the same way again (bad credentials, a corrupt or hostile image).
    Permanent,
    /// Not an image Bulkhead scans (a Helm chart, a signature).
    Unsupported,
}

impl SourceError {
    pub fn disposition(&self) -> Disposition {
        match self {
            SourceError::Network { .. } | SourceError::Io { .. } => Disposition::Transient,
            SourceError::Unsupported { .. } | SourceError::PlatformMissing { .. } => {
                Disposition::Unsupported
            }
            SourceError::NotFound { .. }
            | SourceError::BadReference { .. }
            | SourceError::Unauthorized { .. }
            | SourceError::DigestMismatch { .. }
            | SourceError::TooLarge { .. }
            | SourceError::Invalid { .. } => Disposition::Permanent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_and_match() {
        let p: Platform = "linux/arm64".parse().expect("valid");
        assert!(p.matches(&"linux/arm64/v8".parse().expect("valid")));
        let v8: Platform = "linux/arm64/v8".parse().expect("valid");
        assert!(v8.matches(&Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: None
        }));
        assert!(!v8.matches(&"linux/amd64".parse().expect("valid")));
        assert!("linux".parse::<Platform>().is_err());
        assert_eq!(v8.to_string(), "linux/arm64/v8");
    }
}

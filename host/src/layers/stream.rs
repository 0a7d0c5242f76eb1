//! One layer blob, from stored bytes to a scratch tree, in a single streaming pass:
//!
//! ```text
//! blob bytes ─► count + sha256 (= manifest digest? = manifest size?)
//!            ─► gunzip / zstd / nothing
//!            ─► count + sha256 (= config diff_id?), size and ratio limits
//!            ─► tar walk: wanted files → scratch tree, whiteouts recorded
//! ```
//!
//! The whole stream is read to its end even when the tar archive ends early, because the
//! digests can only be checked then. A layer that fails any check is an error naming the
//! blob, and its tree is dropped: nothing of it reaches an analyzer or the cache.

use std::io::{self, Read};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::walk::Whiteouts;
use super::{ExtractLimits, ScratchTree, Selector};
use crate::model::Diagnostic;
use crate::source::{Compression, LayerDesc};

/// Bounds on one layer blob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LayerLimits {
    /// Largest stored (compressed) blob.
    pub max_compressed_bytes: u64,
    /// Largest uncompressed tar.
    pub max_uncompressed_bytes: u64,
    /// Largest uncompressed/compressed ratio, checked once `ratio_floor_bytes` have been
    /// decompressed (so small, very compressible layers are fine).
    pub max_ratio: u64,
    pub ratio_floor_bytes: u64,
}

impl Default for LayerLimits {
    fn default() -> Self {
        LayerLimits {
            max_compressed_bytes: 8 << 30,
            max_uncompressed_bytes: 32 << 30,
            max_ratio: 100,
            ratio_floor_bytes: 256 << 20,
        }
    }
}

/// Why a layer blob was refused. Every variant names the blob.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("layer {blob}: digest mismatch: the manifest says {expected}, the blob is {actual}")]
    DigestMismatch {
        blob: String,
        expected: String,
        actual: String,
    },
    #[error(
        "layer {blob}: uncompressed content is {actual}, but the image config's diff_id is {expected}"
    )]
    DiffIdMismatch {
        blob: String,
        expected: String,
        actual: String,
    },
    #[error("layer {blob}: the manifest says {expected} bytes, the registry sent {actual}")]
    SizeMismatch {
        blob: String,
        expected: u64,
        actual: u64,
    },
    #[error("layer {blob}: {what} exceeds {limit} bytes ({name})")]
    TooLarge {
        blob: String,
        what: &'static str,
        limit: u64,
        name: &'static str,
    },
    #[error(
        "layer {blob}: decompresses more than {ratio}:1 (layers.max_ratio): a decompression bomb?"
    )]
    Bomb { blob: String, ratio: u64 },
    #[error("layer {blob}: {message}")]
    Corrupt { blob: String, message: String },
    #[error(transparent)]
    Extract(#[from] super::ExtractError),
}

/// What one layer yields for the analyzers.
#[derive(Debug)]
pub struct LayerFiles {
    pub tree: ScratchTree,
    pub whiteouts: Whiteouts,
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
}

/// Counts and hashes what passes through, and enforces a byte limit.
struct Meter<R> {
    inner: R,
    hash: Sha256,
    bytes: u64,
    limit: u64,
    exceeded: bool,
}

impl<R: Read> Read for Meter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        if self.bytes > self.limit {
            self.exceeded = true;
            return Err(io::Error::other("size limit exceeded"));
        }
        Ok(n)
    }
}

fn meter<R>(inner: R, limit: u64) -> Meter<R> {
    Meter {
        inner,
        hash: Sha256::new(),
        bytes: 0,
        limit,
        exceeded: false,
    }
}

/// Decompressed-side meter that also enforces the ratio against the compressed count.
struct RatioGuard<'a, R> {
    inner: R,
    compressed: &'a std::cell::Cell<u64>,
    out: u64,
    limits: &'a LayerLimits,
    bomb: bool,
}

impl<R: Read> Read for RatioGuard<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out += n as u64;
        if self.out > self.limits.ratio_floor_bytes
            && self.out / self.compressed.get().max(1) > self.limits.max_ratio
        {
            self.bomb = true;
            return Err(io::Error::other("decompression ratio exceeded"));
        }
        Ok(n)
    }
}

/// Publishes the compressed byte count to the ratio guard as it grows.
struct Published<'a, R> {
    inner: R,
    count: &'a std::cell::Cell<u64>,
}

impl<R: Read> Read for Published<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

fn sha256_hex(h: Sha256) -> String {
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// Stream `raw` (the stored blob of `layer`), verify it, and extract what `selector`
/// wants. Runs on a blocking thread.
pub fn process(
    raw: impl Read,
    layer: &LayerDesc,
    selector: &Selector,
    extract_limits: &ExtractLimits,
    limits: &LayerLimits,
    diagnostics: &mut Vec<Diagnostic>,
) -> Result<LayerFiles, LayerError> {
    let blob = layer.digest.clone();
    let corrupt = |e: io::Error| LayerError::Corrupt {
        blob: blob.clone(),
        message: e.to_string(),
    };
    let compressed_count = std::cell::Cell::new(0u64);
    let mut stored = meter(
        Published {
            inner: raw,
            count: &compressed_count,
        },
        limits.max_compressed_bytes,
    );
    let mut tree = ScratchTree::new(&layer.diff_id, extract_limits)?;

    let (walked, drained, plain_exceeded, bomb, plain_bytes, plain_hash) = {
        let decoder: Box<dyn Read + '_> = match layer.compression {
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&mut stored)),
            Compression::Zstd => {
                Box::new(zstd::stream::read::Decoder::new(&mut stored).map_err(&corrupt)?)
            }
            Compression::None => Box::new(&mut stored),
        };
        let guard = RatioGuard {
            inner: decoder,
            compressed: &compressed_count,
            out: 0,
            limits,
            bomb: false,
        };
        let mut plain = meter(guard, limits.max_uncompressed_bytes);
        let walked = super::walk::extract(
            &mut plain,
            &layer.diff_id,
            selector,
            extract_limits,
            &mut tree,
            diagnostics,
        );
        // Read to the end: the tar end-of-archive marker may come before the end of the
        // stream, and the digests cover every byte.
        let drained = match &walked {
            Ok(_) => io::copy(&mut plain, &mut io::sink()).map(|_| ()),
            Err(_) => Ok(()),
        };
        (
            walked,
            drained,
            plain.exceeded,
            plain.inner.bomb,
            plain.bytes,
            plain.hash,
        )
    };
    // Limits first: a limit hit surfaces as an I/O error deeper down.
    if plain_exceeded {
        return Err(LayerError::TooLarge {
            blob,
            what: "uncompressed content",
            limit: limits.max_uncompressed_bytes,
            name: "layers.max_uncompressed_bytes",
        });
    }
    if bomb {
        return Err(LayerError::Bomb {
            blob,
            ratio: limits.max_ratio,
        });
    }
    if stored.exceeded {
        return Err(LayerError::TooLarge {
            blob,
            what: "the stored blob",
            limit: limits.max_compressed_bytes,
            name: "layers.max_compressed_bytes",
        });
    }
    drained.map_err(&corrupt)?;
    let walked = walked.map(|w| (w, plain_bytes, sha256_hex(plain_hash)));
    // A tar error on a truncated or corrupt stream is reported as the blob's fault.
    let (whiteouts, uncompressed_bytes, diff_id) = walked.map_err(|e| match e {
        super::ExtractError::Io { message, path, .. } if path.is_empty() => LayerError::Corrupt {
            blob: blob.clone(),
            message: format!("not a valid tar stream: {message}"),
        },
        other => LayerError::Extract(other),
    })?;
    // Trailing bytes after the compressed stream still count for the digest.
    io::copy(&mut stored, &mut io::sink()).map_err(&corrupt)?;
    if stored.exceeded {
        return Err(LayerError::TooLarge {
            blob,
            what: "the stored blob",
            limit: limits.max_compressed_bytes,
            name: "layers.max_compressed_bytes",
        });
    }
    let digest = sha256_hex(stored.hash.clone());
    if layer.size > 0 && stored.bytes != layer.size {
        return Err(LayerError::SizeMismatch {
            blob,
            expected: layer.size,
            actual: stored.bytes,
        });
    }
    if digest != layer.digest {
        return Err(LayerError::DigestMismatch {
            blob,
            expected: layer.digest.clone(),
            actual: digest,
        });
    }
    if diff_id != layer.diff_id {
        return Err(LayerError::DiffIdMismatch {
            blob,
            expected: layer.diff_id.clone(),
            actual: diff_id,
        });
    }
    Ok(LayerFiles {
        tree,
        whiteouts,
        compressed_bytes: stored.bytes,
        uncompressed_bytes,
    })
}

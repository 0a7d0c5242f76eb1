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
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::walk::Whiteouts;
use super::{ExtractLimits, ScratchTree, Selector};
use crate::image::{Compression, LayerDesc};
use bulkhead_model::Diagnostic;

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

impl LayerError {
    pub fn disposition(&self) -> crate::image::Disposition {
        match self {
            // A blob that ended early is what a dropped connection looks like.
            LayerError::SizeMismatch {
                expected, actual, ..
            } if actual < expected => crate::image::Disposition::Transient,
            _ => crate::image::Disposition::Permanent,
        }
    }
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
    compressed: &'a AtomicU64,
    out: u64,
    limits: &'a LayerLimits,
    bomb: bool,
}

impl<R: Read> Read for RatioGuard<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out += n as u64;
        if self.out > self.limits.ratio_floor_bytes
            && self.out / self.compressed.load(Ordering::Relaxed).max(1) > self.limits.max_ratio
        {
            self.bomb = true;
            return Err(io::Error::other("decompression ratio exceeded"));
        }
        Ok(n)
    }
}

fn sha256_hex(h: Sha256) -> String {
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// Stream `raw` (the stored blob of `layer`), verify it, and extract what `selector`
/// wants. Runs on a blocking thread.
pub fn process(
    raw: impl Read + Send,
    layer: &LayerDesc,
    selector: &Selector,
    extract_limits: &ExtractLimits,
    limits: &LayerLimits,
    diagnostics: &mut Vec<Diagnostic>,
) -> Result<LayerFiles, LayerError> {
    // Two stages on two cores: one thread reads the blob and hashes it (the manifest
    // digest), this one inflates, hashes the tar (the diff_id) and walks it. On one thread
    // the blob hash alone cost a fifth of a cold scan.
    let compressed_count = AtomicU64::new(0);
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(8);
        let count = &compressed_count;
        let max_compressed = limits.max_compressed_bytes;
        let reader = scope.spawn(move || -> io::Result<(Sha256, u64, bool)> {
            let mut raw = raw;
            let mut hash = Sha256::new();
            let mut bytes = 0u64;
            loop {
                let mut buf = vec![0u8; 256 << 10];
                let n = match raw.read(&mut buf) {
                    Ok(0) => return Ok((hash, bytes, false)),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                buf.truncate(n);
                hash.update(&buf);
                bytes += n as u64;
                count.store(bytes, Ordering::Relaxed);
                if bytes > max_compressed {
                    return Ok((hash, bytes, true));
                }
                if tx.send(buf).is_err() {
                    // The consumer stopped (it failed): nothing more to verify.
                    return Ok((hash, bytes, false));
                }
            }
        });
        let stored = ChannelReader {
            rx,
            buf: Vec::new(),
            pos: 0,
        };
        let result = inflate_and_walk(
            stored,
            layer,
            selector,
            extract_limits,
            limits,
            count,
            diagnostics,
        );
        let read = reader.join().map_err(|_| LayerError::Corrupt {
            blob: layer.digest.clone(),
            message: "the blob reader failed".into(),
        })?;
        verify(result, read, layer, limits)
    })
}

/// Bytes handed over by the blob-reading thread.
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.recv() {
                Ok(b) => {
                    self.buf = b;
                    self.pos = 0;
                }
                // The reader finished (end of blob, an error or a limit: it says which).
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// What the inflating stage saw.
struct Inflated {
    tree: ScratchTree,
    walked: Result<Whiteouts, super::ExtractError>,
    io_error: Option<io::Error>,
    plain_exceeded: bool,
    bomb: bool,
    plain_bytes: u64,
    plain_hash: Sha256,
}

fn inflate_and_walk(
    mut stored: ChannelReader,
    layer: &LayerDesc,
    selector: &Selector,
    extract_limits: &ExtractLimits,
    limits: &LayerLimits,
    compressed_count: &AtomicU64,
    diagnostics: &mut Vec<Diagnostic>,
) -> Result<Inflated, LayerError> {
    let mut tree = ScratchTree::new(&layer.diff_id, extract_limits)?;
    let mut io_error = None;
    let (walked, plain_exceeded, bomb, plain_bytes, plain_hash) = {
        let decoder: Box<dyn Read + '_> = match layer.compression {
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&mut stored)),
            Compression::Zstd => match zstd::stream::read::Decoder::new(&mut stored) {
                Ok(d) => Box::new(d),
                Err(e) => {
                    return Err(LayerError::Corrupt {
                        blob: layer.digest.clone(),
                        message: e.to_string(),
                    });
                }
            },
            Compression::None => Box::new(&mut stored),
        };
        let guard = RatioGuard {
            inner: decoder,
            compressed: compressed_count,
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
        if walked.is_ok()
            && let Err(e) = io::copy(&mut plain, &mut io::sink())
        {
            io_error = Some(e);
        }
        (
            walked,
            plain.exceeded,
            plain.inner.bomb,
            plain.bytes,
            plain.hash,
        )
    };
    // Trailing bytes after the compressed stream still count for the blob digest.
    if walked.is_ok()
        && io_error.is_none()
        && let Err(e) = io::copy(&mut stored, &mut io::sink())
    {
        io_error = Some(e);
    }
    // Dropping the channel lets the reader thread finish even if we stopped early.
    drop(stored);
    Ok(Inflated {
        tree,
        walked,
        io_error,
        plain_exceeded,
        bomb,
        plain_bytes,
        plain_hash,
    })
}

/// Check limits, then the stream, then the digests, in that order: a limit hit surfaces
/// as an I/O error deeper down and must be reported as the limit.
fn verify(
    inflated: Result<Inflated, LayerError>,
    read: io::Result<(Sha256, u64, bool)>,
    layer: &LayerDesc,
    limits: &LayerLimits,
) -> Result<LayerFiles, LayerError> {
    let blob = layer.digest.clone();
    let corrupt = |e: io::Error| LayerError::Corrupt {
        blob: blob.clone(),
        message: e.to_string(),
    };
    let (stored_hash, stored_bytes, stored_exceeded) = read.map_err(&corrupt)?;
    let stored_limit = || LayerError::TooLarge {
        blob: blob.clone(),
        what: "the stored blob",
        limit: limits.max_compressed_bytes,
        name: "layers.max_compressed_bytes",
    };
    if stored_exceeded {
        return Err(stored_limit());
    }
    let inflated = inflated?;
    if inflated.plain_exceeded {
        return Err(LayerError::TooLarge {
            blob,
            what: "uncompressed content",
            limit: limits.max_uncompressed_bytes,
            name: "layers.max_uncompressed_bytes",
        });
    }
    if inflated.bomb {
        return Err(LayerError::Bomb {
            blob,
            ratio: limits.max_ratio,
        });
    }
    if let Some(e) = inflated.io_error {
        return Err(corrupt(e));
    }
    // A tar error on a truncated or corrupt stream is reported as the blob's fault.
    let whiteouts = inflated.walked.map_err(|e| match e {
        super::ExtractError::Io { message, path, .. } if path.is_empty() => LayerError::Corrupt {
            blob: blob.clone(),
            message: format!("not a valid tar stream: {message}"),
        },
        other => LayerError::Extract(other),
    })?;
    let digest = sha256_hex(stored_hash);
    if layer.size > 0 && stored_bytes != layer.size {
        return Err(LayerError::SizeMismatch {
            blob,
            expected: layer.size,
            actual: stored_bytes,
        });
    }
    if digest != layer.digest {
        return Err(LayerError::DigestMismatch {
            blob,
            expected: layer.digest.clone(),
            actual: digest,
        });
    }
    let diff_id = sha256_hex(inflated.plain_hash);
    if diff_id != layer.diff_id {
        return Err(LayerError::DiffIdMismatch {
            blob,
            expected: layer.diff_id.clone(),
            actual: diff_id,
        });
    }
    Ok(LayerFiles {
        tree: inflated.tree,
        whiteouts,
        compressed_bytes: stored_bytes,
        uncompressed_bytes: inflated.plain_bytes,
    })
}

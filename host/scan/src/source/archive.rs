//! Image archives: one tar file holding an image, plain or gzip-compressed (`docker
//! save` output, read by [`super::docker_archive`], and OCI archives, an OCI image layout
//! in a tar, read by [`super::oci_layout`]).
//!
//! Resolving reads the archive once, in order (a gzipped archive cannot be read any
//! other way), and on that pass:
//! * indexes every entry (data offset and size; symlinks and hard links, which Docker
//!   uses for a layer that occurs twice);
//! * keeps the small JSON documents (manifests, indexes, configs, `oci-layout`);
//! * sniffs each file's first bytes for gzip/zstd magic;
//! * hashes a compressed file whose path does not name its digest (a legacy `docker
//!   save` layer), so the layer pipeline can verify it like any other blob.
//!
//! Nothing is extracted: a path inside the archive is only a key of the index, so names
//! with `..`, absolute links or links out of the archive cannot reach the file system.
//!
//! A gzipped archive cannot seek, and decompressing it from the start for every layer made
//! a scan quadratic in the number of layers. So the one pass also writes the decompressed
//! stream to an anonymous temporary file (as skopeo does), bounded at [`SPOOL_RATIO`]
//! times the compressed size (at least [`SPOOL_FLOOR`]) against gzip bombs; the archive
//! is inflated exactly once. [`ArchiveBlobs`] then reads a layer's range from the plain
//! archive or from that file. No layer is ever held in memory.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::manifest::{self, Limits};
use super::{BlobSource, BlobStream, Compression, LayerDesc, SourceError};

/// Links followed when resolving one path inside the archive.
pub(super) const MAX_LINK_DEPTH: usize = 8;
/// The decompressed copy of a gzipped archive may be this many times its compressed size
/// (the layer pipeline's default `max_ratio`)…
pub const SPOOL_RATIO: u64 = 100;
/// …or this large, whichever is more (the pipeline's default `ratio_floor_bytes`).
pub const SPOOL_FLOOR: u64 = 256 << 20;

/// Where an entry's data is: offsets in the (decompressed) archive stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Location {
    pub(super) offset: u64,
    pub(super) size: u64,
}

/// What an archive path is.
#[derive(Debug)]
pub(super) enum Node {
    File {
        at: Location,
        /// What the first bytes say.
        compression: Compression,
        /// The data, for small JSON documents.
        kept: Option<Vec<u8>>,
        /// sha256 of the data, for compressed files at legacy paths.
        sha256: Option<String>,
    },
    /// A symbolic link, target already made relative to the archive root (None when it
    /// leaves the archive).
    Symlink(Option<String>),
    /// A hard link to another entry (archive-root-relative).
    HardLink(Option<String>),
    /// Directories, devices, sparse files…: never a layer or a document.
    Other,
    /// The same path twice: refused when referenced.
    Duplicate,
}

/// Every entry of an archive, from the one pass over it.
#[derive(Debug)]
pub(super) struct ArchiveIndex {
    /// The decompressed copy of a gzipped archive; `None` for a plain one.
    spool: Option<Arc<File>>,
    /// Bytes the gzip decoder produced (the tests check that it runs once).
    inflated: u64,
    nodes: HashMap<String, Node>,
}

/// Writes what it reads into the spool file, up to `max` bytes.
struct Spool<R> {
    inner: R,
    out: BufWriter<File>,
    written: u64,
    max: u64,
}

impl<R: Read> Read for Spool<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.written += n as u64;
        if self.written > self.max {
            return Err(io::Error::other(format!(
                "decompresses to more than {} bytes ({SPOOL_RATIO} times its size, at least {SPOOL_FLOOR}): a gzip bomb?",
                self.max
            )));
        }
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Clean an archive path: no leading `./` or `/`, no empty or `.` components; `..`
/// pops (and may not leave the root).
pub(super) fn clean(path: &str) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    if out.is_empty() {
        None
    } else {
        Some(out.join("/"))
    }
}

/// A legacy or blobs path whose name is a sha256 hex: `blobs/sha256/<hex>` or
/// `<hex>.json` (the legacy config name is the image ID = config digest).
pub(super) fn named_digest(path: &str) -> Option<String> {
    let hex = path
        .strip_prefix("blobs/sha256/")
        .or_else(|| path.strip_suffix(".json"))?;
    let digest = format!("sha256:{hex}");
    manifest::digest_hex(&digest, path).ok()?;
    Some(digest)
}

fn compression_of(prefix: &[u8]) -> Compression {
    match prefix {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
        _ => Compression::None,
    }
}

/// Read until `buf` is full or EOF.
fn read_prefix(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

struct HashWriter(Sha256);

impl io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Whether `path` can be a document we need: `manifest.json` and configs (`docker
/// save`), `oci-layout`, `index.json` and the manifests, indexes and configs under
/// `blobs/sha256/` (OCI).
fn maybe_document(path: &str) -> bool {
    path == "oci-layout" || path.ends_with(".json") || path.starts_with("blobs/sha256/")
}

/// The one pass over the archive (blocking).
fn scan(path: &Path, name: &str, limits: &Limits) -> Result<ArchiveIndex, SourceError> {
    let io_err = |e: io::Error| SourceError::Io {
        what: name.to_string(),
        message: e.to_string(),
    };
    let file = File::open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            SourceError::NotFound {
                what: name.to_string(),
            }
        } else {
            io_err(e)
        }
    })?;
    let size = file.metadata().map_err(io_err)?.len();
    let spool_max = size.saturating_mul(SPOOL_RATIO).max(SPOOL_FLOOR);
    index_archive(BufReader::new(file), name, limits, Some(spool_max))
}

/// Index an archive read from `reader` (plain or gzip-compressed tar). A gzipped one is
/// copied, decompressed, to a temporary file of at most `spool` bytes (`None`: not
/// copied; its layers cannot be opened then).
fn index_archive<R: Read + Seek>(
    mut reader: R,
    name: &str,
    limits: &Limits,
    spool: Option<u64>,
) -> Result<ArchiveIndex, SourceError> {
    let io_err = |e: io::Error| SourceError::Io {
        what: name.to_string(),
        message: e.to_string(),
    };
    let mut magic = [0u8; 2];
    let n = read_prefix(&mut reader, &mut magic).map_err(io_err)?;
    reader.seek(SeekFrom::Start(0)).map_err(io_err)?;
    let gzip = n == 2 && magic == [0x1f, 0x8b];
    if !gzip {
        let mut archive = tar::Archive::new(reader);
        let entries = archive.entries_with_seek().map_err(io_err)?;
        let nodes = index_entries(entries, name, limits)?;
        return Ok(ArchiveIndex {
            spool: None,
            inflated: 0,
            nodes,
        });
    }
    let gz = flate2::read::MultiGzDecoder::new(reader);
    let Some(max) = spool else {
        let mut archive = tar::Archive::new(gz);
        let entries = archive.entries().map_err(io_err)?;
        let nodes = index_entries(entries, name, limits)?;
        return Ok(ArchiveIndex {
            spool: None,
            inflated: 0,
            nodes,
        });
    };
    let file = tempfile::tempfile().map_err(|e| SourceError::Io {
        what: name.to_string(),
        message: format!("cannot create a temporary file for the decompressed archive: {e}"),
    })?;
    let copy = file.try_clone().map_err(io_err)?;
    let mut archive = tar::Archive::new(Spool {
        inner: gz,
        out: BufWriter::with_capacity(256 << 10, copy),
        written: 0,
        max,
    });
    let entries = archive.entries().map_err(io_err)?;
    let nodes = index_entries(entries, name, limits)?;
    let mut tee = archive.into_inner();
    tee.out.flush().map_err(io_err)?;
    Ok(ArchiveIndex {
        spool: Some(Arc::new(file)),
        inflated: tee.written,
        nodes,
    })
}

impl ArchiveIndex {
    /// Index the archive at `file` (the one pass, on a blocking thread); `name` names it
    /// in errors.
    pub(super) async fn open(
        file: &Path,
        name: &str,
        limits: &Limits,
    ) -> Result<Self, SourceError> {
        let path = file.to_path_buf();
        let what = name.to_string();
        let limits = *limits;
        tokio::task::spawn_blocking(move || scan(&path, &what, &limits))
            .await
            .map_err(|e| SourceError::Io {
                what: name.to_string(),
                message: format!("the archive reader failed: {e}"),
            })?
    }

    /// Index an archive held in memory, without a copy of its decompressed stream (its
    /// layers cannot be opened then): what the fuzz targets need.
    pub(super) fn of_bytes(bytes: &[u8], name: &str, limits: &Limits) -> Result<Self, SourceError> {
        index_archive(io::Cursor::new(bytes), name, limits, None)
    }

    /// Whether the archive has an entry (of any kind) at `path`.
    pub(super) fn has(&self, path: &str) -> bool {
        clean(path).is_some_and(|p| self.nodes.contains_key(&p))
    }

    /// The blob source that opens `locations` (by digest) in the archive at `file`.
    pub(super) fn blobs(
        &self,
        file: &Path,
        name: &str,
        locations: HashMap<String, Location>,
    ) -> ArchiveBlobs {
        ArchiveBlobs {
            path: file.to_path_buf(),
            name: name.to_string(),
            spool: self.spool.clone(),
            locations,
            inflated: self.inflated,
        }
    }
}

fn index_entries<R: Read>(
    entries: tar::Entries<'_, R>,
    name: &str,
    limits: &Limits,
) -> Result<HashMap<String, Node>, SourceError> {
    // A `docker save` has ~4 entries per layer plus a few; far more is not an image.
    let max_entries = limits.max_layers.saturating_mul(16).saturating_add(4096);
    // Small JSON documents kept in memory, all together.
    let keep_budget = limits.max_manifest_bytes.saturating_mul(8);
    let mut kept_bytes = 0u64;
    let mut nodes: HashMap<String, Node> = HashMap::new();
    for (i, entry) in entries.enumerate() {
        let bad = |e: io::Error| SourceError::Invalid {
            what: name.to_string(),
            message: format!("not a readable tar archive (entry {i}): {e}"),
        };
        let mut entry = entry.map_err(bad)?;
        if i >= max_entries {
            return Err(SourceError::TooLarge {
                what: format!("{name} (entries)"),
                limit_name: "max_layers".into(),
                limit: max_entries as u64,
            });
        }
        let raw_path = entry.path_bytes().into_owned();
        let Some(path) = std::str::from_utf8(&raw_path).ok().and_then(clean) else {
            continue;
        };
        let kind = entry.header().entry_type();
        let node = if kind.is_file() || kind == tar::EntryType::Continuous {
            let at = Location {
                offset: entry.raw_file_position(),
                size: entry.size(),
            };
            let mut prefix = [0u8; 4];
            let n = read_prefix(&mut entry, &mut prefix).map_err(bad)?;
            let prefix = &prefix[..n];
            let compression = compression_of(prefix);
            let mut kept = None;
            let mut sha256 = None;
            let json = prefix.first().is_some_and(|b| *b == b'{' || *b == b'[');
            if json
                && maybe_document(&path)
                && at.size <= limits.max_manifest_bytes
                && kept_bytes + at.size <= keep_budget
            {
                let mut data = prefix.to_vec();
                entry.read_to_end(&mut data).map_err(bad)?;
                kept_bytes += data.len() as u64;
                kept = Some(data);
            } else if compression != Compression::None && named_digest(&path).is_none() {
                let mut h = HashWriter(Sha256::new());
                h.0.update(prefix);
                io::copy(&mut entry, &mut h).map_err(bad)?;
                sha256 = Some(format!("sha256:{}", hex::encode(h.0.finalize())));
            }
            Node::File {
                at,
                compression,
                kept,
                sha256,
            }
        } else if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .map(|t| t.into_owned())
                .unwrap_or_default();
            let target = std::str::from_utf8(&target).ok().map(str::to_string);
            if kind.is_symlink() {
                // Relative to the link's directory; absolute targets are relative to the
                // archive root, as if the archive were extracted into a chroot.
                let base = match (target.as_deref(), path.rsplit_once('/')) {
                    (Some(t), _) if t.starts_with('/') => String::new(),
                    (_, Some((dir, _))) => dir.to_string(),
                    (_, None) => String::new(),
                };
                Node::Symlink(target.and_then(|t| clean(&format!("{base}/{t}"))))
            } else {
                Node::HardLink(target.and_then(|t| clean(&t)))
            }
        } else {
            Node::Other
        };
        if let Some(old) = nodes.get_mut(&path) {
            // A directory may legitimately appear twice; files may not.
            if !(matches!(old, Node::Other) && matches!(node, Node::Other)) {
                *old = Node::Duplicate;
            }
        } else {
            nodes.insert(path, node);
        }
    }
    Ok(nodes)
}

impl ArchiveIndex {
    /// The file `path` leads to, following links.
    pub(super) fn file(&self, path: &str, name: &str) -> Result<&Node, SourceError> {
        let not_found = || SourceError::NotFound {
            what: format!("{name}: {path}"),
        };
        let mut current = clean(path).ok_or_else(not_found)?;
        for _ in 0..=MAX_LINK_DEPTH {
            match self.nodes.get(&current) {
                Some(n @ Node::File { .. }) => return Ok(n),
                Some(Node::Symlink(Some(t)) | Node::HardLink(Some(t))) => current = t.clone(),
                Some(Node::Duplicate) => {
                    return Err(SourceError::Invalid {
                        what: format!("{name}: {path}"),
                        message: "the archive has more than one entry with this name".into(),
                    });
                }
                Some(Node::Symlink(None) | Node::HardLink(None)) => {
                    return Err(SourceError::Invalid {
                        what: format!("{name}: {path}"),
                        message: "a link that leaves the archive".into(),
                    });
                }
                Some(Node::Other) => {
                    return Err(SourceError::Invalid {
                        what: format!("{name}: {path}"),
                        message: "not a regular file".into(),
                    });
                }
                None => return Err(not_found()),
            }
        }
        Err(SourceError::Invalid {
            what: format!("{name}: {path}"),
            message: format!("more than {MAX_LINK_DEPTH} links (a loop?)"),
        })
    }

    /// The bytes of a small document kept during the pass.
    pub(super) fn document(
        &self,
        path: &str,
        name: &str,
        limits: &Limits,
    ) -> Result<&[u8], SourceError> {
        match self.file(path, name)? {
            Node::File {
                kept: Some(bytes), ..
            } => Ok(bytes),
            Node::File { at, .. } => {
                limits.check_size(&format!("{name}: {path}"), at.size)?;
                Err(SourceError::Invalid {
                    what: format!("{name}: {path}"),
                    message: "not a JSON document (or the archive has too many of them)".into(),
                })
            }
            _ => Err(SourceError::NotFound {
                what: format!("{name}: {path}"),
            }),
        }
    }
}

/// Opens layers inside the archive, or inside its decompressed copy.
pub(super) struct ArchiveBlobs {
    path: PathBuf,
    name: String,
    spool: Option<Arc<File>>,
    locations: HashMap<String, Location>,
    /// Bytes inflated while indexing (and never again).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) inflated: u64,
}

#[async_trait::async_trait]
impl BlobSource for ArchiveBlobs {
    async fn open(&self, layer: &LayerDesc) -> Result<BlobStream, SourceError> {
        let what = format!("{}: layer {}", self.name, layer.digest);
        let at = *self
            .locations
            .get(&layer.digest)
            .ok_or_else(|| SourceError::NotFound { what: what.clone() })?;
        let io = |e: io::Error| SourceError::Io {
            what: what.clone(),
            message: e.to_string(),
        };
        let Some(spool) = self.spool.clone() else {
            let mut file = tokio::fs::File::open(&self.path).await.map_err(io)?;
            let len = file.metadata().await.map_err(io)?.len();
            if at.offset.checked_add(at.size).is_none_or(|end| end > len) {
                return Err(SourceError::Io {
                    what,
                    message: "the archive is shorter than when it was read".into(),
                });
            }
            file.seek(SeekFrom::Start(at.offset)).await.map_err(io)?;
            return Ok(Box::pin(tokio::io::BufReader::with_capacity(
                256 << 10,
                file.take(at.size),
            )));
        };
        // Positional reads from the one decompressed copy (layers are read in parallel,
        // so no shared file offset), on a blocking thread, handed over a small bounded
        // channel: memory stays at a few chunks whatever the layer size.
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<io::Cursor<Vec<u8>>>>(4);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = stream_range(&spool, at, &tx) {
                // The receiver may be gone already; then nobody needs the error.
                let _ = tx.blocking_send(Err(e));
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(Box::pin(tokio_util::io::StreamReader::new(stream)))
    }
}

/// Send the `size` bytes at `offset` of `file` in chunks.
fn stream_range(
    file: &File,
    at: Location,
    tx: &tokio::sync::mpsc::Sender<io::Result<io::Cursor<Vec<u8>>>>,
) -> io::Result<()> {
    let mut offset = at.offset;
    let mut left = at.size;
    while left > 0 {
        let mut chunk = vec![0u8; left.min(128 << 10) as usize];
        let n = file.read_at(&mut chunk, offset)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ends inside the layer",
            ));
        }
        chunk.truncate(n);
        left -= n as u64;
        offset += n as u64;
        if tx.blocking_send(Ok(io::Cursor::new(chunk))).is_err() {
            return Ok(()); // the reader went away
        }
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn archive_paths_are_cleaned() {
        assert_eq!(clean("./manifest.json").as_deref(), Some("manifest.json"));
        assert_eq!(clean("a/../b/layer.tar").as_deref(), Some("b/layer.tar"));
        assert_eq!(clean("../etc/passwd"), None);
        assert_eq!(clean("/"), None);
        let hex = "a187dde48cd289ac374ad8539930628314bc581a481cdb41409c9289419ddb72";
        assert_eq!(
            named_digest(&format!("{hex}.json")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(
            named_digest(&format!("blobs/sha256/{hex}")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(named_digest("abc.json"), None);
        assert_eq!(named_digest(&format!("x/{hex}.json")), None);
    }

    /// A plain tar of `(name, data)` files, in order.
    pub(crate) fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *data).expect("append");
        }
        b.into_inner().expect("tar")
    }

    #[test]
    fn a_gzip_bomb_archive_stops_at_the_spool_bound() {
        let plain = tar_of(&[("manifest.json", &vec![b' '; 4 << 20])]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&plain).expect("gzip");
        let bytes = gz.finish().expect("gzip");
        let limits = Limits {
            max_manifest_bytes: 4 << 20,
            max_layers: 16,
        };
        let e = index_archive(io::Cursor::new(bytes), "bomb", &limits, Some(1 << 20))
            .expect_err("bounded");
        assert!(e.to_string().contains("gzip bomb"), "{e}");
    }
}

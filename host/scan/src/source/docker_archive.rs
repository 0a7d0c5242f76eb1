//! `docker-archive:FILE`: a `docker save` tarball, plain or gzip-compressed.
//!
//! The archive says little about its layers: `manifest.json` lists each image's
//! `Config` and `Layers` as paths inside the archive (`<id>/layer.tar` in the legacy
//! format, `blobs/sha256/<hex>` since Docker 25), and the config has the diff_ids. So
//! resolving reads the archive once, in order (a gzipped archive cannot be read any
//! other way), and on that pass:
//! * indexes every entry (data offset and size; symlinks and hard links, which Docker
//!   uses for a layer that occurs twice);
//! * keeps the small JSON documents (manifest, configs);
//! * sniffs each file's first bytes for gzip/zstd magic.
//!
//! The blob digest each layer gets is what the layer pipeline verifies against the raw
//! bytes: `blobs/sha256/<hex>` names it; an uncompressed tar's digest *is* its diff_id
//! (so nothing is hashed here, and a damaged layer still fails verification); only a
//! compressed layer at a legacy path is hashed during the pass.
//!
//! A gzipped archive cannot seek, and decompressing it from the start for every layer made
//! a scan quadratic in the number of layers. So the one pass also writes the decompressed
//! stream to an anonymous temporary file (as skopeo does), bounded at [`SPOOL_RATIO`]
//! times the compressed size (at least [`SPOOL_FLOOR`]) against gzip bombs; the archive
//! is inflated exactly once. [`BlobSource::open`] then reads a layer's range from the
//! plain archive or from that file. No layer is ever held in memory.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::manifest::{self, Descriptor, Limits};
use super::{BlobSource, BlobStream, Compression, Image, LayerDesc, ResolveOptions, SourceError};

/// Links followed when resolving one path inside the archive.
const MAX_LINK_DEPTH: usize = 8;
/// The decompressed copy of a gzipped archive may be this many times its compressed size
/// (the layer pipeline's default `max_ratio`)…
pub const SPOOL_RATIO: u64 = 100;
/// …or this large, whichever is more (the pipeline's default `ratio_floor_bytes`).
pub const SPOOL_FLOOR: u64 = 256 << 20;

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
    let path = file.to_path_buf();
    let what = name.clone();
    let index = tokio::task::spawn_blocking(move || scan(&path, &what, &limits))
        .await
        .map_err(|e| SourceError::Io {
            what: name.clone(),
            message: format!("the archive reader failed: {e}"),
        })??;
    let inflated = index.inflated;
    let spool = index.spool.clone();
    let (image, blobs) = build(index, &name, &limits)?;
    Ok((
        image,
        ArchiveBlobs {
            path: file.to_path_buf(),
            name,
            spool,
            locations: blobs.locations,
            inflated,
        },
    ))
}

/// Where an entry's data is: offsets in the (decompressed) archive stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Location {
    offset: u64,
    size: u64,
}

#[derive(Debug)]
enum Node {
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

#[derive(Debug)]
struct ArchiveIndex {
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
fn clean(path: &str) -> Option<String> {
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
fn named_digest(path: &str) -> Option<String> {
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

/// Whether `path` can be a document we need (manifest.json or a config).
fn maybe_document(path: &str) -> bool {
    path == "manifest.json" || path.ends_with(".json") || path.starts_with("blobs/sha256/")
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

/// The image a `docker save` archive held in memory describes: the one pass over the
/// archive and `manifest.json` → config → layers, as [`resolve`] does for a file. For
/// the fuzz targets; `name` names the archive in errors.
#[doc(hidden)]
pub fn image_of_bytes(bytes: &[u8], name: &str, limits: &Limits) -> Result<Image, SourceError> {
    let index = index_archive(io::Cursor::new(bytes), name, limits, None)?;
    build(index, name, limits).map(|(image, _)| image)
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
    fn file(&self, path: &str, name: &str) -> Result<&Node, SourceError> {
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
    fn document(&self, path: &str, name: &str, limits: &Limits) -> Result<&[u8], SourceError> {
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

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveManifest {
    config: String,
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

struct Blobs {
    locations: HashMap<String, Location>,
}

/// Turn the index into an image: manifest.json → config → layers.
fn build(index: ArchiveIndex, name: &str, limits: &Limits) -> Result<(Image, Blobs), SourceError> {
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
    if let Some(claimed) = clean(&entry.config).as_deref().and_then(named_digest)
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
            clean(layer_path).as_deref().and_then(named_digest),
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
    Ok((image, Blobs { locations }))
}

/// Opens layers inside the archive, or inside its decompressed copy.
struct ArchiveBlobs {
    path: PathBuf,
    name: String,
    spool: Option<Arc<File>>,
    locations: HashMap<String, Location>,
    /// Bytes inflated while indexing (and never again).
    #[cfg_attr(not(test), allow(dead_code))]
    inflated: u64,
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
mod tests {
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

    /// A tar with one file, `name`, holding `data`.
    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
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
            let layer = tar_of(&[(&format!("etc/file{i}"), content.as_bytes())]);
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
        let plain = tar_of(&entries);
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

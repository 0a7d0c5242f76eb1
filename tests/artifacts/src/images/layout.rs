//! OCI image layout writer.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{CREATED, Compression, MEDIA_CONFIG, MEDIA_INDEX, MEDIA_MANIFEST, REF_NAME};

/// A content descriptor (`mediaType`, `digest`, `size`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// Media type.
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
}

impl Descriptor {
    /// The descriptor as OCI JSON.
    pub fn to_json(&self) -> Value {
        json!({ "mediaType": self.media_type, "digest": self.digest, "size": self.size })
    }
}

/// A layer blob in a layout, with what the image config needs about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The blob.
    pub descriptor: Descriptor,
    /// `sha256:` of the uncompressed tar (`rootfs.diff_ids`).
    pub diff_id: String,
    /// `history[].created_by`.
    pub created_by: String,
}

/// The platform of an image (`os`, `architecture`, optional `variant`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// e.g. `linux`.
    pub os: String,
    /// e.g. `amd64`, `arm64`.
    pub architecture: String,
    /// e.g. `v8`.
    pub variant: Option<String>,
}

impl Platform {
    /// `linux/amd64`.
    pub fn linux_amd64() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }

    /// `linux/arm64/v8`.
    pub fn linux_arm64_v8() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: Some("v8".into()),
        }
    }

    fn to_json(&self) -> Value {
        let mut v = json!({ "os": self.os, "architecture": self.architecture });
        if let Some(var) = &self.variant {
            v["variant"] = json!(var);
        }
        v
    }
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// An OCI image layout directory being written.
#[derive(Debug, Clone)]
pub struct OciLayout {
    root: PathBuf,
}

/// A writer that hashes what passes through it and counts bytes.
pub(crate) struct HashWriter<W> {
    pub(crate) inner: W,
    pub(crate) hasher: Sha256,
    pub(crate) count: u64,
}

impl<W: Write> HashWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    pub(crate) fn digest(&self) -> String {
        format!("sha256:{}", hex::encode(self.hasher.clone().finalize()))
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl OciLayout {
    /// Creates `root` with `oci-layout`, an empty `index.json` and `blobs/sha256/`.
    pub fn create(root: &Path) -> io::Result<OciLayout> {
        std::fs::create_dir_all(root.join("blobs/sha256"))?;
        std::fs::write(
            root.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )?;
        let layout = OciLayout {
            root: root.to_path_buf(),
        };
        layout.write_index(
            &json!({ "schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [] }),
        )?;
        Ok(layout)
    }

    /// An existing layout.
    pub fn open(root: &Path) -> OciLayout {
        OciLayout {
            root: root.to_path_buf(),
        }
    }

    /// The layout directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob `sha256:<hex>` lives.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.root.join("blobs/sha256").join(hex)
    }

    /// Stores `data` as a blob; returns its digest.
    pub fn put_blob(&self, data: &[u8]) -> io::Result<String> {
        let digest = sha256_digest(data);
        let path = self.blob_path(&digest);
        if !path.exists() {
            std::fs::write(&path, data)?;
        }
        Ok(digest)
    }

    /// Reads a blob.
    pub fn read_blob(&self, digest: &str) -> io::Result<Vec<u8>> {
        let path = self.blob_path(digest);
        std::fs::read(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
    }

    /// Compresses `tar` and stores it as a layer blob; the diff_id is the tar's digest.
    pub fn add_layer(
        &self,
        tar: &[u8],
        compression: Compression,
        created_by: &str,
    ) -> io::Result<Layer> {
        let blob = compression.compress(tar);
        self.add_compressed_layer(
            &blob,
            compression.media_type(),
            &sha256_digest(tar),
            created_by,
        )
    }

    /// Stores an already compressed layer blob as it is (e.g. an upstream rootfs tarball),
    /// with the given media type and diff_id.
    pub fn add_compressed_layer(
        &self,
        blob: &[u8],
        media_type: &str,
        diff_id: &str,
        created_by: &str,
    ) -> io::Result<Layer> {
        let digest = self.put_blob(blob)?;
        Ok(Layer {
            descriptor: Descriptor {
                media_type: media_type.into(),
                digest,
                size: blob.len() as u64,
            },
            diff_id: diff_id.into(),
            created_by: created_by.into(),
        })
    }

    /// Streams a layer blob that is too big for memory: `write` gets a writer for the
    /// *compressed* blob (do the compression inside) and returns the diff_id to record. The
    /// blob is hashed on the way and renamed to its digest.
    pub fn stream_layer(
        &self,
        media_type: &str,
        created_by: &str,
        write: impl FnOnce(&mut dyn Write) -> io::Result<String>,
    ) -> io::Result<Layer> {
        let tmp_path = self.root.join("blobs/.incoming");
        let mut out = HashWriter::new(BufWriter::new(File::create(&tmp_path)?));
        let diff_id = write(&mut out)?;
        out.flush()?;
        let digest = out.digest();
        let size = out.count;
        drop(out);
        std::fs::rename(&tmp_path, self.blob_path(&digest))?;
        Ok(Layer {
            descriptor: Descriptor {
                media_type: media_type.into(),
                digest,
                size,
            },
            diff_id,
            created_by: created_by.into(),
        })
    }

    /// Writes the image config (rootfs.diff_ids and history from `layers`, `platform`) and
    /// the manifest; returns the manifest's descriptor (not yet tagged).
    pub fn add_image(&self, layers: &[Layer], platform: &Platform) -> io::Result<Descriptor> {
        let mut config = json!({
            "created": CREATED,
            "architecture": platform.architecture,
            "os": platform.os,
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": ["/bin/sh"],
            },
            "rootfs": {
                "type": "layers",
                "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
            },
            "history": layers
                .iter()
                .map(|l| json!({ "created": CREATED, "created_by": l.created_by }))
                .collect::<Vec<_>>(),
        });
        if let Some(v) = &platform.variant {
            config["variant"] = json!(v);
        }
        let config = serde_json::to_vec(&config)?;
        let config_desc = Descriptor {
            media_type: MEDIA_CONFIG.into(),
            digest: self.put_blob(&config)?,
            size: config.len() as u64,
        };
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": config_desc.to_json(),
            "layers": layers.iter().map(|l| l.descriptor.to_json()).collect::<Vec<_>>(),
        });
        let manifest = serde_json::to_vec(&manifest)?;
        Ok(Descriptor {
            media_type: MEDIA_MANIFEST.into(),
            digest: self.put_blob(&manifest)?,
            size: manifest.len() as u64,
        })
    }

    /// Writes an image index over `manifests` with their platforms; returns its descriptor.
    pub fn add_index(&self, manifests: &[(Descriptor, Platform)]) -> io::Result<Descriptor> {
        let index = json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_INDEX,
            "manifests": manifests
                .iter()
                .map(|(d, p)| {
                    let mut v = d.to_json();
                    v["platform"] = p.to_json();
                    v
                })
                .collect::<Vec<_>>(),
        });
        let index = serde_json::to_vec(&index)?;
        Ok(Descriptor {
            media_type: MEDIA_INDEX.into(),
            digest: self.put_blob(&index)?,
            size: index.len() as u64,
        })
    }

    /// Names `desc` `tag` in `index.json` (replacing an older entry with that tag).
    pub fn tag(&self, desc: &Descriptor, tag: &str) -> io::Result<()> {
        let mut index = self.read_index()?;
        let mut manifests: Vec<Value> = index["manifests"].as_array().cloned().unwrap_or_default();
        manifests.retain(|m| m["annotations"][REF_NAME].as_str() != Some(tag));
        let mut entry = desc.to_json();
        entry["annotations"] = json!({ REF_NAME: tag });
        manifests.push(entry);
        index["manifests"] = Value::Array(manifests);
        self.write_index(&index)
    }

    /// The descriptor tagged `tag` in `index.json`.
    pub fn resolve(&self, tag: &str) -> io::Result<Descriptor> {
        let index = self.read_index()?;
        let entry = index["manifests"]
            .as_array()
            .and_then(|m| {
                m.iter()
                    .find(|d| d["annotations"][REF_NAME].as_str() == Some(tag))
            })
            .ok_or_else(|| io::Error::other(format!("{}: no tag {tag:?}", self.root.display())))?;
        Ok(Descriptor {
            media_type: entry["mediaType"].as_str().unwrap_or_default().into(),
            digest: entry["digest"].as_str().unwrap_or_default().into(),
            size: entry["size"].as_u64().unwrap_or_default(),
        })
    }

    fn read_index(&self) -> io::Result<Value> {
        let path = self.root.join("index.json");
        let mut s = Vec::new();
        File::open(&path)?.read_to_end(&mut s)?;
        serde_json::from_slice(&s).map_err(|e| io::Error::other(format!("{}: {e}", path.display())))
    }

    fn write_index(&self, index: &Value) -> io::Result<()> {
        let tmp = self.root.join("index.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(index)?)?;
        std::fs::rename(tmp, self.root.join("index.json"))
    }
}

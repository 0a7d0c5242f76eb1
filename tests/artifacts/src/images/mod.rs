//! OCI image layouts built inside the test: deterministic (fixed mtimes, gzip without
//! timestamps, sorted directory walks), without network, Docker or umoci, from the real data
//! under `tests/fixtures/`.
//!
//! - [`LayerTar`] writes layer tars (files, dirs, symlinks, hard links, whiteouts, opaque
//!   directories, device nodes, raw unchecked names).
//! - [`OciLayout`] writes blobs, configs (with `rootfs.diff_ids` and `history`), manifests,
//!   image indexes and `index.json` tags (`org.opencontainers.image.ref.name`).
//! - Ready-made images: [`alpine`], [`debian_minbase`], [`layered`], [`multi_platform`], their
//!   `_with` variants for zstd or uncompressed layers, the [`hostile`] corpus, and
//!   [`single_layer_from_dir`] for any fixture tree.
//! - [`oracle`] reads a layout back independently of the scanner (whiteouts applied), for
//!   the expected results of a test.

use std::path::{Path, PathBuf};

use tempfile::TempDir;

mod builders;
pub mod hostile;
mod layer;
mod layout;
pub mod oracle;

pub use builders::{
    LAYERED_OLD_LIBSSL3, alpine, alpine_then, alpine_with, debian_minbase, debian_minbase_then,
    debian_minbase_with, layered, layered_mixed, layered_with, multi_platform, multi_platform_with,
    single_layer_from_dir,
};
pub use layer::LayerTar;
pub use layout::{Descriptor, Layer, OciLayout, Platform, sha256_digest};

/// OCI image index media type.
pub const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest media type.
pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image config media type.
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// The annotation that names a tag in an OCI layout's `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The fixed timestamp of every tar entry (2023-11-14), so that digests are reproducible.
pub const MTIME: u64 = 1_700_000_000;
/// The fixed `created` of configs and history entries.
pub const CREATED: &str = "2024-01-01T00:00:00Z";

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// gzip (`tar+gzip`), level 6, no timestamp or name in the gzip header.
    Gzip,
    /// zstd (`tar+zstd`), level 3, single-threaded (deterministic).
    Zstd,
    /// Plain tar.
    None,
}

impl Compression {
    /// The OCI layer media type.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
        }
    }

    /// Compresses a whole tar in memory.
    pub fn compress(self, tar: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        match self {
            Compression::Gzip => {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
                enc.write_all(tar).expect("gzip into memory");
                enc.finish().expect("gzip into memory")
            }
            Compression::Zstd => zstd::encode_all(tar, 3).expect("zstd into memory"),
            Compression::None => tar.to_vec(),
        }
    }
}

/// An OCI layout written by a builder. The layout lives in a temp dir that is removed when
/// the `Image` is dropped.
#[derive(Debug)]
pub struct Image {
    /// The layout directory (holds `oci-layout`, `index.json`, `blobs/sha256/`).
    pub layout: PathBuf,
    /// The tag in `index.json` that names the image (or index).
    pub tag: String,
    /// The oracle for this image's packages when it comes from real data: the distribution
    /// tool's own list under `tests/fixtures/` (e.g. `apk/alpine-3.20/expected-packages.tsv`,
    /// `dpkg/debian-bookworm-minbase/expected-packages.dpkg-query.tsv`).
    pub expected: Option<PathBuf>,
    dir: TempDir,
}

impl Image {
    /// A new empty layout in a fresh temp dir, for builders.
    pub fn new_layout(tag: &str) -> (Image, OciLayout) {
        let dir = tempfile::Builder::new()
            .prefix("bulkhead-image-")
            .tempdir()
            .expect("temp dir for an OCI layout");
        let layout_path = dir.path().join("layout");
        let layout = OciLayout::create(&layout_path).expect("create OCI layout");
        (
            Image {
                layout: layout_path,
                tag: tag.into(),
                expected: None,
                dir,
            },
            layout,
        )
    }

    /// `oci:LAYOUT:TAG`, the reference skopeo (and bulkhead) accept.
    pub fn oci_ref(&self) -> String {
        format!("oci:{}:{}", self.layout.display(), self.tag)
    }

    /// The temp dir that holds the layout (for scratch files next to it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The layout, opened for adding more blobs or tags.
    pub fn open(&self) -> OciLayout {
        OciLayout::open(&self.layout)
    }

    /// The manifest (or index) descriptor of [`Image::tag`] in `index.json`.
    pub fn descriptor(&self) -> Descriptor {
        self.open()
            .resolve(&self.tag)
            .expect("the builder tagged the image")
    }
}

//! Layer tar writer.

use std::io::Write;

use tar::{EntryType, Header};

use super::MTIME;

/// Builds one layer tar in memory (ustar headers, uid/gid 0, fixed mtime), in the order the
/// entries are added. Paths are relative (`etc/os-release`); checked paths (`file`, `dir`,
/// ...) must not contain `..` or start with `/` — use [`LayerTar::raw`] for hostile names.
/// Methods panic on misuse: this is test code.
pub struct LayerTar {
    builder: tar::Builder<Vec<u8>>,
}

impl std::fmt::Debug for LayerTar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LayerTar")
    }
}

impl Default for LayerTar {
    fn default() -> Self {
        LayerTar::new()
    }
}

fn header(kind: EntryType, mode: u32, size: u64) -> Header {
    let mut h = Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(MTIME);
    h.set_size(size);
    h
}

/// Writes `bytes` into a fixed-size header field, NUL-padded. Panics if it does not fit.
fn put_field(field: &mut [u8], bytes: &[u8], what: &str) {
    assert!(
        bytes.len() <= field.len(),
        "{what} {bytes:?} longer than {} bytes",
        field.len()
    );
    field.fill(0);
    field[..bytes.len()].copy_from_slice(bytes);
}

impl LayerTar {
    /// An empty layer.
    pub fn new() -> LayerTar {
        let mut builder = tar::Builder::new(Vec::new());
        builder.mode(tar::HeaderMode::Deterministic);
        LayerTar { builder }
    }

    fn append_checked(&mut self, mut h: Header, path: &str, data: &[u8]) -> &mut Self {
        self.builder
            .append_data(&mut h, path, data)
            .unwrap_or_else(|e| panic!("tar entry {path:?}: {e}"));
        self
    }

    /// A directory.
    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.append_checked(header(EntryType::Directory, mode, 0), path, &[])
    }

    /// Directory entries for every parent of `path` (`a`, `a/b` for `a/b/c`), mode 0755.
    pub fn parents(&mut self, path: &str) -> &mut Self {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        for i in 1..parts.len() {
            self.dir(&parts[..i].join("/"), 0o755);
        }
        self
    }

    /// A regular file.
    pub fn file(&mut self, path: &str, data: &[u8], mode: u32) -> &mut Self {
        self.append_checked(
            header(EntryType::Regular, mode, data.len() as u64),
            path,
            data,
        )
    }

    /// A symbolic link `path -> target` (the target is stored as given: absolute, `..`, ...).
    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.link(EntryType::Symlink, path, target.as_bytes())
    }

    /// A hard link: `path` is the same file as `target`, a path in the archive (or, hostile,
    /// outside it).
    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.link(EntryType::Link, path, target.as_bytes())
    }

    fn link(&mut self, kind: EntryType, path: &str, target: &[u8]) -> &mut Self {
        let mut h = header(kind, 0o777, 0);
        if kind == EntryType::Link {
            h.set_mode(0o644);
        }
        h.set_path(path)
            .unwrap_or_else(|e| panic!("tar entry {path:?}: {e}"));
        // Written raw: the tar crate rewrites some targets (e.g. collapses `//`), and a test
        // must get exactly the bytes it asked for.
        put_field(&mut h.as_old_mut().linkname, target, "link target");
        h.set_cksum();
        self.builder
            .append(&h, &[][..])
            .unwrap_or_else(|e| panic!("tar entry {path:?}: {e}"));
        self
    }

    /// An OCI whiteout: deletes `path` (file or whole directory) of lower layers, written as
    /// `DIR/.wh.NAME`.
    pub fn whiteout(&mut self, path: &str) -> &mut Self {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let wh = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        self.file(&wh, b"", 0o644)
    }

    /// An opaque whiteout: hides everything lower layers had under `dir`, written as
    /// `DIR/.wh..wh..opq`.
    pub fn opaque(&mut self, dir: &str) -> &mut Self {
        self.file(&format!("{dir}/.wh..wh..opq"), b"", 0o644)
    }

    /// A character device, block device or FIFO (`kind`), with device numbers.
    pub fn special(
        &mut self,
        path: &str,
        kind: EntryType,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> &mut Self {
        let mut h = header(kind, mode, 0);
        h.set_device_major(major)
            .expect("ustar header has device fields");
        h.set_device_minor(minor)
            .expect("ustar header has device fields");
        self.append_checked(h, path, &[])
    }

    /// An entry with an unchecked name and link target, at most 100 bytes each: `..`
    /// components, absolute paths, newlines, invalid UTF-8 — whatever a hostile layer holds.
    pub fn raw(
        &mut self,
        name: &[u8],
        kind: EntryType,
        mode: u32,
        data: &[u8],
        link: &[u8],
    ) -> &mut Self {
        let mut h = header(kind, mode, data.len() as u64);
        put_field(&mut h.as_old_mut().name, name, "raw name");
        put_field(&mut h.as_old_mut().linkname, link, "raw link target");
        h.set_cksum();
        self.builder
            .append(&h, data)
            .unwrap_or_else(|e| panic!("raw tar entry {name:?}: {e}"));
        self
    }

    /// A regular file with an unchecked name.
    pub fn raw_file(&mut self, name: &[u8], data: &[u8]) -> &mut Self {
        self.raw(name, EntryType::Regular, 0o644, data, b"")
    }

    /// The finished tar (with its end-of-archive blocks).
    pub fn into_bytes(self) -> Vec<u8> {
        let mut b = self.builder;
        b.finish().expect("finish tar in memory");
        let mut out = b.into_inner().expect("tar into memory");
        out.flush().expect("flush Vec");
        out
    }
}

//! An independent, deliberately simple reading of an OCI layout, for the *expected* side of
//! tests: it shares no code with the scanner. It resolves a tag (and a platform of an
//! index), applies the layers in order with the OCI whiteout rules, and can read files of
//! the merged view (following symlinks inside it) and list the packages of a dpkg status.
//!
//! Rules, per layer: `DIR/.wh..wh..opq` hides everything lower layers had under `DIR`;
//! `DIR/.wh.NAME` hides `DIR/NAME` and its subtree from lower layers; then the layer's own
//! entries are added (an entry replaces what was at its path, and a non-directory replaces
//! a whole subtree). Names are normalised by dropping a leading `./` or `/` and trailing
//! `/`. It is meant for the well-formed images of [`super`], not the hostile ones.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::Path;

use serde_json::Value;

use super::{MEDIA_INDEX, OciLayout};

/// A node of the merged filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A directory.
    Dir,
    /// A regular file (hard links are resolved to their target's content).
    File(Vec<u8>),
    /// A symlink and its target as stored.
    Symlink(String),
    /// A device, FIFO or other special entry.
    Special,
}

/// The merged view of an image: normalised path → node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Merged {
    /// Every path of the merged view.
    pub entries: BTreeMap<String, Node>,
}

impl Merged {
    /// Whether `path` exists in the merged view.
    pub fn contains(&self, path: &str) -> bool {
        self.entries.contains_key(&norm(path))
    }

    /// The names directly under directory `dir`.
    pub fn list(&self, dir: &str) -> Vec<String> {
        let prefix = format!("{}/", norm(dir));
        self.entries
            .keys()
            .filter_map(|p| p.strip_prefix(&prefix))
            .filter(|rest| !rest.contains('/'))
            .map(str::to_string)
            .collect()
    }

    /// The content of the file at `path`, following symlinks inside the merged view (at
    /// most 16 hops; absolute targets are taken relative to the image root).
    pub fn read(&self, path: &str) -> Option<&[u8]> {
        let mut p = norm(path);
        for _ in 0..16 {
            match self.entries.get(&p)? {
                Node::File(data) => return Some(data),
                Node::Symlink(target) => {
                    p = if target.starts_with('/') {
                        norm(target)
                    } else {
                        let parent = p.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                        resolve_dots(&format!("{parent}/{target}"))
                    };
                }
                _ => return None,
            }
        }
        None
    }
}

/// The merged view of `tag` in the layout at `layout`. For an image index, the manifest of
/// `architecture` (e.g. `amd64`, `arm64`) is used.
pub fn merged(layout: &Path, tag: &str, architecture: &str) -> io::Result<Merged> {
    let layout = OciLayout::open(layout);
    let desc = layout.resolve(tag)?;
    let mut manifest: Value = json_blob(&layout, &desc.digest)?;
    if desc.media_type == MEDIA_INDEX || manifest.get("manifests").is_some() {
        let child = manifest["manifests"]
            .as_array()
            .and_then(|m| {
                m.iter()
                    .find(|d| d["platform"]["architecture"].as_str() == Some(architecture))
            })
            .ok_or_else(|| io::Error::other(format!("no {architecture} manifest in {tag}")))?;
        let digest = child["digest"].as_str().unwrap_or_default().to_string();
        manifest = json_blob(&layout, &digest)?;
    }
    let mut fs = Merged::default();
    for layer in manifest["layers"].as_array().cloned().unwrap_or_default() {
        let digest = layer["digest"].as_str().unwrap_or_default();
        let media_type = layer["mediaType"].as_str().unwrap_or_default();
        let blob = layout.read_blob(digest)?;
        let mut tar = Vec::new();
        if media_type.ends_with("+gzip") || media_type.ends_with(".gzip") {
            flate2::read::MultiGzDecoder::new(&blob[..]).read_to_end(&mut tar)?;
        } else if media_type.ends_with("+zstd") {
            zstd::stream::read::Decoder::new(&blob[..])?.read_to_end(&mut tar)?;
        } else {
            tar = blob;
        }
        apply_layer(&mut fs, &tar).map_err(|e| io::Error::other(format!("layer {digest}: {e}")))?;
    }
    Ok(fs)
}

fn apply_layer(fs: &mut Merged, tar: &[u8]) -> io::Result<()> {
    let mut entries = Vec::new();
    for entry in tar::Archive::new(tar).entries()? {
        let mut entry = entry?;
        let path = norm(&String::from_utf8_lossy(&entry.path_bytes()));
        let kind = entry.header().entry_type();
        let link = entry
            .link_name_bytes()
            .map(|l| String::from_utf8_lossy(&l).into_owned());
        let mut data = Vec::new();
        if kind.is_file() {
            entry.read_to_end(&mut data)?;
        }
        entries.push((path, kind, link, data));
    }
    // Whiteouts act on the lower layers only, so all of them go first.
    for (path, ..) in &entries {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let target = if name == ".wh..wh..opq" {
            Some((dir.to_string(), true))
        } else {
            name.strip_prefix(".wh.").map(|n| {
                (
                    if dir.is_empty() {
                        n.to_string()
                    } else {
                        format!("{dir}/{n}")
                    },
                    false,
                )
            })
        };
        if let Some((target, opaque)) = target {
            if target.is_empty() {
                fs.entries.clear(); // an opaque root hides every lower entry
                continue;
            }
            let prefix = format!("{target}/");
            fs.entries
                .retain(|p, _| !(p.starts_with(&prefix) || (!opaque && *p == target)));
        }
    }
    for (path, kind, link, data) in entries {
        let name = path.rsplit('/').next().unwrap_or("");
        if path.is_empty() || name.starts_with(".wh.") {
            continue;
        }
        let node = match kind {
            tar::EntryType::Directory => Node::Dir,
            tar::EntryType::Symlink => Node::Symlink(link.unwrap_or_default()),
            tar::EntryType::Link => {
                let target = norm(&link.unwrap_or_default());
                match fs.entries.get(&target) {
                    Some(n) => n.clone(),
                    None => {
                        return Err(io::Error::other(format!(
                            "{path}: hard link to missing {target}"
                        )));
                    }
                }
            }
            k if k.is_file() => Node::File(data),
            _ => Node::Special,
        };
        if node != Node::Dir {
            let prefix = format!("{path}/");
            fs.entries.retain(|p, _| !p.starts_with(&prefix));
        }
        if !(node == Node::Dir && fs.entries.get(&path) == Some(&Node::Dir)) {
            fs.entries.insert(path, node);
        }
    }
    Ok(())
}

fn json_blob(layout: &OciLayout, digest: &str) -> io::Result<Value> {
    serde_json::from_slice(&layout.read_blob(digest)?)
        .map_err(|e| io::Error::other(format!("blob {digest}: {e}")))
}

fn norm(path: &str) -> String {
    let p = path.strip_prefix("./").unwrap_or(path);
    resolve_dots(p.trim_start_matches('/').trim_end_matches('/'))
}

/// Drops `.` components and applies `..` (never above the root).
fn resolve_dots(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// `name → version` of the stanzas of a dpkg status whose `Status:` ends in `installed`
/// (one simple pass over `Field: value` lines, continuation lines skipped).
pub fn dpkg_installed(status: &[u8]) -> BTreeMap<String, String> {
    let text = String::from_utf8_lossy(status);
    let mut out = BTreeMap::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(':')))
                .map(|v| v.trim().to_string())
        };
        if let (Some(pkg), Some(ver), Some(st)) =
            (field("Package"), field("Version"), field("Status"))
            && st.ends_with(" installed")
        {
            out.insert(pkg, ver);
        }
    }
    out
}

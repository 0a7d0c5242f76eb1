//! Walk one layer's tar stream: extract the entries analyzers asked for into a
//! [`ScratchTree`] and record whiteouts. The stream is read once, front to back, and never
//! held in memory.
//!
//! What a layer can contain and what happens to it:
//!
//! | entry | handling |
//! |---|---|
//! | regular file, wanted | copied into the scratch tree, at most its `max-size` |
//! | `.wh.NAME` / `.wh..wh..opq` | recorded as a whiteout / opaque directory, never extracted |
//! | symbolic link, wanted | resolved after the stream *inside this layer's tree* (absolute targets restart at the layer root, `..` stops there, depth-limited); the target's content is copied; a link that leaves the layer or dangles is skipped with a diagnostic |
//! | hard link, wanted | copied from its target if the target is an already extracted file of this layer; else skipped with a diagnostic |
//! | absolute names, `..`, control characters, invalid UTF-8 | cleaned (leading `/` and `./` dropped) or skipped |
//! | devices, fifos, sockets | skipped |
//!
//! Modes, owners and setuid bits are never copied: the tree holds plain 0644 files.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use serde::{Deserialize, Serialize};

use super::{ExtractError, ExtractLimits, ScratchTree, Selector, clean_path};
use bulkhead_model::{Diagnostic, Level};

/// The whiteouts of one layer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Whiteouts {
    /// Paths removed by this layer (`dir/.wh.name` → `dir/name`), and wanted paths it
    /// replaced with something no analyzer can read (a device, a link that leaves the
    /// layer, a file over the size limit): either way an earlier layer's file there is
    /// no longer what the container sees.
    pub removed: Vec<String>,
    /// Directories whose earlier content this layer hides (`dir/.wh..wh..opq` → `dir`).
    pub opaque: Vec<String>,
}

impl Whiteouts {
    /// Whether `path` (from an earlier layer) is hidden by these whiteouts.
    pub fn hides(&self, path: &str) -> bool {
        let under =
            |dir: &str| dir.is_empty() || path == dir || path.starts_with(&format!("{dir}/"));
        self.removed.iter().any(|r| under(r)) || self.opaque.iter().any(|d| path != d && under(d))
    }
}

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// Extract what `selector` wants from the tar stream `reader` into `tree`.
pub fn extract(
    reader: impl Read,
    layer: &str,
    selector: &Selector,
    limits: &ExtractLimits,
    tree: &mut ScratchTree,
    diagnostics: &mut Vec<Diagnostic>,
) -> Result<Whiteouts, ExtractError> {
    let io = |path: &str, e: std::io::Error| ExtractError::Io {
        source_name: layer.to_string(),
        path: path.to_string(),
        message: e.to_string(),
    };
    let mut archive = tar::Archive::new(reader);
    let mut whiteouts = Whiteouts::default();
    // Wanted links, resolved once the whole layer has been seen.
    let mut symlinks: HashMap<String, String> = HashMap::new();
    let mut wanted_links: Vec<(String, u64)> = Vec::new();
    let mut extracted: HashSet<String> = HashSet::new();
    let mut skipped_names = 0u64;
    let mut entries = 0u64;

    for entry in archive.entries().map_err(|e| io("", e))? {
        let mut entry = entry.map_err(|e| io("", e))?;
        entries += 1;
        if entries > limits.max_entries {
            return Err(ExtractError::TooManyEntries {
                source_name: layer.to_string(),
                limit: limits.max_entries,
            });
        }
        let raw = entry.path_bytes().into_owned();
        let Some(rel) = std::str::from_utf8(&raw).ok().and_then(clean_path) else {
            // The root itself (`./`, `.`, `/`) heads most real layer tars (Alpine's
            // minirootfs, mmdebstrap's, `tar -C root .`): an ordinary entry with nothing to
            // extract, not an odd name worth a diagnostic.
            if !names_root(&raw) {
                skipped_names += 1;
            }
            continue;
        };
        let kind = entry.header().entry_type();
        let name = rel.rsplit('/').next().unwrap_or(&rel);
        if let Some(hidden) = name.strip_prefix(WHITEOUT) {
            let parent = rel.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
            if name == OPAQUE {
                whiteouts.opaque.push(parent.to_string());
            } else if !hidden.is_empty() {
                whiteouts.removed.push(if parent.is_empty() {
                    hidden.to_string()
                } else {
                    format!("{parent}/{hidden}")
                });
            }
            continue;
        }
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let Some(max) = selector.wants(&rel) else {
                    continue;
                };
                let size = entry.header().size().unwrap_or(u64::MAX);
                let max = max.min(limits.max_file_bytes);
                if size > max {
                    diagnostics.push(too_large(layer, &rel, size, max));
                    whiteouts.removed.push(rel);
                    continue;
                }
                if tree.write_file(&rel, &mut entry, max)? {
                    extracted.insert(rel);
                } else {
                    diagnostics.push(too_large(layer, &rel, size, max));
                    whiteouts.removed.push(rel);
                }
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .and_then(|t| std::str::from_utf8(&t).ok().map(str::to_string))
                    .unwrap_or_default();
                if symlinks.len() as u64 >= limits.max_entries {
                    continue;
                }
                if let Some(max) = selector.wants(&rel) {
                    wanted_links.push((rel.clone(), max));
                }
                symlinks.insert(rel, target);
            }
            tar::EntryType::Link => {
                let Some(max) = selector.wants(&rel) else {
                    continue;
                };
                let target = entry
                    .link_name_bytes()
                    .and_then(|t| std::str::from_utf8(&t).ok().and_then(clean_path));
                match target {
                    Some(t) if extracted.contains(&t) => {
                        let mut file = tree.open(&t)?;
                        if tree.write_file(&rel, &mut file, max)? {
                            extracted.insert(rel);
                        }
                    }
                    _ => {
                        diagnostics.push(diag(
                            layer,
                            "hardlink-skipped",
                            format!("{rel}: hard link to a file that is not an extracted file of this layer; skipped"),
                        ));
                        whiteouts.removed.push(rel);
                    }
                }
            }
            // Directories are created as needed; devices, fifos and the rest are never
            // data, but they do replace what an earlier layer had at that path.
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo
                if selector.wants(&rel).is_some() =>
            {
                diagnostics.push(diag(
                    layer,
                    "special-file-skipped",
                    format!("{rel}: a device or fifo where a file was expected; skipped"),
                ));
                whiteouts.removed.push(rel);
            }
            _ => {}
        }
    }

    for (rel, max) in wanted_links {
        match resolve(&rel, &symlinks, limits.max_symlink_depth) {
            Some(target) if extracted.contains(&target) => {
                let mut file = tree.open(&target)?;
                if tree.write_file(&rel, &mut file, max.min(limits.max_file_bytes))? {
                    extracted.insert(rel);
                }
            }
            _ => {
                diagnostics.push(diag(
                    layer,
                    "symlink-skipped",
                    format!(
                        "{rel}: symbolic link does not lead to an extracted file of this layer; skipped"
                    ),
                ));
                whiteouts.removed.push(rel);
            }
        }
    }
    if skipped_names > 0 {
        diagnostics.push(Diagnostic {
            level: Level::Info,
            code: "odd-names-skipped".into(),
            analyzer: None,
            layer: Some(layer.to_string()),
            message: format!("{skipped_names} entries with names that cannot be paths inside the image (.., control characters, invalid UTF-8) were skipped"),
        });
    }
    Ok(whiteouts)
}

/// Resolve `rel` through the layer's symbolic links, the way the kernel would inside a
/// chroot at the layer root. Returns the clean path it ends at, or `None` when it loops
/// past `max_depth` links.
fn resolve(rel: &str, links: &HashMap<String, String>, max_depth: u32) -> Option<String> {
    // A path that is not a recorded link is whatever the layer (or an earlier one) has
    // there; whether it is an extracted file is checked by the caller.
    super::resolve_links(rel, max_depth, |p| match links.get(p) {
        Some(t) => super::Node::Link(t.clone()),
        None => super::Node::Other,
    })
}

fn diag(layer: &str, code: &str, message: String) -> Diagnostic {
    Diagnostic {
        level: Level::Warning,
        code: code.into(),
        analyzer: None,
        layer: Some(layer.to_string()),
        message,
    }
}

fn too_large(layer: &str, rel: &str, size: u64, max: u64) -> Diagnostic {
    diag(
        layer,
        "file-too-large",
        format!("{rel}: {size} bytes, more than the {max} bytes analyzers accept; not analysed"),
    )
}

/// Whether a tar entry's name is the archive's root (`./`, `.`, `/`): only `.` and empty
/// components. An empty name is not: no real tar writes one.
fn names_root(raw: &[u8]) -> bool {
    !raw.is_empty() && raw.split(|&b| b == b'/').all(|c| c.is_empty() || c == b".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulkhead_model::{FileRequest, PathPattern};

    fn tar_of(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().expect("tar")
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        // `append_data` refuses `..` and absolute paths; hostile layers need raw names.
        let name = h.as_old_mut();
        name.name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        b.append(&h, data).expect("append");
    }

    fn link(b: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, path: &str, target: &str) {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_entry_type(kind);
        let name = h.as_old_mut();
        name.name[..path.len()].copy_from_slice(path.as_bytes());
        name.linkname[..target.len()].copy_from_slice(target.as_bytes());
        h.set_cksum();
        b.append(&h, std::io::empty()).expect("append");
    }

    fn selector() -> Selector {
        let reqs = [
            FileRequest {
                pattern: PathPattern::Exact("var/lib/dpkg/status".into()),
                max_size: 1 << 20,
            },
            FileRequest {
                pattern: PathPattern::Exact("etc/os-release".into()),
                max_size: 1 << 20,
            },
            FileRequest {
                pattern: PathPattern::Exact("usr/lib/os-release".into()),
                max_size: 1 << 20,
            },
            FileRequest {
                pattern: PathPattern::Exact("small".into()),
                max_size: 4,
            },
        ];
        Selector::new(&reqs).expect("selector")
    }

    fn run(data: Vec<u8>) -> (ScratchTree, Whiteouts, Vec<Diagnostic>) {
        let mut tree = ScratchTree::new("test", &ExtractLimits::default()).expect("tree");
        let mut diags = Vec::new();
        let w = extract(
            &data[..],
            "test",
            &selector(),
            &ExtractLimits::default(),
            &mut tree,
            &mut diags,
        )
        .expect("extract");
        (tree, w, diags)
    }

    #[test]
    fn wanted_files_links_and_whiteouts() {
        let data = tar_of(|b| {
            file(b, "./var/lib/dpkg/status", b"Package: a\n");
            file(b, "usr/lib/os-release", b"ID=debian\n");
            link(
                b,
                tar::EntryType::Symlink,
                "etc/os-release",
                "../usr/lib/os-release",
            );
            file(b, "etc/passwd", b"root:x:0:0\n");
            file(b, "small", b"too large");
            file(b, "opt/app/.wh.secret.txt", b"");
            file(b, "usr/local/.wh..wh..opq", b"");
        });
        let (tree, w, diags) = run(data);
        let read = |p: &str| std::fs::read_to_string(tree.path().join(p)).ok();
        assert_eq!(read("var/lib/dpkg/status").as_deref(), Some("Package: a\n"));
        assert_eq!(read("etc/os-release").as_deref(), Some("ID=debian\n"));
        assert_eq!(read("etc/passwd"), None, "not requested, not extracted");
        assert_eq!(read("small"), None);
        assert!(diags.iter().any(|d| d.code == "file-too-large"));
        // The oversized "small" replaces whatever an earlier layer had there.
        assert_eq!(w.removed, ["small", "opt/app/secret.txt"]);
        assert_eq!(w.opaque, ["usr/local"]);
        assert!(w.hides("opt/app/secret.txt") && w.hides("usr/local/x") && !w.hides("usr/localx"));
    }

    #[test]
    fn nothing_escapes_the_tree() {
        let outside = tempfile::tempdir().expect("tempdir");
        let evil = outside.path().join("passwd");
        std::fs::write(&evil, "HOST SECRET").expect("write");
        let data = tar_of(|b| {
            file(b, "../../../../../../tmp/bulkhead-escape", b"x");
            link(
                b,
                tar::EntryType::Symlink,
                "etc/os-release",
                evil.to_str().expect("utf8"),
            );
            link(
                b,
                tar::EntryType::Symlink,
                "usr/lib/os-release",
                "../../../../../../../../etc/passwd",
            );
            link(
                b,
                tar::EntryType::Link,
                "var/lib/dpkg/status",
                evil.to_str().expect("utf8"),
            );
            link(b, tar::EntryType::Symlink, "small", "small");
        });
        let (tree, _, diags) = run(data);
        assert!(!std::path::Path::new("/tmp/bulkhead-escape").exists());
        for p in [
            "etc/os-release",
            "usr/lib/os-release",
            "var/lib/dpkg/status",
            "small",
        ] {
            assert!(!tree.path().join(p).exists(), "{p} must not be extracted");
        }
        assert_eq!(
            diags
                .iter()
                .filter(|d| d.code.ends_with("-skipped"))
                .count(),
            5,
            "{diags:?}"
        );
    }

    #[test]
    fn link_resolution_stays_in_the_layer() {
        let links: HashMap<String, String> = [
            (
                "etc/os-release".to_string(),
                "../usr/lib/os-release".to_string(),
            ),
            ("a".to_string(), "/b".to_string()),
            ("b".to_string(), "a".to_string()),
        ]
        .into();
        assert_eq!(
            resolve("etc/os-release", &links, 40).as_deref(),
            Some("usr/lib/os-release")
        );
        assert_eq!(resolve("a", &links, 40), None);
    }
}

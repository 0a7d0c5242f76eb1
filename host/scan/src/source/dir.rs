//! `dir:PATH`: a root filesystem on disk, treated as a single layer.
//!
//! The walk never follows a symbolic link to a directory (no loops, no escape), skips
//! subtrees no analyzer can want, and copies the wanted files into a [`ScratchTree`]. A
//! wanted path that is a symbolic link (`etc/os-release -> ../usr/lib/os-release`) is
//! resolved *inside* the root, as a chroot would, with a depth limit; a link that leaves
//! the root or dangles is skipped with a diagnostic.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::layers::{ExtractError, ExtractLimits, Node, ScratchTree, Selector, clean_path};
use bulkhead_model::{Diagnostic, Level};

/// Top-level directories of a live system that hold no packages and must not be walked.
const SKIP_TOP: [&str; 3] = ["proc", "sys", "dev"];

/// Extract what `selector` wants from the tree at `root`.
pub fn extract(
    root: &Path,
    selector: &Selector,
    limits: &ExtractLimits,
    diagnostics: &mut Vec<Diagnostic>,
) -> Result<ScratchTree, ExtractError> {
    let name = format!("dir:{}", root.display());
    let io = |path: &str, e: std::io::Error| ExtractError::Io {
        source_name: name.clone(),
        path: path.to_string(),
        message: e.to_string(),
    };
    let meta = std::fs::metadata(root).map_err(|e| io(&root.display().to_string(), e))?;
    if !meta.is_dir() {
        return Err(ExtractError::Io {
            source_name: name.clone(),
            path: root.display().to_string(),
            message: "not a directory".into(),
        });
    }
    let mut tree = ScratchTree::new(&name, limits)?;
    let mut entries = 0u64;
    let mut stack: Vec<String> = vec![String::new()];
    while let Some(rel_dir) = stack.pop() {
        let host_dir = if rel_dir.is_empty() {
            root.to_path_buf()
        } else {
            root.join(&rel_dir)
        };
        let read = match std::fs::read_dir(&host_dir) {
            Ok(r) => r,
            // An unreadable directory deep in a rootfs (permissions) is not fatal.
            Err(e) => {
                diagnostics.push(diag(
                    &name,
                    "unreadable-directory",
                    format!("{rel_dir}: {e}"),
                ));
                continue;
            }
        };
        for entry in read {
            let entry = entry.map_err(|e| io(&rel_dir, e))?;
            entries += 1;
            if entries > limits.max_entries {
                return Err(ExtractError::TooManyEntries {
                    source_name: name,
                    limit: limits.max_entries,
                });
            }
            let Some(file_name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let raw = if rel_dir.is_empty() {
                file_name.clone()
            } else {
                format!("{rel_dir}/{file_name}")
            };
            let Some(rel) = clean_path(&raw) else {
                continue;
            };
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() {
                if rel_dir.is_empty() && SKIP_TOP.contains(&file_name.as_str()) {
                    continue;
                }
                if selector.may_want_below(&rel) {
                    stack.push(rel);
                }
                continue;
            }
            let Some(max) = selector.wants(&rel) else {
                continue;
            };
            let source = if ft.is_symlink() {
                match resolve_inside(root, &rel, limits.max_symlink_depth) {
                    Some(target) => target,
                    None => {
                        diagnostics.push(diag(
                            &name,
                            "symlink-skipped",
                            format!(
                                "{rel}: symbolic link leaves the root, dangles or loops; skipped"
                            ),
                        ));
                        continue;
                    }
                }
            } else if ft.is_file() {
                root.join(&rel)
            } else {
                continue; // fifos, sockets, devices: never data
            };
            let size = std::fs::metadata(&source).map(|m| m.len()).unwrap_or(0);
            if size > max.min(limits.max_file_bytes) {
                diagnostics.push(too_large(&name, &rel, size, max.min(limits.max_file_bytes)));
                continue;
            }
            let file = File::open(&source).map_err(|e| io(&rel, e))?;
            if !tree.write_file(&rel, file, max)? {
                diagnostics.push(too_large(&name, &rel, size, max));
            }
        }
    }
    Ok(tree)
}

fn diag(source: &str, code: &str, message: String) -> Diagnostic {
    Diagnostic {
        level: Level::Warning,
        code: code.into(),
        analyzer: None,
        layer: Some(source.to_string()),
        message,
    }
}

fn too_large(source: &str, rel: &str, size: u64, max: u64) -> Diagnostic {
    diag(
        source,
        "file-too-large",
        format!("{rel}: {size} bytes, more than the {max} bytes analyzers accept; not analysed"),
    )
}

/// Resolve `rel` under `root` the way the kernel would inside a chroot at `root`:
/// absolute link targets start again at `root`, `..` stops at `root`. Returns the host
/// path of the regular file it ends at, or `None` if it dangles, loops past `max_depth`
/// links, or ends at anything but a regular file.
pub fn resolve_inside(root: &Path, rel: &str, max_depth: u32) -> Option<PathBuf> {
    let resolved = crate::layers::resolve_links(rel, max_depth, |p| {
        let host = root.join(p);
        match std::fs::symlink_metadata(&host) {
            Err(_) => Node::Missing,
            Ok(m) if m.file_type().is_symlink() => match std::fs::read_link(&host) {
                Ok(t) => t
                    .to_str()
                    .map_or(Node::Missing, |t| Node::Link(t.to_string())),
                Err(_) => Node::Missing,
            },
            Ok(_) => Node::Other,
        }
    })?;
    let host = root.join(resolved);
    let meta = std::fs::symlink_metadata(&host).ok()?;
    meta.is_file().then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_resolve_inside_the_root_only() {
        let t = tempfile::tempdir().expect("tempdir");
        let root = t.path();
        std::fs::create_dir_all(root.join("usr/lib")).expect("mkdir");
        std::fs::create_dir_all(root.join("etc")).expect("mkdir");
        std::fs::write(root.join("usr/lib/os-release"), "ID=debian\n").expect("write");
        symlink("../usr/lib/os-release", root.join("etc/os-release")).expect("symlink");
        symlink("/usr/lib/os-release", root.join("etc/abs")).expect("symlink");
        symlink("../../../../../../etc/passwd", root.join("etc/up")).expect("symlink");
        symlink("loop2", root.join("etc/loop1")).expect("symlink");
        symlink("loop1", root.join("etc/loop2")).expect("symlink");
        assert_eq!(
            resolve_inside(root, "etc/os-release", 40),
            Some(root.join("usr/lib/os-release"))
        );
        assert_eq!(
            resolve_inside(root, "etc/abs", 40),
            Some(root.join("usr/lib/os-release"))
        );
        // `..` stops at the root: this resolves to <root>/etc/passwd, which does not exist.
        assert_eq!(resolve_inside(root, "etc/up", 40), None);
        assert_eq!(resolve_inside(root, "etc/loop1", 40), None);
    }
}

//! Files for the analyzers: select the entries analyzers asked for and extract them,
//! safely, into a per-layer scratch tree that is then mounted read-only into the sandbox.
//!
//! Image layers are streamed once ([`stream`]: digest, decompression, limits) and walked
//! ([`walk`]: selection, whiteouts, links); a root-filesystem directory
//! ([`crate::source::dir`]) feeds the same [`ScratchTree`].

pub mod cache;
mod extract;
mod select;
pub mod stream;
pub mod walk;

pub use extract::ScratchTree;
pub use select::Selector;
pub use stream::{LayerError, LayerFiles, LayerLimits};
pub use walk::Whiteouts;

use serde::{Deserialize, Serialize};

/// Bounds on what one layer may make the host write. Analyzers bound each file with
/// their own `max-size`; these bound the whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExtractLimits {
    /// Bytes extracted per layer, all files together.
    pub max_total_bytes: u64,
    /// Entries walked per layer (files, directories, links).
    pub max_entries: u64,
    /// Symbolic links followed while resolving one path.
    pub max_symlink_depth: u32,
    /// Largest single file, whatever an analyzer asks for.
    pub max_file_bytes: u64,
}

impl Default for ExtractLimits {
    fn default() -> Self {
        ExtractLimits {
            max_total_bytes: 2 << 30,
            max_entries: 5_000_000,
            max_symlink_depth: 40,
            max_file_bytes: 512 << 20,
        }
    }
}

/// Why extraction stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("{source_name}: more than {limit} entries (extract.max_entries)")]
    TooManyEntries { source_name: String, limit: u64 },
    #[error("{source_name}: more than {limit} bytes to extract (extract.max_total_bytes)")]
    TooManyBytes { source_name: String, limit: u64 },
    #[error("{source_name}: {path}: {message}")]
    Io {
        source_name: String,
        path: String,
        message: String,
    },
}

/// Split a path from a layer or directory into clean components: no root, no `.`, no
/// `..`, no empty component, no NUL or other control character, valid UTF-8. Returns
/// `None` for anything else: such a name can never match what an analyzer asked for,
/// and is never written.
pub fn clean_path(raw: &str) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => continue,
            ".." => return None,
            c if c.chars().any(char::is_control) => return None,
            c => out.push(c),
        }
    }
    if out.is_empty() {
        None
    } else {
        Some(out.join("/"))
    }
}

/// What a path component is, for [`resolve_links`].
#[derive(Debug)]
pub enum Node {
    /// A symbolic link with this target.
    Link(String),
    /// Anything else that exists.
    Other,
    /// Nothing is there.
    Missing,
}

/// Resolve `rel` through symbolic links the way the kernel would inside a chroot at the
/// tree's root: absolute targets start again at the root, `..` stops at the root, at most
/// `max_depth` links are followed. `node` says what each intermediate path is. Returns the
/// clean path the walk ends at, or `None` when it loops, dangles or names the root.
/// Used for layer tars (links recorded while streaming) and for `dir:` trees (the disk).
pub fn resolve_links(
    rel: &str,
    max_depth: u32,
    mut node: impl FnMut(&str) -> Node,
) -> Option<String> {
    let mut pending: std::collections::VecDeque<String> =
        rel.split('/').map(str::to_string).collect();
    let mut done: Vec<String> = Vec::new();
    let mut hops = 0u32;
    while let Some(c) = pending.pop_front() {
        match c.as_str() {
            "" | "." => continue,
            ".." => {
                done.pop();
                continue;
            }
            _ => done.push(c),
        }
        match node(&done.join("/")) {
            Node::Missing => return None,
            Node::Other => {}
            Node::Link(target) => {
                hops += 1;
                if hops > max_depth {
                    return None;
                }
                done.pop();
                if target.starts_with('/') {
                    done.clear();
                }
                for (i, t) in target.split('/').enumerate() {
                    pending.insert(i, t.to_string());
                }
            }
        }
    }
    (!done.is_empty()).then(|| done.join("/"))
}

#[cfg(test)]
mod tests {
    use super::clean_path;

    #[test]
    fn paths_are_cleaned_or_refused() {
        assert_eq!(
            clean_path("./var/lib/dpkg/status").as_deref(),
            Some("var/lib/dpkg/status")
        );
        assert_eq!(
            clean_path("/etc//os-release").as_deref(),
            Some("etc/os-release")
        );
        assert_eq!(clean_path("var/../../etc/passwd"), None);
        assert_eq!(clean_path("etc/pass\nwd"), None);
        assert_eq!(clean_path("/"), None);
    }
}

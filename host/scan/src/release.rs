//! The image's OS, decided by trusted code. The host asks for the release files itself
//! (os-release, lsb-release, alpine-release, debian_version, the redhat-release family),
//! keeps each layer's copies, merges them in layer order ([`crate::merge`]: whiteouts
//! remove, later layers win) and parses the result with `bulkhead-release` (bounded,
//! fuzzed). An analyzer may still report the OS it saw; that claim is advisory, and one
//! that disagrees is a diagnostic naming the analyzer.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use bulkhead_model::{FileRequest, Os, PathPattern};

/// Release files by path relative to the image root, as text (lossy UTF-8).
pub type ReleaseFiles = BTreeMap<String, String>;

/// The host's own file requests: every release file, capped at the parser's limit.
pub fn requests() -> Vec<FileRequest> {
    bulkhead_release::paths()
        .map(|path| FileRequest {
            pattern: PathPattern::Exact(path.to_string()),
            max_size: bulkhead_release::MAX_RELEASE_FILE,
        })
        .collect()
}

/// The release files present in a layer's scratch tree. The tree is the host's own
/// (regular files and directories only, written by `layers::extract`); a file larger than
/// the limit (an analyzer may have asked for the same path with a larger cap) is left out,
/// as the parser would ignore it.
pub fn read_tree(root: &Path) -> ReleaseFiles {
    let mut out = ReleaseFiles::new();
    for path in bulkhead_release::paths() {
        let Ok(file) = std::fs::File::open(root.join(path)) else {
            continue;
        };
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            continue;
        }
        let mut bytes = Vec::new();
        if file
            .take(bulkhead_release::MAX_RELEASE_FILE + 1)
            .read_to_end(&mut bytes)
            .is_err()
            || u64::try_from(bytes.len()).unwrap_or(u64::MAX) > bulkhead_release::MAX_RELEASE_FILE
        {
            continue;
        }
        out.insert(
            path.to_string(),
            String::from_utf8_lossy(&bytes).into_owned(),
        );
    }
    out
}

/// The OS the merged release files state; `None` when there is no usable one.
pub fn detect(files: &ReleaseFiles) -> Option<Os> {
    bulkhead_release::detect(|path| files.get(path).cloned()).map(|r| Os {
        id: r.id,
        version_id: r.version_id,
        version_codename: r.version_codename,
        id_like: r.id_like,
        pretty_name: r.pretty_name,
        source_file: r.source_file,
        eol: None,
    })
}

/// `id version` for messages.
pub fn describe(os: Option<&Os>) -> String {
    match os {
        None => "no OS".to_string(),
        Some(o) => match &o.version_id {
            Some(v) => format!("{} {v}", o.id),
            None => o.id.clone(),
        },
    }
}

/// Whether an analyzer's claim agrees with the host's OS: same id and version.
pub fn agrees(claim: &Os, host: Option<&Os>) -> bool {
    host.is_some_and(|h| h.id == claim.id && h.version_id == claim.version_id)
}

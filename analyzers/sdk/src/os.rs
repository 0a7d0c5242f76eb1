//! Operating-system detection from the release files a layer carries, for analyzers that
//! want to report what they saw.
//!
//! The OS an analyzer reports is **advisory**: the host reads the same release files
//! itself, merged over every layer, and decides the image's OS with the same parser
//! (crate `bulkhead-release`, shared so there is one definition of the formats). A claim
//! that disagrees with the host's is reported as a diagnostic naming the analyzer and
//! changes nothing. Pure std: it runs natively in tests and inside the sandbox.

use std::path::Path;

use crate::{FileRequest, OsInfo, PathPattern};

pub use bulkhead_release::parse_os_release;

/// The file requests an analyzer adds to its own to get OS detection.
pub fn requests() -> Vec<FileRequest> {
    bulkhead_release::paths()
        .map(|path| FileRequest {
            pattern: PathPattern::Exact(path.to_string()),
            max_size: bulkhead_release::MAX_RELEASE_FILE,
        })
        .collect()
}

/// Detect the OS of the tree mounted at `root`; `None` when it carries no usable release
/// file (scratch and distroless-static images). See `bulkhead_release::detect`.
pub fn detect(root: &Path) -> Option<OsInfo> {
    // List `etc/` once: inside the sandbox every failed open is a host call, and most of
    // the dozen candidate files do not exist in any given layer. (`None` when the listing
    // fails: then every candidate is tried.)
    let etc: Option<std::collections::HashSet<String>> =
        std::fs::read_dir(root.join("etc")).ok().map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect()
        });
    let read = |rel: &str| {
        if let (Some(etc), Some(name)) = (&etc, rel.strip_prefix("etc/"))
            && !etc.contains(name)
        {
            return None;
        }
        crate::fs::read(&root.join(rel), bulkhead_release::MAX_RELEASE_FILE)
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    bulkhead_release::detect(read).map(|r| OsInfo {
        id: r.id,
        id_like: r.id_like,
        version_id: r.version_id,
        version_codename: r.version_codename,
        pretty_name: r.pretty_name,
        source_file: r.source_file,
    })
}

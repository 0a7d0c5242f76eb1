//! The next command to try, after an error a newcomer meets in the first minutes. The
//! library's errors say what failed and on which input; only the command line knows its
//! own flags, so the advice that names them is added here, by the error's type (never by
//! its text).

use bulkhead_scan::image::SourceError;

/// A line of advice for `e`, if its cause is one a user can act on.
pub(crate) fn next_step(e: &anyhow::Error) -> Option<String> {
    let source = e.chain().find_map(|c| c.downcast_ref::<SourceError>())?;
    Some(match source {
        SourceError::NotFound { .. } => "check the repository and tag (`skopeo list-tags docker://NAME` lists a repository's tags); to scan a local file or directory give its path, e.g. ./image.tar or oci:DIR".into(),
        SourceError::BadReference { .. } => format!(
            "what `bulkhead scan` takes: {}; an existing file or directory is recognised by its path",
            bulkhead_scan::source::SCHEMES
        ),
        SourceError::Unauthorized { registry, .. } => format!(
            "log in with `docker login {registry}` (Bulkhead reads ~/.docker/config.json and its credential helpers), or pass --username and --password (or BULKHEAD_USERNAME and BULKHEAD_PASSWORD)"
        ),
        SourceError::PlatformMissing { available, .. } => match available.first() {
            Some(first) => format!("choose one of the image's platforms with --platform, e.g. --platform {first}"),
            None => "the image lists no platform: scan it by digest (NAME@sha256:…) to pick one manifest".into(),
        },
        SourceError::Network { .. } => "check that the registry is reachable from here (`curl -sI https://REGISTRY/v2/`), the proxy settings (HTTPS_PROXY, NO_PROXY), or add --insecure-registry HOST:PORT for a registry that speaks plain HTTP; `bulkhead scan -v` logs each attempt".into(),
        SourceError::Invalid { .. } | SourceError::Io { .. } | SourceError::DigestMismatch { .. } => "the image is damaged or incomplete: write it again (`docker save IMAGE -o FILE`, `skopeo copy docker://IMAGE docker-archive:FILE`) or pull it again; `tar tf FILE` shows whether an archive is whole".into(),
        SourceError::TooLarge { .. } => "if the image is trusted and really this large, raise the limit in [registries.limits] (docs/security.md lists them)".into(),
        SourceError::Unsupported { .. } => return None,
    })
}

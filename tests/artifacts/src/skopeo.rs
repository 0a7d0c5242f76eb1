//! Pushing OCI layouts to a test registry with `skopeo copy`, hermetically.
//!
//! skopeo keeps a persistent *blob-info cache* (as root:
//! `/var/lib/containers/cache/blob-info-cache-v1.boltdb`) that outlives registries: it makes
//! later pushes HEAD-probe and try cross-repository mounts remembered from earlier runs,
//! which adds events and token scopes a test did not cause. Each push here gets a fresh,
//! empty cache:
//! - not root: `XDG_DATA_HOME` points at a per-push temp dir (where skopeo keeps it then);
//! - root: skopeo runs in a private mount namespace (`unshare --mount`) with a tmpfs over the
//!   cache directory, which vanishes with the namespace;
//! - root without namespaces (an unprivileged container): the cache file is deleted before
//!   each push, which is racy only between pushes running at the same moment.
//!
//! Credentials and registries config come only from the arguments: `--dest-no-creds` for
//! anonymous pushes (so no `auth.json` is picked up), an empty `registries.conf`, and
//! `--insecure-policy` (no signature policy applies to a loopback test registry).

use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// Where skopeo keeps its blob-info cache when run as root.
const ROOT_CACHE_DIR: &str = "/var/lib/containers/cache";

/// Manifest format of the pushed image (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OCI image manifest / index.
    Oci,
    /// Docker schema 2 (`application/vnd.docker.distribution.manifest.v2+json`); no zstd.
    V2s2,
}

/// Layer recompression on the way (`--dest-compress-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestCompression {
    /// gzip.
    Gzip,
    /// zstd (`application/vnd.oci.image.layer.v1.tar+zstd`).
    Zstd,
    /// zstd:chunked (zstd plus skippable frames and a table of contents).
    ZstdChunked,
}

/// Options of [`push_with`]; the default pushes the layout as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushOptions {
    /// `--format`; `None` keeps the source format.
    pub format: Option<Format>,
    /// `--dest-compress-format`; `None` keeps the layers' compression.
    pub compress: Option<DestCompression>,
    /// `--all`; `None` decides by the tag: on for an image index (every platform is pushed),
    /// off for a single manifest.
    pub all: Option<bool>,
}

/// `skopeo copy oci:LAYOUT:TAG docker://REGISTRY/DEST` with the layout as it is. `dest` is
/// `name` or `name:tag` (without a tag, the source tag is used); `creds` are
/// `--dest-creds`. Image indexes are pushed with `--all`. On failure the error carries
/// skopeo's output.
pub fn push(
    layout: &Path,
    tag: &str,
    registry: &str,
    creds: Option<(&str, &str)>,
    dest: &str,
) -> io::Result<()> {
    push_with(layout, tag, registry, creds, dest, &PushOptions::default())
}

/// [`push`] with [`PushOptions`].
pub fn push_with(
    layout: &Path,
    tag: &str,
    registry: &str,
    creds: Option<(&str, &str)>,
    dest: &str,
    options: &PushOptions,
) -> io::Result<()> {
    let all = match options.all {
        Some(all) => all,
        None => is_index(layout, tag)?,
    };
    let last = dest.rsplit('/').next().unwrap_or(dest);
    let dest = if last.contains(':') || last.contains('@') {
        dest.to_string()
    } else {
        format!("{dest}:{tag}")
    };
    let mut args: Vec<String> = vec![
        "copy".into(),
        "--retry-times=0".into(),
        // A loopback registry speaks plain http; without this skopeo insists on https.
        "--dest-tls-verify=false".into(),
    ];
    match creds {
        Some((u, p)) => args.push(format!("--dest-creds={u}:{p}")),
        None => args.push("--dest-no-creds".into()),
    }
    match options.format {
        Some(Format::Oci) => args.push("--format=oci".into()),
        Some(Format::V2s2) => args.push("--format=v2s2".into()),
        None => {}
    }
    match options.compress {
        Some(DestCompression::Gzip) => args.push("--dest-compress-format=gzip".into()),
        Some(DestCompression::Zstd) => args.push("--dest-compress-format=zstd".into()),
        Some(DestCompression::ZstdChunked) => {
            args.push("--dest-compress-format=zstd:chunked".into())
        }
        None => {}
    }
    if all {
        args.push("--all".into());
    }
    args.push(format!("oci:{}:{tag}", layout.display()));
    args.push(format!("docker://{registry}/{dest}"));
    let out = run(&args)?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "skopeo {} failed ({}):\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

/// Runs `skopeo --insecure-policy --tmpdir SCRATCH ARGS...` hermetically (a fresh blob-info
/// cache, an empty `registries.conf`, no `REGISTRY_AUTH_FILE`, big files in a scratch dir)
/// and returns its output whatever the exit status. For other skopeo commands in tests,
/// e.g. `["inspect", "--raw", "oci:DIR:TAG"]` or a pull with `copy docker://... oci:...`.
pub fn run<S: AsRef<OsStr>>(args: &[S]) -> io::Result<Output> {
    let scratch = tempfile::Builder::new()
        .prefix("bulkhead-skopeo-")
        .tempdir()?;
    let registries_conf = scratch.path().join("registries.conf");
    std::fs::write(&registries_conf, "")?;
    let bigfiles = scratch.path().join("tmp");
    std::fs::create_dir(&bigfiles)?;
    let mut cmd = match cache_isolation() {
        Isolation::XdgDataHome => {
            let mut c = Command::new("skopeo");
            c.env("XDG_DATA_HOME", scratch.path());
            c
        }
        Isolation::Namespace => {
            let mut c = Command::new("unshare");
            c.args([
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                NAMESPACE_SCRIPT,
                "sh",
                "skopeo",
            ]);
            c
        }
        Isolation::DeleteFile => {
            let _ =
                std::fs::remove_file(Path::new(ROOT_CACHE_DIR).join("blob-info-cache-v1.boltdb"));
            Command::new("skopeo")
        }
    };
    cmd.arg("--insecure-policy")
        .arg("--tmpdir")
        .arg(&bigfiles)
        .args(args)
        .env("CONTAINERS_REGISTRIES_CONF", &registries_conf)
        .env_remove("REGISTRY_AUTH_FILE")
        .env("TMPDIR", &bigfiles)
        .stdin(Stdio::null());
    cmd.output()
        .map_err(|e| io::Error::new(e.kind(), format!("running skopeo: {e}")))
}

/// Whether `tag` in the OCI layout names an image index (then [`push`] uses `--all`).
pub fn is_index(layout: &Path, tag: &str) -> io::Result<bool> {
    let index_path = layout.join("index.json");
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(&index_path)?)
        .map_err(|e| io::Error::other(format!("{}: {e}", index_path.display())))?;
    let desc = index["manifests"]
        .as_array()
        .and_then(|m| {
            m.iter().find(|d| {
                d["annotations"]["org.opencontainers.image.ref.name"].as_str() == Some(tag)
            })
        })
        .ok_or_else(|| io::Error::other(format!("{}: no tag {tag:?}", index_path.display())))?;
    Ok(desc["mediaType"].as_str().is_some_and(|m| {
        m == crate::images::MEDIA_INDEX
            || m == "application/vnd.docker.distribution.manifest.list.v2+json"
    }))
}

/// Mounts an empty tmpfs over the root blob-info cache dir, then runs the command in `$@`.
const NAMESPACE_SCRIPT: &str = "mkdir -p /var/lib/containers/cache && \
     mount -t tmpfs -o size=64m,mode=0700 bulkhead-skopeo-cache /var/lib/containers/cache && \
     exec \"$@\"";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isolation {
    XdgDataHome,
    Namespace,
    DeleteFile,
}

/// How this machine can give skopeo a fresh cache (probed once per test process).
fn cache_isolation() -> Isolation {
    static CHOICE: OnceLock<Isolation> = OnceLock::new();
    *CHOICE.get_or_init(|| {
        if !rustix::process::geteuid().is_root() {
            return Isolation::XdgDataHome;
        }
        let probe = Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                NAMESPACE_SCRIPT,
                "sh",
                "true",
            ])
            .output();
        match probe {
            Ok(o) if o.status.success() => Isolation::Namespace,
            _ => Isolation::DeleteFile,
        }
    })
}

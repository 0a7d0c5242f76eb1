//! Ready-made images from the real data under `tests/fixtures/`.

use std::io::{self, Read as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use super::layout::sha256_digest;
use super::{Compression, Descriptor, Image, Layer, LayerTar, OciLayout, Platform};
use crate::fixture;

/// The libssl3 version written into the *lower* dpkg status of [`layered`]: SYNTHETIC, an
/// older bookworm version put in place of the fixture's real one, so that the upper layer's
/// status (the fixture's real stanza) is an upgrade.
pub const LAYERED_OLD_LIBSSL3: &str = "3.0.11-1~deb12u2";

/// The Alpine minirootfs tarballs under `tests/fixtures/images/` (see its SOURCES.md).
const ALPINE: &[(&str, &str)] = &[
    ("3.12", "alpine-minirootfs-3.12.12-x86_64.tar.gz"),
    ("3.20", "alpine-minirootfs-3.20.3-x86_64.tar.gz"),
];

/// `alpine:<version>` as the official image is: the upstream minirootfs tarball used
/// byte for byte as its single gzip layer (diff_id computed by decompressing it).
/// `version` is `3.12` or `3.20` (or the full `3.12.12`, `3.20.3`). `expected` is the apk
/// package list of that release under `tests/fixtures/apk/`.
pub fn alpine(version: &str) -> Image {
    alpine_with(version, Compression::Gzip)
}

/// [`alpine`] with the layer recompressed (`Gzip` keeps the upstream blob as it is).
pub fn alpine_with(version: &str, compression: Compression) -> Image {
    alpine_then(version, compression, &[])
}

/// [`alpine_with`], then a second (gzip) layer holding `files` (path, content) when there
/// are any: the official image with something laid over it (the OS tests lay release files).
pub fn alpine_then(version: &str, compression: Compression, files: &[(&str, &[u8])]) -> Image {
    let (short, file) = ALPINE
        .iter()
        .find(|(short, file)| *short == version || file.contains(&format!("-{version}-")))
        .unwrap_or_else(|| panic!("no Alpine {version} fixture; have {ALPINE:?}"));
    let path = fixture(&format!("images/{file}"));
    let gz = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut tar = Vec::new();
    flate2::read::MultiGzDecoder::new(&gz[..])
        .read_to_end(&mut tar)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (mut image, layout) = Image::new_layout(short);
    let created_by = format!("ADD {file} /");
    let layer = match compression {
        Compression::Gzip => layout.add_compressed_layer(
            &gz,
            compression.media_type(),
            &sha256_digest(&tar),
            &created_by,
        ),
        other => layout.add_layer(&tar, other, &created_by),
    }
    .expect("write the alpine layer");
    let layers: Vec<Layer> = std::iter::once(layer)
        .chain(laid_over(&layout, files))
        .collect();
    let manifest = layout
        .add_image(&layers, &Platform::linux_amd64())
        .expect("write the manifest");
    layout.tag(&manifest, short).expect("tag");
    let expected = fixture(&format!("apk/alpine-{short}/expected-packages.tsv"));
    image.expected = expected.exists().then_some(expected);
    image
}

/// The Debian 12 minbase fixture (`tests/fixtures/dpkg/debian-bookworm-minbase/`: dpkg
/// status, `info/*.list`, os-release, debian_version) as a one-layer image, plus the
/// `etc/os-release -> ../usr/lib/os-release` symlink a real Debian has. Tag `bookworm`;
/// `expected` is the fixture's dpkg-query list.
pub fn debian_minbase() -> Image {
    debian_minbase_with(Compression::Gzip)
}

/// [`debian_minbase`] with the given layer compression.
pub fn debian_minbase_with(compression: Compression) -> Image {
    build_minbase(compression, "bookworm", &[])
}

/// [`debian_minbase`]'s layer, then a second layer holding `files` (path, content), tag
/// `tag`: a base image and a later layer that adds or replaces release files (the OS-merge
/// tests).
pub fn debian_minbase_then(files: &[(&str, &[u8])], tag: &str) -> Image {
    build_minbase(Compression::Gzip, tag, files)
}

fn build_minbase(compression: Compression, tag: &str, files: &[(&str, &[u8])]) -> Image {
    let root = minbase_root();
    let mut tar = LayerTar::new();
    add_tree(&mut tar, &root, "", &|rel| {
        rel.starts_with("expected-packages")
    })
    .expect("read the fixture tree");
    tar.symlink("etc/os-release", "../usr/lib/os-release");
    let (mut image, layout) = Image::new_layout(tag);
    let layer = layout
        .add_layer(
            &tar.into_bytes(),
            compression,
            "debian-bookworm-minbase fixture",
        )
        .expect("write the layer");
    let layers: Vec<Layer> = std::iter::once(layer)
        .chain(laid_over(&layout, files))
        .collect();
    let manifest = layout
        .add_image(&layers, &Platform::linux_amd64())
        .expect("write the manifest");
    layout.tag(&manifest, tag).expect("tag");
    image.expected = Some(root.join("expected-packages.dpkg-query.tsv"));
    image
}

/// A gzip layer holding `files` (path, content, mode 0644, with their parent directories),
/// or none when there are no files: what the `*_then` builders lay over a base image.
fn laid_over(layout: &OciLayout, files: &[(&str, &[u8])]) -> Option<Layer> {
    if files.is_empty() {
        return None;
    }
    let mut top = LayerTar::new();
    for (path, data) in files {
        top.parents(path).file(path, data, 0o644);
    }
    Some(
        layout
            .add_layer(&top.into_bytes(), Compression::Gzip, "files laid over")
            .expect("write the second layer"),
    )
}

/// Four gzip layers exercising the merge rules (like the registry lab's `layers:latest`),
/// tag `latest`:
///
/// 1. dpkg status with four real stanzas (libssl3, zlib1g, bash, libc6) from the minbase
///    fixture, libssl3 set to [`LAYERED_OLD_LIBSSL3`]; `usr/lib/os-release` and the
///    `etc/os-release -> ../usr/lib/os-release` symlink; `opt/app/secret.txt`,
///    `opt/app/lib/{a,b}.so`, `usr/local/share/junk/{x,y}`; `usr/local/bin/tool` and its
///    hard link `usr/local/bin/tool-alias`.
/// 2. whiteouts: `opt/app/.wh.secret.txt` (a file), `usr/local/share/.wh.junk` (a directory).
/// 3. opaque directory: `opt/app/lib/.wh..wh..opq` and a new `opt/app/lib/c.so`.
/// 4. a new dpkg status: the same four stanzas as in the fixture (libssl3 upgraded).
///
/// Expected merged view (compute it in the test with [`super::oracle`], not the scanner):
/// no secret.txt, no junk/, `opt/app/lib` = {c.so}, the four packages with the fixture's
/// versions.
pub fn layered() -> Image {
    layered_with(Compression::Gzip)
}

/// [`layered`] with every layer compressed the same given way.
pub fn layered_with(compression: Compression) -> Image {
    build_layered([compression; 4])
}

/// [`layered`] with one layer of each kind: gzip, zstd, plain tar, zstd.
pub fn layered_mixed() -> Image {
    build_layered([
        Compression::Gzip,
        Compression::Zstd,
        Compression::None,
        Compression::Zstd,
    ])
}

fn build_layered(compressions: [Compression; 4]) -> Image {
    let new_status = select_stanzas(&minbase_status(), &["libssl3", "zlib1g", "bash", "libc6"]);
    let old_status = set_version(&new_status, "libssl3", LAYERED_OLD_LIBSSL3);
    let os_release =
        std::fs::read(minbase_root().join("usr/lib/os-release")).expect("fixture os-release");

    let mut l1 = LayerTar::new();
    for d in [
        "etc",
        "usr",
        "usr/lib",
        "usr/local",
        "usr/local/bin",
        "usr/local/share",
        "usr/local/share/junk",
        "var",
        "var/lib",
        "var/lib/dpkg",
        "opt",
        "opt/app",
        "opt/app/lib",
    ] {
        l1.dir(d, 0o755);
    }
    l1.file("usr/lib/os-release", &os_release, 0o644)
        .symlink("etc/os-release", "../usr/lib/os-release")
        .file("var/lib/dpkg/status", old_status.as_bytes(), 0o644)
        .file("opt/app/secret.txt", b"not-a-real-secret\n", 0o600)
        .file("opt/app/lib/a.so", b"a\n", 0o755)
        .file("opt/app/lib/b.so", b"b\n", 0o755)
        .file("usr/local/share/junk/x", b"x\n", 0o644)
        .file("usr/local/share/junk/y", b"y\n", 0o644)
        .file("usr/local/bin/tool", b"#!/bin/sh\necho tool\n", 0o755)
        .hardlink("usr/local/bin/tool-alias", "usr/local/bin/tool");

    let mut l2 = LayerTar::new();
    l2.whiteout("opt/app/secret.txt")
        .whiteout("usr/local/share/junk");

    let mut l3 = LayerTar::new();
    l3.dir("opt/app/lib", 0o755)
        .opaque("opt/app/lib")
        .file("opt/app/lib/c.so", b"c\n", 0o755);

    let mut l4 = LayerTar::new();
    l4.file("var/lib/dpkg/status", new_status.as_bytes(), 0o644);

    let (image, layout) = Image::new_layout("latest");
    let layers = [
        (l1, "L1: base files, dpkg status with an old libssl3"),
        (l2, "L2: rm opt/app/secret.txt, rm -r usr/local/share/junk"),
        (l3, "L3: replace opt/app/lib (opaque whiteout)"),
        (l4, "L4: dpkg status with libssl3 upgraded"),
    ]
    .into_iter()
    .zip(compressions)
    .map(|((tar, created_by), c)| {
        layout
            .add_layer(&tar.into_bytes(), c, created_by)
            .expect("write a layer")
    })
    .collect::<Vec<_>>();
    let manifest = layout
        .add_image(&layers, &Platform::linux_amd64())
        .expect("write the manifest");
    layout.tag(&manifest, "latest").expect("tag");
    image
}

/// An image index (tag `latest`) with two platforms, one gzip layer each: `linux/amd64`
/// with the minbase fixture's dpkg status and os-release, and `linux/arm64/v8` with the same
/// status where every `Architecture: amd64` is `arm64` (SYNTHETIC: no arm64 rootfs here).
/// The child manifests are also tagged `amd64` and `arm64`.
pub fn multi_platform() -> Image {
    multi_platform_with(Compression::Gzip)
}

/// [`multi_platform`] with the given layer compression.
pub fn multi_platform_with(compression: Compression) -> Image {
    let status = minbase_status();
    let os_release =
        std::fs::read(minbase_root().join("usr/lib/os-release")).expect("fixture os-release");
    let (image, layout) = Image::new_layout("latest");
    let mut children = Vec::new();
    for (platform, arch) in [
        (Platform::linux_amd64(), "amd64"),
        (Platform::linux_arm64_v8(), "arm64"),
    ] {
        let status = status.replace(
            "\nArchitecture: amd64\n",
            &format!("\nArchitecture: {arch}\n"),
        );
        let mut tar = LayerTar::new();
        for d in ["etc", "usr", "usr/lib", "var", "var/lib", "var/lib/dpkg"] {
            tar.dir(d, 0o755);
        }
        tar.file("usr/lib/os-release", &os_release, 0o644)
            .symlink("etc/os-release", "../usr/lib/os-release")
            .file("var/lib/dpkg/status", status.as_bytes(), 0o644);
        let layer = layout
            .add_layer(
                &tar.into_bytes(),
                compression,
                &format!("dpkg status ({arch})"),
            )
            .expect("write a layer");
        let manifest = layout
            .add_image(&[layer], &platform)
            .expect("write a manifest");
        layout.tag(&manifest, arch).expect("tag");
        children.push((manifest, platform));
    }
    let index = layout.add_index(&children).expect("write the index");
    layout.tag(&index, "latest").expect("tag");
    image
}

pub(crate) fn minbase_root() -> PathBuf {
    fixture("dpkg/debian-bookworm-minbase")
}

pub(crate) fn minbase_status() -> String {
    let path = minbase_root().join("var/lib/dpkg/status");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The stanzas of `status` whose `Package:` is in `names`, in file order.
pub(crate) fn select_stanzas(status: &str, names: &[&str]) -> String {
    let picked: Vec<&str> = status
        .split("\n\n")
        .filter(|s| {
            s.lines().any(|l| {
                l.strip_prefix("Package: ")
                    .is_some_and(|n| names.contains(&n.trim()))
            })
        })
        .map(|s| s.trim_matches('\n'))
        .collect();
    assert_eq!(
        picked.len(),
        names.len(),
        "stanzas {names:?} in the minbase status"
    );
    picked.join("\n\n") + "\n"
}

/// `status` with the `Version:` of package `name` replaced.
fn set_version(status: &str, name: &str, version: &str) -> String {
    status
        .split("\n\n")
        .map(|stanza| {
            if stanza.lines().any(|l| l == format!("Package: {name}")) {
                stanza
                    .lines()
                    .map(|l| {
                        if l.starts_with("Version: ") {
                            format!("Version: {version}")
                        } else {
                            l.to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            } else {
                stanza.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Adds the tree under `dir` as `prefix/...`, sorted so that the tar is deterministic,
/// skipping top-level names for which `skip` is true. Directories, regular files and
/// symlinks (kept as links); other file types are left out. Modes are normalised (0755 for
/// directories and executables, 0644 for other files) because a checkout does not keep
/// them.
fn add_tree(
    tar: &mut LayerTar,
    dir: &Path,
    prefix: &str,
    skip: &dyn Fn(&str) -> bool,
) -> io::Result<()> {
    let mut entries = std::fs::read_dir(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?
        .map(|e| e.map(|e| e.path()))
        .collect::<io::Result<Vec<_>>>()?;
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if prefix.is_empty() && skip(&name) {
            continue;
        }
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path)?;
            tar.symlink(&rel, &target.to_string_lossy());
        } else if meta.is_dir() {
            tar.dir(&rel, 0o755);
            add_tree(tar, &path, &rel, skip)?;
        } else if meta.is_file() {
            let data = std::fs::read(&path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            let mode = if meta.permissions().mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            };
            tar.file(&rel, &data, mode);
        }
    }
    Ok(())
}

/// A one-layer gzip `linux/amd64` image of the tree under `root`, written to a new OCI
/// layout at `layout` and tagged `tag`; returns the manifest descriptor. The layer holds
/// directories, regular files and symlinks, sorted, uid/gid 0, fixed mtime and normalised
/// modes (see [`debian_minbase`]), so the same tree always gives the same digests.
pub fn single_layer_from_dir(root: &Path, layout: &Path, tag: &str) -> io::Result<Descriptor> {
    let mut tar = LayerTar::new();
    add_tree(&mut tar, root, "", &|_| false)?;
    let oci = OciLayout::create(layout)?;
    let layer = oci.add_layer(
        &tar.into_bytes(),
        Compression::Gzip,
        &format!("COPY {} /", root.display()),
    )?;
    let manifest = oci.add_image(&[layer], &Platform::linux_amd64())?;
    oci.tag(&manifest, tag)?;
    Ok(manifest)
}

//! The image builders write valid, reproducible OCI layouts with the promised contents.
//!
//! Validity is checked twice: by a plain reading here (every blob's sha256 and size against
//! its descriptor, every diff_id against the decompressed layer) and, where installed, by
//! skopeo copying the layout (it verifies every digest on the way). Contents are checked
//! with GNU tar listings and with the independent reader `images::oracle`; expected values
//! come from the fixtures (the Debian status file, upstream checksums), never from the
//! scanner.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::Command;

use bulkhead_test_artifacts::images::{
    self, Compression, Image, LAYERED_OLD_LIBSSL3, MEDIA_INDEX, OciLayout, hostile, oracle,
    sha256_digest,
};
use bulkhead_test_artifacts::{fixture, require_tools, skopeo};
use serde_json::Value;
use sha2::{Digest, Sha512};

fn json(layout: &OciLayout, digest: &str) -> Value {
    serde_json::from_slice(&layout.read_blob(digest).expect("blob")).expect("JSON blob")
}

fn decompress(media_type: &str, blob: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if media_type.ends_with("+gzip") {
        flate2::read::MultiGzDecoder::new(blob)
            .read_to_end(&mut out)
            .expect("gunzip");
    } else if media_type.ends_with("+zstd") {
        zstd::stream::read::Decoder::new(blob)
            .expect("zstd")
            .read_to_end(&mut out)
            .expect("unzstd");
    } else {
        out = blob.to_vec();
    }
    out
}

/// Every blob reachable from `tag` matches its descriptor, and every diff_id its layer.
/// Returns the manifests checked (digest → manifest JSON).
fn check_layout(image: &Image) -> BTreeMap<String, Value> {
    let layout = image.open();
    let top = image.descriptor();
    let mut manifests = BTreeMap::new();
    let mut todo = vec![(top.digest.clone(), top.size)];
    while let Some((digest, size)) = todo.pop() {
        let blob = layout.read_blob(&digest).expect("manifest blob");
        assert_eq!(sha256_digest(&blob), digest, "manifest digest");
        assert_eq!(blob.len() as u64, size, "manifest size");
        let m: Value = serde_json::from_slice(&blob).expect("manifest JSON");
        if m["mediaType"] == MEDIA_INDEX {
            for child in m["manifests"].as_array().expect("manifests") {
                todo.push((
                    child["digest"].as_str().expect("digest").into(),
                    child["size"].as_u64().expect("size"),
                ));
            }
            continue;
        }
        let config_digest = m["config"]["digest"].as_str().expect("config digest");
        let config_blob = layout.read_blob(config_digest).expect("config");
        assert_eq!(sha256_digest(&config_blob), config_digest);
        assert_eq!(
            config_blob.len() as u64,
            m["config"]["size"].as_u64().expect("size")
        );
        let config: Value = serde_json::from_slice(&config_blob).expect("config JSON");
        let layers = m["layers"].as_array().expect("layers");
        let diff_ids = config["rootfs"]["diff_ids"].as_array().expect("diff_ids");
        let history = config["history"].as_array().expect("history");
        assert_eq!(layers.len(), diff_ids.len());
        assert_eq!(layers.len(), history.len());
        for ((layer, diff_id), h) in layers.iter().zip(diff_ids).zip(history) {
            let digest = layer["digest"].as_str().expect("layer digest");
            let blob = layout.read_blob(digest).expect("layer blob");
            assert_eq!(sha256_digest(&blob), digest, "layer digest");
            assert_eq!(blob.len() as u64, layer["size"].as_u64().expect("size"));
            let tar = decompress(layer["mediaType"].as_str().expect("media type"), &blob);
            assert_eq!(
                sha256_digest(&tar),
                diff_id.as_str().expect("diff_id"),
                "diff_id of {digest}"
            );
            assert!(!h["created_by"].as_str().expect("created_by").is_empty());
        }
        manifests.insert(digest, m);
    }
    manifests
}

/// skopeo reads the layout and verifies every digest while copying it to a `dir:`.
fn skopeo_verifies(image: &Image) -> Result<(), String> {
    let dest = tempfile::tempdir().expect("temp dir");
    let mut args = vec!["copy".to_string()];
    if skopeo_index(image) {
        args.push("--all".into());
    }
    args.push(image.oci_ref());
    args.push(format!("dir:{}", dest.path().display()));
    let out = skopeo::run(&args).expect("run skopeo");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn skopeo_index(image: &Image) -> bool {
    image.descriptor().media_type == MEDIA_INDEX
}

/// `tar -t` of a layer blob by GNU tar (an independent tar reader).
fn gnu_tar_list(layout: &Path, digest: &str, media_type: &str) -> Vec<String> {
    let blob = OciLayout::open(layout).blob_path(digest);
    let flag = if media_type.ends_with("+gzip") {
        "-z"
    } else {
        "--no-auto-compress"
    };
    let out = Command::new("tar")
        .args(["-t", flag, "-f"])
        .arg(&blob)
        .output()
        .expect("run tar");
    assert!(
        out.status.success(),
        "tar -t: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn single_manifest(image: &Image) -> Value {
    let layout = image.open();
    json(&layout, &image.descriptor().digest)
}

fn layer_digests(image: &Image) -> Vec<(String, String)> {
    single_manifest(image)["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| {
            (
                l["digest"].as_str().expect("d").into(),
                l["mediaType"].as_str().expect("m").into(),
            )
        })
        .collect()
}

#[test]
fn alpine_fixtures_match_the_upstream_checksums() {
    // From alpinelinux/docker-alpine's checksums.sha512 (branches v3.12 and v3.20).
    for (file, sha512) in [
        (
            "alpine-minirootfs-3.12.12-x86_64.tar.gz",
            "a90e4dd29020885422e45f056f29110154d7656848cd35c3e7a21d8295291480007f32c6c9787efdd387c66f298f67b8441ba998b40c39846427615120684bf3",
        ),
        (
            "alpine-minirootfs-3.20.3-x86_64.tar.gz",
            "9d5405f61f8a6ebc02461ba75346fbf1a63a4eab8510a0158dd321cee0c4dafe28c2a3d2cb7c3d75e2a8130dae0c3c92382f5b6adeea309eafc97621c5bf6400",
        ),
    ] {
        let data = std::fs::read(fixture(&format!("images/{file}"))).expect("fixture");
        assert_eq!(hex::encode(Sha512::digest(&data)), sha512, "{file}");
    }
}

#[test]
fn alpine_uses_the_upstream_tarball_as_its_layer() {
    for (version, file) in [
        ("3.20", "alpine-minirootfs-3.20.3-x86_64.tar.gz"),
        ("3.12", "alpine-minirootfs-3.12.12-x86_64.tar.gz"),
    ] {
        let image = images::alpine(version);
        check_layout(&image);
        let layers = layer_digests(&image);
        assert_eq!(layers.len(), 1);
        let upstream = std::fs::read(fixture(&format!("images/{file}"))).expect("fixture");
        assert_eq!(
            image.open().read_blob(&layers[0].0).expect("blob"),
            upstream,
            "blob is the tarball as is"
        );
        let listing = gnu_tar_list(&image.layout, &layers[0].0, &layers[0].1);
        assert!(
            listing.iter().any(|l| l == "./lib/apk/db/installed"),
            "{listing:?}"
        );
        let expected = image.expected.clone().expect("expected list");
        assert!(expected.ends_with(format!("apk/alpine-{version}/expected-packages.tsv")));
        // The packages of the expected list are the ones in the layer's apk database.
        let merged = oracle::merged(&image.layout, &image.tag, "amd64").expect("merge");
        let db = String::from_utf8_lossy(merged.read("lib/apk/db/installed").expect("apk db"))
            .into_owned();
        let in_db: std::collections::BTreeSet<&str> =
            db.lines().filter_map(|l| l.strip_prefix("P:")).collect();
        let tsv = std::fs::read_to_string(&expected).expect("expected list");
        let listed: std::collections::BTreeSet<&str> =
            tsv.lines().filter_map(|l| l.split('\t').next()).collect();
        assert_eq!(in_db, listed, "Alpine {version}");
    }
    let zstd = images::alpine_with("3.20", Compression::Zstd);
    check_layout(&zstd);
    assert_eq!(layer_digests(&zstd)[0].1, Compression::Zstd.media_type());
}

#[test]
fn debian_minbase_carries_the_fixture_database() {
    let image = images::debian_minbase();
    check_layout(&image);
    let merged = oracle::merged(&image.layout, &image.tag, "amd64").expect("merge");
    let root = fixture("dpkg/debian-bookworm-minbase");
    let status = std::fs::read(root.join("var/lib/dpkg/status")).expect("status");
    assert_eq!(merged.read("var/lib/dpkg/status"), Some(&status[..]));
    assert_eq!(
        merged.read("etc/os-release"),
        Some(&std::fs::read(root.join("usr/lib/os-release")).expect("os-release")[..]),
        "etc/os-release resolves through its symlink"
    );
    let lists = std::fs::read_dir(root.join("var/lib/dpkg/info"))
        .expect("info")
        .count();
    assert_eq!(merged.list("var/lib/dpkg/info").len(), lists);
    assert!(!merged.contains("expected-packages.dpkg-query.tsv"));
    // dpkg-query's own list (the fixture oracle) names exactly the installed stanzas.
    let tsv = std::fs::read_to_string(image.expected.as_ref().expect("expected")).expect("tsv");
    let from_dpkg_query: BTreeMap<String, String> = tsv
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() >= 2).then(|| {
                (
                    f[0].split(':').next().unwrap_or(f[0]).to_string(),
                    f[1].to_string(),
                )
            })
        })
        .collect();
    assert_eq!(oracle::dpkg_installed(&status), from_dpkg_query);

    let zstd = images::debian_minbase_with(Compression::Zstd);
    check_layout(&zstd);
    let plain = images::debian_minbase_with(Compression::None);
    check_layout(&plain);
    let tar_blob = plain
        .open()
        .read_blob(&layer_digests(&plain)[0].0)
        .expect("blob");
    let zstd_blob = zstd
        .open()
        .read_blob(&layer_digests(&zstd)[0].0)
        .expect("blob");
    assert_eq!(
        decompress(Compression::Zstd.media_type(), &zstd_blob),
        tar_blob,
        "same tar, other compression"
    );
}

#[test]
fn builds_are_reproducible() {
    for (a, b) in [
        (images::layered(), images::layered()),
        (images::multi_platform(), images::multi_platform()),
        (
            images::debian_minbase_with(Compression::Zstd),
            images::debian_minbase_with(Compression::Zstd),
        ),
    ] {
        assert_eq!(a.descriptor(), b.descriptor());
    }
}

fn stanza_versions() -> BTreeMap<String, String> {
    let status =
        std::fs::read(fixture("dpkg/debian-bookworm-minbase/var/lib/dpkg/status")).expect("status");
    let all = oracle::dpkg_installed(&status);
    hostile::BAIT_PACKAGES
        .iter()
        .map(|p| (p.to_string(), all[*p].clone()))
        .collect()
}

fn check_layered(image: &Image) {
    check_layout(image);
    let merged = oracle::merged(&image.layout, &image.tag, "amd64").expect("merge");
    assert!(!merged.contains("opt/app/secret.txt"), "file whiteout");
    assert!(merged.contains("opt/app"), "the whiteout's directory stays");
    assert!(
        !merged.contains("usr/local/share/junk") && !merged.contains("usr/local/share/junk/x"),
        "dir whiteout"
    );
    assert_eq!(merged.list("opt/app/lib"), vec!["c.so"], "opaque directory");
    assert_eq!(
        merged.read("usr/local/bin/tool-alias"),
        merged.read("usr/local/bin/tool"),
        "hard link"
    );
    assert!(
        merged
            .read("etc/os-release")
            .is_some_and(|o| o.starts_with(b"PRETTY_NAME=\"Debian GNU/Linux 12"))
    );
    let packages = oracle::dpkg_installed(merged.read("var/lib/dpkg/status").expect("status"));
    assert_eq!(packages, stanza_versions(), "the upper status wins");
    assert_ne!(packages["libssl3"], LAYERED_OLD_LIBSSL3);
    // The lower layer really had the old version (the upgrade is visible in the layers).
    let layers = layer_digests(image);
    let l1 = decompress(
        &layers[0].1,
        &image.open().read_blob(&layers[0].0).expect("blob"),
    );
    let l1_text = String::from_utf8_lossy(&l1);
    assert!(
        l1_text.contains("Package: libssl3\n")
            && l1_text.contains(&format!("Version: {LAYERED_OLD_LIBSSL3}\n"))
    );
}

#[test]
fn layered_merges_whiteouts_opaque_dirs_and_the_status_upgrade() {
    let image = images::layered();
    check_layered(&image);
    let layers = layer_digests(&image);
    assert_eq!(layers.len(), 4);
    // GNU tar sees the whiteout markers as plain entries.
    let l2 = gnu_tar_list(&image.layout, &layers[1].0, &layers[1].1);
    assert_eq!(
        l2,
        vec!["opt/app/.wh.secret.txt", "usr/local/share/.wh.junk"]
    );
    let l3 = gnu_tar_list(&image.layout, &layers[2].0, &layers[2].1);
    assert_eq!(
        l3,
        vec![
            "opt/app/lib",
            "opt/app/lib/.wh..wh..opq",
            "opt/app/lib/c.so"
        ]
    );

    let mixed = images::layered_mixed();
    check_layered(&mixed);
    let kinds: Vec<String> = layer_digests(&mixed).into_iter().map(|(_, m)| m).collect();
    assert_eq!(
        kinds,
        [
            Compression::Gzip,
            Compression::Zstd,
            Compression::None,
            Compression::Zstd
        ]
        .map(|c| c.media_type().to_string())
    );
    check_layered(&images::layered_with(Compression::Zstd));
}

#[test]
fn multi_platform_index_has_amd64_and_arm64() {
    let image = images::multi_platform();
    let manifests = check_layout(&image);
    assert_eq!(manifests.len(), 2);
    let index = json(&image.open(), &image.descriptor().digest);
    let platforms: Vec<(String, Option<String>)> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| {
            (
                m["platform"]["architecture"].as_str().expect("arch").into(),
                m["platform"]["variant"].as_str().map(str::to_string),
            )
        })
        .collect();
    assert_eq!(
        platforms,
        vec![("amd64".into(), None), ("arm64".into(), Some("v8".into()))]
    );
    let fixture_status =
        std::fs::read(fixture("dpkg/debian-bookworm-minbase/var/lib/dpkg/status")).expect("status");
    let amd64 = oracle::merged(&image.layout, "latest", "amd64").expect("amd64");
    assert_eq!(amd64.read("var/lib/dpkg/status"), Some(&fixture_status[..]));
    let arm64 = oracle::merged(&image.layout, "latest", "arm64").expect("arm64");
    let arm_status =
        String::from_utf8_lossy(arm64.read("var/lib/dpkg/status").expect("status")).into_owned();
    assert!(!arm_status.contains("Architecture: amd64"));
    assert_eq!(
        arm_status.matches("Architecture: arm64").count(),
        String::from_utf8_lossy(&fixture_status)
            .matches("Architecture: amd64")
            .count()
    );
    check_layout(&images::multi_platform_with(Compression::Zstd));
}

#[test]
fn skopeo_accepts_every_pushable_layout() {
    if !require_tools(&["skopeo"]) {
        return;
    }
    let images = [
        images::alpine("3.12"),
        images::alpine_with("3.20", Compression::Zstd),
        images::debian_minbase(),
        images::layered_mixed(),
        images::multi_platform(),
        hostile::path_traversal(),
        hostile::symlink_escape_dir(),
        hostile::hardlink_escape(),
        hostile::truncated_gzip(),
        hostile::special_files_in_place(),
        hostile::weird_names(),
    ];
    for image in &images {
        if let Err(e) = skopeo_verifies(image) {
            panic!("skopeo rejects {}: {e}", image.oci_ref());
        }
    }
    // ...and notices the tampered blob.
    let tampered = hostile::digest_mismatch();
    let err = skopeo_verifies(&tampered)
        .expect_err("skopeo must reject a blob that does not match its digest");
    assert!(err.to_lowercase().contains("digest"), "{err}");
}

/// The raw entry names of a layer, as bytes (GNU tar would rewrite some of them).
fn raw_names(image: &Image, layer: usize) -> Vec<Vec<u8>> {
    let (digest, media_type) = layer_digests(image)[layer].clone();
    let tar = decompress(&media_type, &image.open().read_blob(&digest).expect("blob"));
    let mut names = Vec::new();
    let mut archive = tar::Archive::new(&tar[..]);
    for e in archive.entries().expect("entries") {
        names.push(e.expect("entry").path_bytes().into_owned());
    }
    names
}

#[test]
fn hostile_layers_hold_exactly_the_hostile_names() {
    let traversal = hostile::path_traversal();
    check_layout(&traversal);
    let names = raw_names(&traversal, 1);
    assert!(names.contains(&b"../../etc/passwd-bulkhead-test".to_vec()));
    assert!(
        names
            .iter()
            .any(|n| n.ends_with(b"tmp/bulkhead-test-traversal") && n.starts_with(b"../../../../"))
    );
    let absolute = hostile::absolute_names();
    let names = raw_names(&absolute, 1);
    assert!(names.contains(&b"/tmp/bulkhead-test-absolute".to_vec()));
    assert!(names.contains(&b"//tmp/bulkhead-test-double-slash".to_vec()));
    let weird = hostile::weird_names();
    let names = raw_names(&weird, 1);
    assert!(names.contains(&b"etc/bulkhead\nnewline".to_vec()));
    assert!(names.contains(&b"usr/share/bulkhead-\xff\xfe-invalid-utf8".to_vec()));
    assert!(
        names.iter().any(|n| n.len() > 100),
        "a name that needs the ustar prefix"
    );
    for canary in hostile::CANARIES {
        assert!(canary.starts_with('/'), "{canary}");
    }

    // The bait is a real status in every image.
    let merged = oracle::merged(&absolute.layout, "latest", "amd64").expect("merge");
    let packages = oracle::dpkg_installed(merged.read("var/lib/dpkg/status").expect("status"));
    assert_eq!(packages, stanza_versions());

    // Links point where they say.
    let file_links = hostile::symlink_escape_file();
    let (digest, media_type) = layer_digests(&file_links)[1].clone();
    let tar = decompress(
        &media_type,
        &file_links.open().read_blob(&digest).expect("blob"),
    );
    let mut links = BTreeMap::new();
    for e in tar::Archive::new(&tar[..]).entries().expect("entries") {
        let e = e.expect("entry");
        if let Some(l) = e.link_name_bytes() {
            links.insert(
                String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                l.into_owned(),
            );
        }
    }
    assert_eq!(links["var/lib/dpkg/status"], b"/etc/passwd".to_vec());
    let hard = hostile::hardlink_escape();
    check_layout(&hard);
    let (digest, media_type) = layer_digests(&hard)[1].clone();
    let tar = decompress(&media_type, &hard.open().read_blob(&digest).expect("blob"));
    let mut archive = tar::Archive::new(&tar[..]);
    let first = archive
        .entries()
        .expect("entries")
        .next()
        .expect("entry")
        .expect("entry");
    assert_eq!(first.header().entry_type(), tar::EntryType::Link);
    assert_eq!(
        first.link_name_bytes().expect("link").as_ref(),
        b"/etc/passwd"
    );

    for image in [
        hostile::special_files(),
        hostile::special_files_in_place(),
        hostile::symlink_loops(),
    ] {
        check_layout(&image);
    }
}

#[test]
fn broken_layers_are_broken_the_promised_way() {
    // Truncated tar inside valid gzip: GNU tar fails, the gzip stream is fine.
    let image = hostile::truncated_tar();
    check_layout(&image);
    let (digest, _) = layer_digests(&image)[1].clone();
    let blob = image.open().blob_path(&digest);
    let gzip_t = Command::new("gzip")
        .arg("-t")
        .arg(&blob)
        .status()
        .expect("gzip");
    assert!(gzip_t.success(), "the gzip stream is valid");
    let tar_t = Command::new("tar")
        .args(["-t", "-z", "-f"])
        .arg(&blob)
        .output()
        .expect("tar");
    assert!(!tar_t.status.success(), "GNU tar must reject the cut tar");

    // Truncated gzip: digest fine (check_layout would decompress, so check by hand).
    let image = hostile::truncated_gzip();
    let (digest, _) = layer_digests(&image)[1].clone();
    let blob = image.open().read_blob(&digest).expect("blob");
    assert_eq!(sha256_digest(&blob), digest);
    let mut out = Vec::new();
    assert!(
        flate2::read::GzDecoder::new(&blob[..])
            .read_to_end(&mut out)
            .is_err()
    );
    let path = image.open().blob_path(&digest);
    assert!(
        !Command::new("gzip")
            .arg("-t")
            .arg(&path)
            .status()
            .expect("gzip")
            .success()
    );

    // No end-of-archive: every entry is there, GNU tar complains.
    let image = hostile::tar_without_footer();
    check_layout(&image);
    let (digest, media_type) = layer_digests(&image)[1].clone();
    let tar = decompress(&media_type, &image.open().read_blob(&digest).expect("blob"));
    assert_eq!(tar.len() % 512, 0);
    assert!(
        tar[tar.len() - 512..].iter().any(|b| *b != 0),
        "last block is data, not a footer"
    );

    // Digest mismatch: exactly the tampered layer fails its digest.
    let image = hostile::digest_mismatch();
    let layers = layer_digests(&image);
    let bad: Vec<bool> = layers
        .iter()
        .map(|(d, _)| sha256_digest(&image.open().read_blob(d).expect("blob")) != *d)
        .collect();
    assert_eq!(bad, vec![false, true]);
    let tampered =
        String::from_utf8_lossy(&image.open().read_blob(&layers[1].0).expect("blob")).into_owned();
    let real = &stanza_versions()["libssl3"];
    assert!(!tampered.contains(&format!("Version: {real}\n")));
}

#[test]
fn bombs_are_small_and_inflate_to_the_announced_size() {
    // A 64 MiB bomb checked by the gzip and zstd tools themselves.
    let size = 64 << 20;
    let gz = hostile::gzip_bomb(size);
    check_layout(&gz);
    let (digest, _) = layer_digests(&gz)[1].clone();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "gzip -dc '{}' | wc -c",
            gz.open().blob_path(&digest).display()
        ))
        .output()
        .expect("gzip");
    let inflated: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("wc -c");
    assert_eq!(inflated, 512 + size + 1024);
    let zs = hostile::zstd_bomb(size);
    check_layout(&zs);
    // The zstd CLI is an optional second opinion (the zstd crate already decoded it above).
    if bulkhead_test_artifacts::find_program("zstd").is_some() {
        let (digest, _) = layer_digests(&zs)[1].clone();
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "zstd -dc '{}' | wc -c",
                zs.open().blob_path(&digest).display()
            ))
            .output()
            .expect("zstd");
        let inflated: u64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("wc -c");
        assert_eq!(inflated, 512 + size + 1024);
    }

    // The real 10 GiB ones: built quickly, a few MB on disk, the announced size in the
    // header (not inflated here: that is the scanner's test).
    let started = std::time::Instant::now();
    let big = hostile::gzip_bomb(hostile::BOMB_SIZE);
    let (digest, _) = layer_digests(&big)[1].clone();
    let blob_len = std::fs::metadata(big.open().blob_path(&digest))
        .expect("blob")
        .len();
    assert!(blob_len < 16 << 20, "{blob_len} bytes");
    let mut head = [0u8; 1024];
    let blob = std::fs::File::open(big.open().blob_path(&digest)).expect("blob");
    flate2::read::GzDecoder::new(blob)
        .read_exact(&mut head)
        .expect("head");
    assert_eq!(
        tar::Header::from_byte_slice(&head[..512])
            .size()
            .expect("size"),
        hostile::BOMB_SIZE
    );
    let zbig = hostile::zstd_bomb(hostile::BOMB_SIZE);
    let (digest, _) = layer_digests(&zbig)[1].clone();
    assert!(
        std::fs::metadata(zbig.open().blob_path(&digest))
            .expect("blob")
            .len()
            < 1 << 20
    );
    assert!(
        started.elapsed().as_secs() < 60,
        "bombs took {:?}",
        started.elapsed()
    );
}

#[test]
fn many_entries_has_that_many_entries() {
    let image = hostile::many_entries(20_000);
    check_layout(&image);
    let (digest, media_type) = layer_digests(&image)[1].clone();
    let listing = gnu_tar_list(&image.layout, &digest, &media_type);
    assert_eq!(
        listing.len(),
        20_000 + 20,
        "files plus one directory per thousand"
    );
}

#[test]
fn single_layer_from_dir_keeps_files_dirs_and_symlinks() {
    let tree = tempfile::tempdir().expect("tree");
    let root = tree.path();
    std::fs::create_dir_all(root.join("usr/bin")).expect("mkdir");
    std::fs::write(root.join("usr/bin/tool"), b"#!/bin/sh\n").expect("write");
    std::fs::set_permissions(
        root.join("usr/bin/tool"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod");
    std::fs::write(root.join("usr/data"), b"data\n").expect("write");
    std::os::unix::fs::symlink("../data", root.join("usr/bin/link")).expect("symlink");
    let out = tempfile::tempdir().expect("out");
    let layout = out.path().join("layout");
    let desc = images::single_layer_from_dir(root, &layout, "test").expect("build");
    assert_eq!(OciLayout::open(&layout).resolve("test").expect("tag"), desc);

    let merged = oracle::merged(&layout, "test", "amd64").expect("merge");
    assert_eq!(merged.read("usr/bin/link"), Some(&b"data\n"[..]));
    assert_eq!(
        merged.entries["usr/bin/link"],
        oracle::Node::Symlink("../data".into())
    );
    let manifest = json(&OciLayout::open(&layout), &desc.digest);
    let digest = manifest["layers"][0]["digest"].as_str().expect("digest");
    let out = Command::new("tar")
        .args(["-tvzf"])
        .arg(OciLayout::open(&layout).blob_path(digest))
        .output()
        .expect("tar");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("-rwxr-xr-x") && l.ends_with("usr/bin/tool")),
        "{listing}"
    );
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("lrwxrwxrwx") && l.ends_with("usr/bin/link -> ../data")),
        "{listing}"
    );

    // Same tree, same digest.
    let again = tempfile::tempdir().expect("again");
    let desc2 =
        images::single_layer_from_dir(root, &again.path().join("layout"), "test").expect("build");
    assert_eq!(desc, desc2);
}

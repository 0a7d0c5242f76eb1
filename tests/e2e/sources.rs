//! Image sources against real inputs: the OCI layout and `docker save` archives of
//! `tests/fixtures/images/` (see its SOURCES.md), a real registry (`docker-registry`,
//! the CNCF distribution server, filled by `skopeo`), and a scripted fake registry for
//! the failures a real one will not produce on demand (5xx, 429, lies).
//!
//! Expected values come from the fixtures themselves (digests in file names, `sha256sum`
//! of the files, `tar tv` sizes), from `skopeo inspect --raw`, or are computed here with
//! sha2 over bytes the test wrote; never from the code under test.
//!
//! The registry tests need `docker-registry` and `skopeo` (Debian packages of the same
//! names). Without them they print why and pass, unless `CI` is set: in CI they must run.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulkhead_scan::source::auth::Credential;
use bulkhead_scan::source::{
    self, BlobSource, Compression, Image, LayerDesc, Platform, ResolveOptions, Source, SourceError,
};
use bulkhead_test_artifacts::require_tools;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

// ---------------------------------------------------------------------------------------
// helpers

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/images")
        .join(rel)
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn platform(s: &str) -> Platform {
    s.parse().expect("valid platform")
}

async fn resolve(
    reference: &str,
    opts: &ResolveOptions,
) -> Result<(Image, Arc<dyn BlobSource>), SourceError> {
    let source = Source::parse(reference).expect("reference parses");
    source::resolve(&source, opts).await
}

async fn resolve_ok(reference: &str, opts: &ResolveOptions) -> (Image, Arc<dyn BlobSource>) {
    match resolve(reference, opts).await {
        Ok(r) => r,
        Err(e) => panic!("{reference}: {e}"),
    }
}

async fn resolve_err(reference: &str, opts: &ResolveOptions) -> SourceError {
    match resolve(reference, opts).await {
        Ok((image, _)) => panic!("{reference} resolved but must fail: {image:?}"),
        Err(e) => e,
    }
}

async fn read_blob(blobs: &Arc<dyn BlobSource>, layer: &LayerDesc) -> Vec<u8> {
    let mut stream = blobs
        .open(layer)
        .await
        .unwrap_or_else(|e| panic!("open {}: {e}", layer.digest));
    let mut bytes = Vec::new();
    stream
        .read_to_end(&mut bytes)
        .await
        .unwrap_or_else(|e| panic!("read {}: {e}", layer.digest));
    bytes
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("gunzip");
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

/// The image in `tests/fixtures/images/test.oci`: values read from its blobs
/// (`index.json` → manifest afb74487… → config b23a8f65…, one gzip layer).
fn test_oci_image(reference: &str) -> Image {
    Image {
        reference: reference.to_string(),
        manifest_digest: Some("sha256:afb744871f99e0ff8e6f253244836ed34c5d805fdb096d3a205ffaf5e9073cab".into()),
        config_digest: "sha256:b23a8f6569ae9ae331226205fa72f480ce5310707d0bc97e611f83fbbbde4604".into(),
        platform: Some(platform("linux/amd64")),
        layers: vec![LayerDesc {
            digest: "sha256:cdd16bd695eda2819e7637648f573c2ca64896c4f7bff9732ac9db734ca3bc2c".into(),
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            size: 2610,
            diff_id: "sha256:9c27e219663c25e0f28493790cc0b88bc973ba3b1686355f221c38a36978ac63".into(),
            compression: Compression::Gzip,
            created_by: Some(
                "/bin/sh -c #(nop) COPY file:7bf12aab75c3867a023fe3b8bd6d113d43a4fcc415f3cc27cbcf0fff37b65a02 in / ".into(),
            ),
            foreign: false,
        }],
    }
}

/// Check that every layer's blob has the layer's digest, and decompresses to its diff_id.
async fn check_layer_bytes(image: &Image, blobs: &Arc<dyn BlobSource>) {
    for layer in image.layers.iter().rev() {
        let raw = read_blob(blobs, layer).await;
        assert_eq!(raw.len() as u64, layer.size, "{}", layer.digest);
        assert_eq!(sha256(&raw), layer.digest);
        let tar = match layer.compression {
            Compression::Gzip => gunzip(&raw),
            Compression::None => raw,
            Compression::Zstd => zstd::decode_all(raw.as_slice()).expect("zstd"),
        };
        assert_eq!(sha256(&tar), layer.diff_id);
    }
}

fn write_blob(layout: &Path, bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    let hex = digest.trim_start_matches("sha256:");
    std::fs::write(layout.join("blobs/sha256").join(hex), bytes).expect("write blob");
    digest
}

/// A two-platform OCI layout built from test.oci: tag `multi` → index blob →
/// linux/amd64 (the fixture's manifest) and linux/arm64/v8 (the same image with an
/// annotation, so another digest). Returns (amd64 manifest, arm64 manifest) digests.
fn multi_platform_layout(dir: &Path) -> (String, String) {
    bulkhead_test_artifacts::copy_dir(&fixture("test.oci"), dir);
    let amd64 = std::fs::read(
        dir.join("blobs/sha256/afb744871f99e0ff8e6f253244836ed34c5d805fdb096d3a205ffaf5e9073cab"),
    )
    .expect("fixture manifest");
    let amd64_digest = sha256(&amd64);
    let mut arm64: serde_json::Value = serde_json::from_slice(&amd64).expect("json");
    arm64["mediaType"] = "application/vnd.oci.image.manifest.v1+json".into();
    arm64["annotations"] = serde_json::json!({"org.example.platform": "arm64"});
    let arm64 = serde_json::to_vec(&arm64).expect("json");
    let arm64_digest = write_blob(dir, &arm64);
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd64_digest, "size": amd64.len(),
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm64_digest, "size": arm64.len(),
             "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}}
        ]
    }))
    .expect("json");
    let index_digest = write_blob(dir, &index);
    let top = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": index_digest,
                       "size": index.len(), "annotations": {"org.opencontainers.image.ref.name": "multi"}}]
    });
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&top).expect("json"),
    )
    .expect("write");
    (amd64_digest, arm64_digest)
}

// ---------------------------------------------------------------------------------------
// oci: layouts

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_layout_fixture_resolves_and_streams_verified_layers() {
    let reference = format!("oci:{}", fixture("test.oci").display());
    let (image, blobs) = resolve_ok(&reference, &ResolveOptions::default()).await;
    assert_eq!(image, test_oci_image(&reference));
    check_layer_bytes(&image, &blobs).await;

    // The fixture's only manifest has no ref.name: any tag is missing.
    let e = resolve_err(&format!("{reference}:latest"), &ResolveOptions::default()).await;
    assert!(matches!(e, SourceError::NotFound { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_layout_nested_index_selects_the_platform() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (amd64, arm64) = multi_platform_layout(tmp.path());
    let reference = format!("oci:{}:multi", tmp.path().display());

    let opts = ResolveOptions {
        platform: platform("linux/arm64"),
        ..Default::default()
    };
    let (image, _) = resolve_ok(&reference, &opts).await;
    assert_eq!(image.manifest_digest.as_deref(), Some(arm64.as_str()));

    let opts = ResolveOptions {
        platform: platform("linux/amd64"),
        ..Default::default()
    };
    let (image, blobs) = resolve_ok(&reference, &opts).await;
    assert_eq!(image.manifest_digest.as_deref(), Some(amd64.as_str()));
    check_layer_bytes(&image, &blobs).await;

    let opts = ResolveOptions {
        platform: platform("linux/s390x"),
        ..Default::default()
    };
    match resolve_err(&reference, &opts).await {
        SourceError::PlatformMissing {
            requested,
            available,
            ..
        } => {
            assert_eq!(requested, "linux/s390x");
            assert_eq!(available, ["linux/amd64", "linux/arm64/v8"]);
        }
        e => panic!("expected PlatformMissing, got {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_layout_tampering_is_detected() {
    let opts = ResolveOptions::default();
    let config = "blobs/sha256/b23a8f6569ae9ae331226205fa72f480ce5310707d0bc97e611f83fbbbde4604";

    // A config blob whose bytes no longer match its digest (same length).
    let tmp = tempfile::tempdir().expect("tempdir");
    bulkhead_test_artifacts::copy_dir(&fixture("test.oci"), tmp.path());
    let mut bytes = std::fs::read(tmp.path().join(config)).expect("read");
    let at = bytes.iter().position(|b| *b == b'5').expect("a digit");
    bytes[at] = b'6';
    std::fs::write(tmp.path().join(config), &bytes).expect("write");
    let e = resolve_err(&format!("oci:{}", tmp.path().display()), &opts).await;
    assert!(matches!(e, SourceError::DigestMismatch { .. }), "{e}");
    assert!(e.to_string().contains("b23a8f65"), "names the blob: {e}");

    // A digest that would walk out of blobs/.
    let tmp = tempfile::tempdir().expect("tempdir");
    bulkhead_test_artifacts::copy_dir(&fixture("test.oci"), tmp.path());
    std::fs::write(
        tmp.path().join("index.json"),
        r#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:../../../../etc/passwd","size":10}]}"#,
    )
    .expect("write");
    let e = resolve_err(&format!("oci:{}", tmp.path().display()), &opts).await;
    assert!(
        matches!(e, SourceError::Invalid { .. }) && e.to_string().contains("unsupported digest"),
        "{e}"
    );

    // A descriptor claiming a config larger than the limit is refused before reading.
    let small = ResolveOptions {
        registry: bulkhead_scan::source::RegistryLimits {
            max_manifest_bytes: 500,
            ..Default::default()
        },
        ..Default::default()
    };
    let e = resolve_err(&format!("oci:{}", fixture("test.oci").display()), &small).await;
    assert!(matches!(e, SourceError::TooLarge { .. }), "{e}");

    // Two untagged images: ambiguous, and the message lists them.
    let tmp = tempfile::tempdir().expect("tempdir");
    multi_platform_layout(tmp.path());
    let index = std::fs::read_to_string(tmp.path().join("index.json")).expect("read");
    let mut v: serde_json::Value = serde_json::from_str(&index).expect("json");
    let entry = v["manifests"][0].clone();
    let mut second = entry.clone();
    second["annotations"] = serde_json::json!({});
    v["manifests"] = serde_json::json!([entry, second]);
    std::fs::write(tmp.path().join("index.json"), v.to_string()).expect("write");
    let e = resolve_err(&format!("oci:{}", tmp.path().display()), &opts).await;
    assert!(
        e.to_string().contains("multi") && e.to_string().contains("untagged"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------
// docker-archive:

/// alpine-311.tar.gz: config a187dde4….json (its name is its sha256, as `sha256sum`
/// confirms), one uncompressed layer.tar of 5861888 bytes (`tar tv`) whose sha256 is the
/// config's diff_id beee9f30….
fn alpine_311(reference: &str) -> Image {
    Image {
        reference: reference.to_string(),
        manifest_digest: None,
        config_digest: "sha256:a187dde48cd289ac374ad8539930628314bc581a481cdb41409c9289419ddb72".into(),
        platform: Some(platform("linux/amd64")),
        layers: vec![LayerDesc {
            digest: "sha256:beee9f30bc1f711043e78d4a2be0668955d4b761d587d6f60c2c8dc081efb203".into(),
            media_type: "application/vnd.docker.image.rootfs.diff.tar".into(),
            size: 5861888,
            diff_id: "sha256:beee9f30bc1f711043e78d4a2be0668955d4b761d587d6f60c2c8dc081efb203".into(),
            compression: Compression::None,
            created_by: Some(
                "/bin/sh -c #(nop) ADD file:0c4555f363c2672e350001f1293e689875a3760afe7b3f9146886afe67121cba in / ".into(),
            ),
            foreign: false,
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_archive_gzipped_alpine() {
    let reference = format!("docker-archive:{}", fixture("alpine-311.tar.gz").display());
    let (image, blobs) = resolve_ok(&reference, &ResolveOptions::default()).await;
    assert_eq!(image, alpine_311(&reference));
    check_layer_bytes(&image, &blobs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_archive_plain_alpine_seeks_to_the_layer() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let plain = tmp.path().join("alpine-311.tar");
    std::fs::write(
        &plain,
        gunzip(&std::fs::read(fixture("alpine-311.tar.gz")).expect("read")),
    )
    .expect("write");
    let reference = format!("docker-archive:{}", plain.display());
    let (image, blobs) = resolve_ok(&reference, &ResolveOptions::default()).await;
    assert_eq!(image, alpine_311(&reference));
    check_layer_bytes(&image, &blobs).await;
}

/// scalibr-basic.tar: a plain two-layer BuildKit `docker save`; sizes from `tar tv`,
/// diff_ids from its config, equal to `sha256sum` of each layer.tar.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_archive_plain_two_layers() {
    let reference = format!("docker-archive:{}", fixture("scalibr-basic.tar").display());
    let (image, blobs) = resolve_ok(&reference, &ResolveOptions::default()).await;
    assert_eq!(
        image.config_digest,
        "sha256:f3a1c7b396f625e53458889d153ef95f46b06aecd0a1ee2355269364ce2e36d3"
    );
    let got: Vec<(&str, u64, &str, Option<&str>)> = image
        .layers
        .iter()
        .map(|l| {
            (
                l.digest.as_str(),
                l.size,
                l.diff_id.as_str(),
                l.created_by.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "sha256:692175d34af9d88c4ecc3760e4aa93fa49fe7c1f437d28295186d9700f4a2df2",
                2048,
                "sha256:692175d34af9d88c4ecc3760e4aa93fa49fe7c1f437d28295186d9700f4a2df2",
                Some("COPY sample.txt / # buildkit")
            ),
            (
                "sha256:8bd9f5d15b63e2048bdbc5f19ed6d123fc60070d4aae773d46deb1dab5dc46f3",
                8704,
                "sha256:8bd9f5d15b63e2048bdbc5f19ed6d123fc60070d4aae773d46deb1dab5dc46f3",
                Some("COPY larger-sample.txt / # buildkit")
            ),
        ]
    );
    check_layer_bytes(&image, &blobs).await;
}

/// An error about the archive file `name` names it and says `needle`.
fn names_and_says(e: &SourceError, name: &str, needle: &str) {
    let text = e.to_string();
    assert!(
        text.contains(name),
        "{name}: the error names the archive: {text}"
    );
    assert!(
        text.contains(needle),
        "{name}: expected {needle:?} in {text}"
    );
}

/// A tar archive from (path, contents) pairs, or symlinks when contents is `Err(target)`.
fn tar_of(entries: &[(&str, Result<Vec<u8>, &str>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        match data {
            Ok(bytes) => {
                h.set_size(bytes.len() as u64);
                h.set_entry_type(tar::EntryType::Regular);
                b.append_data(&mut h, path, bytes.as_slice())
                    .expect("append");
            }
            Err(target) => {
                h.set_size(0);
                h.set_entry_type(tar::EntryType::Symlink);
                b.append_link(&mut h, path, target).expect("append link");
            }
        }
    }
    b.into_inner().expect("tar")
}

fn config_json(diff_ids: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "arm64", "os": "linux", "variant": "v8",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": diff_ids.iter().enumerate().map(|(i, _)| serde_json::json!({"created_by": format!("step {i}")})).collect::<Vec<_>>()
    }))
    .expect("json")
}

/// What a `docker save` of an image with a gzip layer that occurs twice looks like: the
/// second occurrence is a symlink to the first (legacy layout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_archive_gzip_layer_and_symlinked_duplicate() {
    let layer_tar = tar_of(&[("etc/hello", Ok(b"hello\n".to_vec()))]);
    let layer_gz = gzip(&layer_tar);
    let diff_id = sha256(&layer_tar);
    let config = config_json(&[&diff_id, &diff_id]);
    let config_name = format!("{}.json", sha256(&config).trim_start_matches("sha256:"));
    let manifest = serde_json::json!([{"Config": config_name, "RepoTags": ["x:1"], "Layers": ["aaa/layer.tar", "bbb/layer.tar"]}]);
    let archive = tar_of(&[
        ("aaa/layer.tar", Ok(layer_gz.clone())),
        ("bbb/layer.tar", Err("../aaa/layer.tar")),
        (&config_name, Ok(config.clone())),
        (
            "manifest.json",
            Ok(serde_json::to_vec(&manifest).expect("json")),
        ),
    ]);
    let tmp = tempfile::tempdir().expect("tempdir");
    for (name, bytes) in [("a.tar", archive.clone()), ("a.tar.gz", gzip(&archive))] {
        let path = tmp.path().join(name);
        std::fs::write(&path, &bytes).expect("write");
        let (image, blobs) = resolve_ok(
            &format!("docker-archive:{}", path.display()),
            &ResolveOptions::default(),
        )
        .await;
        assert_eq!(image.config_digest, sha256(&config));
        assert_eq!(image.platform, Some(platform("linux/arm64/v8")));
        assert_eq!(image.layers.len(), 2);
        for (i, l) in image.layers.iter().enumerate() {
            assert_eq!(
                l.digest,
                sha256(&layer_gz),
                "the gzip blob's own digest, not the diff_id"
            );
            assert_eq!(l.diff_id, diff_id);
            assert_eq!(l.compression, Compression::Gzip);
            assert_eq!(
                l.media_type,
                "application/vnd.docker.image.rootfs.diff.tar.gzip"
            );
            assert_eq!(l.size, layer_gz.len() as u64);
            assert_eq!(l.created_by.as_deref(), Some(format!("step {i}").as_str()));
        }
        check_layer_bytes(&image, &blobs).await;
    }
}

/// Docker 25+ saves an OCI layout plus manifest.json whose paths are blobs/sha256/<hex>.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_archive_blobs_layout() {
    let layer_tar = tar_of(&[("etc/os-release", Ok(b"ID=test\n".to_vec()))]);
    let layer_hex = sha256(&layer_tar).trim_start_matches("sha256:").to_string();
    let config = config_json(&[&sha256(&layer_tar)]);
    let config_hex = sha256(&config).trim_start_matches("sha256:").to_string();
    let manifest = serde_json::json!([{"Config": format!("blobs/sha256/{config_hex}"), "RepoTags": null,
        "Layers": [format!("blobs/sha256/{layer_hex}")]}]);
    let archive = tar_of(&[
        (&format!("blobs/sha256/{config_hex}"), Ok(config.clone())),
        (&format!("blobs/sha256/{layer_hex}"), Ok(layer_tar.clone())),
        (
            "manifest.json",
            Ok(serde_json::to_vec(&manifest).expect("json")),
        ),
    ]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("new.tar");
    std::fs::write(&path, &archive).expect("write");
    let (image, blobs) = resolve_ok(
        &format!("docker-archive:{}", path.display()),
        &ResolveOptions::default(),
    )
    .await;
    assert_eq!(image.config_digest, sha256(&config));
    assert_eq!(image.layers[0].digest, sha256(&layer_tar));
    check_layer_bytes(&image, &blobs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_archive_hostile_inputs_are_errors() {
    let opts = ResolveOptions::default();
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = |name: &str, bytes: Vec<u8>| {
        let path = tmp.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        format!("docker-archive:{}", path.display())
    };
    let layer_tar = tar_of(&[("etc/hello", Ok(b"hi\n".to_vec()))]);
    let diff_id = sha256(&layer_tar);
    let config = config_json(&[&diff_id]);
    let config_name = format!("{}.json", sha256(&config).trim_start_matches("sha256:"));
    let with_manifest = |manifest: serde_json::Value, extra: &[(&str, Result<Vec<u8>, &str>)]| {
        let mut entries: Vec<(&str, Result<Vec<u8>, &str>)> = vec![
            ("l/layer.tar", Ok(layer_tar.clone())),
            (&config_name, Ok(config.clone())),
        ];
        entries.extend(extra.iter().cloned());
        let m = serde_json::to_vec(&manifest).expect("json");
        entries.push(("manifest.json", Ok(m)));
        tar_of(&entries)
    };
    let alpine = std::fs::read(fixture("alpine-311.tar.gz")).expect("read");

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated.tar.gz",
            alpine[..alpine.len() / 2].to_vec(),
            "not a readable tar archive",
        ),
        (
            "garbage.tar",
            b"this is not a tar archive at all".repeat(40),
            "not a readable tar archive",
        ),
        ("empty.tar", Vec::new(), "manifest.json"),
        (
            "no-manifest.tar",
            tar_of(&[("l/layer.tar", Ok(layer_tar.clone()))]),
            "no manifest.json",
        ),
        (
            "missing-layer.tar",
            with_manifest(
                serde_json::json!([{"Config": config_name, "Layers": ["nope/layer.tar"]}]),
                &[],
            ),
            "nope/layer.tar",
        ),
        (
            "escaping-layer.tar",
            with_manifest(
                serde_json::json!([{"Config": config_name, "Layers": ["../../etc/passwd"]}]),
                &[],
            ),
            "../../etc/passwd",
        ),
        (
            "two-images.tar",
            with_manifest(
                serde_json::json!([{"Config": config_name, "RepoTags": ["a:1"], "Layers": ["l/layer.tar"]},
                                   {"Config": config_name, "RepoTags": ["b:2"], "Layers": ["l/layer.tar"]}]),
                &[],
            ),
            "a:1, b:2",
        ),
        (
            "count-mismatch.tar",
            with_manifest(
                serde_json::json!([{"Config": config_name, "Layers": ["l/layer.tar", "l/layer.tar"]}]),
                &[],
            ),
            "2 layers",
        ),
        (
            "symlink-loop.tar",
            with_manifest(
                serde_json::json!([{"Config": config_name, "Layers": ["x/layer.tar"]}]),
                &[
                    ("x/layer.tar", Err("../y/layer.tar")),
                    ("y/layer.tar", Err("../x/layer.tar")),
                ],
            ),
            "links",
        ),
        (
            "wrong-config-name.tar",
            {
                let other = format!("{}.json", "0".repeat(64));
                tar_of(&[
                    ("l/layer.tar", Ok(layer_tar.clone())),
                    (&other, Ok(config.clone())),
                    (
                        "manifest.json",
                        Ok(serde_json::to_vec(
                            &serde_json::json!([{"Config": other, "Layers": ["l/layer.tar"]}]),
                        )
                        .expect("json")),
                    ),
                ])
            },
            "digest mismatch",
        ),
    ];
    for (name, bytes, needle) in cases {
        let e = resolve_err(&run(name, bytes), &opts).await;
        names_and_says(&e, name, needle);
    }
    let e = resolve_err(
        &format!("docker-archive:{}", tmp.path().join("absent.tar").display()),
        &opts,
    )
    .await;
    assert!(matches!(e, SourceError::NotFound { .. }), "{e}");

    let few = ResolveOptions {
        max_layers: 1,
        ..Default::default()
    };
    let e = resolve_err(
        &run(
            "too-many.tar",
            with_manifest(serde_json::json!([{"Config": config_name, "Layers": ["l/layer.tar", "l/layer.tar"]}]), &[]),
        ),
        &few,
    )
    .await;
    assert!(matches!(e, SourceError::TooLarge { .. }), "{e}");
}

// ---------------------------------------------------------------------------------------
// oci-archive: and archive:

/// `skopeo copy --preserve-digests SRC oci-archive:FILE:TAG` (skopeo writes the archive;
/// Bulkhead only reads it). `extra` goes before the references (`--all`).
fn skopeo_oci_archive(src: &str, file: &Path, tag: &str, extra: &[&str]) {
    let dest = format!("oci-archive:{}:{tag}", file.display());
    let mut args = vec!["copy", "--preserve-digests"];
    args.extend_from_slice(extra);
    args.extend([src, dest.as_str()]);
    skopeo(&args);
}

/// An OCI archive written by skopeo resolves to the very image of the layout it was
/// copied from (the manifest is copied byte for byte), by tag, alone, by bare path and
/// gzipped; its layers stream verified from inside the archive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_archive_written_by_skopeo_resolves_like_its_layout() {
    if !require_tools(&["skopeo"]) {
        return;
    }
    let opts = ResolveOptions::default();
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("test-oci.tar");
    skopeo_oci_archive(
        &format!("oci:{}", fixture("test.oci").display()),
        &file,
        "v1",
        &[],
    );
    let gzipped = tmp.path().join("test-oci.tar.gz");
    std::fs::write(&gzipped, gzip(&std::fs::read(&file).expect("read"))).expect("write");
    for reference in [
        format!("oci-archive:{}:v1", file.display()),
        format!("oci-archive:{}", file.display()),
        format!("oci-archive:{}:v1", gzipped.display()),
    ] {
        let (image, blobs) = resolve_ok(&reference, &opts).await;
        assert_eq!(image, test_oci_image(&reference));
        check_layer_bytes(&image, &blobs).await;
    }

    // A bare path is an archive told apart by what it holds, and named by it.
    let (recognised, _) =
        Source::recognise(&file.to_string_lossy()).expect("an existing file is recognised");
    assert_eq!(recognised, Source::Archive(file.clone()));
    let (image, blobs) = source::resolve(&recognised, &opts)
        .await
        .expect("an OCI archive by path");
    assert_eq!(
        image,
        test_oci_image(&format!("oci-archive:{}", file.display()))
    );
    check_layer_bytes(&image, &blobs).await;

    // A tag it does not hold: the tags it holds are listed.
    let e = resolve_err(&format!("oci-archive:{}:v2", file.display()), &opts).await;
    assert!(matches!(e, SourceError::NotFound { .. }), "{e}");
    assert!(e.to_string().contains("v1"), "{e}");
}

/// `skopeo copy --all` of a two-platform layout: the platform is selected inside the
/// archive as in the layout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_archive_of_a_multi_platform_image_selects_the_platform() {
    if !require_tools(&["skopeo"]) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = tmp.path().join("layout");
    let (amd64, arm64) = multi_platform_layout(&layout);
    let file = tmp.path().join("multi.tar");
    skopeo_oci_archive(
        &format!("oci:{}:multi", layout.display()),
        &file,
        "multi",
        &["--all"],
    );
    for (platform_name, digest) in [("linux/amd64", &amd64), ("linux/arm64/v8", &arm64)] {
        let opts = ResolveOptions {
            platform: platform(platform_name),
            ..Default::default()
        };
        let (image, blobs) =
            resolve_ok(&format!("oci-archive:{}:multi", file.display()), &opts).await;
        assert_eq!(
            image.manifest_digest.as_ref(),
            Some(digest),
            "{platform_name}"
        );
        check_layer_bytes(&image, &blobs).await;
    }
    let opts = ResolveOptions {
        platform: platform("linux/s390x"),
        ..Default::default()
    };
    let e = resolve_err(&format!("oci-archive:{}:multi", file.display()), &opts).await;
    assert!(matches!(e, SourceError::PlatformMissing { .. }), "{e}");
}

/// `archive:` (what a bare file path means) reads a `docker save` archive as before, and
/// says what it expected of a file that is neither kind; each explicit scheme points to
/// the other when given the other kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_are_told_apart_by_what_they_hold() {
    let opts = ResolveOptions::default();
    let alpine = fixture("alpine-311.tar.gz");
    let (image, blobs) = resolve_ok(&format!("archive:{}", alpine.display()), &opts).await;
    assert_eq!(
        image,
        alpine_311(&format!("docker-archive:{}", alpine.display()))
    );
    check_layer_bytes(&image, &blobs).await;

    let e = resolve_err(&format!("oci-archive:{}", alpine.display()), &opts).await;
    let text = e.to_string();
    assert!(
        text.contains("oci-layout") && text.contains("docker-archive:FILE"),
        "{text}"
    );

    // A root filesystem in a tar (Alpine's minirootfs) is neither kind.
    let rootfs = fixture("alpine-minirootfs-3.12.12-x86_64.tar.gz");
    let e = resolve_err(&format!("archive:{}", rootfs.display()), &opts).await;
    let text = e.to_string();
    assert!(
        text.contains("alpine-minirootfs-3.12.12")
            && text.contains("manifest.json")
            && text.contains("oci-layout")
            && text.contains("dir:PATH"),
        "{text}"
    );
}

/// OCI archives from a hostile source: a blob that is a link out of the archive, a link
/// to an absolute path (the archive's own root, never the host's), a name twice, a
/// layout file missing. Each is an error naming the archive; nothing is extracted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_archive_hostile_inputs_are_errors() {
    let opts = ResolveOptions::default();
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = fixture("test.oci");
    let layer = "blobs/sha256/cdd16bd695eda2819e7637648f573c2ca64896c4f7bff9732ac9db734ca3bc2c";
    let read = |rel: &str| std::fs::read(layout.join(rel)).expect("fixture file");
    let documents: Vec<(&str, Result<Vec<u8>, &str>)> = [
        "oci-layout",
        "index.json",
        "blobs/sha256/afb744871f99e0ff8e6f253244836ed34c5d805fdb096d3a205ffaf5e9073cab",
        "blobs/sha256/b23a8f6569ae9ae331226205fa72f480ce5310707d0bc97e611f83fbbbde4604",
    ]
    .into_iter()
    .map(|rel| (rel, Ok(read(rel))))
    .collect();
    let with = |extra: Vec<(&'static str, Result<Vec<u8>, &'static str>)>| {
        let mut entries = documents.clone();
        entries.extend(extra);
        tar_of(&entries)
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "link-out.tar",
            with(vec![(layer, Err("../../../../etc/passwd"))]),
            "leaves the archive",
        ),
        (
            // Absolute means the archive's root: the host's /etc/passwd is not read.
            "link-absolute.tar",
            with(vec![(layer, Err("/etc/passwd"))]),
            "cdd16bd695eda2819e7637648f573c2ca64896c4f7bff9732ac9db734ca3bc2c: not found",
        ),
        (
            "twice.tar",
            with(vec![(layer, Ok(read(layer))), (layer, Ok(read(layer)))]),
            "more than one entry",
        ),
        (
            "no-layer.tar",
            with(vec![]),
            "cdd16bd695eda2819e7637648f573c2ca64896c4f7bff9732ac9db734ca3bc2c",
        ),
        ("no-layout.tar", tar_of(&documents[1..]), "oci-layout"),
        ("empty.tar", Vec::new(), "oci-layout"),
        (
            "truncated.tar",
            with(vec![(layer, Ok(read(layer)))])[..3000].to_vec(),
            "truncated.tar",
        ),
    ];
    for (name, bytes, needle) in cases {
        let path = tmp.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        let e = resolve_err(&format!("oci-archive:{}", path.display()), &opts).await;
        names_and_says(&e, name, needle);
    }
    // The well-formed archives from the same parts do resolve (the cases above fail for
    // their one defect), among them one whose blob is an absolute link inside it.
    for (name, extra) in [
        ("good.tar", vec![(layer, Ok(read(layer)))]),
        (
            "good-link.tar",
            vec![("data/layer", Ok(read(layer))), (layer, Err("/data/layer"))],
        ),
    ] {
        let path = tmp.path().join(name);
        std::fs::write(&path, with(extra)).expect("write");
        let reference = format!("oci-archive:{}", path.display());
        let (image, blobs) = resolve_ok(&reference, &opts).await;
        assert_eq!(image, test_oci_image(&reference));
        check_layer_bytes(&image, &blobs).await;
    }
}

// ---------------------------------------------------------------------------------------
// registries: a real one

/// A `docker-registry` on a random loopback port with storage in a temp dir; killed on
/// drop. `htpasswd` turns on Basic authentication with that file's content.
struct Registry {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start(htpasswd: Option<&str>) -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = dir.path().join("storage");
        std::fs::create_dir(&storage).expect("mkdir");
        let mut config = format!(
            "version: 0.1\nlog: {{level: info, formatter: text}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n\
             http:\n  addr: 127.0.0.1:0\n  secret: bulkhead-test\n",
            storage.display()
        );
        if let Some(h) = htpasswd {
            let path = dir.path().join("htpasswd");
            std::fs::write(&path, h).expect("write htpasswd");
            config.push_str(&format!(
                "auth:\n  htpasswd: {{realm: bulkhead-test, path: {}}}\n",
                path.display()
            ));
        }
        let config_path = dir.path().join("registry.yml");
        std::fs::write(&config_path, config).expect("write config");
        let log_path = dir.path().join("registry.log");
        let log = std::fs::File::create(&log_path).expect("log");
        let mut cmd = Command::new("docker-registry");
        cmd.arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        // REGISTRY_* variables override the file (e.g. the listen address).
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("REGISTRY_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd.spawn().expect("start docker-registry");
        let mut registry = Registry {
            child,
            addr: String::new(),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            if let Some(at) = log.find("listening on 127.0.0.1:") {
                let port: String = log[at + "listening on 127.0.0.1:".len()..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                if !port.is_empty() && TcpStream::connect(format!("127.0.0.1:{port}")).is_ok() {
                    registry.addr = format!("127.0.0.1:{port}");
                    return registry;
                }
            }
            if let Ok(Some(status)) = registry.child.try_wait() {
                panic!("docker-registry exited ({status}): {log}");
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not start: {log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn insecure(&self) -> ResolveOptions {
        ResolveOptions {
            insecure_registries: vec![self.addr.clone()],
            ..Default::default()
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `skopeo inspect --raw` of a pushed image: the oracle for what the registry serves.
fn raw_manifest(reference: &str, creds: Option<&str>) -> Vec<u8> {
    let mut args = vec!["inspect", "--tls-verify=false", "--raw"];
    if let Some(c) = creds {
        args.extend(["--creds", c]);
    }
    let target = format!("docker://{reference}");
    args.push(&target);
    skopeo(&args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_oci_and_docker_manifests_by_tag_and_digest() {
    if !require_tools(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = Registry::start(None);
    let layout = format!("oci:{}", fixture("test.oci").display());
    let oci_ref = format!("{}/test/hello:v1", reg.addr);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &layout,
        &format!("docker://{oci_ref}"),
    ]);
    let docker_ref = format!("{}/test/hello-docker:v1", reg.addr);
    skopeo(&[
        "copy",
        "--format",
        "v2s2",
        "--dest-tls-verify=false",
        &layout,
        &format!("docker://{docker_ref}"),
    ]);

    // OCI manifest, by tag: what skopeo says the registry has, which is the fixture.
    let raw = raw_manifest(&oci_ref, None);
    let (image, blobs) = resolve_ok(&oci_ref, &reg.insecure()).await;
    assert_eq!(image.manifest_digest, Some(sha256(&raw)));
    assert_eq!(image, test_oci_image(&oci_ref));
    check_layer_bytes(&image, &blobs).await;

    // By digest.
    let by_digest = format!("{}/test/hello@{}", reg.addr, sha256(&raw));
    let (image, _) = resolve_ok(&by_digest, &reg.insecure()).await;
    assert_eq!(image, test_oci_image(&by_digest));

    // Docker v2 schema 2, converted by skopeo: compare with its raw manifest.
    let raw = raw_manifest(&docker_ref, None);
    let m: serde_json::Value = serde_json::from_slice(&raw).expect("json");
    assert_eq!(
        m["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let (image, blobs) = resolve_ok(&docker_ref, &reg.insecure()).await;
    assert_eq!(image.manifest_digest, Some(sha256(&raw)));
    assert_eq!(
        Some(image.config_digest.as_str()),
        m["config"]["digest"].as_str()
    );
    assert_eq!(
        Some(image.layers[0].media_type.as_str()),
        m["layers"][0]["mediaType"].as_str()
    );
    assert_eq!(
        Some(image.layers[0].digest.as_str()),
        m["layers"][0]["digest"].as_str()
    );
    assert_eq!(image.layers[0].compression, Compression::Gzip);
    check_layer_bytes(&image, &blobs).await;

    // Not found: a tag, a repository, a digest.
    for missing in [
        format!("{}/test/hello:nope", reg.addr),
        format!("{}/test/absent:v1", reg.addr),
        format!("{}/test/hello@sha256:{}", reg.addr, "0".repeat(64)),
    ] {
        let e = resolve_err(&missing, &reg.insecure()).await;
        assert!(matches!(e, SourceError::NotFound { .. }), "{missing}: {e}");
        assert!(e.to_string().contains(&missing), "names the reference: {e}");
    }

    // Without --insecure-registry the registry is spoken to over HTTPS only: it fails,
    // and says what to do.
    let e = resolve_err(&oci_ref, &ResolveOptions::default()).await;
    assert!(matches!(e, SourceError::Network { .. }), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("--insecure-registry {}", reg.addr)),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_index_platform_selection() {
    if !require_tools(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = Registry::start(None);
    let tmp = tempfile::tempdir().expect("tempdir");
    let (amd64, arm64) = multi_platform_layout(tmp.path());
    let target = format!("{}/test/multi:v1", reg.addr);
    skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:multi", tmp.path().display()),
        &format!("docker://{target}"),
    ]);
    let index: serde_json::Value =
        serde_json::from_slice(&raw_manifest(&target, None)).expect("json");
    assert_eq!(
        index["manifests"].as_array().map(Vec::len),
        Some(2),
        "skopeo pushed the index: {index}"
    );

    for (want, digest) in [
        ("linux/arm64", &arm64),
        ("linux/arm64/v8", &arm64),
        ("linux/amd64", &amd64),
    ] {
        let opts = ResolveOptions {
            platform: platform(want),
            ..reg.insecure()
        };
        let (image, blobs) = resolve_ok(&target, &opts).await;
        assert_eq!(image.manifest_digest.as_ref(), Some(digest), "{want}");
        check_layer_bytes(&image, &blobs).await;
    }
    let opts = ResolveOptions {
        platform: platform("windows/amd64"),
        ..reg.insecure()
    };
    match resolve_err(&target, &opts).await {
        SourceError::PlatformMissing { available, .. } => {
            assert_eq!(available, ["linux/amd64", "linux/arm64/v8"])
        }
        e => panic!("expected PlatformMissing, got {e}"),
    }
}

/// `htpasswd -Bbn scanner s3cret-pass` (distribution accepts bcrypt only).
const HTPASSWD: &str = "scanner:$2y$05$EB/L5tSXdpc9pdO1El9nOuzxC99sIaEHelhNkuQ1aDQW/5sgucBfu\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_basic_auth() {
    if !require_tools(&["docker-registry", "skopeo"]) {
        return;
    }
    let reg = Registry::start(Some(HTPASSWD));
    let target = format!("{}/private/hello:v1", reg.addr);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "scanner:s3cret-pass",
        &format!("oci:{}", fixture("test.oci").display()),
        &format!("docker://{target}"),
    ]);
    let raw = raw_manifest(&target, Some("scanner:s3cret-pass"));

    let good = Credential::Basic {
        username: "scanner".into(),
        password: "s3cret-pass".into(),
    };
    let opts = ResolveOptions {
        credentials: Some(good),
        ..reg.insecure()
    };
    let (image, blobs) = resolve_ok(&target, &opts).await;
    assert_eq!(image.manifest_digest, Some(sha256(&raw)));
    check_layer_bytes(&image, &blobs).await;

    let bad = Credential::Basic {
        username: "scanner".into(),
        password: "wrong".into(),
    };
    let opts = ResolveOptions {
        credentials: Some(bad),
        ..reg.insecure()
    };
    let e = resolve_err(&target, &opts).await;
    assert!(matches!(e, SourceError::Unauthorized { .. }), "{e}");

    // Anonymous (no credentials in any config file for this random port).
    let e = resolve_err(&target, &reg.insecure()).await;
    assert!(matches!(e, SourceError::Unauthorized { .. }), "{e}");
    assert!(e.to_string().contains(&reg.addr), "names the registry: {e}");
}

// ---------------------------------------------------------------------------------------
// registries: a scripted fake, for failures on demand

type Handler = dyn Fn(&str, usize) -> (u16, Vec<(&'static str, String)>, Vec<u8>) + Send + Sync;

/// An HTTP/1.1 server on a random loopback port that answers every request with
/// `handler(path, n)`, `n` counting the requests for that path (from 1).
struct Fake {
    addr: String,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl Fake {
    fn start(handler: Arc<Handler>) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let counter = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let handler = handler.clone();
                let counter = counter.clone();
                std::thread::spawn(move || serve(stream, &*handler, &counter));
            }
        });
        Fake { addr, hits }
    }

    fn hits(&self, path: &str) -> usize {
        self.hits
            .lock()
            .expect("lock")
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

fn serve(mut stream: TcpStream, handler: &Handler, hits: &Mutex<HashMap<String, usize>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 65536 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&request);
    let mut first = text.lines().next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let path = first
        .next()
        .unwrap_or("")
        .split('?')
        .next()
        .unwrap_or("")
        .to_string();
    let n = {
        let mut h = hits.lock().expect("lock");
        let c = h.entry(path.clone()).or_insert(0);
        *c += 1;
        *c
    };
    let (status, headers, body) = handler(&path, n);
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    if method != "HEAD" {
        let _ = stream.write_all(&body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_retries_transient_failures_and_refuses_lies() {
    let blob = |name: &str| {
        std::fs::read(fixture("test.oci/blobs/sha256").join(name.trim_start_matches("sha256:")))
            .expect("fixture blob")
    };
    let t = test_oci_image("");
    let manifest = blob(t.manifest_digest.as_deref().expect("digest"));
    let config = blob(&t.config_digest);
    let layer = blob(&t.layers[0].digest);
    let manifest_digest = sha256(&manifest);
    let (m, c, l) = (manifest.clone(), config.clone(), layer.clone());
    let (config_digest, layer_digest) = (t.config_digest.clone(), t.layers[0].digest.clone());
    let wrong = format!("sha256:{}", "1".repeat(64));
    let wrong_path = format!("/v2/flaky/manifests/{wrong}");
    let handler: Arc<Handler> = Arc::new(move |path: &str, n: usize| {
        let manifest_headers = || {
            vec![
                (
                    "Content-Type",
                    "application/vnd.oci.image.manifest.v1+json".to_string(),
                ),
                ("Docker-Content-Digest", sha256(&m)),
            ]
        };
        let empty = || {
            (
                404,
                vec![("Content-Type", "application/json".to_string())],
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}"#.to_vec(),
            )
        };
        match path {
            "/v2/" => (200, vec![], b"{}".to_vec()),
            // two 503s, then the manifest
            "/v2/flaky/manifests/v1" if n <= 2 => (503, vec![], b"busy".to_vec()),
            "/v2/flaky/manifests/v1" => (200, manifest_headers(), m.clone()),
            p if p == wrong_path => (
                200,
                vec![(
                    "Content-Type",
                    "application/vnd.oci.image.manifest.v1+json".to_string(),
                )],
                m.clone(),
            ),
            p if p == format!("/v2/flaky/blobs/{config_digest}") => (200, vec![], c.clone()),
            // one 429 at the start of the layer download
            p if p == format!("/v2/flaky/blobs/{layer_digest}") && n == 1 => {
                (429, vec![], b"slow down".to_vec())
            }
            p if p == format!("/v2/flaky/blobs/{layer_digest}") => (200, vec![], l.clone()),
            "/v2/down/manifests/v1" => (503, vec![], b"down".to_vec()),
            "/v2/huge/manifests/v1" => {
                let mut body = br#"{"schemaVersion":2,"layers":[],"x":""#.to_vec();
                body.extend(std::iter::repeat_n(b'a', 5 << 20));
                body.extend(br#""}"#);
                (
                    200,
                    vec![(
                        "Content-Type",
                        "application/vnd.oci.image.manifest.v1+json".to_string(),
                    )],
                    body,
                )
            }
            // the config blob is served with other bytes of the same length
            "/v2/liar/manifests/v1" => (200, manifest_headers(), m.clone()),
            p if p == format!("/v2/liar/blobs/{config_digest}") => {
                let mut bad = c.clone();
                bad[10] ^= 1;
                (200, vec![], bad)
            }
            _ => empty(),
        }
    });
    let fake = Fake::start(handler);
    let opts = ResolveOptions {
        insecure_registries: vec![fake.addr.clone()],
        ..Default::default()
    };

    let reference = format!("{}/flaky:v1", fake.addr);
    let (image, blobs) = resolve_ok(&reference, &opts).await;
    assert_eq!(image.manifest_digest, Some(manifest_digest));
    assert_eq!(fake.hits("/v2/flaky/manifests/v1"), 3, "two 503s retried");
    check_layer_bytes(&image, &blobs).await;
    assert_eq!(
        fake.hits(&format!("/v2/flaky/blobs/{}", t.layers[0].digest)),
        2,
        "one 429 retried"
    );

    let started = Instant::now();
    let e = resolve_err(&format!("{}/down:v1", fake.addr), &opts).await;
    assert!(
        matches!(e, SourceError::Network { .. }) && e.to_string().contains("503"),
        "{e}"
    );
    assert_eq!(fake.hits("/v2/down/manifests/v1"), 5, "1 try + 4 retries");
    assert!(
        started.elapsed() >= Duration::from_millis(200 + 400 + 800 + 1600),
        "backs off"
    );

    let e = resolve_err(&format!("{}/huge:v1", fake.addr), &opts).await;
    assert!(matches!(e, SourceError::TooLarge { .. }), "{e}");

    let e = resolve_err(&format!("{}/flaky@{wrong}", fake.addr), &opts).await;
    assert!(matches!(e, SourceError::DigestMismatch { .. }), "{e}");

    let e = resolve_err(&format!("{}/liar:v1", fake.addr), &opts).await;
    assert!(matches!(e, SourceError::DigestMismatch { .. }), "{e}");

    let e = resolve_err(&format!("{}/nothing:v1", fake.addr), &opts).await;
    assert!(matches!(e, SourceError::NotFound { .. }), "{e}");

    // Nobody listening: a network error naming the reference, after the retries.
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let gone = format!("127.0.0.1:{port}/x:1");
    let opts = ResolveOptions {
        insecure_registries: vec![format!("127.0.0.1:{port}")],
        ..Default::default()
    };
    let e = resolve_err(&gone, &opts).await;
    assert!(
        matches!(e, SourceError::Network { .. }) && e.to_string().contains(&gone),
        "{e}"
    );
}

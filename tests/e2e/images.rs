//! `bulkhead scan` on real images: pushed with skopeo (an independent client) to Debian's
//! `docker-registry` on loopback, with and without auth, or read from OCI layouts; multi-layer
//! merges checked against an independent oracle; the layer cache; the hostile corpus.
//!
//! Needs docker-registry, skopeo and apache2-utils: without them the registry tests skip,
//! except in CI, where they fail.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Output;

use bulkhead_test_artifacts::images::{self, Compression, Image, hostile, oracle};
use bulkhead_test_artifacts::registry::{self, Auth, Registry};
use bulkhead_test_artifacts::require_tools;
use serde_json::Value;

use crate::harness::{bulkhead, push_image as push, stderr};

const USER: &str = "scanner";
const PASS: &str = "s3cret";

fn run(home: &Path, args: &[&str]) -> (Output, Option<Value>) {
    let out = bulkhead(home).args(args).output().expect("run bulkhead");
    let json = serde_json::from_slice(&out.stdout).ok();
    (out, json)
}

/// Scan and require success; returns the report.
fn scan_ok(home: &Path, args: &[&str]) -> Value {
    let mut full = vec!["scan", "--format", "json"];
    full.extend_from_slice(args);
    let (out, json) = run(home, &full);
    assert!(
        out.status.success(),
        "{args:?}: exit {:?}: {}",
        out.status.code(),
        stderr(&out)
    );
    let report = json.expect("JSON report");
    assert_eq!(
        report["complete"], true,
        "{args:?}: {}",
        report["diagnostics"]
    );
    report
}

/// (name, version, arch) of the report's packages.
fn packages(report: &Value) -> BTreeSet<(String, String, String)> {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    report["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| (s(&p["name"]), s(&p["version"]), s(&p["arch"])))
        .collect()
}

/// (name, version, arch) from an expected-list TSV recorded from the distribution's tool.
fn expected(image: &Image) -> BTreeSet<(String, String, String)> {
    let path = image.expected.as_ref().expect("the image has an oracle");
    std::fs::read_to_string(path)
        .expect("expected list")
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            // dpkg-query prints multi-arch "same" packages as name:arch (${binary:Package}).
            let name = f[0].split(':').next().unwrap_or(f[0]);
            (name.to_string(), f[1].to_string(), f[2].to_string())
        })
        .collect()
}

fn tools() -> bool {
    require_tools(registry::TOOLS)
}

#[test]
fn registry_images_give_the_distribution_tools_inventory() {
    if !tools() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let alpine = images::alpine("3.20");
    push(&reg, &alpine, "library/alpine:3.20");
    let debian = images::debian_minbase();
    push(&reg, &debian, "debian:bookworm");
    let zstd = images::debian_minbase_with(Compression::Zstd);
    push(&reg, &zstd, "debian:zstd");
    let home = tempfile::tempdir().expect("tempdir");
    let addr = reg.addr();

    let report = scan_ok(
        home.path(),
        &[
            &format!("{addr}/library/alpine:3.20"),
            "--insecure-registry",
            addr,
        ],
    );
    assert_eq!(packages(&report), expected(&alpine));
    assert_eq!(report["os"]["id"], "alpine");
    assert_eq!(report["image"]["platform"], "linux/amd64");
    assert!(
        report["image"]["digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:"))
    );

    for tag in ["bookworm", "zstd"] {
        let report = scan_ok(
            home.path(),
            &[&format!("{addr}/debian:{tag}"), "--insecure-registry", addr],
        );
        assert_eq!(packages(&report), expected(&debian), "debian:{tag}");
    }

    // Without --insecure-registry the registry is HTTPS-only: a clear error, no fallback.
    let (out, _) = run(home.path(), &["scan", &format!("{addr}/debian:bookworm")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--insecure-registry"),
        "{}",
        stderr(&out)
    );
    // A missing tag names the reference.
    let (out, _) = run(
        home.path(),
        &[
            "scan",
            &format!("{addr}/debian:nope"),
            "--insecure-registry",
            addr,
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("debian:nope"), "{}", stderr(&out));
}

#[test]
fn basic_and_token_auth() {
    if !tools() {
        return;
    }
    for auth in [Auth::htpasswd(USER, PASS), Auth::token(USER, PASS, &[])] {
        let reg = Registry::start(auth);
        let alpine = images::alpine("3.12");
        push(&reg, &alpine, "private/alpine:3.12");
        let home = tempfile::tempdir().expect("tempdir");
        let addr = reg.addr();
        let image = format!("{addr}/private/alpine:3.12");
        if let Some(tokens) = reg.token_server() {
            // The token server is on another port: the registry's credentials may go
            // there only because the configuration says so.
            let realm = tokens.realm();
            let authority = realm
                .trim_start_matches("http://")
                .split('/')
                .next()
                .unwrap_or_default();
            std::fs::write(
                home.path().join("config.toml"),
                format!("[registries.token_hosts]\n\"{addr}\" = [\"{authority}\"]\n"),
            )
            .expect("config.toml");
        }

        let (out, _) = run(home.path(), &["scan", &image, "--insecure-registry", addr]);
        assert_eq!(out.status.code(), Some(2), "anonymous must be refused");
        assert!(stderr(&out).contains(addr), "{}", stderr(&out));

        let report = scan_ok(
            home.path(),
            &[
                &image,
                "--insecure-registry",
                addr,
                "--username",
                USER,
                "--password",
                PASS,
            ],
        );
        assert_eq!(packages(&report), expected(&alpine));

        // Credentials from the environment.
        let out = bulkhead(home.path())
            .args([
                "scan",
                "-f",
                "json",
                &image,
                "--insecure-registry",
                addr,
                "--no-cache",
            ])
            .env("BULKHEAD_USERNAME", USER)
            .env("BULKHEAD_PASSWORD", PASS)
            .output()
            .expect("run");
        assert!(out.status.success(), "{}", stderr(&out));

        // Credentials from a docker config.json, as `docker login` writes them.
        let docker = home.path().join("docker");
        std::fs::create_dir_all(&docker).expect("mkdir");
        let auth = base64_encode(format!("{USER}:{PASS}").as_bytes());
        std::fs::write(
            docker.join("config.json"),
            format!(r#"{{"auths":{{"{addr}":{{"auth":"{auth}"}}}}}}"#),
        )
        .expect("config.json");
        let out = bulkhead(home.path())
            .args([
                "scan",
                "-f",
                "json",
                &image,
                "--insecure-registry",
                addr,
                "--no-cache",
            ])
            .env("DOCKER_CONFIG", &docker)
            .output()
            .expect("run");
        assert!(out.status.success(), "{}", stderr(&out));

        let (out, _) = run(
            home.path(),
            &[
                "scan",
                &image,
                "--insecure-registry",
                addr,
                "--username",
                USER,
                "--password",
                "wrong",
                "--no-cache",
            ],
        );
        assert_eq!(
            out.status.code(),
            Some(2),
            "a wrong password must be refused"
        );
    }
}

fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The merged dpkg inventory an independent reader computes from the layout (empty when
/// the merged view has no readable status file).
fn oracle_packages(image: &Image) -> BTreeMap<String, String> {
    let merged = oracle::merged(&image.layout, &image.tag, "amd64").expect("oracle");
    merged
        .read("var/lib/dpkg/status")
        .map(oracle::dpkg_installed)
        .unwrap_or_default()
}

#[test]
fn layers_merge_with_upgrades_and_whiteouts() {
    let home = tempfile::tempdir().expect("tempdir");
    for image in [
        images::layered(),
        images::layered_mixed(),
        images::layered_with(Compression::Zstd),
    ] {
        let report = scan_ok(home.path(), &[&image.oci_ref(), "--no-cache"]);
        let got: BTreeMap<String, String> = packages(&report)
            .into_iter()
            .map(|(n, v, _)| (n, v))
            .collect();
        let want = oracle_packages(&image);
        assert_eq!(got, want, "{}", image.oci_ref());
        assert_ne!(
            got.get("libssl3").map(String::as_str),
            Some(images::LAYERED_OLD_LIBSSL3)
        );
        // The layer that introduced each package: libssl3 came with the upgrade (L4), the
        // others were already in L1.
        for p in report["packages"].as_array().expect("packages") {
            let by = p["layer_created_by"].as_str().unwrap_or("");
            let want = if p["name"] == "libssl3" { "L4" } else { "L1" };
            assert!(by.starts_with(want), "{}: introduced by {by:?}", p["name"]);
            assert!(
                p["layer_digest"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("sha256:"))
            );
        }
        assert_eq!(report["os"]["id"], "debian");
    }
}

#[test]
fn registry_layered_and_multi_platform() {
    if !tools() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let addr = reg.addr();
    let layered = images::layered();
    push(&reg, &layered, "app:layered");
    let multi = images::multi_platform();
    push(&reg, &multi, "multi:latest");
    let home = tempfile::tempdir().expect("tempdir");

    let report = scan_ok(
        home.path(),
        &[&format!("{addr}/app:layered"), "--insecure-registry", addr],
    );
    let got: BTreeMap<String, String> = packages(&report)
        .into_iter()
        .map(|(n, v, _)| (n, v))
        .collect();
    assert_eq!(got, oracle_packages(&layered));

    let multi_ref = format!("{addr}/multi:latest");
    for (platform, arch) in [
        ("linux/amd64", "amd64"),
        ("linux/arm64", "arm64"),
        ("linux/arm64/v8", "arm64"),
    ] {
        let report = scan_ok(
            home.path(),
            &[
                &multi_ref,
                "--insecure-registry",
                addr,
                "--platform",
                platform,
            ],
        );
        let archs: BTreeSet<String> = packages(&report).into_iter().map(|(_, _, a)| a).collect();
        assert!(
            archs.contains(arch)
                && !archs.contains(if arch == "amd64" { "arm64" } else { "amd64" }),
            "{platform}: {archs:?}"
        );
        assert!(
            report["image"]["platform"]
                .as_str()
                .is_some_and(|p| p.starts_with(platform)),
            "{}",
            report["image"]
        );
    }
    let (out, _) = run(
        home.path(),
        &[
            "scan",
            &multi_ref,
            "--insecure-registry",
            addr,
            "--platform",
            "linux/s390x",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("linux/s390x") && err.contains("linux/amd64") && err.contains("linux/arm64"),
        "{err}"
    );
}

/// Blob downloads the registry served for `repo`, from its log.
fn blob_gets(reg: &Registry, repo: &str) -> usize {
    let needle = format!("GET /v2/{repo}/blobs/");
    reg.log().lines().filter(|l| l.contains(&needle)).count()
}

#[test]
fn a_rescan_downloads_no_layer_and_the_cache_is_bounded() {
    if !tools() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let addr = reg.addr();
    push(&reg, &images::layered(), "app:v1");
    let home = tempfile::tempdir().expect("tempdir");
    let image = format!("{addr}/app:v1");

    let first = scan_ok(home.path(), &[&image, "--insecure-registry", addr]);
    assert_eq!(first["stats"]["layers_downloaded"], 4);
    let before = blob_gets(&reg, "app");
    let second = scan_ok(home.path(), &[&image, "--insecure-registry", addr]);
    assert_eq!(second["stats"]["layers_downloaded"], 0);
    assert_eq!(second["stats"]["layers_from_cache"], 4);
    // Only the config blob was fetched again, no layer.
    assert_eq!(
        blob_gets(&reg, "app") - before,
        1,
        "registry log:\n{}",
        reg.log()
    );
    assert_eq!(packages(&first), packages(&second));
    assert_eq!(first["packages"], second["packages"]);

    // A bound of one byte keeps nothing once the scan is done.
    scan_ok(
        home.path(),
        &[&image, "--insecure-registry", addr, "--cache-max-size", "1"],
    );
    let left = walk_size(&home.path().join("layers"));
    assert_eq!(left, 0, "cache entries left: {left} bytes");
}

fn walk_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                walk_size(&p)
            } else {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            }
        })
        .sum()
}

/// Run bulkhead and sample its peak resident set (VmHWM) from /proc while it runs.
fn run_measured(home: &Path, args: &[&str]) -> (Output, Option<Value>, u64) {
    let mut child = bulkhead(home)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn bulkhead");
    let status_file = format!("/proc/{}/status", child.id());
    // Read the pipes on threads so that a chatty child cannot block on a full pipe.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_thread = std::thread::spawn(move || {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut b).map(|_| b)
    });
    let err_thread = std::thread::spawn(move || {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut b).map(|_| b)
    });
    let mut peak = 0u64;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_file)
            && let Some(kb) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kb * 1024);
        }
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = child.wait().expect("wait");
    let stdout = out_thread.join().expect("join").expect("stdout");
    let stderr = err_thread.join().expect("join").expect("stderr");
    let json = serde_json::from_slice(&stdout).ok();
    (
        Output {
            status,
            stdout,
            stderr,
        },
        json,
        peak,
    )
}

fn canaries_absent() {
    for c in hostile::CANARIES {
        assert!(
            !Path::new(c).exists(),
            "{c} was written outside the scratch tree"
        );
    }
}

#[test]
fn hostile_layers_are_contained() {
    canaries_absent();
    let home = tempfile::tempdir().expect("tempdir");
    let bait: BTreeSet<&str> = hostile::BAIT_PACKAGES.iter().copied().collect();
    // (image, expected outcome): Ok = scan succeeds with at most the bait packages;
    // Err(words) = exit 2 with an error naming the layer and containing `words`.
    let cases: Vec<(&str, Image, Result<(), &str>)> = vec![
        ("path traversal", hostile::path_traversal(), Ok(())),
        ("absolute names", hostile::absolute_names(), Ok(())),
        (
            "symlink escape through a directory",
            hostile::symlink_escape_dir(),
            Ok(()),
        ),
        (
            "symlink escape through a file",
            hostile::symlink_escape_file(),
            Ok(()),
        ),
        ("symlink loops", hostile::symlink_loops(), Ok(())),
        (
            "hard link to a host file",
            hostile::hardlink_escape(),
            Ok(()),
        ),
        ("devices and fifos", hostile::special_files(), Ok(())),
        (
            "devices in place of the database",
            hostile::special_files_in_place(),
            Ok(()),
        ),
        ("odd names", hostile::weird_names(), Ok(())),
        (
            "a million entries",
            hostile::many_entries(1_000_000),
            Ok(()),
        ),
        (
            "tar without end-of-archive",
            hostile::tar_without_footer(),
            Ok(()),
        ),
        (
            "gzip bomb",
            hostile::gzip_bomb(hostile::BOMB_SIZE),
            Err("decompression bomb"),
        ),
        (
            "zstd bomb",
            hostile::zstd_bomb(hostile::BOMB_SIZE),
            Err("decompression bomb"),
        ),
        (
            "truncated tar",
            hostile::truncated_tar(),
            Err("layer sha256:"),
        ),
        (
            "truncated gzip",
            hostile::truncated_gzip(),
            Err("layer sha256:"),
        ),
        (
            "digest mismatch",
            hostile::digest_mismatch(),
            Err("digest mismatch"),
        ),
    ];
    let mut peak = 0;
    for (what, image, want) in cases {
        let (out, report, rss) = run_measured(
            home.path(),
            &["scan", "--format", "json", "--no-cache", &image.oci_ref()],
        );
        peak = peak.max(rss);
        canaries_absent();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &stderr(&out);
        assert!(
            !text.contains("root:x:0:0"),
            "{what}: host /etc/passwd content in the output"
        );
        match want {
            Ok(()) => {
                assert!(
                    out.status.success(),
                    "{what}: exit {:?}: {}",
                    out.status.code(),
                    stderr(&out)
                );
                let report = report.expect("report");
                let names: BTreeSet<String> =
                    packages(&report).into_iter().map(|(n, _, _)| n).collect();
                assert!(
                    names.iter().all(|n| bait.contains(n.as_str())),
                    "{what}: fooled into {names:?}"
                );
                // What the container would really see, by an independent reading (a
                // runtime refuses some of these layers outright: then only the subset
                // check above applies).
                // (The oracle keeps every entry in memory: not for the million-entry layer,
                // which only adds files no analyzer wants.)
                if what == "a million entries" {
                    assert_eq!(names.len(), bait.len(), "{what}: {names:?}");
                } else if let Ok(merged) = oracle::merged(&image.layout, &image.tag, "amd64") {
                    let want: BTreeSet<String> = merged
                        .read("var/lib/dpkg/status")
                        .map(oracle::dpkg_installed)
                        .unwrap_or_default()
                        .into_keys()
                        .collect();
                    assert_eq!(names, want, "{what}");
                }
            }
            Err(words) => {
                assert_eq!(out.status.code(), Some(2), "{what}: {}", stderr(&out));
                assert!(stderr(&out).contains(words), "{what}: {}", stderr(&out));
            }
        }
    }
    // Bombs, a million entries: the host's memory stays bounded.
    assert!(
        peak > 0 && peak < 400 << 20,
        "peak RSS of a scan: {peak} bytes"
    );
}

#[test]
fn hostile_layers_through_a_registry() {
    if !tools() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let addr = reg.addr();
    let home = tempfile::tempdir().expect("tempdir");
    push(&reg, &hostile::path_traversal(), "evil:traversal");
    push(&reg, &hostile::symlink_escape_dir(), "evil:symlink");
    push(&reg, &hostile::gzip_bomb(hostile::BOMB_SIZE), "evil:bomb");
    let report = scan_ok(
        home.path(),
        &[
            &format!("{addr}/evil:traversal"),
            "--insecure-registry",
            addr,
        ],
    );
    assert_eq!(packages(&report).len(), hostile::BAIT_PACKAGES.len());
    // The symlinked directory replaced the database directory: nothing is left to list,
    // and nothing of the host's /etc was read through the link.
    let report = scan_ok(
        home.path(),
        &[&format!("{addr}/evil:symlink"), "--insecure-registry", addr],
    );
    assert_eq!(packages(&report).len(), 0);
    canaries_absent();
    let (out, _) = run(
        home.path(),
        &[
            "scan",
            &format!("{addr}/evil:bomb"),
            "--insecure-registry",
            addr,
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("decompression bomb"),
        "{}",
        stderr(&out)
    );
    // Nothing of the failed layer was cached: a rescan fails the same way.
    let (out, _) = run(
        home.path(),
        &[
            "scan",
            &format!("{addr}/evil:bomb"),
            "--insecure-registry",
            addr,
        ],
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn docker_archives_and_quiet_output() {
    let home = tempfile::tempdir().expect("tempdir");
    let archive = bulkhead_test_artifacts::fixture("images/alpine-311.tar.gz");
    let reference = format!("docker-archive:{}", archive.display());
    let out = bulkhead(home.path())
        .args(["scan", "--quiet", &reference])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        out.stderr.is_empty(),
        "--quiet prints nothing on stderr: {}",
        stderr(&out)
    );
    let report = scan_ok(home.path(), &[&reference]);
    assert_eq!(report["os"]["id"], "alpine");
    assert!(
        packages(&report)
            .iter()
            .any(|(n, v, _)| n == "musl" && v.starts_with("1.1.24"))
    );
}

/// `KEY` of an os-release file, read the simple way (the fixtures quote with `"` or not at
/// all): the test's own reading, not the scanner's parser.
fn os_release_field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
    })
}

/// Issue 13, item 3: a later layer overrides only the release files it declares. Once the
/// last layer with any OS information decided the OS, so a layer that only added
/// `/etc/lsb-release` (here a real Ubuntu 18.04 one) turned a Debian 12 image into Ubuntu
/// 18.04 and matched it against the wrong advisories. A layer that replaces
/// `/etc/os-release` itself (here with Alpine 3.20's) does change the OS.
#[test]
fn a_later_layer_overrides_only_the_release_files_it_declares() {
    let debian = std::fs::read_to_string(bulkhead_test_artifacts::fixture(
        "dpkg/debian-bookworm-minbase/usr/lib/os-release",
    ))
    .expect("Debian's os-release");
    let alpine = std::fs::read_to_string(bulkhead_test_artifacts::fixture(
        "apk/alpine-3.20/etc/os-release",
    ))
    .expect("Alpine's os-release");
    let lsb = std::fs::read(bulkhead_test_artifacts::fixture(
        "release/ubuntu-18.04/lsb-release",
    ))
    .expect("Ubuntu's lsb-release");
    let home = tempfile::tempdir().expect("tempdir");
    let os_of = |image: &Image| {
        let report = scan_ok(home.path(), &[&image.oci_ref(), "--no-cache"]);
        (
            report["os"]["id"].as_str().map(str::to_string),
            report["os"]["version_id"].as_str().map(str::to_string),
        )
    };

    let added_lsb = images::debian_minbase_then(&[("etc/lsb-release", &lsb)], "lsb");
    assert_eq!(
        os_of(&added_lsb),
        (
            os_release_field(&debian, "ID"),
            os_release_field(&debian, "VERSION_ID")
        ),
        "a later lsb-release must not override the base image's os-release"
    );

    let replaced = images::debian_minbase_then(&[("etc/os-release", alpine.as_bytes())], "alpine");
    assert_eq!(
        os_of(&replaced),
        (
            os_release_field(&alpine, "ID"),
            os_release_field(&alpine, "VERSION_ID")
        ),
        "a later layer's own os-release decides"
    );
}

/// Issue 13, item 2: Alpine edge. An edge image's os-release names the next release with a
/// snapshot date (`3.14.0_alpha20210212`, `PRETTY_NAME="Alpine Linux edge"`); it was matched
/// as that release (`Alpine:v3.14`: no such data, nothing checked) and called end-of-life.
/// Here the real Alpine 3.20.3 minirootfs with edge's release files laid over it, against
/// the real secdb `edge` feed: every finding comes from `Alpine:edge`, nothing is left
/// unchecked, no end of life, and a diagnostic says edge is a moving target.
#[test]
fn alpine_edge_is_matched_against_the_edge_data_and_never_end_of_life() {
    let release = |name: &str| {
        std::fs::read(bulkhead_test_artifacts::fixture(&format!(
            "release/alpine-edge/{name}"
        )))
        .expect("edge release file")
    };
    let (os_release, alpine_release) = (release("os-release"), release("alpine-release"));
    let image = images::alpine_then(
        "3.20",
        Compression::Gzip,
        &[
            ("etc/os-release", &os_release),
            ("etc/alpine-release", &alpine_release),
        ],
    );
    let home = tempfile::tempdir().expect("tempdir");
    let db = home.path().join("advisories.db");
    for feed in ["main", "community"] {
        crate::harness::import(
            home.path(),
            &bulkhead_test_artifacts::fixture(&format!(
                "advisories/alpine-secdb-2024/edge-2024-12-31/{feed}.json"
            )),
            &db,
        );
    }
    let report = scan_ok(
        home.path(),
        &[
            &image.oci_ref(),
            "--no-cache",
            "--db",
            &db.to_string_lossy(),
        ],
    );
    let codes: BTreeSet<&str> = report["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .filter_map(|d| d["code"].as_str())
        .collect();
    assert!(codes.contains("os-moving-target"), "{codes:?}");
    for absent in ["os-eol", "db-missing-ecosystem", "match-skipped"] {
        assert!(
            !codes.contains(absent),
            "{absent}: {}",
            report["diagnostics"]
        );
    }
    assert_ne!(report["health"], "unknown", "{}", report["diagnostics"]);
    let findings = report["findings"].as_array().expect("findings");
    assert!(
        findings.iter().all(|f| f["ecosystem"] == "Alpine:edge"),
        "{findings:?}"
    );
    eprintln!(
        "alpine edge: {} findings, health {}",
        findings.len(),
        report["health"]
    );
}

/// Issue 14, item 1: the `./` root entry that heads most real layer tars (here the official
/// Alpine minirootfs layers) is not an odd name: no `odd-names-skipped` for them. Truly odd
/// names (newline, invalid UTF-8, escape sequences, an empty name) still are reported.
#[test]
fn the_root_entry_of_real_layers_is_not_an_odd_name() {
    let home = tempfile::tempdir().expect("tempdir");
    let codes = |image: &Image| -> Vec<String> {
        let (out, json) = run(
            home.path(),
            &["scan", "--format", "json", "--no-cache", &image.oci_ref()],
        );
        let report = json.unwrap_or_else(|| panic!("no JSON report: {}", stderr(&out)));
        report["diagnostics"]
            .as_array()
            .expect("diagnostics")
            .iter()
            .filter_map(|d| d["code"].as_str().map(str::to_string))
            .collect()
    };
    for version in ["3.12", "3.20"] {
        let image = images::alpine(version);
        let layer = bulkhead_test_artifacts::fixture(&format!(
            "images/alpine-minirootfs-{}-x86_64.tar.gz",
            if version == "3.12" {
                "3.12.12"
            } else {
                "3.20.3"
            }
        ));
        // The premise: the real layer starts with the root entry.
        let listing = std::process::Command::new("tar")
            .arg("tzf")
            .arg(&layer)
            .output()
            .expect("tar");
        assert_eq!(
            String::from_utf8_lossy(&listing.stdout).lines().next(),
            Some("./"),
            "{}",
            layer.display()
        );
        let found = codes(&image);
        assert!(
            !found.iter().any(|c| c == "odd-names-skipped"),
            "alpine {version}: {found:?}"
        );
    }
    let found = codes(&hostile::weird_names());
    assert!(found.iter().any(|c| c == "odd-names-skipped"), "{found:?}");
}

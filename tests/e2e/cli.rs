//! The `bulkhead` binary, end to end: real status files, the distribution's own tool as
//! the oracle, hostile analyzers loaded the way a user would load them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bulkhead_test_artifacts::{HOSTILE, HOSTILE_SOCKET, fixture, skip};
use serde_json::Value;

use crate::harness::bulkhead;

/// (name, version, arch, source name, source version).
type Row = (String, String, String, String, String);

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}); stderr: {}; stdout: {}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn debian_root() -> PathBuf {
    fixture("dpkg/debian-bookworm-minbase")
}

/// (name, version, arch, source name, source version) of every package whose files are on
/// disk, as dpkg-query itself reports them from `admindir`.
fn dpkg_query(admindir: &Path) -> Option<BTreeSet<Row>> {
    let out = Command::new("dpkg-query")
        .arg(format!("--admindir={}", admindir.display()))
        .args(["-W", "-f", "${Package}\\t${Version}\\t${Architecture}\\t${source:Package}\\t${source:Version}\\t${db:Status-Status}\\n"])
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "dpkg-query failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let on_disk = [
        "installed",
        "unpacked",
        "half-configured",
        "half-installed",
        "triggers-awaited",
        "triggers-pending",
    ];
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f.len() == 6 && on_disk.contains(&f[5])).then(|| {
                    (
                        f[0].into(),
                        f[1].into(),
                        f[2].into(),
                        f[3].into(),
                        f[4].into(),
                    )
                })
            })
            .collect(),
    )
}

fn reported(report: &Value) -> BTreeSet<Row> {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    report["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            (
                s(&p["name"]),
                s(&p["version"]),
                s(&p["arch"]),
                s(&p["source_name"]),
                s(&p["source_version"]),
            )
        })
        .collect()
}

/// dpkg-query is the oracle: without it the test skips (the skip policy: a failure in CI).
fn require_dpkg_query(result: Option<BTreeSet<Row>>) -> Option<BTreeSet<Row>> {
    if result.is_none() {
        skip("dpkg-query is not installed (apt-get install dpkg)");
    }
    result
}

#[test]
fn scan_dir_reports_exactly_what_dpkg_query_lists() {
    let home = tempfile::tempdir().expect("tempdir");
    let root = debian_root();
    let out = bulkhead(home.path())
        .args([
            "scan",
            &format!("dir:{}", root.display()),
            "--format",
            "json",
        ])
        .output()
        .expect("run bulkhead");
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    assert_eq!(report["complete"], true);
    assert_eq!(report["os"]["id"], "debian");
    assert_eq!(report["os"]["version_id"], "12");
    let Some(expected) = require_dpkg_query(dpkg_query(&root.join("var/lib/dpkg"))) else {
        return;
    };
    assert!(expected.len() > 90, "the fixture has about 99 packages");
    assert_eq!(reported(&report), expected);
}

#[test]
fn scan_dir_of_this_machine_matches_dpkg_query() {
    // The 700-odd packages of the machine running the tests: a large real database.
    if !Path::new("/var/lib/dpkg/status").exists() {
        skip("this machine is not a dpkg system (no /var/lib/dpkg/status)");
        return;
    }
    let home = tempfile::tempdir().expect("tempdir");
    let out = bulkhead(home.path())
        .args(["scan", "dir:/", "--format", "json"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let Some(expected) = require_dpkg_query(dpkg_query(Path::new("/var/lib/dpkg"))) else {
        return;
    };
    assert_eq!(reported(&json(&out)), expected);
}

#[test]
fn table_output_and_output_file() {
    let home = tempfile::tempdir().expect("tempdir");
    let root = debian_root();
    let out = bulkhead(home.path())
        .args(["scan", &format!("dir:{}", root.display())])
        .output()
        .expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Debian GNU/Linux 12 (bookworm)"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("libc6 ") && l.contains("amd64")),
        "{text}"
    );

    let file = home.path().join("report.json");
    let out = bulkhead(home.path())
        .args([
            "scan",
            &format!("dir:{}", root.display()),
            "-f",
            "json",
            "-o",
        ])
        .arg(&file)
        .output()
        .expect("run");
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let report: Value =
        serde_json::from_slice(&std::fs::read(&file).expect("report")).expect("json");
    assert!(report["packages"].as_array().is_some_and(|p| !p.is_empty()));
}

#[test]
fn a_vcpkg_status_file_is_not_a_dpkg_database() {
    let home = tempfile::tempdir().expect("tempdir");
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(root.path().join("var/lib/dpkg")).expect("mkdir");
    std::fs::copy(
        fixture("dpkg/claircore/vcpkg.status"),
        root.path().join("var/lib/dpkg/status"),
    )
    .expect("copy");
    let out = bulkhead(home.path())
        .args([
            "scan",
            &format!("dir:{}", root.path().display()),
            "-f",
            "json",
        ])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    assert_eq!(report["packages"].as_array().map(Vec::len), Some(0));
    assert_eq!(report["complete"], true);
}

#[test]
fn analyzers_list_names_every_analyzer_and_its_digest() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = bulkhead(home.path())
        .args([
            "analyzers",
            "list",
            "--format",
            "json",
            "--analyzer",
            HOSTILE,
        ])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = json(&out);
    let list = list.as_array().expect("array");
    let dpkg = list
        .iter()
        .find(|a| a["name"] == "dpkg")
        .expect("dpkg is built in");
    assert_eq!(dpkg["origin"], "built-in");
    assert_eq!(dpkg["wit_version"], "0.1.0");
    assert!(
        dpkg["requests"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["pattern"] == "var/lib/dpkg/status"))
    );
    let hostile = list
        .iter()
        .find(|a| a["name"] == "hostile")
        .expect("hostile loaded");
    assert_eq!(hostile["version"], "6.6.6");
    assert_eq!(hostile["origin"], HOSTILE);
    // The digest, computed by an independent tool.
    let sum = Command::new("sha256sum")
        .arg(HOSTILE)
        .output()
        .expect("sha256sum");
    let sum = String::from_utf8_lossy(&sum.stdout);
    assert_eq!(hostile["sha256"].as_str(), sum.split_whitespace().next());
}

#[test]
fn the_plugins_directory_is_loaded() {
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(home.path().join("analyzers")).expect("mkdir");
    std::fs::copy(HOSTILE, home.path().join("analyzers/hostile.wasm")).expect("copy");
    let out = bulkhead(home.path())
        .args(["analyzers", "list", "-f", "json"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = json(&out);
    assert!(
        list.as_array()
            .expect("array")
            .iter()
            .any(|a| a["name"] == "hostile")
    );
}

#[test]
fn a_socket_importing_analyzer_is_refused_with_the_import_named() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = bulkhead(home.path())
        .args([
            "scan",
            &format!("dir:{}", debian_root().display()),
            "--analyzer",
            HOSTILE_SOCKET,
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("wasi:sockets/") && err.contains(HOSTILE_SOCKET),
        "{err}"
    );
}

/// A root with the real Debian database and the hostile guest's mode file.
fn hostile_root(mode: &str) -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(t.path().join("var/lib/dpkg")).expect("mkdir");
    std::fs::copy(
        debian_root().join("var/lib/dpkg/status"),
        t.path().join("var/lib/dpkg/status"),
    )
    .expect("copy");
    std::fs::write(t.path().join("hostile.mode"), mode).expect("mode");
    t
}

#[test]
fn every_hostile_analyzer_is_contained_and_dpkg_results_still_come_through() {
    let home = tempfile::tempdir().expect("tempdir");
    let expected_packages = {
        let root = hostile_root("none");
        let out = bulkhead(home.path())
            .args([
                "scan",
                &format!("dir:{}", root.path().display()),
                "-f",
                "json",
            ])
            .output()
            .expect("run");
        reported(&json(&out)).len()
    };
    assert!(expected_packages > 90);
    // Limits come from a config file (and two flags below), as an operator would set them.
    let config = home.path().join("config.toml");
    std::fs::write(
        &config,
        "[sandbox]\nmax_packages = 1000\nmax_handles = 256\n",
    )
    .expect("config");
    let cases = [
        ("loop", "analyzer-timeout", "time limit"),
        ("sleep:30", "analyzer-timeout", "time limit"),
        ("oom", "analyzer-memory", "memory limit"),
        ("grow", "analyzer-memory", "memory limit"),
        ("stack:native", "analyzer-stack", "stack limit"),
        ("panic", "analyzer-trap", "panicked on purpose"),
        (
            "alias:2000:1048576",
            "analyzer-output-too-large",
            "hostcall fuel",
        ),
        ("bigout:5000", "analyzer-too-many-packages", "limit of 1000"),
        ("fds:100000", "analyzer-handles", "handle limit"),
    ];
    for (mode, code, words) in cases {
        let root = hostile_root(mode);
        let out = bulkhead(home.path())
            .args([
                "scan",
                &format!("dir:{}", root.path().display()),
                "-f",
                "json",
                "--analyzer",
                HOSTILE,
            ])
            .args(["--analyzer-timeout", "1500", "--analyzer-memory", "128"])
            .arg("--config")
            .arg(&config)
            .output()
            .expect("run");
        assert_eq!(
            out.status.code(),
            Some(3),
            "{mode}: incomplete scan; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report = json(&out);
        assert_eq!(report["complete"], false, "{mode}");
        assert_eq!(
            reported(&report).len(),
            expected_packages,
            "{mode}: dpkg's results must still come through"
        );
        let diags = report["diagnostics"].as_array().expect("diagnostics");
        let d = diags
            .iter()
            .find(|d| d["analyzer"] == "hostile@6.6.6" && d["level"] == "error")
            .unwrap_or_else(|| {
                panic!("{mode}: no error diagnostic naming hostile@6.6.6: {diags:?}")
            });
        assert_eq!(d["code"], code, "{mode}: {d}");
        let message = d["message"].as_str().unwrap_or("");
        assert!(
            message.contains(words) && message.contains("hostile@6.6.6"),
            "{mode}: {message}"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("incomplete"), "{mode}: {stderr}");
    }
}

#[test]
fn a_stderr_flood_is_capped_and_reported_but_not_fatal() {
    let home = tempfile::tempdir().expect("tempdir");
    let root = hostile_root("spam:20");
    let out = bulkhead(home.path())
        .args([
            "scan",
            &format!("dir:{}", root.path().display()),
            "-f",
            "json",
            "--analyzer",
            HOSTILE,
        ])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    let diags = report["diagnostics"].as_array().expect("diagnostics");
    assert!(
        diags
            .iter()
            .any(|d| d["code"] == "analyzer-stderr-limit" && d["analyzer"] == "hostile@6.6.6"),
        "{diags:?}"
    );
    assert!(
        out.stdout.len() < 1 << 20,
        "the flood must not reach the report"
    );
}

#[test]
fn bad_input_gets_a_clear_error() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = bulkhead(home.path())
        .args(["scan", "dir:/does/not/exist"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/does/not/exist"));

    let out = bulkhead(home.path())
        .args(["scan", "--analyzer", "/nope.wasm", "dir:/tmp"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nope.wasm"));

    let not_wasm = home.path().join("evil.wasm");
    std::fs::write(&not_wasm, b"#!/bin/sh\necho pwned\n").expect("write");
    let out = bulkhead(home.path())
        .arg("scan")
        .arg("--analyzer")
        .arg(&not_wasm)
        .arg("dir:/tmp")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("evil.wasm") && err.contains("not a WebAssembly component"),
        "{err}"
    );

    let config = home.path().join("bad.toml");
    std::fs::write(&config, "[sandbox]\nmemory_byts = 1\n").expect("write");
    let out = bulkhead(home.path())
        .arg("--config")
        .arg(&config)
        .args(["scan", "dir:/tmp"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("memory_byts"),
        "{err}"
    );
}

/// Issue 14, item 2: an argument that names an existing file or directory is scanned as
/// what it holds, and the output says so; an explicit scheme still wins; other tools'
/// spellings work; a missing archive or a mistyped scheme fails at once, without asking a
/// registry, naming the valid forms.
#[test]
fn paths_are_recognised_and_schemes_have_aliases() {
    let home = tempfile::tempdir().expect("tempdir");
    let db = crate::harness::demo_db(home.path());
    let db_arg = db.to_string_lossy().into_owned();
    let scan = |reference: &str| {
        crate::harness::bulkhead(home.path())
            .args(["scan", "--format", "json", "--db", &db_arg, reference])
            .output()
            .expect("run bulkhead scan")
    };
    let packages = |out: &std::process::Output| -> Vec<(String, String)> {
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("no JSON report ({e}): {}", crate::harness::stderr(out)));
        let mut p: Vec<(String, String)> = report["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .map(|p| (p["name"].to_string(), p["version"].to_string()))
            .collect();
        p.sort();
        p
    };

    // The demo image, a gzipped `docker save` archive, by its bare path.
    let archive = crate::harness::demo("almalinux9-demo.tar.gz");
    let explicit = scan(&crate::harness::demo_image());
    assert!(
        explicit.status.success(),
        "{}",
        crate::harness::stderr(&explicit)
    );
    let bare = scan(&archive.to_string_lossy());
    assert!(bare.status.success(), "{}", crate::harness::stderr(&bare));
    assert_eq!(packages(&bare), packages(&explicit));
    assert_eq!(
        packages(&bare).len(),
        30,
        "the demo image's 30 rpm packages"
    );
    let said = crate::harness::stderr(&bare);
    assert!(
        said.contains(&format!("scanning archive:{}", archive.display())),
        "{said}"
    );
    // What it held decided how it was read, and names the image.
    let reference = |out: &std::process::Output| -> String {
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
        report["image"]["reference"]
            .as_str()
            .expect("image.reference")
            .to_string()
    };
    assert_eq!(
        reference(&bare),
        format!("docker-archive:{}", archive.display())
    );
    // A rootfs directory and an OCI layout directory, by path.
    let rootfs = bulkhead_test_artifacts::fixture("apk/alpine-3.20");
    let by_path = scan(&rootfs.to_string_lossy());
    assert!(
        crate::harness::stderr(&by_path).contains(&format!("scanning dir:{}", rootfs.display())),
        "{}",
        crate::harness::stderr(&by_path)
    );
    assert_eq!(
        packages(&by_path),
        packages(&scan(&format!("fs:{}", rootfs.display())))
    );
    let image = bulkhead_test_artifacts::images::alpine("3.20");
    let layout = scan(&image.layout.to_string_lossy());
    assert!(
        crate::harness::stderr(&layout)
            .contains(&format!("scanning oci:{}", image.layout.display())),
        "{}",
        crate::harness::stderr(&layout)
    );
    assert_eq!(
        packages(&layout),
        packages(&scan(&format!(
            "oci-dir:{}:{}",
            image.layout.display(),
            image.tag
        )))
    );

    // The same Alpine image as an OCI archive (written by skopeo from the layout): by
    // scheme and tag, by bare path, and gzipped, the packages of the layout.
    if bulkhead_test_artifacts::require_tools(&["skopeo"]) {
        let file = home.path().join("alpine-3.20.oci.tar");
        let out = bulkhead_test_artifacts::skopeo::run(&[
            "copy",
            "--preserve-digests",
            &image.oci_ref(),
            &format!("oci-archive:{}:{}", file.display(), image.tag),
        ])
        .expect("run skopeo");
        assert!(out.status.success(), "{}", crate::harness::stderr(&out));
        let gz = home.path().join("alpine-3.20.oci.tar.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &std::fs::read(&file).expect("read")).expect("gzip");
        std::fs::write(&gz, enc.finish().expect("gzip")).expect("write");
        for (arg, named) in [
            (
                format!("oci-archive:{}:{}", file.display(), image.tag),
                format!("oci-archive:{}:{}", file.display(), image.tag),
            ),
            (
                file.to_string_lossy().into_owned(),
                format!("oci-archive:{}", file.display()),
            ),
            (
                gz.to_string_lossy().into_owned(),
                format!("oci-archive:{}", gz.display()),
            ),
        ] {
            let out = scan(&arg);
            assert!(
                out.status.success(),
                "{arg}: {}",
                crate::harness::stderr(&out)
            );
            assert_eq!(packages(&out), packages(&layout), "{arg}");
            assert_eq!(reference(&out), named, "{arg}");
        }
    }

    // A missing archive and a mistyped scheme: at once, with the way out.
    for (reference, says) in [
        ("img/debian.tar", "no such file or directory"),
        (
            "oci-archve:/srv/images/debian.tar",
            "unknown scheme \"oci-archve\"",
        ),
    ] {
        let out = scan(reference);
        let err = crate::harness::stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{reference}: {err}");
        assert!(err.contains(says), "{reference}: {err}");
        assert!(
            err.contains("registry:") || err.contains("docker-archive:FILE"),
            "{err}"
        );
    }
}

/// Issue 14, item 5: shell completions and the manual page come from the clap definitions.
/// bash itself loads the completion script and registers it for `bulkhead`; the manual page
/// is roff naming every subcommand; an unknown shell is a usage error listing the valid ones.
#[test]
fn completions_and_the_manual_page_are_generated() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = crate::harness::run_ok(home.path(), &["completions", "bash"]);
    let script = home.path().join("bulkhead.bash");
    std::fs::write(&script, &out.stdout).expect("write the completion script");
    let bash = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && complete -p bulkhead",
            script.display()
        ))
        .output()
        .expect("run bash");
    assert!(
        bash.status.success() && String::from_utf8_lossy(&bash.stdout).contains("bulkhead"),
        "bash: {}{}",
        String::from_utf8_lossy(&bash.stdout),
        String::from_utf8_lossy(&bash.stderr)
    );
    for shell in ["zsh", "fish"] {
        let out = crate::harness::run_ok(home.path(), &["completions", shell]);
        let text = crate::harness::stdout(&out);
        assert!(
            text.contains("--fail-on"),
            "{shell}: no --fail-on in {text:.200}"
        );
    }
    let out = crate::harness::run_ok(home.path(), &["man"]);
    let page = crate::harness::stdout(&out);
    assert!(page.contains(".TH bulkhead"), "{page:.300}");
    for sub in ["scan", "db", "serve", "query", "analyzers", "completions"] {
        assert!(page.contains(sub), "the manual page lacks {sub}");
    }
    let unknown = crate::harness::bulkhead(home.path())
        .args(["completions", "tcsh"])
        .output()
        .expect("run");
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        crate::harness::stderr(&unknown).contains("bash"),
        "the valid shells are listed"
    );
}

/// The `.cwasm` files in a home's component cache.
fn cached_artifacts(home: &Path) -> usize {
    std::fs::read_dir(home.join("components"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
                .count()
        })
        .unwrap_or(0)
}

/// Issue 14, item 3: a first run (a fresh home, as in a fresh CI container) loads the
/// built-in analyzers compiled ahead of time by build.rs and compiles nothing, so nothing
/// lands in the component cache (three `.cwasm` files did before). That an artifact for
/// another engine is not used is `bulkhead-scan`'s unit test
/// `the_ahead_of_time_artifacts_fit_this_engine_and_others_are_not_used`.
#[test]
fn the_first_run_uses_the_analyzers_compiled_ahead_of_time() {
    let home = tempfile::tempdir().expect("tempdir");
    let db = crate::harness::demo_db(home.path());
    let fresh = home.path().join("fresh");
    let out = crate::harness::bulkhead(&fresh)
        .args(["scan", "--format", "json", "--db"])
        .arg(&db)
        .arg(crate::harness::demo_image())
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", crate::harness::stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["packages"].as_array().map(Vec::len), Some(30));
    assert_eq!(
        cached_artifacts(&fresh),
        0,
        "the first run compiled analyzers: {}",
        crate::harness::stderr(&out)
    );
}

/// Issue 14, item 5: `bulkhead version --format json` has what a support request needs:
/// the versions, the analyzers with the digests `analyzers list` gives, and the database's
/// status (or why there is none), each checked against its own source.
#[test]
fn version_reports_the_engine_the_analyzers_and_the_database() {
    let home = tempfile::tempdir().expect("tempdir");
    let version = |home: &Path, extra: &[&str]| -> Value {
        let mut args = vec!["version", "--format", "json"];
        args.extend_from_slice(extra);
        let out = crate::harness::run_ok(home, &args);
        serde_json::from_slice(&out.stdout).expect("json")
    };
    let v = version(home.path(), &[]);
    assert_eq!(v["bulkhead"], env!("CARGO_PKG_VERSION"));
    let lock = std::fs::read_to_string(crate::harness::repo("Cargo.lock")).expect("Cargo.lock");
    let wasmtime = format!(
        "name = \"wasmtime\"\nversion = \"{}\"",
        v["wasmtime"].as_str().expect("wasmtime")
    );
    assert!(lock.contains(&wasmtime), "{v}");
    let wit = std::fs::read_to_string(crate::harness::repo("wit/analyzer.wit")).expect("wit");
    for w in v["wit_versions"].as_array().expect("wit_versions") {
        let w = w.as_str().expect("a version");
        assert!(
            wit.contains(&format!("@{w}")),
            "WIT {w} not in wit/analyzer.wit"
        );
    }
    // The analyzers and their digests, as `analyzers list` names them.
    let out = crate::harness::run_ok(home.path(), &["analyzers", "list", "--format", "json"]);
    let listing: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["analyzers"], listing);
    // No database yet: said, with the way to make one, and the command still succeeds.
    let error = v["advisory_database"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("bulkhead db update"), "{v}");
    // With the demo database: the sources `db status` lists.
    let db = crate::harness::demo_db(home.path());
    let db_arg = db.to_string_lossy().into_owned();
    let v = version(home.path(), &["--db", &db_arg]);
    let out = crate::harness::run_ok(
        home.path(),
        &["db", "status", "--format", "json", "--db", &db_arg],
    );
    let status: Value = serde_json::from_slice(&out.stdout).expect("json");
    // (Ages are left out: they count seconds between the two commands.)
    let names = |v: &Value| -> Vec<(String, u64)> {
        v.as_array()
            .expect("sources")
            .iter()
            .map(|s| (s["name"].to_string(), s["records"].as_u64().unwrap_or(0)))
            .collect()
    };
    assert_eq!(
        names(&v["advisory_database"]["sources"]),
        names(&status["sources"])
    );
    assert!(!names(&status["sources"]).is_empty());
    // The table form names the same things.
    let out = crate::harness::run_ok(home.path(), &["version", "--db", &db_arg]);
    let text = crate::harness::stdout(&out);
    for part in ["bulkhead ", "wasmtime ", "analyzer: rpm", "database: "] {
        assert!(text.contains(part), "{part:?} missing in:\n{text}");
    }
}

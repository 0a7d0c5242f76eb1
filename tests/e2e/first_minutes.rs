//! Issue 14, item 6: every error a newcomer can reach in the first ten minutes says what
//! failed, on which input, and the next command to try. One test per message; each runs
//! the real `bulkhead` against a real input (the demo archive, a real registry on
//! loopback, a real multi-platform layout) and reads what the user would read.

use std::path::Path;
use std::process::Output;

use bulkhead_test_artifacts::images;
use bulkhead_test_artifacts::registry::{self, Auth, Registry};
use bulkhead_test_artifacts::require_tools;

use crate::harness::{bulkhead, demo_image, stderr, stdout};

/// `bulkhead ARGS`, which must fail as a usage or input error (exit 2); its stderr.
#[track_caller]
fn fails(home: &Path, args: &[&str]) -> String {
    let out: Output = bulkhead(home).args(args).output().expect("run bulkhead");
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "bulkhead {args:?} should fail with 2\nstdout:\n{}\nstderr:\n{err}",
        stdout(&out)
    );
    err
}

/// Asserts that `text` contains every one of `parts`, showing `text` when not.
#[track_caller]
fn says(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "missing {part:?} in:\n{text}");
    }
}

#[test]
fn no_advisory_database_names_the_path_and_the_command_that_makes_one() {
    let home = tempfile::tempdir().expect("tempdir");
    let db = home.path().join("db/advisories.db");
    let db = db.to_string_lossy();
    // A gate cannot pass without data: an error, with the file and the two ways to fill it.
    let err = fails(home.path(), &["scan", &demo_image(), "--fail-on", "high"]);
    says(&err, &[&db, "bulkhead db update", "bulkhead db import"]);
    // Without a gate the inventory is still reported, and the table says what is missing.
    let out = bulkhead(home.path())
        .args(["scan", &demo_image()])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    says(&stdout(&out), &["not matched", "bulkhead db update"]);
    let err = fails(home.path(), &["db", "status"]);
    says(&err, &[&db, "bulkhead db update"]);
}

#[test]
fn a_mistyped_reference_says_what_is_wrong_and_lists_the_forms() {
    let home = tempfile::tempdir().expect("tempdir");
    // Upper case is not allowed in a repository name: no registry is asked.
    let err = fails(home.path(), &["scan", "Alpine:3.19"]);
    says(
        &err,
        &[
            "Alpine:3.19",
            "lowercase",
            "did you mean alpine:3.19",
            "NAME[:TAG|@DIGEST]",
        ],
    );
    let err = fails(home.path(), &["scan", "alpine@sha256:123"]);
    says(
        &err,
        &["alpine@sha256:123", "64 hex digits", "NAME[:TAG|@DIGEST]"],
    );
    let err = fails(home.path(), &["scan", "alpine:3.19:latest"]);
    says(
        &err,
        &[
            "alpine:3.19:latest",
            "more than one ':'",
            "NAME[:TAG|@DIGEST]",
        ],
    );
}

fn registry_tools() -> bool {
    require_tools(registry::TOOLS)
}

#[test]
fn an_unknown_repository_or_tag_is_not_found_with_the_way_to_list_tags() {
    if !registry_tools() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let image = images::alpine("3.20");
    crate::harness::push_image(&reg, &image, "alpine:3.20");
    let home = tempfile::tempdir().expect("tempdir");
    for reference in [
        format!("{}/alpin:3.20", reg.addr()),
        format!("{}/alpine:3.02", reg.addr()),
    ] {
        let err = fails(
            home.path(),
            &["scan", &reference, "--insecure-registry", reg.addr()],
        );
        says(&err, &[&reference, "not found", "skopeo list-tags"]);
    }
}

#[test]
fn an_unreachable_registry_is_named_with_what_to_check() {
    // Port 9 on loopback (discard) is closed here: the connection is refused at once.
    let home = tempfile::tempdir().expect("tempdir");
    let err = fails(
        home.path(),
        &[
            "scan",
            "127.0.0.1:9/app:1",
            "--insecure-registry",
            "127.0.0.1:9",
        ],
    );
    says(
        &err,
        &[
            "127.0.0.1:9",
            "network error",
            "reachable",
            "--insecure-registry",
        ],
    );
}

#[test]
fn a_registry_that_wants_credentials_says_how_to_give_them() {
    if !registry_tools() {
        return;
    }
    let reg = Registry::start(Auth::htpasswd("scanner", "s3cret"));
    let image = images::alpine("3.20");
    crate::harness::push_image(&reg, &image, "alpine:3.20");
    let home = tempfile::tempdir().expect("tempdir");
    let reference = format!("{}/alpine:3.20", reg.addr());
    let login = format!("docker login {}", reg.addr());
    // No credentials at all, then wrong ones: both name the registry and the ways in.
    let err = fails(
        home.path(),
        &["scan", &reference, "--insecure-registry", reg.addr()],
    );
    says(
        &err,
        &[reg.addr(), "authentication failed", &login, "--username"],
    );
    let err = fails(
        home.path(),
        &[
            "scan",
            &reference,
            "--insecure-registry",
            reg.addr(),
            "--username",
            "scanner",
            "--password",
            "wrong",
        ],
    );
    says(&err, &[reg.addr(), "authentication failed", &login]);
}

#[test]
fn a_platform_the_image_lacks_lists_the_ones_it_has() {
    let image = images::multi_platform();
    let home = tempfile::tempdir().expect("tempdir");
    let reference = format!("oci:{}:{}", image.layout.display(), image.tag);
    let err = fails(
        home.path(),
        &["scan", &reference, "--platform", "linux/s390x"],
    );
    says(
        &err,
        &[
            "linux/s390x",
            "linux/amd64",
            "linux/arm64",
            "--platform linux/amd64",
        ],
    );
    // A platform that is not OS/ARCH is a usage error with the form.
    let err = fails(home.path(), &["scan", &reference, "--platform", "amd64"]);
    says(&err, &["amd64", "os/arch", "linux/amd64"]);
}

#[test]
fn a_corrupt_archive_is_named_with_how_to_make_it_again() {
    let home = tempfile::tempdir().expect("tempdir");
    // The demo archive cut in half: gzip ends early, as a download that stopped would.
    let whole = std::fs::read(crate::harness::demo("almalinux9-demo.tar.gz")).expect("demo");
    let cut = home.path().join("cut.tar.gz");
    std::fs::write(&cut, &whole[..whole.len() / 2]).expect("write");
    let reference = format!("docker-archive:{}", cut.display());
    let err = fails(home.path(), &["scan", &reference]);
    says(&err, &["cut.tar.gz", "docker save"]);
    // Not an archive at all.
    let text = home.path().join("notes.tar");
    std::fs::write(&text, "these are not the layers you are looking for\n").expect("write");
    let err = fails(
        home.path(),
        &["scan", &format!("docker-archive:{}", text.display())],
    );
    says(&err, &["notes.tar", "docker save"]);
}

#[test]
fn an_unknown_flag_or_command_suggests_the_right_one() {
    let home = tempfile::tempdir().expect("tempdir");
    let err = fails(home.path(), &["scan", "--sevrity", "high", &demo_image()]);
    says(&err, &["--sevrity", "--severity", "--help"]);
    let err = fails(home.path(), &["scna", "alpine"]);
    says(&err, &["scna", "scan", "--help"]);
    let err = fails(home.path(), &["scan", "--format", "jsn", &demo_image()]);
    says(&err, &["jsn", "json", "table", "sarif"]);
}

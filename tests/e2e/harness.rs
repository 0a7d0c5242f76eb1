//! What every end-to-end test shares: the `bulkhead` binary run hermetically, the repo's
//! demo (image, advisories, the database imported from them, the CLI's report of it), and
//! pushing an archive to a test registry. The skip policy, the `both!` macro and the
//! harnesses for registries, the service and PostgreSQL are in `bulkhead_test_artifacts`.

#![allow(dead_code)] // each test module uses a different part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bulkhead_test_artifacts::registry::Registry;
use bulkhead_test_artifacts::skopeo;
use serde_json::Value;

/// The `bulkhead` binary under test.
pub(crate) fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_bulkhead"))
}

/// `rel` in this repository.
pub(crate) fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// `demo/<rel>`.
pub(crate) fn demo(rel: &str) -> PathBuf {
    repo("demo").join(rel)
}

/// The demo image (`demo/almalinux9-demo.tar.gz`, AlmaLinux 9.4 with 30 rpm packages) as a
/// scan reference.
pub(crate) fn demo_image() -> String {
    format!(
        "docker-archive:{}",
        demo("almalinux9-demo.tar.gz").display()
    )
}

/// The advisories the demo carries (`demo/advisories/almalinux9`, real AlmaLinux OSV).
pub(crate) fn demo_advisories() -> PathBuf {
    demo("advisories/almalinux9")
}

/// `bulkhead` with home `home` and nothing from the developer's environment: every
/// `BULKHEAD_*` variable removed, the working directory `home`, no proxy, no registry
/// credential file, `NO_COLOR` ([`bulkhead_test_artifacts::hermetic`]). `home` is created
/// if missing; pass a fresh temporary directory (or a new directory inside one).
pub(crate) fn bulkhead(home: &Path) -> Command {
    let mut c = Command::new(bin());
    bulkhead_test_artifacts::hermetic(&mut c, home);
    c
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `bulkhead ARGS` with home `home`; fails the test unless it exits 0.
#[track_caller]
pub(crate) fn run_ok(home: &Path, args: &[&str]) -> Output {
    let out = bulkhead(home).args(args).output().expect("run bulkhead");
    assert!(
        out.status.success(),
        "bulkhead {args:?} failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    out
}

/// `bulkhead db import INPUT --db DB` (into a fresh or an existing file), with home `home`.
#[track_caller]
pub(crate) fn import(home: &Path, input: &Path, db: &Path) {
    let out = bulkhead(home)
        .args(["db", "import"])
        .arg(input)
        .arg("--db")
        .arg(db)
        .output()
        .expect("run bulkhead db import");
    assert!(
        out.status.success(),
        "db import {} failed: {}",
        input.display(),
        stderr(&out)
    );
}

/// `bulkhead db import demo/advisories/almalinux9 --db DIR/advisories.db` into a fresh file
/// (home `DIR/import-home`).
pub(crate) fn demo_db(dir: &Path) -> PathBuf {
    let db = dir.join("advisories.db");
    import(&dir.join("import-home"), &demo_advisories(), &db);
    db
}

/// The CLI's JSON report of the demo image with the advisory database `db` (home
/// `DIR/cli-home`).
pub(crate) fn cli_report(dir: &Path, db: &Path) -> Value {
    let out = bulkhead(&dir.join("cli-home"))
        .arg("scan")
        .arg(demo_image())
        .args(["-f", "json", "--db"])
        .arg(db)
        .output()
        .expect("run bulkhead scan");
    assert!(
        out.status.success(),
        "bulkhead scan failed: {}",
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

/// A gzipped `docker save` archive, gunzipped into `dir` (skopeo 1.9 reads plain archives
/// only).
pub(crate) fn gunzip(gz: &Path, dir: &Path) -> PathBuf {
    let name = gz
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".gz"))
        .expect("a .gz file");
    let tar = dir.join(name);
    if !tar.exists() {
        let f = std::fs::File::open(gz).expect("open the archive");
        let mut out = std::fs::File::create(&tar).expect("create the tar");
        std::io::copy(&mut flate2::read::GzDecoder::new(f), &mut out).expect("gunzip");
    }
    tar
}

/// The demo `docker save` archive, gunzipped into `dir`.
pub(crate) fn demo_archive(dir: &Path) -> PathBuf {
    gunzip(&demo("almalinux9-demo.tar.gz"), dir)
}

/// Pushes a built image (an OCI layout, its tag) to `reg` as `name` (`repo:tag`) with
/// skopeo and the registry's credentials.
pub(crate) fn push_image(
    reg: &Registry,
    image: &bulkhead_test_artifacts::images::Image,
    name: &str,
) {
    skopeo::push_with(
        &image.layout,
        &image.tag,
        reg.addr(),
        reg.creds(),
        name,
        &skopeo::PushOptions::default(),
    )
    .unwrap_or_else(|e| panic!("push {name}: {e}\nregistry log:\n{}", reg.log()));
}

/// Pushes a `docker save` archive to `reg` as `dest` (`repo:tag`) with skopeo.
pub(crate) fn push_archive(reg: &Registry, archive: &Path, dest: &str) {
    let out = skopeo::run(&[
        "copy".to_string(),
        "--retry-times=0".into(),
        "--dest-tls-verify=false".into(),
        "--dest-no-creds".into(),
        format!("docker-archive:{}", archive.display()),
        format!("docker://{}/{dest}", reg.addr()),
    ])
    .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo push of {} failed: {}{}\nregistry log:\n{}",
        archive.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        reg.log()
    );
}

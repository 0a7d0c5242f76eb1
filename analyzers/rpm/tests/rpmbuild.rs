//! An rpmdb built here by rpm itself: the packages of `tests/fixtures/rpm/specs/` (an
//! epoch, an explicit epoch 0, `~` and `^` versions, a subpackage, a modularity label, a
//! 150-file package) built with `rpmbuild`, installed with `rpm -i --justdb` into an
//! SQLite database, one of them erased again, and a gpg key imported. The analyzer's
//! reading is compared with `rpm -qa` on the same database, field by field and file by
//! file.
//!
//! Debian's rpm 4.18 writes only SQLite (its BerkeleyDB backend is read-only and it has
//! no NDB), so this covers the SQLite reader only.

mod common;

use std::fs;
use std::process::Command;

use bulkhead_analyzer_rpm::analyze;
use common::{TempDir, assert_matches_rpm, fixtures, have, property, rpm_qa, run};

#[test]
fn rpmbuild_installed_database_matches_rpm_qa() {
    if !have("rpm") || !have("rpmbuild") {
        return;
    }
    let tmp = TempDir::new("build");
    let top = tmp.path().join("top");
    let specs = fixtures().join("specs");
    let mut names: Vec<_> = fs::read_dir(&specs)
        .expect("specs")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "spec"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 4);
    for spec in &names {
        let mut cmd = Command::new("rpmbuild");
        cmd.arg("--quiet")
            .arg("--define")
            .arg(format!("_topdir {}", top.display()));
        if spec.ends_with("bh-tilde.spec") {
            cmd.args(["--define", "modularitylabel bh:1:20240101:abcd"]);
        }
        run(cmd.arg("-bb").arg(spec));
    }
    let rpms: Vec<_> = fs::read_dir(top.join("RPMS/noarch"))
        .expect("built rpms")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(rpms.len(), 4, "{rpms:?}");

    // The usr-merged location, to exercise the directory search too.
    let root = tmp.path().join("root");
    let dbdir = root.join("usr/lib/sysimage/rpm");
    fs::create_dir_all(&dbdir).expect("mkdir");
    let rpm = |args: &[&str]| {
        let mut cmd = Command::new("rpm");
        cmd.args(args)
            .arg("--dbpath")
            .arg(&dbdir)
            .args(["--define", "_db_backend sqlite"]);
        cmd
    };
    run(rpm(&["-i", "--nodeps", "--justdb"]).args(&rpms));
    // Erasing leaves a gap in the rowids and free pages behind.
    run(&mut rpm(&["-e", "--nodeps", "--justdb", "bh-caret"]));
    run(Command::new("rpmkeys")
        .arg("--import")
        .arg(fixtures().join("test-pubkey.asc"))
        .arg("--dbpath")
        .arg(&dbdir)
        .args(["--define", "_db_backend sqlite"]));
    // rpm checkpoints its write-ahead log when it closes the database, so everything is in
    // the main file here; databases with committed frames left in the log are the WAL
    // fixtures of tests/sqlite.rs.
    let wal = dbdir.join("rpmdb.sqlite-wal");
    assert!(
        fs::metadata(&wal).map_or(true, |m| m.len() == 0),
        "non-empty WAL"
    );

    let a = analyze(&root).unwrap_or_else(|e| panic!("{e:?}"));
    let want = rpm_qa(&dbdir);
    assert_matches_rpm(&a, &want);

    let names: Vec<&str> = a.packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(!names.contains(&"bh-caret") && names.contains(&"gpg-pubkey"));
    assert!(
        a.packages
            .iter()
            .all(|p| p.db_path == "usr/lib/sysimage/rpm/rpmdb.sqlite")
    );
    let epoch = a
        .packages
        .iter()
        .find(|p| p.name == "bh-epoch")
        .expect("bh-epoch");
    assert_eq!(property(epoch, "epoch"), Some("3"));
    assert_eq!(epoch.files.len(), 154);
}

#[test]
fn explicit_epoch_zero_and_caret_version() {
    if !have("rpm") || !have("rpmbuild") {
        return;
    }
    let tmp = TempDir::new("caret");
    let top = tmp.path().join("top");
    run(Command::new("rpmbuild")
        .arg("--quiet")
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .arg("-bb")
        .arg(fixtures().join("specs/bh-caret.spec")));
    let root = tmp.path().join("root");
    let dbdir = root.join("var/lib/rpm");
    fs::create_dir_all(&dbdir).expect("mkdir");
    let rpm = fs::read_dir(top.join("RPMS/noarch"))
        .expect("built")
        .next()
        .expect("one rpm")
        .expect("entry")
        .path();
    run(Command::new("rpm")
        .args(["-i", "--nodeps", "--justdb", "--dbpath"])
        .arg(&dbdir)
        .args(["--define", "_db_backend sqlite"])
        .arg(rpm));
    let a = analyze(&root).unwrap_or_else(|e| panic!("{e:?}"));
    assert_matches_rpm(&a, &rpm_qa(&dbdir));
    // What rpm printed, spelled out: an explicit Epoch 0 is shown.
    assert_eq!(a.packages[0].version, "0:1.0^20230101git1a2b3c-1");
}

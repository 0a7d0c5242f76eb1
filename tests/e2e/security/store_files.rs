//! The SQLite store is private to the service's user (issue 12, item 8): it holds every
//! tenant's results, the token hashes and the notification secrets, so another local
//! user must not read it. SQLite only: PostgreSQL's files are the server's business.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use bulkhead_test_artifacts::service::{ServiceHarness, ServiceOptions};

use crate::harness::bin;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// The directory, the database and the `-wal` and `-shm` files SQLite keeps beside it,
/// while the service runs: `0700` and `0600`.
fn assert_private(svc: &ServiceHarness) {
    let db = svc.store_path();
    let dir = db.parent().expect("the store's directory");
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    for f in [
        db.clone(),
        with_suffix(&db, "-wal"),
        with_suffix(&db, "-shm"),
    ] {
        assert!(f.exists(), "{} exists while the service runs", f.display());
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
}

#[test]
fn the_sqlite_store_is_private_and_an_old_one_is_tightened() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = ServiceOptions::new(&dir.path().join("advisories.db"));
    opts.tenant("alpha", &[]);
    let mut svc = ServiceHarness::start(bin(), opts);
    // Writes by the service and by a second process (`serve token create`).
    let token = svc.create_token("alpha", "reader");
    assert_eq!(svc.get("/v1/whoami", Some(&token)).status, 200);
    assert_private(&svc);

    // A store made world-readable (by an older version, or by hand) is tightened at the
    // next start.
    svc.stop();
    let db = svc.store_path();
    let store_dir = db.parent().expect("dir").to_path_buf();
    std::fs::set_permissions(&store_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    svc.start_again();
    assert_eq!(svc.get("/v1/whoami", Some(&token)).status, 200);
    assert_private(&svc);
}

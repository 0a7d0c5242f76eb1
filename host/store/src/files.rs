//! The SQLite store's files are private to the service's user: they hold every tenant's
//! results, token hashes and notification secrets. At every open the directory is made (or
//! checked to be) `0700` and the database and its companions (`-wal`, `-shm`,
//! `-journal`) `0600`, like the compiled-analyzer cache (`bulkhead_scan::home::private_dir`):
//! a directory or file of this user that others could read is tightened, one that belongs
//! to another user or is a symbolic link is refused. SQLite creates `-wal` and `-shm` with
//! the database file's permissions, so creating the database `0600` before SQLite opens it
//! covers the files it makes later.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The files SQLite keeps beside the database.
const COMPANIONS: &[&str] = &["-wal", "-shm", "-journal"];

fn companion(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

fn me() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Tightens `path` (a directory or a regular file of this user) to `mode`.
fn private(path: &Path, dir: bool, mode: u32) -> Result<()> {
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| Error::Db(format!("cannot stat {}: {e}", path.display())))?;
    let kind = if dir { "a directory" } else { "a regular file" };
    if (dir && !meta.is_dir()) || (!dir && !meta.is_file()) {
        return Err(Error::Db(format!(
            "{} is not {kind} (a symbolic link?): the store must be {kind} of its own; \
             point store.path at the real location",
            path.display()
        )));
    }
    if meta.uid() != me() {
        return Err(Error::Db(format!(
            "{} belongs to uid {}, not to this user (uid {}): the store holds every \
             tenant's data, so Bulkhead only uses one it owns (chown it, or run as its owner)",
            path.display(),
            meta.uid(),
            me()
        )));
    }
    if meta.mode() & 0o777 != mode {
        std::fs::set_permissions(path, Permissions::from_mode(mode)).map_err(|e| {
            Error::Db(format!(
                "{} is mode {:o} and cannot be made {mode:o}: {e}",
                path.display(),
                meta.mode() & 0o777
            ))
        })?;
    }
    Ok(())
}

/// Before SQLite opens `path`: its directory `0700` (created when missing), the database
/// `0600` (created empty when missing, so that SQLite never creates it with its own
/// default `0644`), companions left by an earlier run `0600`.
pub(crate) fn prepare(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| Error::Db(format!("cannot create {}: {e}", dir.display())))?;
    private(&dir, true, 0o700)?;
    if std::fs::symlink_metadata(path).is_err() {
        // `create` without `truncate`: another process creating it at the same moment is
        // fine, and the mode only applies to a file created here.
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::Db(format!("cannot create {}: {e}", path.display())))?;
    }
    private(path, false, 0o600)?;
    secure_companions(path)
}

/// The companions that exist now `0600` (after opening: the `-wal` and `-shm` SQLite made).
pub(crate) fn secure_companions(path: &Path) -> Result<()> {
    for suffix in COMPANIONS {
        let c = companion(path, suffix);
        if std::fs::symlink_metadata(&c).is_ok() {
            private(&c, false, 0o600)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).expect("stat").mode() & 0o777
    }

    #[test]
    fn a_new_store_is_private_and_an_old_one_is_tightened() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("state/service.db");
        prepare(&path).expect("prepare");
        assert_eq!(mode(&tmp.path().join("state")), 0o700);
        assert_eq!(mode(&path), 0o600);
        // An older store: world-readable directory, database and WAL.
        std::fs::set_permissions(tmp.path().join("state"), Permissions::from_mode(0o755))
            .expect("chmod");
        std::fs::set_permissions(&path, Permissions::from_mode(0o644)).expect("chmod");
        let wal = companion(&path, "-wal");
        std::fs::write(&wal, b"").expect("wal");
        std::fs::set_permissions(&wal, Permissions::from_mode(0o644)).expect("chmod");
        prepare(&path).expect("prepare again");
        assert_eq!(mode(&tmp.path().join("state")), 0o700);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&wal), 0o600);
    }

    #[test]
    fn a_symbolic_link_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let real = tmp.path().join("real.db");
        std::fs::write(&real, b"").expect("write");
        let link = tmp.path().join("service.db");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        let e = prepare(&link).expect_err("a link is refused");
        assert!(e.to_string().contains("symbolic link"), "{e}");
    }
}

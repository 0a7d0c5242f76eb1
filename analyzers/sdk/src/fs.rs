//! Reading the mounted layer tree.
//!
//! Use [`read`] instead of `std::fs::read` for database files: inside the sandbox, Rust std
//! reads a file through a WASI input stream, and wasmtime serves each 64 KiB of a stream on
//! its blocking thread pool (a thread hop per read); `descriptor.read` at an offset is
//! served inline. On a 650 KB dpkg status that is about 0.9 ms of a 3 ms analysis. Natively
//! (tests, fuzzing) this is `std::fs::read`.

use std::io;
use std::path::Path;

/// Read the whole file at `path`, at most `limit` bytes (a larger file is an
/// `InvalidData` error rather than an allocation the size of the file).
pub fn read(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    imp::read(path, limit)
}

/// Read the database file `rel` under `root` for an analyzer: `Ok(None)` when it is absent
/// or not a regular file, a `parse` error naming it when it is larger than `limit`, an
/// `io` error naming it otherwise.
pub fn read_db(root: &Path, rel: &str, limit: u64) -> Result<Option<Vec<u8>>, crate::AnalyzeError> {
    // No stat first: inside the sandbox every call is a host call, and a failed read says
    // the same (the host's scratch trees hold only regular files and directories).
    match read(&root.join(rel), limit) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound
                    | io::ErrorKind::NotADirectory
                    | io::ErrorKind::IsADirectory
            ) =>
        {
            Ok(None)
        }
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            Err(crate::AnalyzeError::Parse(crate::ParseError {
                file: rel.to_string(),
                line: 0,
                message: format!("larger than {limit} bytes"),
            }))
        }
        Err(e) => Err(crate::AnalyzeError::Io(format!("{rel}: {e}"))),
    }
}

fn too_large(path: &Path, limit: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{} is larger than {limit} bytes", path.display()),
    )
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use std::io::{self, Read};
    use std::path::Path;

    pub(super) fn read(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
        let file = std::fs::File::open(path)?;
        let mut out = Vec::new();
        file.take(limit.saturating_add(1)).read_to_end(&mut out)?;
        if out.len() as u64 > limit {
            return Err(super::too_large(path, limit));
        }
        Ok(out)
    }
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use std::cell::RefCell;
    use std::io;
    use std::path::Path;

    use wasip2::filesystem::preopens::get_directories;
    use wasip2::filesystem::types::{Descriptor, DescriptorFlags, ErrorCode, OpenFlags, PathFlags};

    thread_local! {
        /// The preopen mounted at `/`, looked up once per instance.
        static ROOT: RefCell<Option<Descriptor>> = const { RefCell::new(None) };
    }

    /// The largest read the host serves in one call.
    const CHUNK: u64 = 64 << 10;

    pub(super) fn read(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
        let Some(rel) = path.to_str().and_then(|p| p.strip_prefix('/')) else {
            // Not under the `/` mount: let std resolve it.
            return super::imp_std(path, limit);
        };
        ROOT.with(|root| {
            let mut root = root.borrow_mut();
            if root.is_none() {
                *root = get_directories()
                    .into_iter()
                    .find(|(_, p)| p == "/")
                    .map(|(d, _)| d);
            }
            let Some(dir) = root.as_ref() else {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    "no filesystem is mounted at /",
                ));
            };
            let file = dir
                .open_at(
                    PathFlags::SYMLINK_FOLLOW,
                    rel,
                    OpenFlags::empty(),
                    DescriptorFlags::READ,
                )
                .map_err(error)?;
            let size = file.stat().map_err(error)?.size;
            if size > limit {
                return Err(super::too_large(path, limit));
            }
            // A file that fits in one read is returned as the host lowered it, without a
            // copy; a larger one is gathered into a buffer of its size.
            let mut out = Vec::new();
            if size > CHUNK {
                out.reserve_exact(usize::try_from(size).unwrap_or(0));
            }
            loop {
                let (chunk, end) = file.read(CHUNK, out.len() as u64).map_err(error)?;
                let done = end || chunk.is_empty();
                if out.capacity() == 0 {
                    out = chunk;
                } else {
                    out.extend_from_slice(&chunk);
                }
                if out.len() as u64 > limit {
                    return Err(super::too_large(path, limit));
                }
                // The host does not change a tree while an analyzer reads it, so once the
                // size `stat` gave is read the end-of-file read would only confirm it: one
                // host call less per file (dpkg reads one list file per package).
                if done || (size > 0 && out.len() as u64 >= size) {
                    return Ok(out);
                }
            }
        })
    }

    fn error(e: ErrorCode) -> io::Error {
        let kind = match e {
            // The everyday "not there" answers of probing for a database: their kind says
            // it all, and formatting a message for each costs more than the host call.
            ErrorCode::NoEntry => return io::ErrorKind::NotFound.into(),
            ErrorCode::NotDirectory => return io::ErrorKind::NotADirectory.into(),
            ErrorCode::IsDirectory => return io::ErrorKind::IsADirectory.into(),
            ErrorCode::Access | ErrorCode::NotPermitted | ErrorCode::ReadOnly => {
                io::ErrorKind::PermissionDenied
            }
            ErrorCode::InsufficientMemory => io::ErrorKind::OutOfMemory,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, format!("{e:?}"))
    }
}

#[cfg(target_arch = "wasm32")]
fn imp_std(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut out = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(too_large(path, limit));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_and_bounds() {
        let d = tempfile_dir();
        let p = d.join("f");
        std::fs::write(&p, b"hello").expect("write");
        assert_eq!(super::read(&p, 5).expect("read"), b"hello");
        assert_eq!(
            super::read(&p, 4).expect_err("too large").kind(),
            std::io::ErrorKind::InvalidData
        );
        assert_eq!(
            super::read(&d.join("nope"), 5).expect_err("missing").kind(),
            std::io::ErrorKind::NotFound
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("bulkhead-sdk-fs-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    }
}

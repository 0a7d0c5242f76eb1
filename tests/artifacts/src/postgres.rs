//! A throwaway PostgreSQL cluster for tests, from Debian's `postgresql` package.
//!
//! [`PgCluster::start`] runs `initdb` into a temporary directory and starts `postgres`
//! listening on a unix socket only (`listen_addresses=''`), with durability off (tests do
//! not need it and it is much faster). As root (CI), both run as the `postgres` user via
//! `runuser`, because PostgreSQL refuses to run as root.
//!
//! The server is started by a small shell watchdog that holds a pipe from this process:
//! when the cluster is dropped, or the test process ends in any way (even `kill -9`), the
//! pipe closes and the watchdog stops the server and removes the directory. So a cluster
//! shared by all the tests of a binary ([`PgCluster::shared`]) cleans up after itself too.
//! Each test takes a database of its own with [`PgCluster::database`].

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The port number only names the socket file (`.s.PGSQL.<port>`): nothing listens on TCP.
const PORT: u16 = 5432;
const SUPERUSER: &str = "postgres";

/// The newest `/usr/lib/postgresql/<version>/bin` that has `initdb` and `postgres`.
pub fn bin_dir() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("postgres").is_file())
                .then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// Uid and gid of the `postgres` user, from /etc/passwd.
fn postgres_user() -> io::Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    passwd
        .lines()
        .find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.len() > 3 && f[0] == "postgres")
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
                .flatten()
        })
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "no `postgres` user in /etc/passwd (apt-get install postgresql creates it)",
            )
        })
}

/// A running throwaway cluster.
pub struct PgCluster {
    root: PathBuf,
    socket_dir: PathBuf,
    bin: PathBuf,
    log: PathBuf,
    watchdog: Mutex<Option<(Child, ChildStdin)>>,
    next_db: AtomicU32,
}

impl std::fmt::Debug for PgCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCluster")
            .field("root", &self.root)
            .finish()
    }
}

impl PgCluster {
    /// Creates and starts a cluster. Errors say what is missing or what PostgreSQL said.
    pub fn start() -> io::Result<PgCluster> {
        let bin = bin_dir().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "PostgreSQL is not installed: no /usr/lib/postgresql/*/bin/initdb \
                 (apt-get install postgresql)",
            )
        })?;
        let as_root = rustix::process::geteuid().is_root();
        let root = tempfile::Builder::new()
            .prefix("bulkhead-pg-")
            .tempdir()?
            .keep();
        let socket_dir = root.join("sock");
        std::fs::create_dir(&socket_dir)?;
        if as_root {
            let (uid, gid) = postgres_user()?;
            for dir in [&root, &socket_dir] {
                std::os::unix::fs::chown(dir, Some(uid), Some(gid))?;
            }
        }
        let data = root.join("data");
        let log = root.join("postgres.log");

        let initdb = command(as_root, &bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()?;
        if !initdb.status.success() {
            let _ = std::fs::remove_dir_all(&root);
            return Err(io::Error::other(format!(
                "initdb failed ({}): {}{}",
                initdb.status,
                String::from_utf8_lossy(&initdb.stdout),
                String::from_utf8_lossy(&initdb.stderr)
            )));
        }

        // The watchdog: starts the server in the background, waits for this process's pipe
        // to close, then stops the server at once and removes everything.
        let script = r#"
            "$1" -D "$2" -k "$3" -p "$4" -c listen_addresses= -c fsync=off \
                -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 \
                >"$5" 2>&1 &
            pid=$!
            read -r _ignored
            kill -QUIT "$pid" 2>/dev/null
            wait "$pid"
            rm -rf "$6"
        "#;
        let mut child = command(as_root, Path::new("/bin/sh"))
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(bin.join("postgres"))
            .arg(&data)
            .arg(&socket_dir)
            .arg(PORT.to_string())
            .arg(&log)
            .arg(&root)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("watchdog has no stdin"))?;
        let cluster = PgCluster {
            root,
            socket_dir,
            bin,
            log,
            watchdog: Mutex::new(Some((child, stdin))),
            next_db: AtomicU32::new(0),
        };
        cluster.wait_ready(Duration::from_secs(60))?;
        Ok(cluster)
    }

    fn wait_ready(&self, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .arg("-h")
                .arg(&self.socket_dir)
                .args(["-p", &PORT.to_string(), "-U", SUPERUSER, "-q"])
                .status()?;
            if ready.success() {
                return Ok(());
            }
            let exited = match self.watchdog.lock() {
                Ok(mut w) => match w.as_mut() {
                    Some((child, _)) => child.try_wait()?.is_some(),
                    None => true,
                },
                Err(_) => true,
            };
            if exited || Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "PostgreSQL did not start{}: {}",
                    if exited { "" } else { " within the timeout" },
                    self.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last lines of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// A connection string (libpq key=value, which tokio-postgres parses too) for `dbname`.
    pub fn conninfo(&self, dbname: &str) -> String {
        format!(
            "host={} port={PORT} user={SUPERUSER} dbname={dbname}",
            self.socket_dir.display()
        )
    }

    /// Creates a fresh, empty database and returns its connection string.
    pub fn database(&self) -> String {
        let n = self.next_db.fetch_add(1, Ordering::Relaxed);
        let name = format!("t{}_{n}", std::process::id());
        let out = Command::new(self.bin.join("createdb"))
            .arg("-h")
            .arg(&self.socket_dir)
            .args(["-p", &PORT.to_string(), "-U", SUPERUSER, &name])
            .output()
            .expect("run createdb");
        assert!(
            out.status.success(),
            "createdb {name} failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            self.log_tail()
        );
        self.conninfo(&name)
    }

    /// One cluster for all the tests of this test binary, started on first use.
    ///
    /// `None` when PostgreSQL is not installed or does not start: the test skips, through
    /// the skip policy ([`crate::skip`]: a failure in CI, which installs `postgresql`).
    pub fn shared() -> Option<&'static PgCluster> {
        static SHARED: OnceLock<Result<PgCluster, String>> = OnceLock::new();
        match SHARED.get_or_init(|| PgCluster::start().map_err(|e| e.to_string())) {
            Ok(c) => Some(c),
            Err(e) => {
                crate::skip(format_args!("no PostgreSQL cluster: {e}"));
                None
            }
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let taken = match self.watchdog.get_mut() {
            Ok(w) => w.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some((mut child, stdin)) = taken {
            // Closing the pipe tells the watchdog to stop the server and clean up.
            drop(stdin);
            let _ = child.wait();
        }
    }
}

/// `program` run directly, or as the `postgres` user when we are root.
fn command(as_root: bool, program: &Path) -> Command {
    if as_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

//! `bulkhead db import | status | update`, end to end: real feed files, counts checked
//! against the input itself (files, zip members, ids counted here with generic JSON/YAML
//! and zip readers, not with Bulkhead's parsers), and `db update` against a real HTTP
//! server (`python3 -m http.server`) with its own request log as the witness.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use bulkhead_test_artifacts::require_tools;
use serde_json::Value;

use crate::harness::{bulkhead, stderr, stdout};

fn run(home: &Path, args: &[&str]) -> Output {
    bulkhead(home).args(args).output().expect("run bulkhead")
}

#[track_caller]
fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "bulkhead failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

#[track_caller]
fn fails_with_2(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(2),
        "expected exit 2\nstdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
    stderr(o)
}

/// The advisory crate's real feed files.
fn testdata(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../advisories/testdata")
        .join(rel)
}

fn db_file(home: &Path) -> PathBuf {
    home.join("db/advisories.db")
}

/// (records, skipped) per source, from `db status --format json`.
fn status(home: &Path) -> BTreeMap<String, (u64, u64)> {
    let out = ok(&run(home, &["db", "status", "--format", "json"]));
    let v: Value = serde_json::from_str(&out).expect("status JSON");
    v["sources"]
        .as_array()
        .expect("sources")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().expect("name").to_owned(),
                (
                    s["records"].as_u64().expect("records"),
                    s["skipped"].as_u64().expect("skipped"),
                ),
            )
        })
        .collect()
}

/// The bytes and modification time of a file: equal before and after means untouched.
fn snapshot(path: &Path) -> (Vec<u8>, SystemTime) {
    let bytes = std::fs::read(path).expect("read db");
    let mtime = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("mtime");
    (bytes, mtime)
}

// ---- independent counts of the inputs ----

fn has_id_json(bytes: &[u8]) -> bool {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| v["id"].as_str().map(|s| !s.is_empty()))
        .unwrap_or(false)
}

/// OSV records in a directory tree: every .json/.yaml file with a non-empty `id`.
fn count_osv_dir(dir: &Path) -> u64 {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            n += count_osv_dir(&path);
            continue;
        }
        let bytes = std::fs::read(&path).expect("read");
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let counted = match ext {
            "json" => has_id_json(&bytes),
            "yaml" | "yml" => serde_yaml_ng::from_slice::<serde_yaml_ng::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(|s| !s.is_empty()))
                .unwrap_or(false),
            _ => false,
        };
        n += u64::from(counted);
    }
    n
}

/// OSV records in an all.zip: `.json` members with a non-empty `id`.
fn count_osv_zip(zip_path: &Path) -> u64 {
    let file = std::fs::File::open(zip_path).expect("open zip");
    let mut archive = zip::ZipArchive::new(file).expect("zip");
    let mut n = 0;
    for i in 0..archive.len() {
        let mut member = archive.by_index(i).expect("member");
        if !member.name().expect("member name").ends_with(".json") {
            continue;
        }
        let mut bytes = Vec::new();
        member.read_to_end(&mut bytes).expect("inflate");
        n += u64::from(has_id_json(&bytes));
    }
    n
}

/// Alpine secdb: one record per distinct vulnerability id (the first word of each
/// `secfixes` entry) in the document.
fn count_alpine(path: &Path) -> u64 {
    let bytes = std::fs::read(path).expect("read secdb");
    let doc: Value = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_slice(&bytes).expect("secdb json")
    } else {
        serde_yaml_ng::from_slice(&bytes).expect("secdb yaml")
    };
    let mut ids = BTreeSet::new();
    for p in doc["packages"].as_array().expect("packages") {
        let Some(secfixes) = p["pkg"]["secfixes"].as_object() else {
            continue;
        };
        for list in secfixes.values() {
            for entry in list.as_array().into_iter().flatten() {
                if let Some(first) = entry.as_str().and_then(|s| s.split_whitespace().next()) {
                    ids.insert(first.to_owned());
                }
            }
        }
    }
    ids.len() as u64
}

/// Debian tracker JSON: one record per (source package, issue).
fn count_tracker(path: &Path) -> u64 {
    let doc: Value = serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json");
    doc.as_object()
        .expect("object")
        .values()
        .map(|issues| issues.as_object().expect("issues").len() as u64)
        .sum()
}

/// DSA/DLA list: (entries, entries whose header is well formed: `[d Mon yyyy] DSA-…`).
fn count_list(path: &Path) -> (u64, u64) {
    let text = std::fs::read_to_string(path).expect("read list");
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut all = 0;
    let mut good = 0;
    for line in text.lines().filter(|l| l.starts_with('[')) {
        all += 1;
        let Some((date, rest)) = line[1..].split_once(']') else {
            continue;
        };
        let d: Vec<&str> = date.split(' ').collect();
        let date_ok = d.len() == 3
            && d[0].parse::<u8>().is_ok()
            && months.contains(&d[1])
            && d[2].parse::<u16>().is_ok();
        let id = rest.trim_start();
        if date_ok && ["DSA-", "DLA-", "DTSA-"].iter().any(|p| id.starts_with(p)) {
            good += 1;
        }
    }
    (all, good)
}

fn count_nvd_page(path: &Path) -> u64 {
    let doc: Value = serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json");
    doc["vulnerabilities"].as_array().expect("page").len() as u64
}

fn count_files(dir: &Path) -> u64 {
    std::fs::read_dir(dir).expect("read dir").count() as u64
}

// ---- import ----

#[test]
fn import_reads_every_feed_format_and_counts_match_the_input() {
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    let t = |rel: &str| testdata(rel).display().to_string();

    // One source per input, formats told by content.
    let out = ok(&run(
        h,
        &[
            "db",
            "import",
            &t("osv/go"),
            &t("osv/crates"),
            &t("osv/pypi"),
            &t("osv/almalinux9-matcher"),
            &t("osv/zip/go-all.zip"),
            &t("osv/zip/python-all.zip"),
            &t("osv/zip/rust-all.zip"),
            &t("alpine/v3.11-main.yaml"),
            &t("alpine/v3.6-main.yaml"),
            &t("alpine/v3.8-main.yaml"),
            &t("alpine/v3.12-main.json"),
            &t("alpine/v3.10-community.json"),
            // Both tracker exports derive the source `debian-tracker`: imported together.
            &t("debian/tracker-osvdev.json"),
            &t("debian/tracker-vunnel.json"),
            &t("debian/DSA-list"),
            &t("debian/DLA-malformed"),
            &t("nvd/full-page.json"),
            &t("csaf"),
        ],
    ));
    assert!(out.contains("wrote "), "{out}");

    let (dla_all, dla_good) = count_list(&testdata("debian/DLA-malformed"));
    assert!(
        dla_good < dla_all,
        "the malformed list has a malformed entry"
    );
    let (dsa_all, dsa_good) = count_list(&testdata("debian/DSA-list"));
    assert_eq!(dsa_all, dsa_good);
    let expected: BTreeMap<String, (u64, u64)> = [
        ("osv:go", (count_osv_dir(&testdata("osv/go")), 0)),
        ("osv:crates", (count_osv_dir(&testdata("osv/crates")), 0)),
        ("osv:pypi", (count_osv_dir(&testdata("osv/pypi")), 0)),
        (
            "osv:almalinux9-matcher",
            (count_osv_dir(&testdata("osv/almalinux9-matcher")), 0),
        ),
        (
            "osv:go-all",
            (count_osv_zip(&testdata("osv/zip/go-all.zip")), 0),
        ),
        (
            "osv:python-all",
            (count_osv_zip(&testdata("osv/zip/python-all.zip")), 0),
        ),
        (
            "osv:rust-all",
            (count_osv_zip(&testdata("osv/zip/rust-all.zip")), 0),
        ),
        (
            "alpine:v3.11/main",
            (count_alpine(&testdata("alpine/v3.11-main.yaml")), 0),
        ),
        (
            "alpine:v3.6/main",
            (count_alpine(&testdata("alpine/v3.6-main.yaml")), 0),
        ),
        (
            "alpine:v3.8/main",
            (count_alpine(&testdata("alpine/v3.8-main.yaml")), 0),
        ),
        (
            "alpine:v3.12/main",
            (count_alpine(&testdata("alpine/v3.12-main.json")), 0),
        ),
        (
            "alpine:v3.10/community",
            (count_alpine(&testdata("alpine/v3.10-community.json")), 0),
        ),
        (
            "debian-tracker",
            (
                count_tracker(&testdata("debian/tracker-osvdev.json"))
                    + count_tracker(&testdata("debian/tracker-vunnel.json")),
                0,
            ),
        ),
        ("debian-dsa", (dsa_good, 0)),
        ("debian-dla", (dla_good, dla_all - dla_good)),
        ("nvd", (count_nvd_page(&testdata("nvd/full-page.json")), 0)),
        ("redhat-csaf", (count_files(&testdata("csaf")), 0)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert!(expected.values().all(|(records, _)| *records > 0));
    assert_eq!(status(h), expected, "import output:\n{out}");

    // The skipped DLA entry is reported with its file and line.
    let dla = testdata("debian/DLA-malformed").display().to_string();
    assert!(
        out.lines().any(|l| l.contains(&dla) && l.contains("line ")),
        "{out}"
    );

    // --format and --source override detection and naming.
    ok(&run(
        h,
        &[
            "db",
            "import",
            "--format",
            "nvd",
            "--source",
            "nvd-extra",
            &t("nvd/respPage2.json"),
            &t("nvd/CVE-2024-3094.json"),
        ],
    ));
    assert_eq!(
        status(h)["nvd-extra"],
        (
            count_nvd_page(&testdata("nvd/respPage2.json"))
                + count_nvd_page(&testdata("nvd/CVE-2024-3094.json")),
            0
        )
    );
}

#[test]
fn importing_a_source_again_replaces_its_records() {
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    let feeds = tempfile::tempdir().expect("tempdir");
    let dir = feeds.path().join("alma");
    std::fs::create_dir(&dir).expect("mkdir");
    let src = testdata("osv/almalinux9-matcher");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&src)
        .expect("read")
        .map(|e| e.expect("entry").path())
        .collect();
    names.sort();
    for p in &names {
        std::fs::copy(p, dir.join(p.file_name().expect("name"))).expect("copy");
    }
    let alpine = testdata("alpine/v3.10-community.json");
    ok(&run(
        h,
        &[
            "db",
            "import",
            &dir.display().to_string(),
            &alpine.display().to_string(),
        ],
    ));
    let full = count_osv_dir(&dir);
    assert_eq!(status(h)["osv:alma"].0, full);

    // Upstream withdrew some files: the source shrinks to what the feed holds now.
    for p in names.iter().step_by(2) {
        std::fs::remove_file(dir.join(p.file_name().expect("name"))).expect("rm");
    }
    let now = count_osv_dir(&dir);
    assert!(now < full);
    // Given twice, the directory is still read once.
    let d = dir.display().to_string();
    ok(&run(h, &["db", "import", &d, &format!("{d}/")]));
    let after = status(h);
    assert_eq!(after["osv:alma"].0, now);
    // Other sources keep their records.
    assert_eq!(after["alpine:v3.10/community"].0, count_alpine(&alpine));
    assert_eq!(after.len(), 2);
}

#[test]
fn a_broken_feed_fails_names_the_file_and_leaves_the_database_unchanged() {
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    ok(&run(
        h,
        &["db", "import", &testdata("osv/go").display().to_string()],
    ));
    let db = db_file(h);
    let before = snapshot(&db);

    // Real OSV files cut in half: still recognisably OSV, but not one of them parses.
    let feeds = tempfile::tempdir().expect("tempdir");
    let broken = feeds.path().join("broken");
    std::fs::create_dir(&broken).expect("mkdir");
    for entry in std::fs::read_dir(testdata("osv/go")).expect("read") {
        let p = entry.expect("entry").path();
        let bytes = std::fs::read(&p).expect("read");
        std::fs::write(
            broken.join(p.file_name().expect("name")),
            &bytes[..bytes.len() / 2],
        )
        .expect("write");
    }
    let err = fails_with_2(&run(h, &["db", "import", &broken.display().to_string()]));
    assert!(err.contains(&broken.display().to_string()), "{err}");
    assert!(err.contains("unchanged"), "{err}");
    assert_eq!(snapshot(&db), before, "the database changed");

    // A good feed imported together with the broken one is not kept either.
    let err = fails_with_2(&run(
        h,
        &[
            "db",
            "import",
            &testdata("alpine/v3.12-main.json").display().to_string(),
            &broken.display().to_string(),
        ],
    ));
    assert!(err.contains("osv:broken"), "{err}");
    assert_eq!(snapshot(&db), before, "the database changed");

    // Something that is no feed at all.
    let junk = feeds.path().join("junk.json");
    std::fs::write(&junk, br#"{"hello": "world"}"#).expect("write");
    let err = fails_with_2(&run(h, &["db", "import", &junk.display().to_string()]));
    assert!(err.contains(&junk.display().to_string()), "{err}");
    assert!(err.contains("--format"), "{err}");
    // Forced to a format it is not: every record fails.
    let err = fails_with_2(&run(
        h,
        &[
            "db",
            "import",
            "--format",
            "csaf",
            &junk.display().to_string(),
        ],
    ));
    assert!(err.contains(&junk.display().to_string()), "{err}");
    assert_eq!(snapshot(&db), before, "the database changed");
    assert_eq!(status(h).len(), 1);
}

#[test]
fn status_without_a_database_says_how_to_make_one() {
    let home = tempfile::tempdir().expect("tempdir");
    let err = fails_with_2(&run(home.path(), &["db", "status"]));
    assert!(
        err.contains(&format!(
            "no advisory database at {}",
            db_file(home.path()).display()
        )),
        "{err}"
    );
    assert!(err.contains("bulkhead db update"), "{err}");
    assert!(err.contains("bulkhead db import"), "{err}");
    assert!(!db_file(home.path()).exists());
}

#[test]
fn status_lists_sources_with_counts_and_age() {
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    let custom = h.join("elsewhere/my.db");
    ok(&run(
        h,
        &[
            "db",
            "import",
            "--db",
            &custom.display().to_string(),
            &testdata("osv/crates").display().to_string(),
            &testdata("alpine/v3.6-main.yaml").display().to_string(),
        ],
    ));
    assert!(custom.exists());
    assert!(
        !db_file(h).exists(),
        "--db must not touch the default database"
    );

    let table = ok(&run(
        h,
        &["db", "status", "--db", &custom.display().to_string()],
    ));
    let header = table.lines().nth(1).expect("header");
    for col in [
        "SOURCE",
        "RECORDS",
        "SKIPPED",
        "UPSTREAM DATE",
        "AGE",
        "IMPORTED",
    ] {
        assert!(header.contains(col), "{table}");
    }
    let crates = count_osv_dir(&testdata("osv/crates"));
    let row = table
        .lines()
        .find(|l| l.starts_with("osv:crates "))
        .expect("osv:crates row");
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[1], crates.to_string(), "{row}");
    // The newest RUSTSEC-2016-0001 date is its `modified`, 2023-06-13: over two years ago.
    assert!(
        row.contains("2023-06-13") && row.contains(" years"),
        "{row}"
    );
    assert!(
        table.lines().any(|l| l.starts_with("alpine:v3.6/main ")),
        "{table}"
    );

    let json: Value = serde_json::from_str(&ok(&run(
        h,
        &[
            "db",
            "status",
            "--format",
            "json",
            "--db",
            &custom.display().to_string(),
        ],
    )))
    .expect("json");
    let s = &json["sources"][1];
    assert_eq!(s["name"], "osv:crates");
    assert_eq!(s["upstream_date"], "2023-06-13T13:10:24Z");
    let age = s["age_seconds"].as_i64().expect("age");
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
        - 1_686_661_824; // 2023-06-13T13:10:24Z
    assert!((age - since).abs() < 120, "{age} vs {since}");
    // Secdb records carry no dates.
    assert_eq!(json["sources"][0]["upstream_date"], Value::Null);
}

// ---- update against a real HTTP server ----

/// `python3 -m http.server` over a directory, killed on drop; its request log is a file.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    fn start(dir: &Path, log: PathBuf) -> Server {
        let port = free_port();
        let child = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1"])
            .arg(port.to_string())
            .arg("--directory")
            .arg(dir)
            .env("PYTHONUNBUFFERED", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start python3 -m http.server");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "http.server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Server { child, port, log }
    }

    /// Status codes of the GET requests for `path`, in order.
    fn codes(&self, path: &str) -> Vec<u16> {
        let log = std::fs::read_to_string(&self.log).expect("log");
        let needle = format!("\"GET {path} HTTP/1.1\" ");
        log.lines()
            .filter_map(|l| {
                let rest = &l[l.find(&needle)? + needle.len()..];
                rest.split_whitespace().next()?.parse().ok()
            })
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn write_config(path: &Path, mirror: &str) {
    // Upstream URLs as in the default list: the mirror replaces their scheme and host.
    let text = format!(
        r#"[db]
mirror = "{mirror}"

[[db.feeds]]
name = "osv:Go"
format = "osv"
url = "https://osv-vulnerabilities.storage.googleapis.com/Go/all.zip"

[[db.feeds]]
name = "debian-tracker"
format = "debian-json"
url = "https://security-tracker.debian.org/tracker/data/json"

[[db.feeds]]
name = "alpine:v3.12/main"
format = "alpine"
url = "https://secdb.alpinelinux.org/v3.12/main.json"
"#
    );
    std::fs::write(path, text).expect("write config");
}

/// A mirror directory laid out like the upstream paths.
fn mirror_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    for sub in ["Go", "tracker/data", "v3.12"] {
        std::fs::create_dir_all(d.join(sub)).expect("mkdir");
    }
    std::fs::copy(testdata("osv/zip/go-all.zip"), d.join("Go/all.zip")).expect("copy");
    std::fs::copy(
        testdata("debian/tracker-vunnel.json"),
        d.join("tracker/data/json"),
    )
    .expect("copy");
    std::fs::copy(
        testdata("alpine/v3.12-main.json"),
        d.join("v3.12/main.json"),
    )
    .expect("copy");
    dir
}

#[test]
fn update_downloads_from_a_mirror_and_skips_what_did_not_change() {
    if !require_tools(&["python3"]) {
        return;
    }
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    let mirror = mirror_dir();
    let m = mirror.path();
    let server = Server::start(m, h.join("server.log"));
    let config = h.join("config.toml");
    write_config(&config, &format!("http://127.0.0.1:{}/", server.port));
    let cfg = config.display().to_string();
    let update = |extra: &[&str]| {
        let mut args = vec!["--config", cfg.as_str(), "db", "update"];
        args.extend_from_slice(extra);
        run(h, &args)
    };

    // First update: everything downloaded and imported.
    let out = ok(&update(&[]));
    let expected = |m: &Path| -> BTreeMap<String, (u64, u64)> {
        [
            ("osv:Go", count_osv_zip(&m.join("Go/all.zip"))),
            (
                "debian-tracker",
                count_tracker(&m.join("tracker/data/json")),
            ),
            (
                "alpine:v3.12/main",
                count_alpine(&m.join("v3.12/main.json")),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), (v, 0)))
        .collect()
    };
    assert_eq!(status(h), expected(m), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("osv:Go: downloaded ")
            && l.ends_with(&format!("from http://127.0.0.1:{}/Go/all.zip", server.port))),
        "{out}"
    );
    for path in ["/Go/all.zip", "/tracker/data/json", "/v3.12/main.json"] {
        assert_eq!(server.codes(path), [200], "{path}");
    }
    assert!(h.join("db/advisories.db.feeds.json").exists());
    // No download is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(h.join("db"))
        .expect("db dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("download") || n.contains("building"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Second update: the server answers 304 to every conditional request; nothing is
    // downloaded and the database is not rewritten.
    let db = db_file(h);
    let before = snapshot(&db);
    let out = ok(&update(&[]));
    assert_eq!(out.matches("not modified").count(), 3, "{out}");
    for path in ["/Go/all.zip", "/tracker/data/json", "/v3.12/main.json"] {
        assert_eq!(server.codes(path), [200, 304], "{path}");
    }
    assert_eq!(snapshot(&db), before);

    // Upstream changes one feed: only that one is downloaded again.
    std::fs::copy(
        testdata("alpine/v3.10-community.json"),
        m.join("v3.12/main.json"),
    )
    .expect("copy");
    std::fs::File::options()
        .write(true)
        .open(m.join("v3.12/main.json"))
        .and_then(|f| f.set_modified(SystemTime::now() + Duration::from_secs(10)))
        .expect("touch");
    let out = ok(&update(&[]));
    assert_eq!(server.codes("/v3.12/main.json"), [200, 304, 200], "{out}");
    assert_eq!(server.codes("/Go/all.zip"), [200, 304, 304], "{out}");
    assert_eq!(status(h), expected(m), "{out}");

    // `db import` replaced osv:Go from a file: the next update must not trust its old
    // validators for that source, and downloads it in full.
    ok(&run(
        h,
        &["db", "import", &m.join("Go/all.zip").display().to_string()],
    ));
    let out = ok(&update(&["--feed", "osv:Go"]));
    assert_eq!(server.codes("/Go/all.zip"), [200, 304, 304, 200], "{out}");
    assert_eq!(
        server.codes("/v3.12/main.json").len(),
        3,
        "--feed limits the update"
    );
    assert_eq!(status(h), expected(m));

    // A feed the mirror does not have: HTTP 404 names the URL, and the other feeds of the
    // same update are not imported either.
    std::fs::remove_file(m.join("tracker/data/json")).expect("rm");
    std::fs::copy(
        testdata("alpine/v3.12-main.json"),
        m.join("v3.12/main.json"),
    )
    .expect("copy");
    std::fs::File::options()
        .write(true)
        .open(m.join("v3.12/main.json"))
        .and_then(|f| f.set_modified(SystemTime::now() + Duration::from_secs(20)))
        .expect("touch");
    let state = h.join("db/advisories.db.feeds.json");
    let before = (snapshot(&db), std::fs::read(&state).expect("state"));
    let err = fails_with_2(&update(&[]));
    let url = format!("http://127.0.0.1:{}/tracker/data/json", server.port);
    assert!(err.contains(&url) && err.contains("404"), "{err}");
    assert!(err.contains("unchanged"), "{err}");
    // The changed secdb was downloaded but not imported: all or nothing.
    assert_eq!(server.codes("/v3.12/main.json").last(), Some(&200));
    assert_eq!(snapshot(&db), before.0);
    assert_eq!(std::fs::read(&state).expect("state"), before.1);
}

#[test]
fn update_when_offline_fails_naming_the_url_and_keeps_the_database() {
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    ok(&run(
        h,
        &["db", "import", &testdata("osv/go").display().to_string()],
    ));
    let db = db_file(h);
    let before = snapshot(&db);
    // Nothing listens on a port just released.
    let port = free_port();
    let config = h.join("config.toml");
    write_config(&config, &format!("http://127.0.0.1:{port}"));
    let err = fails_with_2(&run(
        h,
        &["--config", &config.display().to_string(), "db", "update"],
    ));
    assert!(
        err.contains(&format!("http://127.0.0.1:{port}/Go/all.zip")),
        "{err}"
    );
    assert!(err.to_lowercase().contains("connect"), "{err}");
    assert!(
        err.contains("mirror") && err.contains("bulkhead db import"),
        "{err}"
    );
    assert_eq!(snapshot(&db), before);
    assert_eq!(status(h).len(), 1);
}

#[test]
fn update_list_prints_the_default_feeds() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = ok(&run(home.path(), &["db", "update", "--list"]));
    for url in [
        "https://osv-vulnerabilities.storage.googleapis.com/Debian/all.zip",
        "https://osv-vulnerabilities.storage.googleapis.com/Rocky%20Linux/all.zip",
        "https://osv-vulnerabilities.storage.googleapis.com/crates.io/all.zip",
        "https://security-tracker.debian.org/tracker/data/json",
        "https://secdb.alpinelinux.org/v3.24/community.json",
    ] {
        assert!(out.contains(&format!("url = \"{url}\"")), "{url}:\n{out}");
    }
    assert!(!out.contains("nvd"), "NVD is off by default:\n{out}");
    // What --list prints is valid configuration.
    let config = home.path().join("config.toml");
    std::fs::write(&config, &out).expect("write");
    let again = ok(&run(
        home.path(),
        &[
            "--config",
            &config.display().to_string(),
            "db",
            "update",
            "--list",
        ],
    ));
    assert_eq!(again, out);
}

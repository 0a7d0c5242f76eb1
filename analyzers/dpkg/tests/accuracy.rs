//! The dpkg analyzer against dpkg itself, on real databases.
//!
//! Two oracles, both independent of our code:
//! - the live `dpkg-query` of this machine, run on a temporary admindir holding a copy of
//!   each status file (mandatory when `CI` is set; skipped with a message elsewhere if
//!   `dpkg-query` is missing);
//! - the expected package lists that dpkg-query printed when the fixtures were made
//!   (`*.dpkg-query.tsv`, see `tests/fixtures/dpkg/SOURCES.md`), always checked.
//!
//! Also here: owned files against the `info/*.list` files and `dpkg-query`'s own
//! `${db-fsys:Files}`, OS detection, and robustness on damaged copies of a real database
//! (never a panic, every error names its file and line, and whenever dpkg-query still
//! accepts a damaged file our reading must equal its reading).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use bulkhead_analyzer_dpkg::{STATUS, analyze, status};
use bulkhead_analyzer_sdk::{Analysis, AnalyzeError};

/// `(name, version, arch, source name, source version)`, as dpkg-query prints them
/// (`""` for an absent architecture).
type Row = (String, String, String, String, String);

const FORMAT: &str = "${Package}\\t${Version}\\t${Architecture}\\t${source:Package}\\t${source:Version}\\t${db:Status-Status}\\n";

/// The `db:Status-Status` values whose files are on disk: what the analyzer must report.
const ON_DISK: [&str; 6] = [
    "installed",
    "unpacked",
    "half-configured",
    "half-installed",
    "triggers-awaited",
    "triggers-pending",
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/dpkg")
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Whether the live comparison can run; else it is skipped through the workspace's skip
/// policy ([`bulkhead_test_artifacts::skip`]: a failure in CI).
fn have_dpkg_query() -> bool {
    let ok = Command::new("dpkg-query")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    bulkhead_test_artifacts::require(
        ok,
        "the live dpkg-query comparison: dpkg-query is not installed (apt-get install dpkg)",
    )
}

/// A temporary admindir with `status` (and the optional `info/` files) in it.
fn admindir(status: &[u8], info: Option<&Path>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("status"), status).expect("write status");
    // dpkg-query wants updates/ and reads available for some queries: give it empty ones.
    std::fs::create_dir(dir.path().join("updates")).expect("updates/");
    std::fs::write(dir.path().join("available"), b"").expect("available");
    std::fs::create_dir(dir.path().join("info")).expect("info/");
    if let Some(info) = info {
        for entry in std::fs::read_dir(info).expect("read info/") {
            let entry = entry.expect("info entry");
            std::fs::copy(
                entry.path(),
                dir.path().join("info").join(entry.file_name()),
            )
            .expect("copy info file");
        }
    }
    dir
}

/// What the live dpkg-query lists as on disk; `Err` with its message when it refuses the
/// file.
fn dpkg_query(status: &[u8]) -> Result<BTreeSet<Row>, String> {
    Scratch::new().dpkg_query(status)
}

/// A layer root and an admindir, reused across the many variants of one test (creating
/// temporary directories costs more than parsing).
struct Scratch {
    root: tempfile::TempDir,
    admin: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            root: rootfs(b""),
            admin: admindir(b"", None),
        }
    }

    fn analyze(&self, status: &[u8]) -> Result<Analysis, AnalyzeError> {
        std::fs::write(self.root.path().join(STATUS), status).expect("write status");
        analyze(self.root.path())
    }

    fn dpkg_query(&self, status: &[u8]) -> Result<BTreeSet<Row>, String> {
        std::fs::write(self.admin.path().join("status"), status).expect("write status");
        let out = Command::new("dpkg-query")
            .arg(format!("--admindir={}", self.admin.path().display()))
            .args(["-W", "-f", FORMAT])
            .output()
            .expect("run dpkg-query");
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let mut rows = BTreeSet::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 6, "unexpected dpkg-query line {line:?}");
            if ON_DISK.contains(&cols[5]) {
                rows.insert(row(cols[0], cols[1], cols[2], cols[3], cols[4]));
            }
        }
        Ok(rows)
    }
}

fn row(name: &str, version: &str, arch: &str, src: &str, src_version: &str) -> Row {
    (
        name.into(),
        version.into(),
        arch.into(),
        src.into(),
        src_version.into(),
    )
}

/// An expected list saved from `dpkg-query -W -f '${binary:Package}\t${Version}\t
/// ${Architecture}\t${source:Package}\t${source:Version}\t${db:Status-Abbrev}\n'`.
fn expected_tsv(path: &Path) -> BTreeSet<Row> {
    let text = String::from_utf8(read(path)).expect("UTF-8 TSV");
    let mut rows = BTreeSet::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 6, "{}: bad line {line:?}", path.display());
        // Status-Abbrev is want, state, error flag: the state letters of ON_DISK are
        // i(nstalled) U(npacked) F (half-configured) H (half-installed) W t (triggers).
        let state = cols[5].chars().nth(1).unwrap_or(' ');
        if !"iUFHWt".contains(state) {
            continue;
        }
        // ${binary:Package} qualifies Multi-Arch: same packages with ":arch".
        let name = cols[0].split(':').next().unwrap_or(cols[0]);
        rows.insert(row(name, cols[1], cols[2], cols[3], cols[4]));
    }
    rows
}

fn rows(analysis: &Analysis) -> BTreeSet<Row> {
    let rows: BTreeSet<Row> = analysis
        .packages
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                p.version.clone(),
                p.arch.clone().unwrap_or_default(),
                p.source_name.clone().unwrap_or_default(),
                p.source_version.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        rows.len(),
        analysis.packages.len(),
        "a package is reported twice"
    );
    rows
}

fn analyze_ok(root: &Path) -> Analysis {
    match analyze(root) {
        Ok(a) => a,
        Err(e) => panic!("{}: {e:?}", root.display()),
    }
}

/// A temporary layer root holding `status` as its dpkg status file.
fn rootfs(status: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("var/lib/dpkg");
    std::fs::create_dir_all(&db).expect("mkdir");
    std::fs::write(db.join("status"), status).expect("write status");
    dir
}

/// Ours == saved dpkg-query list, and == the live dpkg-query when it is here.
fn check_status_file(root: &Path, expected: &Path, count: usize) {
    let analysis = analyze_ok(root);
    let ours = rows(&analysis);
    let saved = expected_tsv(expected);
    assert_eq!(saved.len(), count, "{}", expected.display());
    assert_eq!(
        ours,
        saved,
        "{} against {}",
        root.display(),
        expected.display()
    );
    for p in &analysis.packages {
        assert_eq!(p.db_path, STATUS);
    }
    if have_dpkg_query() {
        let live = dpkg_query(&read(&root.join(STATUS)))
            .unwrap_or_else(|e| panic!("dpkg-query refused {}: {e}", root.display()));
        assert_eq!(ours, live, "{} against the live dpkg-query", root.display());
    }
}

#[test]
fn debian_bookworm_minbase_matches_dpkg_query() {
    let root = fixtures().join("debian-bookworm-minbase");
    check_status_file(&root, &root.join("expected-packages.dpkg-query.tsv"), 99);
}

#[test]
fn ubuntu_bionic_matches_dpkg_query() {
    let root = fixtures().join("ubuntu-bionic");
    // 91 listed, of which git is only "rc" (removed, config files left).
    check_status_file(&root, &root.join("expected-packages.dpkg-query.tsv"), 90);
}

#[test]
fn claircore_status_files_match_dpkg_query() {
    for (file, count) in [("postgresql.status", 3), ("debian-only.status", 1)] {
        let dir = fixtures().join("claircore");
        let root = rootfs(&read(&dir.join(file)));
        check_status_file(
            root.path(),
            &dir.join(format!("{file}.dpkg-query.tsv")),
            count,
        );
    }
}

#[test]
fn vcpkg_status_is_not_applicable() {
    let root = rootfs(&read(&fixtures().join("claircore/vcpkg.status")));
    assert!(matches!(
        analyze(root.path()),
        Err(AnalyzeError::NotApplicable)
    ));
}

#[test]
fn empty_tree_is_not_applicable() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(matches!(
        analyze(dir.path()),
        Err(AnalyzeError::NotApplicable)
    ));
}

/// Give every stanza of a distroless stanza file the `Status:` line a status file has.
fn with_status(stanzas: &str) -> String {
    let mut out = String::new();
    for stanza in stanzas
        .split("\n\n")
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        out.push_str(stanza);
        out.push_str("\nStatus: install ok installed\n\n");
    }
    out
}

#[test]
fn distroless_status_d_matches_dpkg_query() {
    let root = fixtures().join("distroless");
    let dir = root.join("var/lib/dpkg/status.d");
    let analysis = analyze_ok(&root);

    // Independent reading of the layout: every file but the md5sums companions is a
    // candidate; dpkg-query decides which of them are stanza files.
    let mut candidates: Vec<String> = std::fs::read_dir(&dir)
        .expect("status.d")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".md5sums"))
        .collect();
    candidates.sort();
    assert_eq!(candidates, ["libsqlite3-0", "libsqlite3-0.preinst"]);

    // The stanza file itself, read by eye: one package.
    assert_eq!(
        rows(&analysis),
        BTreeSet::from([row(
            "libsqlite3-0",
            "3.34.1-3",
            "arm64",
            "sqlite3",
            "3.34.1-3"
        )])
    );
    assert_eq!(
        analysis.packages[0].db_path,
        "var/lib/dpkg/status.d/libsqlite3-0"
    );
    assert!(analysis.warnings.is_empty(), "{:?}", analysis.warnings);

    if have_dpkg_query() {
        let mut live = BTreeSet::new();
        for name in &candidates {
            let text = String::from_utf8_lossy(&read(&dir.join(name))).into_owned();
            match dpkg_query(with_status(&text).as_bytes()) {
                Ok(rows) => {
                    assert_eq!(name, "libsqlite3-0", "dpkg-query read {name} as a stanza");
                    live.extend(rows);
                }
                // The maintainer script is not a stanza: dpkg-query refuses it.
                Err(_) => assert_eq!(name, "libsqlite3-0.preinst"),
            }
        }
        assert_eq!(rows(&analysis), live);
    }
}

#[test]
fn os_is_detected_on_the_debian_tree() {
    let analysis = analyze_ok(&fixtures().join("debian-bookworm-minbase"));
    let os = analysis.os.expect("os detected");
    // usr/lib/os-release of the fixture says ID=debian, VERSION_ID="12".
    assert_eq!(os.id, "debian");
    assert_eq!(os.version_id.as_deref(), Some("12"));
    assert_eq!(os.version_codename.as_deref(), Some("bookworm"));
    assert_eq!(os.source_file, "usr/lib/os-release");
}

/// The `.list` file lines, without `/.` and the leading `/`.
fn list_lines(path: &Path) -> Vec<String> {
    String::from_utf8(read(path))
        .expect("UTF-8 list")
        .lines()
        .filter(|l| *l != "/.")
        .map(|l| {
            l.strip_prefix('/')
                .unwrap_or_else(|| panic!("{l:?} is not absolute"))
                .into()
        })
        .collect()
}

#[test]
fn owned_files_match_the_list_files_and_dpkg_query() {
    let root = fixtures().join("debian-bookworm-minbase");
    let info = root.join("var/lib/dpkg/info");
    let analysis = analyze_ok(&root);

    // Every .list file belongs to one package, named by the file (`name[:arch].list`).
    let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(&info).expect("info/") {
        let file = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        let Some(stem) = file.strip_suffix(".list") else {
            continue;
        };
        let name = stem.split(':').next().unwrap_or(stem).to_string();
        assert!(
            by_name
                .insert(name, list_lines(&info.join(&file)))
                .is_none(),
            "{file}"
        );
    }
    assert_eq!(by_name.len(), 99);
    let ours: BTreeMap<String, Vec<String>> = analysis
        .packages
        .iter()
        .map(|p| (p.name.clone(), p.files.clone()))
        .collect();
    assert_same_files(&ours, &by_name, "the .list files");
    let total: usize = ours.values().map(Vec::len).sum();
    assert!(total > 5000, "only {total} owned files");

    if have_dpkg_query() {
        let dir = admindir(&read(&root.join(STATUS)), Some(&info));
        let out = Command::new("dpkg-query")
            .arg(format!("--admindir={}", dir.path().display()))
            .args(["-W", "-f", "${Package}\\n${db-fsys:Files}"])
            .output()
            .expect("run dpkg-query");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut live: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut current = None;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            match line.strip_prefix(" /") {
                Some(".") => {}
                Some(path) => live
                    .get_mut(current.as_ref().expect("file before package"))
                    .expect("package")
                    .push(path.to_string()),
                None => {
                    live.insert(line.to_string(), Vec::new());
                    current = Some(line.to_string());
                }
            }
        }
        assert_same_files(&ours, &live, "dpkg-query ${db-fsys:Files}");
    }
}

/// Compare owned-file maps, naming only the packages that differ (the lists are long).
fn assert_same_files(
    ours: &BTreeMap<String, Vec<String>>,
    theirs: &BTreeMap<String, Vec<String>>,
    oracle: &str,
) {
    let names: BTreeSet<&String> = ours.keys().chain(theirs.keys()).collect();
    let differ: Vec<&&String> = names
        .iter()
        .filter(|n| ours.get(**n) != theirs.get(**n))
        .collect();
    assert!(
        differ.is_empty(),
        "owned files differ from {oracle} for {differ:?}"
    );
}

/// Small stanzas on the edges of the format, each compared with the live dpkg-query.
/// Our expectations are not written here: dpkg-query is the only judge.
#[test]
fn edge_cases_match_dpkg_query() {
    if !have_dpkg_query() {
        return;
    }
    let cases = [
        "Package: a\nStatus: install ok installed\nVersion: 0:1.2-3\nArchitecture: all\n",
        "Package: a\nStatus: install ok installed\nVersion: 007:1.2\nArchitecture: all\n",
        "Package: a\nStatus: install ok installed\nVersion: 0:1:2-3\nArchitecture: all\n",
        "Package: a\nStatus: install ok installed\nVersion: +5:1\nArchitecture: all\n",
        "Package: a\nStatus: install ok installed\nVersion: -0:1\nArchitecture: all\n",
        "Package: a\nStatus: install ok installed\nVersion: 1.0-2-3\nArchitecture: all\n",
        "Package: a\nStatus: install ok installed\nVersion: 1.0~rc1+dfsg\nArchitecture: all\n",
        "Package: a\nStatus: install ok installed\nVersion: v1.0\nArchitecture: all\n",
        "package: Foo\nSTATUS: Install OK Installed\nversion: 1\nArchitecture: all\n",
        "Package : a\nStatus:install ok installed\nVersion:\t1 \nArchitecture: all\n",
        "Package: a\nStatus: install ok installed\nVersion: 2\nSource: b(1)\nArchitecture: all\n",
        "Package: a\nStatus: install ok installed\nVersion: 2\nSource: b (0:1)\nArchitecture: all\n",
        "Package: a\nStatus: install ok installed\nVersion: 2\nSource: b  (1\nArchitecture: all\n",
        "Package: a\nStatus: install ok installed\nVersion: 2\nSource:\nArchitecture: all\n",
        "Package: a\n \t\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n",
        "Package: a\nStatus: installok installed\nVersion: 1\nArchitecture: all\n",
        "Package: a\nStatus: install ok installed\nVersion: 1\n",
        "Package: a\nStatus: install ok installed\nArchitecture:\nVersion: 1\n",
        "Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: AMD64\n",
        "Package: a\nStatus: hold reinstreq unpacked\nVersion: 1\nArchitecture: all\n",
        "Package: a\nStatus: install ok half-configured\nVersion: 1\nArchitecture: all\n",
        "Package: a\nStatus: install reinstreq half-installed\nVersion: 1\nArchitecture: all\n",
        "Package: a\nStatus: deinstall ok config-files\nVersion: 1\nArchitecture: all\n",
        "Package: a\nStatus: purge ok not-installed\nArchitecture: all\n",
        "Package: a\nStatus: install ok triggers-pending\nVersion: 1\nArchitecture: all\n\
         Triggers-Pending: x\n",
        "Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n\n\
         Package: a\nStatus: purge ok not-installed\nArchitecture: all\n",
        "Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\nMulti-Arch: same\n\n\
         Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: i386\nMulti-Arch: same\n",
        "Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\nMulti-Arch: same\n\n\
         Package: a\nStatus: install ok installed\nVersion: 2\nArchitecture: amd64\nMulti-Arch: same\n",
        "Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n\n\n\n\
         Package: b\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n",
        "Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: all\nX-Foo: \u{e9}\n",
    ];
    let scratch = Scratch::new();
    for case in cases {
        let live = match scratch.dpkg_query(case.as_bytes()) {
            Ok(rows) => rows,
            Err(e) => panic!("dpkg-query refused the case {case:?}: {e}"),
        };
        let ours = match scratch.analyze(case.as_bytes()) {
            Ok(a) => rows(&a),
            Err(AnalyzeError::NotApplicable) => BTreeSet::new(),
            Err(e) => panic!("{case:?}: {e:?}"),
        };
        assert_eq!(ours, live, "case {case:?}");
    }
}

// ---- robustness --------------------------------------------------------------------

/// What analyze must do with any bytes: return, and name the file and line on error.
/// Returns the rows when it succeeded.
fn analyze_damaged(scratch: &Scratch, bytes: &[u8], what: &str) -> Option<BTreeSet<Row>> {
    let lines = bytes.split(|&b| b == b'\n').count();
    let line_max = u32::try_from(lines + 1).unwrap_or(u32::MAX);
    match scratch.analyze(bytes) {
        Ok(a) => {
            for w in &a.warnings {
                assert_eq!(w.file, STATUS, "{what}: warning {w:?}");
                assert!((1..=line_max).contains(&w.line), "{what}: warning {w:?}");
            }
            Some(rows(&a))
        }
        Err(AnalyzeError::Parse(e)) => {
            assert_eq!(e.file, STATUS, "{what}: {e:?}");
            assert!((1..=line_max).contains(&e.line), "{what}: {e:?}");
            None
        }
        Err(AnalyzeError::NotApplicable) => None,
        Err(e) => panic!("{what}: {e:?}"),
    }
}

/// When dpkg-query accepts damaged bytes, our reading must be the same.
fn differential(scratch: &Scratch, bytes: &[u8], ours: Option<BTreeSet<Row>>, what: &str) -> bool {
    let Ok(live) = scratch.dpkg_query(bytes) else {
        return false;
    };
    assert_eq!(
        ours.unwrap_or_default(),
        live,
        "{what}: dpkg-query accepts it and reads otherwise"
    );
    true
}

/// xorshift64*: a fixed, dependency-free sequence, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).unwrap_or(1)).unwrap_or(0)
    }
}

#[test]
fn truncated_copies_never_panic_and_agree_with_dpkg_query() {
    let live = have_dpkg_query();
    let scratch = Scratch::new();
    for tree in ["debian-bookworm-minbase", "ubuntu-bionic"] {
        let full = read(&fixtures().join(tree).join(STATUS));
        // Anywhere, every 101st byte: no panic, errors name file and line.
        for cut in (0..full.len()).step_by(101) {
            analyze_damaged(&scratch, &full[..cut], &format!("{tree} cut at byte {cut}"));
        }
        if !live {
            continue;
        }
        // At line ends (dpkg-query refuses a file cut inside a line), every 13th: wherever
        // dpkg-query still reads the file, our reading must be its reading.
        let line_ends: Vec<usize> = full
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i + 1)
            .collect();
        let mut compared = 0;
        for &cut in line_ends.iter().step_by(13) {
            let what = format!("{tree} cut after byte {cut}");
            let ours = analyze_damaged(&scratch, &full[..cut], &what);
            if differential(&scratch, &full[..cut], ours, &what) {
                compared += 1;
            }
        }
        eprintln!("{tree}: {compared} truncated files compared with dpkg-query");
        assert!(
            compared > 50,
            "{tree}: only {compared} truncations compared"
        );
    }
}

#[test]
fn byte_flips_never_panic_and_agree_with_dpkg_query() {
    let live = have_dpkg_query();
    let full = read(&fixtures().join("debian-bookworm-minbase").join(STATUS));
    let scratch = Scratch::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut compared = 0;
    for round in 0..300 {
        let mut bytes = full.clone();
        let flips = 1 + rng.below(8);
        for _ in 0..flips {
            let at = rng.below(bytes.len());
            // Mostly structure characters, where the parser decides things.
            bytes[at] = match rng.below(4) {
                0 => b"\n :\t\r#(-"[rng.below(8)],
                1 => 0,
                _ => u8::try_from(rng.below(256)).unwrap_or(0),
            };
        }
        let what = format!("flip round {round}");
        let ours = analyze_damaged(&scratch, &bytes, &what);
        if live && differential(&scratch, &bytes, ours, &what) {
            compared += 1;
        }
    }
    if live {
        eprintln!("{compared} of 300 damaged files compared with dpkg-query");
        assert!(
            compared > 30,
            "only {compared} damaged files compared with dpkg-query"
        );
    }
}

#[test]
fn huge_lines_and_nul_files_end_cleanly() {
    let good = "Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n";
    let long = "x".repeat(10 << 20);
    let scratch = Scratch::new();

    // A 10 MB continuation line inside a stanza: the package is still read.
    let text = format!("{good}Description: d\n {long}\n");
    let rows = analyze_damaged(&scratch, text.as_bytes(), "10 MB description").expect("parses");
    assert_eq!(rows, BTreeSet::from([row("a", "1", "all", "a", "1")]));

    // A 10 MB line that is no field: an error at line 1 when it is all there is.
    let root = rootfs(long.as_bytes());
    match analyze(root.path()) {
        Err(AnalyzeError::Parse(e)) => assert_eq!((e.file.as_str(), e.line), (STATUS, 1)),
        other => panic!("10 MB junk line: {other:?}"),
    }
    // A 10 MB field name and a 10 MB value.
    for text in [format!("{long}: 1\n"), format!("{good}Version: {long}\n")] {
        analyze_damaged(&scratch, text.as_bytes(), "10 MB field");
    }

    // A file of NULs.
    let root = rootfs(&vec![0u8; 1 << 20]);
    match analyze(root.path()) {
        Err(AnalyzeError::Parse(e)) => assert_eq!((e.file.as_str(), e.line), (STATUS, 1)),
        other => panic!("NUL file: {other:?}"),
    }
    // Many bad lines: the warnings stay bounded.
    let text = format!("{good}\n{}", "junk\n".repeat(1_000_000));
    let root = rootfs(text.as_bytes());
    let a = analyze_ok(root.path());
    assert_eq!(a.packages.len(), 1);
    assert!(a.warnings.len() <= status::MAX_WARNINGS + 1);
}

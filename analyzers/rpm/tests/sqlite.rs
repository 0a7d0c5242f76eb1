//! The SQLite rpmdb reader and the analyzer on it, against rpm's own listing.
//!
//! - `sqlite/cbl-mariner-2.0/`: a real CBL-Mariner 2.0 rpmdb (go-rpmdb's test data, 4096-byte
//!   pages, headers up to 200 KB) with the list rpm 4.18 printed for the fixture pool
//!   (`cbl-mariner-2.0.rpm-qa.tsv`).
//! - `sqlite/small-1k/`: the test packages of `specs/` and a gpg-pubkey installed by rpm,
//!   rewritten with 1024-byte pages (`make-small-1k.sh`), with `rpm -qa`'s output.
//! - `sqlite/wal/` and `sqlite/wal-half-checkpointed/`: databases whose newest transactions
//!   are only in the write-ahead log, because rpm's checkpoint was interrupted
//!   (`make-wal.sh`), with `rpm -qa`'s output on each and on `wal/`'s main file alone.
//!
//! With `rpm` installed (always in CI) they are also compared with a live `rpm -qa`,
//! including every file list, and so is every damaged log below: SQLite's own recovery
//! is the reference for which frames count.

mod common;

use std::fs;
use std::path::Path;

use bulkhead_analyzer_rpm::sqlite::WalUse;
use bulkhead_analyzer_rpm::{analyze, header, sqlite};
use bulkhead_analyzer_sdk::Analysis;
use common::{TempDir, assert_matches_rpm, fixtures, have, property, rpm_qa, source_rpm_of};

const DB: &str = "var/lib/rpm/rpmdb.sqlite";
const WAL: &str = "var/lib/rpm/rpmdb.sqlite-wal";

fn root(name: &str) -> std::path::PathBuf {
    fixtures().join("sqlite").join(name)
}

fn read_tsv(path: &Path) -> Vec<Vec<String>> {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

fn run(root: &Path) -> Analysis {
    analyze(root).unwrap_or_else(|e| panic!("{}: {e:?}", root.display()))
}

/// `rpm -qa` on a scratch copy of the fixture's database.
fn live(root: &Path) -> Option<Vec<common::RpmQa>> {
    if !have("rpm") {
        return None;
    }
    let tmp = TempDir::new("qa");
    fs::copy(root.join(DB), tmp.path().join("rpmdb.sqlite")).expect("copy db");
    Some(rpm_qa(tmp.path()))
}

#[test]
fn mariner_matches_the_rpm_qa_list() {
    let root = root("cbl-mariner-2.0");
    let a = run(&root);
    // Columns: name, epoch, version, release, arch, source rpm, vendor, modularity label.
    let mut want: Vec<Vec<String>> =
        read_tsv(&fixtures().join("sqlite/cbl-mariner-2.0.rpm-qa.tsv"))
            .into_iter()
            .map(|f| {
                let evr = match f[1].as_str() {
                    "" => format!("{}-{}", f[2], f[3]),
                    e => format!("{e}:{}-{}", f[2], f[3]),
                };
                vec![f[0].clone(), evr, f[4].clone(), f[5].clone()]
            })
            .collect();
    let mut got: Vec<Vec<String>> = a
        .packages
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.version.clone(),
                p.arch.clone().unwrap_or_default(),
                source_rpm_of(p).unwrap_or_default(),
            ]
        })
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got.len(), 129);
    assert_eq!(got, want);
    assert!(a.packages.iter().all(|p| p.db_path == DB));
    assert_eq!(a.os.as_ref().map(|o| o.id.as_str()), Some("mariner"));
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
    // Three packages have Epoch 1; their source version must keep it.
    let ca = a
        .packages
        .iter()
        .find(|p| p.name == "ca-certificates-base")
        .expect("listed");
    assert_eq!(ca.version, "1:2.0.0-1.cm2");
    assert_eq!(ca.source_name.as_deref(), Some("ca-certificates"));
    assert_eq!(ca.source_version.as_deref(), Some("1:2.0.0-1.cm2"));
    assert_eq!(property(ca, "epoch"), Some("1"));
    assert_eq!(ca.license.as_deref(), Some("MPLv2.0"));
}

#[test]
fn mariner_matches_live_rpm_including_files() {
    let root = root("cbl-mariner-2.0");
    let Some(want) = live(&root) else { return };
    let a = run(&root);
    assert_matches_rpm(&a, &want);
    // The comparison must have covered real file lists.
    let files: usize = a.packages.iter().map(|p| p.files.len()).sum();
    assert!(files > 1000, "{files} files");
}

/// The rows of the generated fixtures' TSVs, from an analysis: name, EVR, arch, source
/// rpm, licence, modularity label, "(none)" for absent, as `rpm -qa --qf` prints them.
fn qa_rows(a: &Analysis) -> Vec<Vec<String>> {
    let none = |s: Option<&str>| s.unwrap_or("(none)").to_string();
    a.packages
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.version.clone(),
                none(p.arch.as_deref()),
                none(source_rpm_of(p).as_deref()),
                none(p.license.as_deref()),
                none(property(p, "modularity-label")),
            ]
        })
        .collect()
}

#[test]
fn small_1k_matches_the_rpm_qa_list() {
    let root = root("small-1k");
    let a = run(&root);
    let want = read_tsv(&fixtures().join("sqlite/small-1k.rpm-qa.tsv"));
    assert_eq!(qa_rows(&a), want);
    // rpm -qa lists the imported key as a package without arch or source; so do we.
    let key = a.packages.last().expect("packages");
    assert_eq!(key.name, "gpg-pubkey");
    assert!(key.files.is_empty() && key.source_name.is_none() && key.arch.is_none());
    // The 150-file package spans an overflow chain of 21 pages.
    let big = a
        .packages
        .iter()
        .find(|p| p.name == "bh-epoch")
        .expect("listed");
    assert_eq!(big.files.len(), 154);
    assert!(
        big.files
            .contains(&"usr/share/bh-epoch/file-150.txt".to_string())
    );
    assert_eq!(big.source_version.as_deref(), Some("3:1.2.3-4.el9"));
    let sub = a
        .packages
        .iter()
        .find(|p| p.name == "bh-sub-libs")
        .expect("listed");
    assert_eq!(sub.source_name.as_deref(), Some("bh-sub"));
    assert_eq!(sub.source_version.as_deref(), Some("0.9-7.cm2"));
}

#[test]
fn small_1k_matches_live_rpm_including_files() {
    let root = root("small-1k");
    let Some(want) = live(&root) else { return };
    assert_matches_rpm(&run(&root), &want);
}

/// The fixture's bytes, the page size and the root page of `Packages` (2, an interior
/// page: the fixture is built so).
fn small() -> (Vec<u8>, usize) {
    let data = fs::read(root("small-1k").join(DB)).expect("fixture");
    let page = u16::from_be_bytes([data[16], data[17]]) as usize;
    assert_eq!(page, 1024);
    assert_eq!(data[page], 0x05, "page 2 must be an interior table page");
    (data, page)
}

fn fails(data: &[u8], what: &str, needle: &str) {
    match sqlite::blobs(data, None) {
        Ok(b) => panic!("{what}: read {} blobs", b.len()),
        Err(e) => assert!(e.message.contains(needle), "{what}: {e}"),
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// SQLite varint, read independently of the crate for the test's own navigation.
fn varint(b: &[u8], mut at: usize) -> (u64, usize) {
    let mut v = 0u64;
    for i in 0..9 {
        let x = b[at];
        at += 1;
        if i == 8 {
            return ((v << 8) | u64::from(x), at);
        }
        v = (v << 7) | u64::from(x & 0x7f);
        if x & 0x80 == 0 {
            break;
        }
    }
    (v, at)
}

#[test]
fn unmodified_small_fixture_reads() {
    let (data, _) = small();
    let blobs = sqlite::blobs(&data, None).expect("reads");
    assert_eq!(blobs.len(), 5);
    for b in &blobs {
        header::parse(b).expect("header parses");
    }
}

#[test]
fn hostile_truncated() {
    let (data, page) = small();
    fails(&data[..0], "empty", "too short");
    fails(&data[..99], "99 bytes", "too short");
    fails(&data[..100], "header only", "shorter than one");
    fails(&data[..page], "first page only", "out of range");
    fails(&data[..data.len() / 2], "half", "out of range");
    // Cut just before the root's right-most leaf (the highest-numbered pages may belong to
    // other tables, which the reader never visits).
    let last = be32(&data, page + 8) as usize;
    fails(
        &data[..(last - 1) * page],
        "last leaf missing",
        "out of range",
    );
}

#[test]
fn hostile_zeroed_or_garbled_header() {
    let (data, _) = small();
    let mut d = data.clone();
    d[..100].fill(0);
    fails(&d, "zeroed header", "magic");
    let mut d = data.clone();
    d[16..18].copy_from_slice(&1000u16.to_be_bytes());
    fails(&d, "page size 1000", "page size");
    let mut d = data.clone();
    d[16..18].copy_from_slice(&512u16.to_be_bytes());
    d[20] = 255;
    fails(&d, "reserved bytes", "usable");
    let mut d = data.clone();
    d[19] = 3;
    fails(&d, "read version 3", "read format");
    let mut d = data;
    d[56..60].copy_from_slice(&9u32.to_be_bytes());
    fails(&d, "encoding", "encoding");
}

#[test]
fn hostile_page_pointing_at_itself() {
    let (data, page) = small();
    // Right-most child of the interior root (page 2, header at its start) → page 2.
    let mut d = data.clone();
    d[page + 8..page + 12].copy_from_slice(&2u32.to_be_bytes());
    fails(&d, "root lists itself", "referenced twice");
    // The first cell's left child → the page itself.
    let mut d = data.clone();
    let cell = u16::from_be_bytes([d[page + 12], d[page + 13]]) as usize;
    d[page + cell..page + cell + 4].copy_from_slice(&2u32.to_be_bytes());
    fails(&d, "cell points at its page", "referenced twice");
    // Two cells with the same child.
    let mut d = data.clone();
    let child = be32(&d, page + cell);
    let cell2 = u16::from_be_bytes([d[page + 14], d[page + 15]]) as usize;
    d[page + cell2..page + cell2 + 4].copy_from_slice(&child.to_be_bytes());
    fails(&d, "shared child", "referenced twice");
    // Children that do not exist.
    let mut d = data.clone();
    d[page + 8..page + 12].copy_from_slice(&0u32.to_be_bytes());
    fails(&d, "child 0", "out of range");
    let mut d = data;
    d[page + 8..page + 12].copy_from_slice(&u32::MAX.to_be_bytes());
    fails(&d, "child past the end", "out of range");
}

#[test]
fn hostile_overflow_loop() {
    let (data, page) = small();
    let usable = page - data[20] as usize;
    // Find the leaf cell with the largest payload among the root's children.
    let cells = u16::from_be_bytes([data[page + 3], data[page + 4]]) as usize;
    let mut children: Vec<u32> = (0..cells)
        .map(|i| {
            let off = u16::from_be_bytes([data[page + 12 + 2 * i], data[page + 13 + 2 * i]]);
            be32(&data, page + off as usize)
        })
        .collect();
    children.push(be32(&data, page + 8));
    // (payload size, cell offset, local payload offset)
    let mut best = (0u64, 0usize, 0usize);
    for child in children {
        let base = (child as usize - 1) * page;
        assert_eq!(data[base], 0x0D, "leaf");
        let cell = base + u16::from_be_bytes([data[base + 8], data[base + 9]]) as usize;
        let (size, at) = varint(&data, cell);
        let (_, at) = varint(&data, at);
        if size > best.0 {
            best = (size, cell, at);
        }
    }
    // Local part size for table leaf cells, from the file format description.
    let (size, cell, at) = (best.0 as usize, best.1, best.2);
    let (x, m) = (usable - 35, (usable - 12) * 32 / 255 - 23);
    assert!(size > x, "the largest row must overflow");
    let k = m + (size - m) % (usable - 4);
    let local = if k <= x { k } else { m };
    let first = be32(&data, at + local);
    let first_at = (first as usize - 1) * page;
    let second = be32(&data, first_at);
    assert_ne!(second, 0, "the chain must have two pages at least");
    // second → first: a two-page loop.
    let mut d = data.clone();
    let second_at = (second as usize - 1) * page;
    d[second_at..second_at + 4].copy_from_slice(&first.to_be_bytes());
    fails(&d, "overflow loop", "referenced twice");
    // first → first.
    let mut d = data.clone();
    d[first_at..first_at + 4].copy_from_slice(&first.to_be_bytes());
    fails(&d, "overflow self loop", "referenced twice");
    // first → the b-tree root.
    let mut d = data.clone();
    d[first_at..first_at + 4].copy_from_slice(&2u32.to_be_bytes());
    fails(&d, "overflow into the b-tree", "referenced twice");
    // Chain cut short.
    let mut d = data.clone();
    d[first_at..first_at + 4].fill(0);
    fails(&d, "chain cut", "chain ends");
    // Payload size larger than the file: the same varint length, all bits set.
    assert_eq!(
        varint(&data, cell).1 - cell,
        3,
        "a 21 KB size takes 3 varint bytes"
    );
    let mut d = data;
    d[cell..cell + 3].copy_from_slice(&[0xff, 0xff, 0x7f]);
    fails(&d, "absurd size", "exceeds");
}

// The write-ahead log.

const WAL_FIXTURES: [&str; 2] = ["wal", "wal-half-checkpointed"];

/// A WAL fixture's main file and log.
fn wal_pair(name: &str) -> (Vec<u8>, Vec<u8>) {
    let root = root(name);
    let db = fs::read(root.join(DB)).expect("fixture database");
    let wal = fs::read(root.join(WAL)).expect("fixture log");
    (db, wal)
}

/// A scratch root holding `db` and, when given, `wal` where rpm keeps them.
fn root_with(db: &[u8], wal: Option<&[u8]>) -> TempDir {
    let tmp = TempDir::new("wal");
    let dir = tmp.path().join("var/lib/rpm");
    fs::create_dir_all(&dir).expect("mkdir");
    fs::write(dir.join("rpmdb.sqlite"), db).expect("write db");
    if let Some(wal) = wal {
        fs::write(dir.join("rpmdb.sqlite-wal"), wal).expect("write log");
    }
    tmp
}

/// `rpm -qa` on scratch copies of `db` and `wal`: SQLite's recovery decides which frames
/// count (it writes a -shm file, and may checkpoint, beside them).
fn live_bytes(db: &[u8], wal: Option<&[u8]>) -> Option<Vec<common::RpmQa>> {
    if !have("rpm") {
        return None;
    }
    let tmp = root_with(db, wal);
    Some(rpm_qa(&tmp.path().join("var/lib/rpm")))
}

/// The analyzer on `db` and `wal` laid out as in an image, checked against a live `rpm -qa`
/// on the same bytes when rpm is installed.
fn analyze_like_rpm(db: &[u8], wal: Option<&[u8]>, what: &str) -> Analysis {
    let tmp = root_with(db, wal);
    let a = analyze(tmp.path()).unwrap_or_else(|e| panic!("{what}: {e:?}"));
    if let Some(want) = live_bytes(db, wal) {
        assert!(!want.is_empty(), "{what}: rpm lists nothing");
        assert_matches_rpm(&a, &want);
    }
    a
}

fn names(a: &Analysis) -> Vec<&str> {
    a.packages.iter().map(|p| p.name.as_str()).collect()
}

fn tsv_names(file: &str) -> Vec<String> {
    read_tsv(&fixtures().join("sqlite").join(file))
        .into_iter()
        .map(|row| row[0].clone())
        .collect()
}

fn wal_use(db: &[u8], wal: &[u8]) -> WalUse {
    sqlite::read(db, Some(wal))
        .unwrap_or_else(|e| panic!("{e}"))
        .wal
}

/// One frame of a log as the test reads it, independently of the crate: its offset, the
/// page it holds and its commit field (the database size after a commit, else 0).
#[derive(Clone, Copy)]
struct Frame {
    at: usize,
    page: u32,
    commit: u32,
}

fn log_page_size(wal: &[u8]) -> usize {
    be32(wal, 8) as usize
}

/// Every whole frame after the header, valid or not.
fn frames(wal: &[u8]) -> Vec<Frame> {
    let len = 24 + log_page_size(wal);
    (32..)
        .step_by(len)
        .take_while(|at| at + len <= wal.len())
        .map(|at| Frame {
            at,
            page: be32(wal, at),
            commit: be32(wal, at + 4),
        })
        .collect()
}

/// The 1-based numbers of the commit frames.
fn commit_frames(wal: &[u8]) -> Vec<usize> {
    frames(wal)
        .iter()
        .enumerate()
        .filter(|(_, f)| f.commit != 0)
        .map(|(i, _)| i + 1)
        .collect()
}

/// SQLite's log checksum (file format, "Checksum Algorithm"), written here again so that
/// the tests can forge logs without trusting the crate's.
fn cksum(big_endian: bool, bytes: &[u8], (mut s0, mut s1): (u32, u32)) -> (u32, u32) {
    for pair in bytes.chunks_exact(8) {
        let word = |b: &[u8]| {
            let w = [b[0], b[1], b[2], b[3]];
            if big_endian {
                u32::from_be_bytes(w)
            } else {
                u32::from_le_bytes(w)
            }
        };
        s0 = s0.wrapping_add(word(&pair[..4])).wrapping_add(s1);
        s1 = s1.wrapping_add(word(&pair[4..])).wrapping_add(s0);
    }
    (s0, s1)
}

/// Recompute the header's and every frame's checksum of a log the test has changed, so
/// that only the change under test is wrong (or nothing is).
fn rechain(wal: &mut [u8]) {
    let big_endian = be32(wal, 0) & 1 == 1;
    let mut sum = cksum(big_endian, &wal[..24], (0, 0));
    wal[24..28].copy_from_slice(&sum.0.to_be_bytes());
    wal[28..32].copy_from_slice(&sum.1.to_be_bytes());
    let page = log_page_size(wal);
    for f in frames(wal) {
        sum = cksum(big_endian, &wal[f.at..f.at + 8], sum);
        sum = cksum(big_endian, &wal[f.at + 24..f.at + 24 + page], sum);
        wal[f.at + 16..f.at + 20].copy_from_slice(&sum.0.to_be_bytes());
        wal[f.at + 20..f.at + 24].copy_from_slice(&sum.1.to_be_bytes());
    }
}

#[test]
fn wal_fixtures_match_the_rpm_qa_list() {
    for name in WAL_FIXTURES {
        let a = run(&root(name));
        let want = read_tsv(&fixtures().join(format!("sqlite/{name}.rpm-qa.tsv")));
        assert_eq!(qa_rows(&a), want, "{name}");
        assert!(a.packages.iter().all(|p| p.db_path == DB));
        assert!(a.warnings.is_empty(), "{name}: {:?}", a.warnings);

        // What the fixtures are made to cover: several transactions, page 1 (the header)
        // in the log, a database larger than its main file.
        let (db, wal) = wal_pair(name);
        let commits = commit_frames(&wal);
        assert!(commits.len() >= 2, "{name}: {commits:?}");
        let all = frames(&wal);
        let last = &all[commits[commits.len() - 1] - 1];
        assert!(
            all.iter().any(|f| f.page == 1),
            "{name}: page 1 not in the log"
        );
        let main_pages = (db.len() / log_page_size(&wal)) as u32;
        assert!(last.commit > main_pages, "{name}: {} pages", last.commit);
        assert_eq!(
            wal_use(&db, &wal),
            WalUse::Applied {
                commits: commits.len() as u32,
                frames: commits[commits.len() - 1] as u32,
                pages: last.commit,
            },
            "{name}"
        );
    }
}

#[test]
fn wal_fixtures_match_live_rpm_including_files() {
    for name in WAL_FIXTURES {
        let (db, wal) = wal_pair(name);
        let Some(want) = live_bytes(&db, Some(&wal)) else {
            return;
        };
        assert_matches_rpm(&run(&root(name)), &want);
    }
}

#[test]
fn main_file_alone_is_not_the_database() {
    // wal/: the main file is the state before the log, which rpm lists too.
    let (db, wal) = wal_pair("wal");
    let before = tsv_names("wal.main-only.rpm-qa.tsv");
    assert_ne!(before, tsv_names("wal.rpm-qa.tsv"), "the log must matter");
    let tmp = root_with(&db, None);
    let a = analyze(tmp.path()).expect("main file alone");
    assert_eq!(
        qa_rows(&a),
        read_tsv(&fixtures().join("sqlite/wal.main-only.rpm-qa.tsv"))
    );
    analyze_like_rpm(&db, None, "wal/ main file alone");
    // An empty log is no log.
    let a = analyze_like_rpm(&db, Some(&[]), "empty log");
    assert_eq!(names(&a), before);
    assert_eq!(wal_use(&db, &wal[..0]), WalUse::Unused);

    // wal-half-checkpointed/: the checkpoint copied some pages and not others, and rpm
    // calls the main file alone malformed. Whatever the reader makes of it, it is not
    // the database.
    let (db, _) = wal_pair("wal-half-checkpointed");
    let want = tsv_names("wal-half-checkpointed.rpm-qa.tsv");
    if let Ok(blobs) = sqlite::blobs(&db, None) {
        let got: Vec<String> = blobs
            .iter()
            .map(|b| header::parse(b).map_or_else(|e| e.message, |p| p.name))
            .collect();
        assert_ne!(got, want);
    }
}

#[test]
fn a_bad_frame_ends_the_log_at_the_previous_commit() {
    let (db, wal) = wal_pair("wal");
    let before = tsv_names("wal.main-only.rpm-qa.tsv");
    let after = tsv_names("wal.rpm-qa.tsv");
    let commits = commit_frames(&wal);
    let page = log_page_size(&wal);
    let all = frames(&wal);
    // Spoil the frame after the k-th commit (the first frame for k = 0) in each way that
    // ends a log: SQLite then recovers the first k transactions, and so must the reader.
    let mut lists = Vec::new();
    for k in 0..commits.len() {
        let f = &all[if k == 0 { 0 } else { commits[k - 1] }];
        for how in ["image byte", "checksum", "salt", "page 0"] {
            let mut bad = wal.clone();
            match how {
                "image byte" => bad[f.at + 24 + page / 2] ^= 0x40,
                "checksum" => bad[f.at + 19] ^= 1,
                "salt" => bad[f.at + 8] ^= 1,
                // Page 0 ends the log even with the checksums right.
                _ => {
                    bad[f.at..f.at + 4].fill(0);
                    rechain(&mut bad);
                }
            }
            let want = match k {
                0 => WalUse::Unused,
                k => WalUse::Applied {
                    commits: k as u32,
                    frames: commits[k - 1] as u32,
                    pages: all[commits[k - 1] - 1].commit,
                },
            };
            let what = format!("{how} after commit {k}");
            assert_eq!(wal_use(&db, &bad), want, "{what}");
            let a = analyze_like_rpm(&db, Some(&bad), &what);
            assert!(a.warnings.is_empty(), "{what}: {:?}", a.warnings);
            if how == "image byte" {
                lists.push(names(&a).join(" "));
            }
        }
    }
    // The states in between: the log first erases bh-caret, then installs bh-epoch, so
    // some commit shows neither, which neither file alone holds.
    assert_eq!(lists[0], before.join(" "));
    assert!(
        lists.contains(&"bh-tilde bh-sub-libs".to_string()),
        "{lists:?}"
    );
    assert_eq!(names(&run(&root("wal"))), after);

    // wal-half-checkpointed/: only its last transaction (the key import) can be dropped;
    // the main file already holds pages of the ones before.
    let (db, wal) = wal_pair("wal-half-checkpointed");
    let commits = commit_frames(&wal);
    let first_of_last = commits[commits.len() - 2];
    let mut bad = wal.clone();
    bad[32 + first_of_last * (24 + page) + 24 + 100] ^= 0x40;
    let a = analyze_like_rpm(
        &db,
        Some(&bad),
        "half-checkpointed, last transaction spoilt",
    );
    let mut want = tsv_names("wal-half-checkpointed.rpm-qa.tsv");
    assert_eq!(want.pop().as_deref(), Some("gpg-pubkey"));
    assert_eq!(names(&a), want);
}

#[test]
fn a_truncated_log_ends_at_the_last_whole_commit() {
    let (db, wal) = wal_pair("wal");
    let commits = commit_frames(&wal);
    let frame = 24 + log_page_size(&wal);
    let committed = |len: usize| {
        let whole = len.saturating_sub(32) / frame;
        commits.iter().filter(|&&c| c <= whole).count() as u32
    };
    // Every cut, at a prime stride: no panic, and exactly the whole commits before it.
    for len in (0..=wal.len()).step_by(997).chain([31, 32, 33, wal.len()]) {
        let got = wal_use(&db, &wal[..len]);
        match committed(len) {
            0 => assert_eq!(got, WalUse::Unused, "cut at {len}"),
            k => assert!(
                matches!(got, WalUse::Applied { commits, .. } if commits == k),
                "cut at {len}: {got:?}"
            ),
        }
    }
    // Cut one byte short of each commit frame's end, and at it, against rpm.
    for &c in &commits {
        let end = 32 + c * frame;
        analyze_like_rpm(&db, Some(&wal[..end - 1]), &format!("cut before {c}"));
        analyze_like_rpm(&db, Some(&wal[..end]), &format!("cut after {c}"));
    }
}

#[test]
fn big_endian_checksums_are_read() {
    // SQLite on a big-endian machine writes magic 0x377f0683 and sums big-endian words.
    let (db, wal) = wal_pair("wal");
    let mut be = wal.clone();
    be[3] = 0x83;
    assert!(matches!(wal_use(&db, &be), WalUse::Ignored(_)));
    rechain(&mut be);
    assert_eq!(wal_use(&db, &be), wal_use(&db, &wal));
    let a = analyze_like_rpm(&db, Some(&be), "big-endian log");
    assert_eq!(names(&a), tsv_names("wal.rpm-qa.tsv"));
}

#[test]
fn a_log_with_another_page_size() {
    let (db, wal) = wal_pair("wal");
    let before = tsv_names("wal.main-only.rpm-qa.tsv");
    assert_eq!(log_page_size(&wal), 4096);

    // The header changed, its checksum not: SQLite ignores the log, the analyzer says so.
    let mut bad = wal.clone();
    bad[8..12].copy_from_slice(&8192u32.to_be_bytes());
    match wal_use(&db, &bad) {
        WalUse::Ignored(why) => assert!(why.contains("checksum"), "{why}"),
        other => panic!("{other:?}"),
    }
    let a = analyze_like_rpm(&db, Some(&bad), "page size, stale checksum");
    assert_eq!(names(&a), before);
    assert_eq!(a.warnings.len(), 1, "{:?}", a.warnings);
    assert_eq!(a.warnings[0].file, WAL);
    assert!(
        a.warnings[0].message.contains("ignored"),
        "{:?}",
        a.warnings
    );

    // With the checksum right, the frames no longer line up and the first one fails.
    rechain(&mut bad);
    assert_eq!(wal_use(&db, &bad), WalUse::Unused);
    assert_eq!(
        names(&analyze_like_rpm(&db, Some(&bad), "8192, rechained")),
        before
    );

    // Page sizes SQLite cannot have: the log is ignored.
    for size in [0u32, 256, 1000, 4097, 131_072] {
        let mut bad = wal.clone();
        bad[8..12].copy_from_slice(&size.to_be_bytes());
        rechain(&mut bad);
        match wal_use(&db, &bad) {
            WalUse::Ignored(why) => assert!(why.contains("page size"), "{size}: {why}"),
            other => panic!("{size}: {other:?}"),
        }
    }

    // A consistent log of 8192-byte frames (each page padded) beside a 4096-byte
    // database: no such pair comes from SQLite, and the reader refuses it.
    let mut big = wal[..32].to_vec();
    big[8..12].copy_from_slice(&8192u32.to_be_bytes());
    for f in frames(&wal) {
        big.extend_from_slice(&wal[f.at..f.at + 24]);
        big.extend_from_slice(&wal[f.at + 24..f.at + 24 + 4096]);
        big.extend_from_slice(&[0; 4096]);
    }
    rechain(&mut big);
    let e = sqlite::read(&db, Some(&big)).expect_err("page size mismatch");
    assert!(
        e.message
            .contains("page size 8192 differs from the database's 4096"),
        "{e}"
    );
    let tmp = root_with(&db, Some(&big));
    match analyze(tmp.path()) {
        Err(bulkhead_analyzer_sdk::AnalyzeError::Parse(p)) => {
            assert_eq!(p.file, DB);
            assert!(p.message.contains("write-ahead log page size"), "{p:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn hostile_logs() {
    let (db, wal) = wal_pair("wal");
    let before = tsv_names("wal.main-only.rpm-qa.tsv");
    let after = tsv_names("wal.rpm-qa.tsv");
    let read_names = |log: &[u8]| -> Result<Vec<String>, String> {
        let blobs = sqlite::blobs(&db, Some(log)).map_err(|e| e.to_string())?;
        Ok(blobs
            .iter()
            .map(|b| header::parse(b).expect("header").name)
            .collect())
    };

    // Garbage of every kind: zeros, ones, pseudo-random bytes, the magic followed by
    // noise. Up to a header's length it is no log; beyond, a bad header is ignored.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut noise = |n: usize| -> Vec<u8> {
        seed = seed.wrapping_add(0x2545_f491);
        bulkhead_test_artifacts::pseudo_random(seed, n)
    };
    for len in [1, 31, 32, 33, 4096, 4096 + 56, 100_000] {
        let mut garbage = vec![vec![0; len], vec![0xff; len], noise(len)];
        let mut magic = noise(len);
        if len >= 4 {
            magic[..4].copy_from_slice(&wal[..4]);
        }
        garbage.push(magic);
        for g in &garbage {
            let got = wal_use(&db, g);
            if len <= 32 {
                assert_eq!(got, WalUse::Unused, "{len}");
            } else {
                assert!(matches!(got, WalUse::Ignored(_)), "{len}: {got:?}");
            }
            assert_eq!(read_names(g).as_ref(), Ok(&before), "{len}");
        }
    }
    // A valid header with noise for frames: no frame counts.
    let mut log = wal[..32].to_vec();
    log.extend(noise(3 * (24 + 4096)));
    assert_eq!(wal_use(&db, &log), WalUse::Unused);
    assert_eq!(read_names(&log).as_ref(), Ok(&before));
    let a = analyze_like_rpm(&db, Some(&log), "noise frames");
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);

    // A format version SQLite does not know makes it refuse the database; so does the
    // reader.
    let mut bad = wal.clone();
    bad[4..8].copy_from_slice(&3_007_001u32.to_be_bytes());
    rechain(&mut bad);
    let e = read_names(&bad).expect_err("version");
    assert!(e.contains("format version 3007001"), "{e}");

    // The last commit claims 4 billion pages: only pages that exist are read, and nothing
    // is sized by the claim.
    let commits = commit_frames(&wal);
    let last = frames(&wal)[commits[commits.len() - 1] - 1].at;
    let mut bad = wal.clone();
    bad[last + 4..last + 8].copy_from_slice(&u32::MAX.to_be_bytes());
    rechain(&mut bad);
    assert!(matches!(
        wal_use(&db, &bad),
        WalUse::Applied {
            pages: u32::MAX,
            ..
        }
    ));
    assert_eq!(read_names(&bad).as_ref(), Ok(&after));
    // ... or one page: every other page is gone, and the Packages table with them.
    bad[last + 4..last + 8].copy_from_slice(&1u32.to_be_bytes());
    rechain(&mut bad);
    let e = read_names(&bad).expect_err("one page");
    assert!(e.contains("out of range"), "{e}");

    // A committed frame for a page past the database's end is no page of it. The first
    // frame holds page 1, which a later transaction writes again, so nothing is lost.
    let mut bad = wal.clone();
    let first = frames(&wal)[0];
    assert_eq!(first.page, 1);
    bad[first.at..first.at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    rechain(&mut bad);
    assert_eq!(read_names(&bad).as_ref(), Ok(&after));
    analyze_like_rpm(&db, Some(&bad), "frame for page 4294967295");
    // The main file cut to its first page: the log holds page 1 and the pages past the
    // file, not the others.
    let e = sqlite::blobs(&db[..4096], Some(&wal)).expect_err("missing pages");
    assert!(
        e.message.contains("out of range") && e.message.contains("no copy"),
        "{e}"
    );
    // An empty main file: SQLite deletes a log beside it, the reader ignores it.
    let e = sqlite::blobs(&[], Some(&wal)).expect_err("empty database");
    assert!(e.message.contains("too short"), "{e}");
}

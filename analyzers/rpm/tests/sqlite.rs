//! The SQLite rpmdb reader and the analyzer on it, against rpm's own listing.
//!
//! - `sqlite/cbl-mariner-2.0/`: a real CBL-Mariner 2.0 rpmdb (go-rpmdb's test data, 4096-byte
//!   pages, headers up to 200 KB) with the list rpm 4.18 printed for the fixture pool
//!   (`cbl-mariner-2.0.rpm-qa.tsv`).
//! - `sqlite/small-1k/`: the test packages of `specs/` and a gpg-pubkey installed by rpm,
//!   rewritten with 1024-byte pages (`make-small-1k.sh`), with `rpm -qa`'s output.
//!
//! With `rpm` installed (always in CI) both are also compared with a live `rpm -qa`,
//! including every file list.

mod common;

use std::fs;
use std::path::Path;

use bulkhead_analyzer_rpm::{analyze, header, sqlite};
use bulkhead_analyzer_sdk::Analysis;
use common::{TempDir, assert_matches_rpm, fixtures, have, property, rpm_qa, source_rpm_of};

const DB: &str = "var/lib/rpm/rpmdb.sqlite";

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

#[test]
fn small_1k_matches_the_rpm_qa_list() {
    let root = root("small-1k");
    let a = run(&root);
    // Columns: name, EVR, arch, source rpm, licence, modularity label; "(none)" for absent.
    let want = read_tsv(&fixtures().join("sqlite/small-1k.rpm-qa.tsv"));
    let none = |s: Option<&str>| s.unwrap_or("(none)").to_string();
    let got: Vec<Vec<String>> = a
        .packages
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
        .collect();
    assert_eq!(got, want);
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

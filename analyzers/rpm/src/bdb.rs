//! Berkeley DB hash databases, the `Packages` file of rpm up to 4.16 (RHEL/CentOS 5–8,
//! Amazon Linux 2, older SUSE and Fedora).
//!
//! Only what rpm writes is read: a hash database (not btree) without encryption or page
//! checksums, whose keys are 4-byte header instance numbers and whose values are header blobs,
//! either inline on the bucket page or in a chain of overflow pages. The walk follows the hash
//! table the way Berkeley DB's own cursor does (every bucket, then each bucket's chain of
//! pages) rather than scanning every page, so that freed or half-written pages that are no
//! longer part of the table are never reported.
//!
//! The file is untrusted. Every page is reached at most once (a second visit means a loop or
//! two owners, both corrupt), so the walk is linear in the file size, and since no page feeds
//! two blobs the blobs together never exceed the file.

use crate::DbError;

/// Berkeley DB's magic numbers at byte 12 of the metadata page, in the writer's byte order.
const HASH_MAGIC: u32 = 0x0006_1561;
const BTREE_MAGIC: u32 = 0x0005_3162;

/// The metadata page is read as one 512-byte block; it is also the smallest page size.
const META_SIZE: usize = 512;
/// The generic page header (lsn, pgno, prev/next pgno, entries, hf_offset, level, type) that
/// precedes the item index on hash pages and the data on overflow pages.
const PAGE_HEADER: usize = 26;

// Page types (byte 25 of every page).
/// Hash bucket page as written by Berkeley DB before 4.6 (hash version 8).
const P_HASH_UNSORTED: u8 = 2;
const P_OVERFLOW: u8 = 7;
const P_HASHMETA: u8 = 8;
/// Hash bucket page with sorted items, Berkeley DB 4.6 and later (hash version 9).
const P_HASH: u8 = 13;

// Item types (first byte of each item on a hash page).
const H_KEYDATA: u8 = 1;
const H_DUPLICATE: u8 = 2;
const H_OFFPAGE: u8 = 3;
const H_OFFDUP: u8 = 4;
/// An off-page item: type, 3 bytes of padding, first overflow page, total length.
const HOFFPAGE_SIZE: usize = 12;

/// Metadata flags (byte 26 of the metadata page): pages carry a checksum, which moves the
/// item index. rpm never asks for it, and its own reader does not handle it either.
const DBMETA_CHKSUM: u8 = 0x01;

/// Every rpm header blob stored in the database, in hash-table order (bucket by bucket, as
/// rpm's own cursor walks them). Key 0 holds rpm's next-instance counter and is skipped.
pub fn blobs(data: &[u8]) -> Result<Vec<Vec<u8>>, DbError> {
    let mut db = Db::open(data)?;
    let mut out = Vec::new();
    for bucket in 0..=db.max_bucket {
        let first = db.bucket_page(bucket)?;
        db.read_bucket(bucket, first, &mut out)?;
    }
    Ok(out)
}

#[derive(Clone, Copy)]
enum Order {
    Little,
    Big,
}

struct Db<'a> {
    data: &'a [u8],
    /// The byte order of the machine that wrote the file: it applies to every page and item
    /// header field (the rpm headers themselves are always big-endian).
    order: Order,
    page_size: usize,
    last_pgno: u32,
    max_bucket: u32,
    /// Bucket → page mapping: bucket `b` lives on page `b + spares[bits(b)]`.
    spares: [u32; 32],
    /// Pages already reached, indexed by page number.
    visited: Vec<bool>,
}

impl<'a> Db<'a> {
    fn open(data: &'a [u8]) -> Result<Self, DbError> {
        if data.len() < META_SIZE {
            return Err(DbError::new(
                0,
                format!(
                    "file is {} bytes, shorter than a Berkeley DB metadata page ({META_SIZE})",
                    data.len()
                ),
            ));
        }
        let magic_le = le32(data, 12);
        let magic_be = be32(data, 12);
        let order = if magic_le == HASH_MAGIC {
            Order::Little
        } else if magic_be == HASH_MAGIC {
            Order::Big
        } else if magic_le == BTREE_MAGIC || magic_be == BTREE_MAGIC {
            return Err(DbError::new(
                12,
                "Berkeley DB btree database: rpm's Packages database is a hash database",
            ));
        } else {
            return Err(DbError::new(
                12,
                format!("not a Berkeley DB hash database (magic {magic_le:#010x})"),
            ));
        };
        let meta = |off: usize| match order {
            Order::Little => le32(data, off),
            Order::Big => be32(data, off),
        };

        // Hash versions 8 (Berkeley DB 4.1–4.5) to 10; rpm's own reader accepts the same.
        let version = meta(16);
        if !(8..=10).contains(&version) {
            return Err(DbError::new(
                16,
                format!("unsupported hash database version {version}"),
            ));
        }
        let page_size = meta(20);
        if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(DbError::new(20, format!("invalid page size {page_size}")));
        }
        let page_size = page_size as usize;
        if data[24] != 0 {
            return Err(DbError::new(
                24,
                "encrypted Berkeley DB databases are not supported",
            ));
        }
        if data[25] != P_HASHMETA {
            return Err(DbError::new(
                25,
                format!(
                    "page 0 has type {}, not a hash metadata page ({P_HASHMETA})",
                    data[25]
                ),
            ));
        }
        if data[26] & DBMETA_CHKSUM != 0 {
            return Err(DbError::new(
                26,
                "Berkeley DB page checksums are not supported",
            ));
        }
        let last_pgno = meta(32);
        // Berkeley DB extends the file to cover every allocated page; a shorter file was cut.
        let needed = (u64::from(last_pgno) + 1) * page_size as u64;
        if (data.len() as u64) < needed {
            return Err(DbError::new(
                32,
                format!(
                    "file is {} bytes but the metadata page says it has {} pages of {page_size} \
                     bytes ({needed} bytes): truncated",
                    data.len(),
                    u64::from(last_pgno) + 1
                ),
            ));
        }
        let max_bucket = meta(72);
        // Each bucket has its own first page among pages 1..=last_pgno.
        if max_bucket >= last_pgno {
            return Err(DbError::new(
                72,
                format!(
                    "{} hash buckets cannot fit in a database of {last_pgno} data pages",
                    u64::from(max_bucket) + 1
                ),
            ));
        }
        let mut spares = [0u32; 32];
        for (i, spare) in spares.iter_mut().enumerate() {
            *spare = meta(96 + 4 * i);
        }
        Ok(Self {
            data,
            order,
            page_size,
            last_pgno,
            max_bucket,
            spares,
            visited: vec![false; last_pgno as usize + 1],
        })
    }

    fn u16_at(&self, off: usize) -> u16 {
        let bytes = [self.data[off], self.data[off + 1]];
        match self.order {
            Order::Little => u16::from_le_bytes(bytes),
            Order::Big => u16::from_be_bytes(bytes),
        }
    }

    fn u32_at(&self, off: usize) -> u32 {
        match self.order {
            Order::Little => le32(self.data, off),
            Order::Big => be32(self.data, off),
        }
    }

    /// The first page of `bucket`. Buckets are allocated in doubling groups ("splitpoints");
    /// `spares[i]` is the page offset of group `i`, the group of bucket `b` being the number
    /// of significant bits of `b`.
    fn bucket_page(&self, bucket: u32) -> Result<u32, DbError> {
        let group = (u32::BITS - bucket.leading_zeros()) as usize;
        self.spares
            .get(group)
            .and_then(|spare| bucket.checked_add(*spare))
            .ok_or_else(|| {
                DbError::new(
                    96,
                    format!("hash bucket {bucket} has no valid page in the spares table"),
                )
            })
    }

    /// Claims page `pgno` for `what` and returns its byte offset in the file; `from` is the
    /// file offset of the field that named the page. A page may be claimed once: a second
    /// claim is a loop, or two owners of one page.
    fn claim(&mut self, pgno: u32, from: usize, what: &str) -> Result<usize, DbError> {
        if pgno == 0 || pgno > self.last_pgno {
            return Err(DbError::new(
                from as u64,
                format!(
                    "{what}: page {pgno} is outside the database's pages 1..={}",
                    self.last_pgno
                ),
            ));
        }
        // In range: `open` checked that the file covers pages 0..=last_pgno.
        let start = pgno as usize * self.page_size;
        if self.visited[pgno as usize] {
            return Err(DbError::new(
                start as u64,
                format!("{what}: page {pgno} is reached a second time (a loop in the page chain)"),
            ));
        }
        self.visited[pgno as usize] = true;
        // Berkeley DB stores each page's own number in it; a mismatch is garbage or a page
        // from elsewhere, which is what rpm's reader checks too.
        let stored = self.u32_at(start + 8);
        if stored != pgno {
            return Err(DbError::new(
                start as u64 + 8,
                format!("{what}: page {pgno} says it is page {stored}"),
            ));
        }
        Ok(start)
    }

    /// Reads every key/data pair of one bucket, following its chain of bucket pages.
    fn read_bucket(
        &mut self,
        bucket: u32,
        first: u32,
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), DbError> {
        let what = format!("hash bucket {bucket}");
        let mut pgno = first;
        // The first page is named by the spares table, the next ones by the previous page.
        let mut from = 96;
        loop {
            let start = self.claim(pgno, from, &what)?;
            let page_type = self.data[start + 25];
            if page_type != P_HASH && page_type != P_HASH_UNSORTED {
                return Err(DbError::new(
                    start as u64 + 25,
                    format!("{what}: page {pgno} has type {page_type}, not a hash page"),
                ));
            }
            self.read_hash_page(pgno, start, out)?;
            from = start + 16;
            pgno = self.u32_at(from);
            if pgno == 0 {
                return Ok(());
            }
        }
    }

    /// Reads the pairs of one hash page. Items are packed at the end of the page in index
    /// order, each ending where the previous one starts, so item `i` spans
    /// `index[i]..index[i - 1]` (the first ends at the end of the page).
    fn read_hash_page(
        &mut self,
        pgno: u32,
        start: usize,
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), DbError> {
        let entries = usize::from(self.u16_at(start + 20));
        let index_end = PAGE_HEADER + 2 * entries;
        if index_end > self.page_size {
            return Err(DbError::new(
                start as u64 + 20,
                format!(
                    "page {pgno}: {entries} items cannot fit in a {}-byte page",
                    self.page_size
                ),
            ));
        }
        if !entries.is_multiple_of(2) {
            return Err(DbError::new(
                start as u64 + 20,
                format!(
                    "page {pgno}: odd number of items ({entries}); a hash page holds key/data pairs"
                ),
            ));
        }
        let mut end = self.page_size;
        let mut items: Vec<(usize, usize)> = Vec::with_capacity(entries);
        for i in 0..entries {
            let off = usize::from(self.u16_at(start + PAGE_HEADER + 2 * i));
            if off < index_end || off >= end {
                return Err(DbError::new(
                    (start + PAGE_HEADER + 2 * i) as u64,
                    format!("page {pgno}: item {i} at offset {off} is outside {index_end}..{end}"),
                ));
            }
            items.push((start + off, start + end));
            end = off;
        }
        for pair in items.chunks_exact(2) {
            let (key_start, key_end) = pair[0];
            let (value_start, value_end) = pair[1];
            let key = &self.data[key_start..key_end];
            // rpm's keys are 4-byte header numbers, far below the size Berkeley DB moves off
            // the page, so they are always inline.
            if key[0] != H_KEYDATA || key.len() != 5 {
                return Err(DbError::new(
                    key_start as u64,
                    format!(
                        "page {pgno}: key of type {} and {} bytes; rpm's keys are 4-byte inline \
                         header numbers",
                        key[0],
                        key.len() - 1
                    ),
                ));
            }
            if key[1..] == [0, 0, 0, 0] {
                // Header instance 0 is rpm's counter of the next instance, not a package.
                continue;
            }
            out.push(self.read_value(pgno, value_start, value_end)?);
        }
        Ok(())
    }

    fn read_value(&mut self, pgno: u32, start: usize, end: usize) -> Result<Vec<u8>, DbError> {
        let item = &self.data[start..end];
        match item[0] {
            H_KEYDATA => Ok(item[1..].to_vec()),
            H_OFFPAGE => {
                if item.len() != HOFFPAGE_SIZE {
                    return Err(DbError::new(
                        start as u64,
                        format!(
                            "page {pgno}: off-page item of {} bytes, not {HOFFPAGE_SIZE}",
                            item.len()
                        ),
                    ));
                }
                let first = self.u32_at(start + 4);
                let total = self.u32_at(start + 8);
                self.read_overflow(start, first, total)
            }
            H_DUPLICATE | H_OFFDUP => Err(DbError::new(
                start as u64,
                format!(
                    "page {pgno}: duplicate data items, which rpm's Packages database never has"
                ),
            )),
            other => Err(DbError::new(
                start as u64,
                format!("page {pgno}: unknown item type {other}"),
            )),
        }
    }

    /// Reads a value of `total` bytes from the chain of overflow pages starting at `pgno`;
    /// `item` is the file offset of the off-page item, for errors.
    fn read_overflow(
        &mut self,
        item: usize,
        mut pgno: u32,
        total: u32,
    ) -> Result<Vec<u8>, DbError> {
        let total = total as usize;
        if total == 0 || total > self.data.len() {
            return Err(DbError::new(
                item as u64 + 8,
                format!(
                    "off-page item of {total} bytes in a file of {} bytes",
                    self.data.len()
                ),
            ));
        }
        let mut value = Vec::with_capacity(total);
        let mut from = item + 4;
        while value.len() < total {
            if pgno == 0 {
                return Err(DbError::new(
                    item as u64,
                    format!("overflow chain ends after {} of {total} bytes", value.len()),
                ));
            }
            let start = self.claim(pgno, from, "overflow chain")?;
            let page_type = self.data[start + 25];
            if page_type != P_OVERFLOW {
                return Err(DbError::new(
                    start as u64 + 25,
                    format!(
                        "page {pgno} has type {page_type}, not an overflow page ({P_OVERFLOW})"
                    ),
                ));
            }
            // On overflow pages the high-free-offset field is the number of bytes stored.
            let len = usize::from(self.u16_at(start + 22));
            let remaining = total - value.len();
            if len == 0 || len > remaining || PAGE_HEADER + len > self.page_size {
                return Err(DbError::new(
                    start as u64 + 22,
                    format!(
                        "overflow page {pgno} holds {len} bytes; {remaining} remain and a page \
                         has room for {}",
                        self.page_size - PAGE_HEADER
                    ),
                ));
            }
            value.extend_from_slice(&self.data[start + PAGE_HEADER..start + PAGE_HEADER + len]);
            from = start + 16;
            pgno = self.u32_at(from);
        }
        Ok(value)
    }
}

fn le32(data: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([data[off], data[off + 1], data[off + 2], data[off + 3]])
}

fn be32(data: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([data[off], data[off + 1], data[off + 2], data[off + 3]])
}

/// Helpers shared by the tests of the database readers: fixtures, a minimal rpm header NAME
/// decoder (so that these tests do not depend on the full header parser) and `rpm -qa`.
#[cfg(test)]
pub(crate) mod test_support {
    use std::path::PathBuf;
    use std::process::Command;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/rpm/");

    pub(crate) fn fixture(rel: &str) -> Vec<u8> {
        let path = format!("{FIXTURES}{rel}");
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The package names of an expected-list TSV (first column), sorted.
    pub(crate) fn expected_names(rel: &str) -> Vec<String> {
        let text = String::from_utf8(fixture(rel)).expect("TSV is UTF-8");
        let mut names: Vec<String> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split('\t').next().unwrap_or_default().to_string())
            .collect();
        names.sort();
        names
    }

    /// The NAME tag (1000) of an rpm header blob as stored in an rpmdb: big-endian index
    /// length and data length, 16-byte index entries {tag, type, offset, count}, then data.
    pub(crate) fn header_name(blob: &[u8]) -> String {
        let be = |off: usize| u32::from_be_bytes(blob[off..off + 4].try_into().expect("4 bytes"));
        let il = be(0) as usize;
        let data = 8 + 16 * il;
        for i in 0..il {
            let entry = 8 + 16 * i;
            if be(entry) == 1000 {
                assert_eq!(be(entry + 4), 6, "NAME is a STRING");
                let start = data + be(entry + 8) as usize;
                let len = blob[start..]
                    .iter()
                    .position(|&b| b == 0)
                    .expect("NUL-terminated");
                return String::from_utf8(blob[start..start + len].to_vec()).expect("UTF-8 name");
            }
        }
        panic!("header without NAME");
    }

    pub(crate) fn sorted_names(blobs: &[Vec<u8>]) -> Vec<String> {
        let mut names: Vec<String> = blobs.iter().map(|b| header_name(b)).collect();
        names.sort();
        names
    }

    /// `rpm -qa` over a copy of `db` named `file_name` (the name rpm's backend opens), sorted
    /// names. `None` when rpm is not installed: the comparison is skipped through the
    /// workspace's skip policy ([`bulkhead_test_artifacts::skip`]: a failure in CI).
    pub(crate) fn rpm_qa_names(db: &[u8], file_name: &str, backend: &str) -> Option<Vec<String>> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let present = Command::new("rpm")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !bulkhead_test_artifacts::require(
            present,
            "the live rpm -qa comparison: rpm is not installed (apt-get install rpm)",
        ) {
            return None;
        }
        let dir: PathBuf = std::env::temp_dir().join(format!(
            "bulkhead-rpmdb-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join(file_name), db).expect("copy database");
        let out = Command::new("rpm")
            .arg("-qa")
            .arg("--dbpath")
            .arg(&dir)
            .args([
                "--define",
                &format!("_db_backend {backend}"),
                "--qf",
                "%{NAME}\\n",
            ])
            .output()
            .expect("run rpm");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            out.status.success(),
            "rpm -qa failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut names: Vec<String> = String::from_utf8(out.stdout)
            .expect("UTF-8")
            .lines()
            .map(str::to_string)
            .collect();
        names.sort();
        Some(names)
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{expected_names, fixture, rpm_qa_names, sorted_names};
    use super::*;

    /// (database, expected list): two real databases (RHEL 8 libuuid, a package with an
    /// epoch) and two written by Berkeley DB 5.3 from real CBL-Mariner headers, one
    /// little-endian with nine buckets, one big-endian with 512-byte pages.
    const DATABASES: [(&str, &str); 4] = [
        ("bdb/libuuid/Packages", "bdb/libuuid.rpm-qa.tsv"),
        ("bdb/Packages_epoch", "bdb/Packages_epoch.rpm-qa.tsv"),
        (
            "bdb/generated-le-1024/Packages",
            "bdb/generated-le-1024.rpm-qa.tsv",
        ),
        (
            "bdb/generated-be-512/Packages",
            "bdb/generated-be-512.rpm-qa.tsv",
        ),
    ];

    fn set_u32(data: &mut [u8], off: usize, value: u32, big_endian: bool) {
        let bytes = if big_endian {
            value.to_be_bytes()
        } else {
            value.to_le_bytes()
        };
        data[off..off + 4].copy_from_slice(&bytes);
    }

    fn get_u32(data: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(data[off..off + 4].try_into().expect("4 bytes"))
    }

    const PAGE: usize = 4096;

    /// libuuid is little-endian with 4096-byte pages; find its pages of a type.
    fn pages_of_type(data: &[u8], page_type: u8) -> Vec<usize> {
        (1..data.len() / PAGE)
            .filter(|p| data[p * PAGE + 25] == page_type)
            .collect()
    }

    #[test]
    fn databases_match_their_expected_lists() {
        for (db, tsv) in DATABASES {
            let blobs = blobs(&fixture(db)).unwrap_or_else(|e| panic!("{db}: {e}"));
            assert_eq!(sorted_names(&blobs), expected_names(tsv), "{db}");
        }
    }

    #[test]
    fn databases_match_rpm_live() {
        for (db, _) in DATABASES {
            let data = fixture(db);
            let Some(want) = rpm_qa_names(&data, "Packages", "bdb_ro") else {
                return;
            };
            assert!(!want.is_empty(), "{db}: rpm lists nothing");
            assert_eq!(sorted_names(&blobs(&data).expect(db)), want, "{db}");
        }
    }

    #[test]
    fn key_zero_counter_is_not_a_package() {
        // The generated databases carry rpm's counter under key 0 (as real ones do) next to
        // 16 packages; all 16 blobs parse as headers and none is the 4-byte counter.
        let blobs = blobs(&fixture("bdb/generated-le-1024/Packages")).expect("reads");
        assert_eq!(blobs.len(), 16);
        assert!(blobs.iter().all(|b| b.len() > 4));
    }

    #[test]
    fn truncated_files_fail() {
        for (db, _) in DATABASES {
            let data = fixture(db);
            let cuts = (0..data.len())
                .step_by(97)
                .chain([1, 511, 512, 513, data.len() - 1]);
            for cut in cuts {
                assert!(
                    blobs(&data[..cut]).is_err(),
                    "{db} cut at {cut} was accepted"
                );
            }
        }
    }

    #[test]
    fn truncated_files_with_matching_metadata_fail() {
        // Cut at a page boundary and make the metadata agree, so that the size check passes
        // and the walk itself meets the missing pages. libuuid uses every one of its pages.
        let data = fixture("bdb/libuuid/Packages");
        let pages = data.len() / PAGE;
        assert_eq!(pages, 23);
        for keep in 1..pages {
            let mut cut = data[..keep * PAGE].to_vec();
            set_u32(&mut cut, 32, keep as u32 - 1, false);
            let err = blobs(&cut).expect_err("missing pages must fail");
            assert!(err.message.contains("page"), "{keep}: {err}");
        }
    }

    #[test]
    fn generated_files_cut_with_matching_metadata_fail_or_lose_nothing() {
        // These files end with spare pages reserved for future buckets, so a cut may only
        // remove unused pages: then the result must be the whole list, never a partial one.
        for (db, page, big_endian) in [
            ("bdb/generated-le-1024/Packages", 1024, false),
            ("bdb/generated-be-512/Packages", 512, true),
        ] {
            let data = fixture(db);
            let full = blobs(&data).expect(db);
            let mut failures = 0;
            for keep in 1..data.len() / page {
                let mut cut = data[..keep * page].to_vec();
                set_u32(&mut cut, 32, keep as u32 - 1, big_endian);
                match blobs(&cut) {
                    Ok(got) => assert_eq!(got, full, "{db} cut to {keep} pages"),
                    Err(_) => failures += 1,
                }
            }
            assert!(failures > 50, "{db}: {failures}");
        }
    }

    /// A hash page holding `items` (raw items, type byte first), packed from the end of the
    /// page as Berkeley DB does.
    fn hash_page(pgno: u32, prev: u32, items: &[Vec<u8>], size: usize) -> Vec<u8> {
        let mut page = vec![0u8; size];
        set_u32(&mut page, 8, pgno, false);
        set_u32(&mut page, 12, prev, false);
        page[20..22].copy_from_slice(&(items.len() as u16).to_le_bytes());
        page[25] = P_HASH;
        let mut end = size;
        for (i, item) in items.iter().enumerate() {
            let start = end - item.len();
            page[start..end].copy_from_slice(item);
            page[26 + 2 * i..28 + 2 * i].copy_from_slice(&(start as u16).to_le_bytes());
            end = start;
        }
        page[22..24].copy_from_slice(&(end as u16).to_le_bytes());
        page
    }

    #[test]
    fn bucket_page_chains_are_followed() {
        // Berkeley DB chains extra pages to a full bucket. Split each bucket page of the
        // little-endian file that holds two pairs or more: the first pair stays, the others
        // move to a new page appended to the file and chained after it. rpm must still list
        // every package, and so must the reader.
        let page_size = 1024;
        let mut data = fixture("bdb/generated-le-1024/Packages");
        let mut split = 0;
        for pgno in 1..data.len() / page_size {
            let start = pgno * page_size;
            let entries = usize::from(u16::from_le_bytes([data[start + 20], data[start + 21]]));
            if data[start + 25] != P_HASH || entries < 4 {
                continue;
            }
            let mut items = Vec::new();
            let mut end = page_size;
            for i in 0..entries {
                let at = start + 26 + 2 * i;
                let off = usize::from(u16::from_le_bytes([data[at], data[at + 1]]));
                items.push(data[start + off..start + end].to_vec());
                end = off;
            }
            let new_pgno = (data.len() / page_size) as u32;
            let mut first = hash_page(pgno as u32, 0, &items[..2], page_size);
            set_u32(&mut first, 16, get_u32(&data, start + 16), false);
            let mut rest = hash_page(new_pgno, pgno as u32, &items[2..], page_size);
            // The new page takes over the old page's successor, if any.
            set_u32(&mut rest, 16, get_u32(&first, 16), false);
            set_u32(&mut first, 16, new_pgno, false);
            data[start..start + page_size].copy_from_slice(&first);
            data.extend_from_slice(&rest);
            set_u32(&mut data, 32, new_pgno, false);
            split += 1;
        }
        assert!(split >= 2, "{split} pages split");
        let got = sorted_names(&blobs(&data).expect("chained buckets"));
        assert_eq!(got, expected_names("bdb/generated-le-1024.rpm-qa.tsv"));
        if let Some(want) = rpm_qa_names(&data, "Packages", "bdb_ro") {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn overflow_page_pointing_to_itself_fails() {
        let mut data = fixture("bdb/libuuid/Packages");
        let overflow = pages_of_type(&data, P_OVERFLOW);
        assert_eq!(overflow.len(), 20);
        // A page in the middle of the chain (the last one has next = 0).
        let page = *overflow
            .iter()
            .find(|&&p| get_u32(&data, p * PAGE + 16) != 0)
            .expect("chained page");
        set_u32(&mut data, page * PAGE + 16, page as u32, false);
        let err = blobs(&data).expect_err("loop");
        assert!(err.message.contains("second time"), "{err}");
    }

    #[test]
    fn overflow_page_out_of_range_fails() {
        let data = fixture("bdb/libuuid/Packages");
        let page = *pages_of_type(&data, P_OVERFLOW)
            .iter()
            .find(|&&p| get_u32(&data, p * PAGE + 16) != 0)
            .expect("page");
        for target in [0xFFFF_FFFF, 23, 0x8000_0000] {
            let mut bad = data.clone();
            set_u32(&mut bad, page * PAGE + 16, target, false);
            let err = blobs(&bad).expect_err("out of range");
            assert!(err.message.contains("outside"), "{target}: {err}");
            assert_eq!(err.offset, (page * PAGE + 16) as u64);
        }
        // Ending the chain early loses bytes.
        let mut bad = data.clone();
        set_u32(&mut bad, page * PAGE + 16, 0, false);
        assert!(
            blobs(&bad)
                .expect_err("short chain")
                .message
                .contains("ends after")
        );
        // A chain entering a hash page.
        let mut bad = data.clone();
        set_u32(&mut bad, page * PAGE + 16, 1, false);
        assert!(blobs(&bad).is_err());
        // An overflow page claiming more bytes than a page holds.
        let mut bad = data;
        bad[page * PAGE + 22..page * PAGE + 24].copy_from_slice(&0xFFFFu16.to_le_bytes());
        assert!(blobs(&bad).is_err());
    }

    /// The file offset of the off-page item (type 3) of libuuid's one package.
    fn offpage_item(data: &[u8]) -> usize {
        for page in pages_of_type(data, P_HASH) {
            let start = page * PAGE;
            let entries = usize::from(u16::from_le_bytes([data[start + 20], data[start + 21]]));
            for i in 0..entries {
                let off = start + 26 + 2 * i;
                let item = start + usize::from(u16::from_le_bytes([data[off], data[off + 1]]));
                if data[item] == H_OFFPAGE {
                    return item;
                }
            }
        }
        panic!("no off-page item");
    }

    #[test]
    fn offpage_item_out_of_range_or_oversized_fails() {
        let data = fixture("bdb/libuuid/Packages");
        let item = offpage_item(&data);
        let mut bad = data.clone();
        set_u32(&mut bad, item + 4, 0xFFFF_FFF0, false);
        assert!(blobs(&bad).expect_err("pgno").message.contains("outside"));
        let mut bad = data.clone();
        set_u32(&mut bad, item + 4, 0, false);
        assert!(blobs(&bad).is_err());
        for total in [0, 0xFFFF_FFFF, data.len() as u32 + 1] {
            let mut bad = data.clone();
            set_u32(&mut bad, item + 8, total, false);
            assert!(blobs(&bad).is_err(), "total {total}");
        }
        // Longer than its chain: the chain ends before the value does.
        let mut bad = data;
        let total = get_u32(&bad, item + 8);
        set_u32(&mut bad, item + 8, total + 1, false);
        assert!(
            blobs(&bad)
                .expect_err("long")
                .message
                .contains("ends after")
        );
    }

    #[test]
    fn hash_page_chain_loop_fails() {
        let data = fixture("bdb/libuuid/Packages");
        let hash_pages = pages_of_type(&data, P_HASH);
        assert_eq!(hash_pages, [1, 2]);
        // A bucket page chained to itself, and bucket 0 chained into bucket 1's page.
        for (page, next) in [(1, 1), (2, 2), (1, 2)] {
            let mut bad = data.clone();
            set_u32(&mut bad, page * PAGE + 16, next, false);
            let err = blobs(&bad).expect_err("loop");
            assert!(err.message.contains("second time"), "{page}->{next}: {err}");
        }
        // Chained to an overflow page, or out of range.
        for next in [3, 0xFFFF_FFFF] {
            let mut bad = data.clone();
            set_u32(&mut bad, PAGE + 16, next, false);
            assert!(blobs(&bad).is_err(), "next {next}");
        }
    }

    #[test]
    fn big_endian_chain_loop_fails() {
        // The same check in a big-endian file: every overflow page linked to itself.
        let data = fixture("bdb/generated-be-512/Packages");
        let page = 512;
        let mut checked = 0;
        for p in 1..data.len() / page {
            let start = p * page;
            if data[start + 25] != P_OVERFLOW || data[start + 16..start + 20] == [0; 4] {
                continue;
            }
            let mut bad = data.clone();
            set_u32(&mut bad, start + 16, p as u32, true);
            assert!(
                blobs(&bad)
                    .expect_err("loop")
                    .message
                    .contains("second time")
            );
            checked += 1;
        }
        assert!(checked > 100, "{checked}");
    }

    #[test]
    fn absurd_counts_fail() {
        let data = fixture("bdb/libuuid/Packages");
        // Buckets beyond the pages.
        let mut bad = data.clone();
        set_u32(&mut bad, 72, 0xFFFF_FFFF, false);
        assert!(
            blobs(&bad)
                .expect_err("buckets")
                .message
                .contains("buckets")
        );
        // A spares table that sends bucket 1 past the end or onto bucket 0's page.
        for spare in [0xFFFF_FFFF, 0] {
            let mut bad = data.clone();
            set_u32(&mut bad, 100, spare, false);
            assert!(blobs(&bad).is_err(), "spare {spare}");
        }
        // More pages than the file holds.
        let mut bad = data.clone();
        set_u32(&mut bad, 32, 0xFFFF_FFFF, false);
        assert!(
            blobs(&bad)
                .expect_err("pages")
                .message
                .contains("truncated")
        );
        // More items than a page can index, and an odd number of items.
        for entries in [0xFFFF_u16, 3] {
            let mut bad = data.clone();
            bad[PAGE + 20..PAGE + 22].copy_from_slice(&entries.to_le_bytes());
            assert!(blobs(&bad).is_err(), "entries {entries}");
        }
        // Item offsets out of order or inside the index.
        for off in [0xFFFF_u16, 0, 26] {
            let mut bad = data.clone();
            bad[PAGE + 26..PAGE + 28].copy_from_slice(&off.to_le_bytes());
            assert!(blobs(&bad).is_err(), "offset {off}");
        }
        // Page size that is not a power of two, and an absurd one.
        for size in [1000, 1 << 20, 0] {
            let mut bad = data.clone();
            set_u32(&mut bad, 20, size, false);
            assert!(blobs(&bad).is_err(), "page size {size}");
        }
    }

    #[test]
    fn other_files_are_refused() {
        assert!(blobs(b"").is_err());
        assert!(
            blobs(&[0u8; 4096])
                .expect_err("zeros")
                .message
                .contains("not a Berkeley DB")
        );
        let data = fixture("bdb/libuuid/Packages");
        let mut btree = data.clone();
        set_u32(&mut btree, 12, BTREE_MAGIC, false);
        assert!(blobs(&btree).expect_err("btree").message.contains("btree"));
        let mut encrypted = data.clone();
        encrypted[24] = 1;
        assert!(
            blobs(&encrypted)
                .expect_err("encrypted")
                .message
                .contains("encrypted")
        );
        let mut checksummed = data.clone();
        checksummed[26] = DBMETA_CHKSUM;
        assert!(blobs(&checksummed).is_err());
        let mut version = data;
        set_u32(&mut version, 16, 7, false);
        assert!(
            blobs(&version)
                .expect_err("version")
                .message
                .contains("version")
        );
        // An NDB database is not a Berkeley DB one.
        assert!(blobs(&fixture("ndb/sle15-bci/Packages.db")).is_err());
    }
}

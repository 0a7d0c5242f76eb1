//! rpm's own "NDB" package database, `Packages.db` (SUSE Linux Enterprise 15 and openSUSE).
//!
//! Layout, all integers little-endian:
//! - the file starts with slot pages of 4096 bytes; the first 32 bytes are the database header
//!   (`RpmP`, version 0, generation, number of slot pages, next package index);
//! - the rest of the slot pages are 16-byte slots (`Slot`, package index, block offset, block
//!   count), a block being 16 bytes; a slot with block offset 0 is free;
//! - each used slot points at a blob after the slot pages: a 16-byte head (`BlbS`, package
//!   index, timestamp, length), the rpm header, zero padding, and a 12-byte tail (Adler-32,
//!   length, `BlbE`) that ends the slot's last block.
//!
//! The file is untrusted: every slot must lie inside the file, behind the slot pages and apart
//! from every other slot, so the blobs together never exceed the file.

use crate::DbError;

const HEADER_MAGIC: &[u8; 4] = b"RpmP";
const SLOT_MAGIC: &[u8; 4] = b"Slot";
const BLOB_HEAD_MAGIC: &[u8; 4] = b"BlbS";
const BLOB_TAIL_MAGIC: &[u8; 4] = b"BlbE";

const VERSION: u32 = 0;
const HEADER_SIZE: usize = 32;
const PAGE_SIZE: usize = 4096;
const SLOT_SIZE: usize = 16;
const BLOCK_SIZE: u64 = 16;
const BLOB_HEAD_SIZE: u64 = 16;
const BLOB_TAIL_SIZE: u64 = 12;

struct Slot {
    /// Byte offset of the slot in the file, for errors.
    at: usize,
    pkgidx: u32,
    blkoff: u32,
    blkcnt: u32,
}

/// Every rpm header blob stored in the database, in file order (the order rpm lists them).
///
/// Like rpm when it reads a package, this does not check the blob's Adler-32: the head and
/// tail must agree on the length and magic, and the header parser checks the header itself.
pub fn blobs(data: &[u8]) -> Result<Vec<Vec<u8>>, DbError> {
    if data.len() < HEADER_SIZE {
        return Err(DbError::new(
            0,
            format!(
                "file is {} bytes, shorter than the NDB header ({HEADER_SIZE})",
                data.len()
            ),
        ));
    }
    if &data[0..4] != HEADER_MAGIC {
        return Err(DbError::new(
            0,
            "not an rpm NDB package database (no \"RpmP\" magic)",
        ));
    }
    let version = le32(data, 4);
    if version != VERSION {
        return Err(DbError::new(
            4,
            format!("unsupported NDB version {version}"),
        ));
    }
    // rpm allocates the file in whole blocks and refuses any other size as well.
    if !(data.len() as u64).is_multiple_of(BLOCK_SIZE) {
        return Err(DbError::new(
            data.len() as u64,
            format!(
                "file size {} is not a multiple of {BLOCK_SIZE}-byte blocks: truncated",
                data.len()
            ),
        ));
    }
    let file_blocks = data.len() as u64 / BLOCK_SIZE;
    let slot_pages = le32(data, 12);
    let slot_bytes = u64::from(slot_pages) * PAGE_SIZE as u64;
    if slot_pages == 0 || slot_bytes > data.len() as u64 {
        return Err(DbError::new(
            12,
            format!(
                "{slot_pages} slot pages of {PAGE_SIZE} bytes do not fit in a file of {} bytes",
                data.len()
            ),
        ));
    }
    // Blobs start after the slot pages.
    let first_block = slot_bytes / BLOCK_SIZE;

    let mut slots = Vec::new();
    // Fits: slot_bytes <= data.len().
    for at in (HEADER_SIZE..slot_bytes as usize).step_by(SLOT_SIZE) {
        if &data[at..at + 4] != SLOT_MAGIC {
            return Err(DbError::new(
                at as u64,
                format!("slot {} has no \"Slot\" magic", at / SLOT_SIZE),
            ));
        }
        let blkoff = le32(data, at + 8);
        if blkoff == 0 {
            continue; // free slot
        }
        let slot = Slot {
            at,
            pkgidx: le32(data, at + 4),
            blkoff,
            blkcnt: le32(data, at + 12),
        };
        let end = u64::from(slot.blkoff) + u64::from(slot.blkcnt);
        if slot.pkgidx == 0 || slot.blkcnt == 0 || u64::from(slot.blkoff) < first_block {
            return Err(DbError::new(
                at as u64,
                format!(
                    "slot {}: package {} at block {} ({} blocks) is not a valid entry (blobs start \
                     at block {first_block})",
                    at / SLOT_SIZE,
                    slot.pkgidx,
                    slot.blkoff,
                    slot.blkcnt
                ),
            ));
        }
        if end > file_blocks {
            return Err(DbError::new(
                at as u64,
                format!(
                    "slot {}: package {} ends at block {end}, past the end of the file ({file_blocks} \
                     blocks): truncated",
                    at / SLOT_SIZE,
                    slot.pkgidx
                ),
            ));
        }
        slots.push(slot);
    }

    // Two slots sharing blocks or a package index are corrupt (rpm's writer refuses both), and
    // refusing overlap is what bounds the output by the file size.
    let mut by_index: Vec<(u32, usize)> = slots.iter().map(|s| (s.pkgidx, s.at)).collect();
    by_index.sort_unstable();
    if let Some(pair) = by_index.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(DbError::new(
            pair[1].1 as u64,
            format!("package index {} appears in two slots", pair[0].0),
        ));
    }
    slots.sort_unstable_by_key(|s| s.blkoff);
    let mut prev_end = first_block;
    for slot in &slots {
        if u64::from(slot.blkoff) < prev_end {
            return Err(DbError::new(
                slot.at as u64,
                format!(
                    "package {}: blocks overlap those of another package",
                    slot.pkgidx
                ),
            ));
        }
        prev_end = u64::from(slot.blkoff) + u64::from(slot.blkcnt);
    }

    slots.iter().map(|slot| read_blob(data, slot)).collect()
}

/// The header blob of one slot; the slot was checked to lie inside the file.
fn read_blob(data: &[u8], slot: &Slot) -> Result<Vec<u8>, DbError> {
    let start = u64::from(slot.blkoff) * BLOCK_SIZE;
    let size = u64::from(slot.blkcnt) * BLOCK_SIZE;
    let err = |at: u64, msg: String| DbError::new(at, format!("package {}: {msg}", slot.pkgidx));
    if size < BLOB_HEAD_SIZE + BLOB_TAIL_SIZE {
        return Err(err(
            slot.at as u64,
            format!("{} blocks cannot hold a blob", slot.blkcnt),
        ));
    }
    // start + size <= data.len() was checked against the file size.
    let at = start as usize;
    if &data[at..at + 4] != BLOB_HEAD_MAGIC {
        return Err(err(start, "blob has no \"BlbS\" magic".into()));
    }
    let owner = le32(data, at + 4);
    if owner != slot.pkgidx {
        return Err(err(start + 4, format!("blob belongs to package {owner}")));
    }
    let len = u64::from(le32(data, at + 12));
    let blocks = (BLOB_HEAD_SIZE + len + BLOB_TAIL_SIZE).div_ceil(BLOCK_SIZE);
    if blocks != u64::from(slot.blkcnt) {
        return Err(err(
            start + 12,
            format!(
                "blob of {len} bytes needs {blocks} blocks but its slot has {}",
                slot.blkcnt
            ),
        ));
    }
    let tail = (start + size - BLOB_TAIL_SIZE) as usize;
    let tail_len = u64::from(le32(data, tail + 4));
    if tail_len != len || &data[tail + 8..tail + 12] != BLOB_TAIL_MAGIC {
        return Err(err(
            tail as u64,
            format!(
                "blob tail does not match its head (length {tail_len} vs {len}, or no \"BlbE\" magic)"
            ),
        ));
    }
    let body = at + BLOB_HEAD_SIZE as usize;
    Ok(data[body..body + len as usize].to_vec())
}

fn le32(data: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([data[off], data[off + 1], data[off + 2], data[off + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bdb::test_support::{expected_names, fixture, rpm_qa_names, sorted_names};

    const SLE15: &str = "ndb/sle15-bci/Packages.db";

    /// A named way to damage a copy of the database.
    type Corruption = (&'static str, Box<dyn Fn(&mut Vec<u8>)>);

    fn set_u32(data: &mut [u8], off: usize, value: u32) {
        data[off..off + 4].copy_from_slice(&value.to_le_bytes());
    }

    /// Byte offsets of the used slots of a database with one slot page.
    fn used_slots(data: &[u8]) -> Vec<usize> {
        (HEADER_SIZE..PAGE_SIZE)
            .step_by(SLOT_SIZE)
            .filter(|&at| le32(data, at + 8) != 0)
            .collect()
    }

    #[test]
    fn sle15_matches_expected_list() {
        let blobs = blobs(&fixture(SLE15)).expect("reads");
        assert_eq!(
            sorted_names(&blobs),
            expected_names("ndb/sle15-bci.expected.tsv")
        );
    }

    #[test]
    fn rpm_cannot_read_ndb_here() {
        // Debian's rpm is built without the NDB backend, so no live comparison is possible
        // (it falls back to an empty dummy database). Should it ever gain NDB, this test
        // fails and the live comparison must be added.
        let data = fixture(SLE15);
        if let Some(names) = rpm_qa_names(&data, "Packages.db", "ndb") {
            assert!(
                names.is_empty(),
                "rpm reads NDB now: compare with it ({} packages)",
                names.len()
            );
        }
    }

    #[test]
    fn truncated_files_fail() {
        let data = fixture(SLE15);
        let cuts = (0..data.len())
            .step_by(61)
            .chain((0..data.len()).step_by(4096))
            .chain([1, 31, 32, 4095, 4096, 4112, data.len() - 16, data.len() - 1]);
        for cut in cuts {
            assert!(blobs(&data[..cut]).is_err(), "cut at {cut} was accepted");
        }
    }

    #[test]
    fn absurd_slot_page_counts_fail() {
        let data = fixture(SLE15);
        for pages in [0, 0xFFFF_FFFF, (data.len() / PAGE_SIZE) as u32 + 1] {
            let mut bad = data.clone();
            set_u32(&mut bad, 12, pages);
            assert!(
                blobs(&bad)
                    .expect_err("pages")
                    .message
                    .contains("slot pages"),
                "{pages}"
            );
        }
        // Two slot pages: the second one holds blob bytes, not slots.
        let mut bad = data;
        set_u32(&mut bad, 12, 2);
        assert!(blobs(&bad).is_err());
    }

    #[test]
    fn bad_slots_fail() {
        let data = fixture(SLE15);
        let slots = used_slots(&data);
        assert_eq!(slots.len(), 35);
        let (a, b) = (slots[0], slots[1]);
        let cases: Vec<Corruption> = vec![
            (
                "huge block count",
                Box::new(move |d| set_u32(d, a + 12, 0xFFFF_FFFF)),
            ),
            (
                "huge block offset",
                Box::new(move |d| set_u32(d, a + 8, 0xFFFF_FFF0)),
            ),
            ("zero block count", Box::new(move |d| set_u32(d, a + 12, 0))),
            (
                "zero package index",
                Box::new(move |d| set_u32(d, a + 4, 0)),
            ),
            (
                "inside the slot pages",
                Box::new(move |d| set_u32(d, a + 8, 1)),
            ),
            (
                "overlap",
                Box::new(move |d| {
                    let off = le32(d, a + 8);
                    set_u32(d, b + 8, off + 1);
                }),
            ),
            (
                "same blob twice",
                Box::new(move |d| {
                    let (off, cnt) = (le32(d, a + 8), le32(d, a + 12));
                    set_u32(d, b + 8, off);
                    set_u32(d, b + 12, cnt);
                }),
            ),
            (
                "duplicate package index",
                Box::new(move |d| {
                    let idx = le32(d, a + 4);
                    set_u32(d, b + 4, idx);
                }),
            ),
            ("slot magic", Box::new(move |d| d[b] = b'X')),
            ("free slot magic", Box::new(|d| d[PAGE_SIZE - 16] = b'X')),
            ("header magic", Box::new(|d| d[0] = b'X')),
            ("version", Box::new(|d| set_u32(d, 4, 1))),
        ];
        for (what, corrupt) in cases {
            let mut bad = data.clone();
            corrupt(&mut bad);
            assert!(blobs(&bad).is_err(), "{what} was accepted");
        }
    }

    #[test]
    fn bad_blobs_fail() {
        let data = fixture(SLE15);
        let at = used_slots(&data)[3];
        let start = le32(&data, at + 8) as usize * 16;
        let end = start + le32(&data, at + 12) as usize * 16;
        let cases: Vec<Corruption> = vec![
            ("head magic", Box::new(move |d| d[start] = b'X')),
            ("owner", Box::new(move |d| set_u32(d, start + 4, 9999))),
            (
                "head length",
                Box::new(move |d| set_u32(d, start + 12, 0xFFFF_FFF0)),
            ),
            (
                "head length off by one block",
                Box::new(move |d| {
                    let len = le32(d, start + 12);
                    set_u32(d, start + 12, len + 16);
                }),
            ),
            ("tail length", Box::new(move |d| set_u32(d, end - 8, 1))),
            ("tail magic", Box::new(move |d| d[end - 1] = b'X')),
            (
                "one block short",
                Box::new(move |d| {
                    let cnt = le32(d, at + 12);
                    set_u32(d, at + 12, cnt - 1);
                }),
            ),
        ];
        for (what, corrupt) in cases {
            let mut bad = data.clone();
            corrupt(&mut bad);
            let err = blobs(&bad).expect_err(what);
            assert!(err.message.starts_with("package "), "{what}: {err}");
        }
    }

    #[test]
    fn empty_database_has_no_packages() {
        // What rpm writes for a new database: the header and one page of free slots.
        let mut data = vec![0u8; PAGE_SIZE];
        for at in (0..PAGE_SIZE).step_by(SLOT_SIZE) {
            data[at..at + 4].copy_from_slice(SLOT_MAGIC);
        }
        data[..4].copy_from_slice(HEADER_MAGIC);
        set_u32(&mut data, 4, 0);
        set_u32(&mut data, 8, 1);
        set_u32(&mut data, 12, 1);
        set_u32(&mut data, 16, 1);
        assert_eq!(blobs(&data), Ok(vec![]));
        assert!(blobs(&fixture("bdb/libuuid/Packages")).is_err());
    }
}

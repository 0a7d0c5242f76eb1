//! A read-only reader of the SQLite 3 file format, just large enough for `rpmdb.sqlite`.
//!
//! rpm ≥ 4.16 keeps one row per installed package in
//! `CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)`.
//! This module finds that table's root page in the schema table (page 1), walks its table
//! b-tree in rowid order, follows overflow chains, decodes each record and returns the
//! `blob` column. Format reference: <https://www.sqlite.org/fileformat2.html>.
//!
//! The files are untrusted. Every page is visited at most once: a b-tree child or overflow
//! page that has been seen before is corruption (in a valid file each page has exactly one
//! owner), so loops end in an error and the total work is bounded by the size of the file
//! and its log. The b-tree is walked with an explicit stack, so a deep tree cannot overflow
//! the call stack.
//!
//! The write-ahead log. rpm keeps the database in WAL mode: a transaction appends the new
//! versions of the pages it changes to `rpmdb.sqlite-wal`, and a checkpoint copies them
//! back into the main file later. rpm checkpoints when it closes the database, but a
//! checkpoint stops short while another process still reads the old pages, and an image
//! taken in that moment has committed transactions only in the log; read alone, its main
//! file is an older state or, when the checkpoint copied some pages and not others, no
//! consistent state at all. So the log is read as SQLite recovers it (file format, "The
//! Write-Ahead Log"): frames up to the last commit whose salts and running checksum are
//! right, the newest copy of each page overriding the main file (page 1 included: its
//! header may change), and the page count of the last commit, which may exceed the main
//! file's (pages only in the log). Nothing is written: the log is an overlay in memory.

use std::collections::{BTreeMap, BTreeSet};

use crate::DbError;

const MAGIC: &[u8; 16] = b"SQLite format 3\0";
const HEADER_LEN: usize = 100;

const TABLE_INTERIOR: u8 = 0x05;
const TABLE_LEAF: u8 = 0x0D;

/// The log's magic number; its lowest bit says in which byte order the checksums read the
/// data (1: big-endian), which is the order of the machine that wrote the log.
const WAL_MAGIC: u32 = 0x377f_0682;
/// The only log format version there is.
const WAL_VERSION: u32 = 3_007_000;
const WAL_HEADER_LEN: usize = 32;
const WAL_FRAME_HEADER_LEN: usize = 24;

/// Every rpm header blob stored in the database, in storage (rowid) order, which is the
/// order `rpm -qa` lists them in. `wal` is the write-ahead log beside it
/// (`rpmdb.sqlite-wal`), when there is one; see [`read`].
pub fn blobs(data: &[u8], wal: Option<&[u8]>) -> Result<Vec<Vec<u8>>, DbError> {
    read(data, wal).map(|c| c.blobs)
}

/// What [`read`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contents {
    /// The rpm header blobs, as [`blobs`] returns them.
    pub blobs: Vec<Vec<u8>>,
    /// What became of the write-ahead log.
    pub wal: WalUse,
}

/// What the reader did with the write-ahead log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalUse {
    /// There is no log, or it holds no committed transaction (empty, only a header, or the
    /// frames of a transaction that never committed): the main file is the database.
    Unused,
    /// Committed transactions were read over the main file.
    Applied {
        /// Commit frames read, one per transaction.
        commits: u32,
        /// Frames up to and including the last commit.
        frames: u32,
        /// The database's size in pages after the last commit.
        pages: u32,
    },
    /// The log was ignored, as SQLite ignores it (its header is not that of a log written
    /// by SQLite); the reason.
    Ignored(String),
}

/// The rpm header blobs of the database `data` with its write-ahead log `wal`, and what
/// was done with the log.
///
/// SQLite opens the log whenever one lies beside a non-empty database, whatever the
/// header's read version says, so it is applied whenever it is given. Its committed
/// frames override the main file's pages. Like SQLite, the reader ignores a log whose
/// header is not valid (magic number, page size, header checksum) and the frames from the
/// first one whose salts or checksum are wrong (a torn write, or leftovers of an earlier
/// generation of the log), and fails on a log format version it does not know. A log
/// beside an empty main file is ignored too: SQLite deletes it.
pub fn read(data: &[u8], wal: Option<&[u8]>) -> Result<Contents, DbError> {
    let (log, wal) = match wal.filter(|_| !data.is_empty()).map(Wal::parse) {
        None => (None, WalUse::Unused),
        Some(Err(e)) => return Err(e),
        Some(Ok(WalFile::Unused)) => (None, WalUse::Unused),
        Some(Ok(WalFile::Ignored(reason))) => (None, WalUse::Ignored(reason)),
        Some(Ok(WalFile::Committed(log))) => {
            let used = WalUse::Applied {
                commits: log.commits,
                frames: log.frames,
                pages: log.db_pages,
            };
            (Some(log), used)
        }
    };
    let log_len = log.as_ref().map_or(0, |l| l.bytes.len());
    let db = Db::open(data, log)?;
    let mut st = State {
        visited: BTreeSet::new(),
        budget: data.len() as u64 + log_len as u64,
    };
    let root = db.find_table(b"Packages", &mut st)?;
    let mut out = Vec::new();
    db.walk_table(root, &mut st, |rowid, offset, payload| {
        out.push(packages_blob(payload, rowid, offset)?);
        Ok(())
    })?;
    Ok(Contents { blobs: out, wal })
}

/// The `blob` column (the second; `hnum` is the rowid alias and stored as NULL) of one
/// `Packages` record, taken out of the payload without copying.
fn packages_blob(mut payload: Vec<u8>, rowid: i64, offset: u64) -> Result<Vec<u8>, DbError> {
    let err = |m: String| DbError::new(offset, format!("Packages row {rowid}: {m}"));
    let columns = record(&payload).map_err(err)?;
    let range = match columns.get(1) {
        Some(Value::Blob(r)) => r.clone(),
        Some(other) => return Err(err(format!("blob column is {}", other.kind()))),
        None => return Err(err(format!("{} columns, expected 2", columns.len()))),
    };
    payload.truncate(range.end);
    payload.drain(..range.start);
    Ok(payload)
}

/// A write-ahead log as [`Wal::parse`] finds it.
enum WalFile<'a> {
    Unused,
    Ignored(String),
    Committed(Wal<'a>),
}

/// The committed part of a write-ahead log.
struct Wal<'a> {
    bytes: &'a [u8],
    page_size: usize,
    /// For each page the log holds, the offset in `bytes` of its newest committed image.
    /// Pages past the last commit's database size are left out: they no longer exist.
    pages: BTreeMap<u32, usize>,
    /// Database size in pages after the last commit.
    db_pages: u32,
    commits: u32,
    frames: u32,
}

impl<'a> Wal<'a> {
    /// Read the log as SQLite's recovery does (`walIndexRecover`): the frames after the
    /// header, in order, until one is truncated, has other salts than the header, names
    /// page 0 or breaks the running checksum; of those, the ones up to the last commit
    /// frame count. Errors are offsets in the log.
    fn parse(bytes: &'a [u8]) -> Result<WalFile<'a>, DbError> {
        // SQLite reads a log only when it is longer than its header.
        if bytes.len() <= WAL_HEADER_LEN {
            return Ok(WalFile::Unused);
        }
        // Each of these makes SQLite's recovery treat the log as empty rather than fail
        // (the header is what says how to read the frames and which ones belong to this
        // generation of the log), so the main file is the database. The reader does the
        // same, and says why.
        let magic = be32(bytes, 0);
        if magic & !1 != WAL_MAGIC {
            return Ok(WalFile::Ignored(format!(
                "bad write-ahead log magic 0x{magic:08x}"
            )));
        }
        let page_size = be32(bytes, 8);
        if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
            return Ok(WalFile::Ignored(format!(
                "invalid write-ahead log page size {page_size}"
            )));
        }
        let big_endian = magic & 1 == 1;
        let sum = wal_checksum(big_endian, &bytes[..24], (0, 0));
        if sum != (be32(bytes, 24), be32(bytes, 28)) {
            return Ok(WalFile::Ignored(
                "write-ahead log header checksum mismatch".into(),
            ));
        }
        // A version it does not know is the one thing SQLite refuses to open.
        let version = be32(bytes, 4);
        if version != WAL_VERSION {
            return Err(DbError::new(
                4,
                format!("write-ahead log format version {version}, expected {WAL_VERSION}"),
            ));
        }
        let page_size = page_size as usize;
        let salts = &bytes[16..24];
        let frame_len = WAL_FRAME_HEADER_LEN + page_size;
        let mut sum = sum;
        // Frames of the transaction being read, not yet committed: (page, image offset).
        let mut pending: Vec<(u32, usize)> = Vec::new();
        let mut pages = BTreeMap::new();
        let (mut db_pages, mut commits, mut frames, mut seen) = (0, 0, 0u32, 0u32);
        let mut at = WAL_HEADER_LEN;
        while let Some(frame) = bytes.get(at..at + frame_len) {
            let (header, image) = frame.split_at(WAL_FRAME_HEADER_LEN);
            let page = be32(header, 0);
            if &header[8..16] != salts || page == 0 {
                break;
            }
            // The checksum runs on from the previous frame's (the header's for the first)
            // over the frame header's first 8 bytes and the page image.
            let next = wal_checksum(big_endian, &header[..8], sum);
            let next = wal_checksum(big_endian, image, next);
            if next != (be32(header, 16), be32(header, 20)) {
                break;
            }
            sum = next;
            seen += 1;
            pending.push((page, at + WAL_FRAME_HEADER_LEN));
            let size = be32(header, 4);
            if size != 0 {
                // A commit frame: its transaction, and everything before, is durable.
                pages.extend(pending.drain(..));
                db_pages = size;
                commits += 1;
                frames = seen;
            }
            at += frame_len;
        }
        if commits == 0 {
            return Ok(WalFile::Unused);
        }
        pages.retain(|&page, _| page <= db_pages);
        Ok(WalFile::Committed(Wal {
            bytes,
            page_size,
            pages,
            db_pages,
            commits,
            frames,
        }))
    }

    /// The newest committed image of page `n`, if the log has one.
    fn image(&self, n: u32) -> Option<&'a [u8]> {
        let &at = self.pages.get(&n)?;
        self.bytes.get(at..at + self.page_size)
    }
}

/// The log's checksum over `bytes` (a multiple of 8 long), continuing from `sum`: the
/// bytes as 32-bit words in the log's byte order, taken in pairs (file format, "Checksum
/// Algorithm").
fn wal_checksum(big_endian: bool, bytes: &[u8], sum: (u32, u32)) -> (u32, u32) {
    let word = |b: &[u8]| {
        let w = [b[0], b[1], b[2], b[3]];
        if big_endian {
            u32::from_be_bytes(w)
        } else {
            u32::from_le_bytes(w)
        }
    };
    let (mut s0, mut s1) = sum;
    for pair in bytes.chunks_exact(8) {
        s0 = s0.wrapping_add(word(&pair[..4])).wrapping_add(s1);
        s1 = s1.wrapping_add(word(&pair[4..])).wrapping_add(s0);
    }
    (s0, s1)
}

/// Text encoding of the database (header offset 56). rpm writes UTF-8; the others are
/// decoded only so that the schema lookup does not depend on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Utf8,
    Utf16Le,
    Utf16Be,
}

struct Db<'a> {
    data: &'a [u8],
    /// The committed write-ahead log, whose pages override the main file's.
    wal: Option<Wal<'a>>,
    page_size: usize,
    /// Bytes of each page available to b-trees (page size minus the reserved tail).
    usable: usize,
    /// Pages of the database. With a log, its last commit says, and the main file may
    /// hold fewer: the rest must be in the log.
    page_count: u32,
    /// Whole pages in the main file.
    file_pages: u32,
    encoding: Encoding,
}

/// A decoded column. Text and blobs are ranges into the record payload.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Null,
    Int(i64),
    Float,
    Text(std::ops::Range<usize>),
    Blob(std::ops::Range<usize>),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Int(_) => "an integer",
            Value::Float => "a float",
            Value::Text(_) => "text",
            Value::Blob(_) => "a blob",
        }
    }
}

impl<'a> Db<'a> {
    fn open(data: &'a [u8], wal: Option<Wal<'a>>) -> Result<Self, DbError> {
        // The header is page 1 as SQLite sees it: the log's copy when it has one (a
        // transaction may have changed the header or the schema), else the file's.
        let page1 = match wal.as_ref().and_then(|w| w.image(1)) {
            Some(image) => image,
            None => data,
        };
        if page1.len() < HEADER_LEN {
            return Err(DbError::new(
                0,
                format!("{} bytes: too short for a SQLite header", data.len()),
            ));
        }
        if &page1[..16] != MAGIC {
            return Err(DbError::new(0, "not a SQLite 3 database (bad magic)"));
        }
        // 1 encodes 65536, which does not fit the two-byte field.
        let page_size = match be16(page1, 16) {
            1 => 65536,
            n => n as usize,
        };
        if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(DbError::new(16, format!("invalid page size {page_size}")));
        }
        // A log whose page size differs from the database's does not come from SQLite:
        // the page size cannot change in WAL mode. SQLite does not check; it reads page 1
        // through the log, then fills pages of the header's size from frames of the
        // log's, which mixes up bytes. The reader refuses the pair rather than guess:
        // either way the packages would be ones that neither file holds.
        if let Some(w) = &wal
            && w.page_size != page_size
        {
            return Err(DbError::new(
                16,
                format!(
                    "write-ahead log page size {} differs from the database's {page_size}",
                    w.page_size
                ),
            ));
        }
        // Read format version 1 is the rollback journal, 2 is WAL; anything newer must not
        // be read, says the format.
        if page1[19] > 2 {
            return Err(DbError::new(
                19,
                format!("unsupported read format version {}", page1[19]),
            ));
        }
        let reserved = page1[20] as usize;
        let usable = page_size - reserved;
        if usable < 480 {
            return Err(DbError::new(
                20,
                format!(
                    "{reserved} reserved bytes leave {usable} usable bytes per page, the minimum is 480"
                ),
            ));
        }
        let encoding = match be32(page1, 56) {
            1 => Encoding::Utf8,
            2 => Encoding::Utf16Le,
            3 => Encoding::Utf16Be,
            n => return Err(DbError::new(56, format!("invalid text encoding {n}"))),
        };
        let file_pages = u32::try_from(data.len() / page_size).unwrap_or(u32::MAX);
        let page_count = match &wal {
            // What SQLite uses: the size the last commit recorded.
            Some(w) => w.db_pages,
            None => {
                // The file size is the authority; the header's page count is only trusted
                // when it is marked valid (version-valid-for == change counter) and may
                // only shrink it.
                let header_pages = be32(page1, 28);
                if header_pages != 0 && be32(page1, 92) == be32(page1, 24) {
                    file_pages.min(header_pages)
                } else {
                    file_pages
                }
            }
        };
        if page_count == 0 {
            return Err(DbError::new(
                0,
                format!(
                    "{} bytes: shorter than one {page_size}-byte page",
                    data.len()
                ),
            ));
        }
        Ok(Db {
            data,
            wal,
            page_size,
            usable,
            page_count,
            file_pages,
            encoding,
        })
    }

    /// Mark page `n` (1-based) as owned, after checking that it exists and has no owner
    /// yet. `from` is the byte offset of the reference, for the error.
    fn claim(&self, n: u32, st: &mut State, from: u64) -> Result<(), DbError> {
        if n == 0 || n > self.page_count {
            return Err(DbError::new(
                from,
                format!("page number {n} out of range 1..={}", self.page_count),
            ));
        }
        if n > self.file_pages && self.wal.as_ref().and_then(|w| w.image(n)).is_none() {
            return Err(DbError::new(
                from,
                format!(
                    "page number {n} out of range: the file holds {} pages and the write-ahead log has no copy",
                    self.file_pages
                ),
            ));
        }
        if !st.visited.insert(n) {
            return Err(DbError::new(
                from,
                format!("page {n} is referenced twice (loop or shared page)"),
            ));
        }
        Ok(())
    }

    /// The bytes of page `n`, which [`Db::claim`] has checked: the log's newest committed
    /// copy, else the main file's.
    fn page(&self, n: u32) -> &'a [u8] {
        if let Some(image) = self.wal.as_ref().and_then(|w| w.image(n)) {
            return image;
        }
        let start = (n as usize - 1) * self.page_size;
        &self.data[start..start + self.page_size]
    }

    /// Where page `n` is in the database, for errors; [`Db::page_name`] says whether its
    /// bytes came from the log.
    fn page_offset(&self, n: u32) -> u64 {
        (u64::from(n) - 1) * self.page_size as u64
    }

    /// "page N", and where its bytes are when the log has them, for errors.
    fn page_name(&self, n: u32) -> String {
        match self.wal.as_ref().and_then(|w| w.pages.get(&n)) {
            Some(at) => format!(
                "page {n} (write-ahead log frame at offset {})",
                at - WAL_FRAME_HEADER_LEN
            ),
            None => format!("page {n}"),
        }
    }

    /// Root page of the table `name`, from the schema table on page 1.
    fn find_table(&self, name: &[u8], st: &mut State) -> Result<u32, DbError> {
        let mut found = None;
        self.walk_table(1, st, |rowid, offset, payload| {
            let err = |m: String| DbError::new(offset, format!("schema row {rowid}: {m}"));
            let cols = record(&payload).map_err(err)?;
            // sqlite_schema(type, name, tbl_name, rootpage, sql)
            let text = |i: usize| match cols.get(i) {
                Some(Value::Text(r)) => Some(decode(&payload[r.clone()], self.encoding)),
                _ => None,
            };
            let (Some(kind), Some(tname)) = (text(0), text(1)) else {
                return Ok(());
            };
            // SQLite identifiers are case-insensitive for ASCII letters.
            if kind == "table" && tname.as_bytes().eq_ignore_ascii_case(name) && found.is_none() {
                match cols.get(3) {
                    Some(Value::Int(root)) => {
                        let root = u32::try_from(*root)
                            .map_err(|_| err(format!("root page {root} out of range")))?;
                        found = Some(root);
                    }
                    Some(other) => return Err(err(format!("root page is {}", other.kind()))),
                    None => return Err(err("no root page column".into())),
                }
            }
            Ok(())
        })?;
        found.ok_or_else(|| {
            DbError::new(
                0,
                format!("no {} table in the schema", String::from_utf8_lossy(name)),
            )
        })
    }

    /// Call `row(rowid, byte offset of the cell, payload)` for every row of the table
    /// b-tree rooted at `root`, in rowid order.
    fn walk_table(
        &self,
        root: u32,
        st: &mut State,
        mut row: impl FnMut(i64, u64, Vec<u8>) -> Result<(), DbError>,
    ) -> Result<(), DbError> {
        // Pages still to read, the next one on top. Interior pages push their children in
        // reverse so that the leftmost subtree is finished first. Pages are claimed when
        // pushed, so the stack never holds more entries than the file has pages.
        self.claim(root, st, 0)?;
        let mut stack = vec![root];
        let mut children = Vec::new();
        while let Some(n) = stack.pop() {
            let page = self.page(n);
            let base = self.page_offset(n);
            // Page 1 starts with the file header; cell offsets still count from byte 0.
            let hdr = if n == 1 { HEADER_LEN } else { 0 };
            let perr = |at: usize, m: String| {
                DbError::new(base + at as u64, format!("{}: {m}", self.page_name(n)))
            };
            let usable = &page[..self.usable];
            let kind = usable[hdr];
            let header_len = match kind {
                TABLE_INTERIOR => 12,
                TABLE_LEAF => 8,
                other => {
                    return Err(perr(
                        hdr,
                        format!("type 0x{other:02x} is not a table b-tree page"),
                    ));
                }
            };
            let cells = be16(usable, hdr + 3) as usize;
            let ptrs = hdr + header_len;
            if ptrs + 2 * cells > usable.len() {
                return Err(perr(
                    hdr + 3,
                    format!("{cells} cells do not fit in the page"),
                ));
            }
            let cell_at = |i: usize| -> Result<usize, DbError> {
                let at = be16(usable, ptrs + 2 * i) as usize;
                if at < ptrs + 2 * cells || at >= usable.len() {
                    return Err(perr(
                        ptrs + 2 * i,
                        format!("cell {i} offset {at} outside the cell area"),
                    ));
                }
                Ok(at)
            };
            if kind == TABLE_INTERIOR {
                children.clear();
                for i in 0..cells {
                    let at = cell_at(i)?;
                    if at + 4 > usable.len() {
                        return Err(perr(at, format!("cell {i} truncated")));
                    }
                    children.push((be32(usable, at), at));
                }
                children.push((be32(usable, hdr + 8), hdr + 8));
                for &(child, at) in &children {
                    self.claim(child, st, base + at as u64)
                        .map_err(|e| perr(at, format!("child {}", e.message)))?;
                }
                stack.extend(children.iter().rev().map(|&(child, _)| child));
                continue;
            }
            for i in 0..cells {
                let at = cell_at(i)?;
                let cerr = |m: String| perr(at, format!("cell {i}: {m}"));
                let (size, a) =
                    varint(usable, at).ok_or_else(|| cerr("truncated payload size".into()))?;
                let (rowid, b) =
                    varint(usable, at + a).ok_or_else(|| cerr("truncated rowid".into()))?;
                // In a valid file cells do not overlap and every payload byte is stored
                // once, so all payloads together fit in the file: a budget of the file
                // size stops cells that share bytes from multiplying the output.
                if size > st.budget {
                    return Err(cerr(format!(
                        "payload size {size} exceeds what is left of the file"
                    )));
                }
                st.budget -= size;
                let payload = self
                    .payload(usable, at + a + b, size as usize, st, base)
                    .map_err(|e| {
                        DbError::new(
                            e.offset,
                            format!("{} cell {i}: {}", self.page_name(n), e.message),
                        )
                    })?;
                row(rowid as i64, base + at as u64, payload)?;
            }
        }
        Ok(())
    }

    /// The whole payload of a table-leaf cell whose local part starts at `at`, following
    /// the overflow chain when it does not fit in the page.
    fn payload(
        &self,
        page: &[u8],
        at: usize,
        size: usize,
        st: &mut State,
        base: u64,
    ) -> Result<Vec<u8>, DbError> {
        let u = self.usable;
        // How much of the payload stays on the b-tree page (file format, "Cell Payload
        // Overflow Pages", table leaf cells).
        let max_local = u - 35;
        let local = if size <= max_local {
            size
        } else {
            let min_local = (u - 12) * 32 / 255 - 23;
            let k = min_local + (size - min_local) % (u - 4);
            if k <= max_local { k } else { min_local }
        };
        let spills = local < size;
        let end = at + local + if spills { 4 } else { 0 };
        if end > page.len() {
            return Err(DbError::new(
                base + at as u64,
                "local payload runs past the page end",
            ));
        }
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(&page[at..at + local]);
        if !spills {
            return Ok(out);
        }
        let mut next = be32(page, at + local);
        let mut from = base + (at + local) as u64;
        while out.len() < size {
            if next == 0 {
                return Err(DbError::new(
                    from,
                    format!("overflow chain ends {} bytes short", size - out.len()),
                ));
            }
            self.claim(next, st, from)
                .map_err(|e| DbError::new(e.offset, format!("overflow {}", e.message)))?;
            let ovfl = self.page(next);
            let take = (size - out.len()).min(u - 4);
            out.extend_from_slice(&ovfl[4..4 + take]);
            from = self.page_offset(next);
            next = be32(ovfl, 0);
        }
        Ok(out)
    }
}

/// What a walk has used up: the pages it has claimed and the payload bytes it may still
/// produce. A set, not a bitmap sized by the page count: with a log, the page count is
/// whatever its last commit says, not bounded by the bytes at hand.
struct State {
    visited: BTreeSet<u32>,
    budget: u64,
}

/// Decode a record: a header of serial types, then the values. Ranges point into `p`.
fn record(p: &[u8]) -> Result<Vec<Value>, String> {
    let (hlen, n) = varint(p, 0).ok_or("truncated record header")?;
    let hlen = usize::try_from(hlen)
        .ok()
        .filter(|&h| h <= p.len() && h >= n);
    let hlen = hlen.ok_or("record header larger than the record")?;
    let mut pos = n;
    let mut body = hlen;
    let mut out = Vec::new();
    while pos < hlen {
        let (t, n) = varint(&p[..hlen], pos).ok_or("truncated serial type")?;
        pos += n;
        let len: usize = match t {
            0 | 8 | 9 => 0,
            1..=4 => t as usize,
            5 => 6,
            6 | 7 => 8,
            10 | 11 => return Err(format!("reserved serial type {t}")),
            _ => usize::try_from((t - 12) / 2).map_err(|_| "absurd column size")?,
        };
        let end = body.checked_add(len).filter(|&e| e <= p.len());
        let end = end.ok_or_else(|| format!("column {} runs past the record", out.len()))?;
        let bytes = &p[body..end];
        out.push(match t {
            0 => Value::Null,
            8 => Value::Int(0),
            9 => Value::Int(1),
            1..=6 => {
                // Big-endian two's complement of 1, 2, 3, 4, 6 or 8 bytes.
                let mut v: i64 = if bytes[0] & 0x80 != 0 { -1 } else { 0 };
                for &b in bytes {
                    v = (v << 8) | i64::from(b);
                }
                Value::Int(v)
            }
            7 => Value::Float,
            t if t % 2 == 0 => Value::Blob(body..end),
            _ => Value::Text(body..end),
        });
        body = end;
    }
    Ok(out)
}

fn decode(bytes: &[u8], encoding: Encoding) -> String {
    let units = |f: fn([u8; 2]) -> u16| {
        let u: Vec<u16> = bytes.chunks_exact(2).map(|c| f([c[0], c[1]])).collect();
        String::from_utf16_lossy(&u)
    };
    match encoding {
        Encoding::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
        Encoding::Utf16Le => units(u16::from_le_bytes),
        Encoding::Utf16Be => units(u16::from_be_bytes),
    }
}

/// A SQLite varint at `at`: 1 to 9 bytes, big-endian, 7 bits per byte with the high bit
/// meaning "more", except the ninth byte which contributes all 8 bits. Returns the value
/// and its length, `None` when it runs past the slice.
fn varint(b: &[u8], at: usize) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for i in 0..9 {
        let byte = *b.get(at + i)?;
        if i == 8 {
            return Some(((v << 8) | u64::from(byte), 9));
        }
        v = (v << 7) | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// Callers check bounds first; these only read inside slices already sized for them.
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_varint(out: &mut Vec<u8>, v: u64) {
        // Only what the tests need: up to 8 * 7 bits.
        let mut groups = vec![(v & 0x7f) as u8];
        let mut rest = v >> 7;
        while rest > 0 {
            groups.push((rest & 0x7f) as u8 | 0x80);
            rest >>= 7;
        }
        out.extend(groups.iter().rev());
    }

    /// A record of text (`Ok`), integer (`Err`) and NULL (`None`) columns.
    fn rec(cols: &[Option<Result<&[u8], i64>>], blob_last: bool) -> Vec<u8> {
        let mut types = Vec::new();
        let mut body = Vec::new();
        for (i, c) in cols.iter().enumerate() {
            match c {
                None => put_varint(&mut types, 0),
                Some(Ok(b)) => {
                    let blob = blob_last && i == cols.len() - 1;
                    put_varint(&mut types, 2 * b.len() as u64 + if blob { 12 } else { 13 });
                    body.extend_from_slice(b);
                }
                Some(Err(n)) => {
                    put_varint(&mut types, 4);
                    body.extend_from_slice(&(*n as i32).to_be_bytes());
                }
            }
        }
        let mut out = vec![types.len() as u8 + 1];
        out.extend(types);
        out.extend(body);
        out
    }

    /// A leaf table page holding `cells` (rowid, record), no overflow.
    fn leaf(page_size: usize, hdr: usize, cells: &[(u64, Vec<u8>)]) -> Vec<u8> {
        let mut page = vec![0u8; page_size];
        page[hdr] = TABLE_LEAF;
        page[hdr + 3..hdr + 5].copy_from_slice(&(cells.len() as u16).to_be_bytes());
        let mut end = page_size;
        for (i, (rowid, r)) in cells.iter().enumerate() {
            let mut cell = Vec::new();
            put_varint(&mut cell, r.len() as u64);
            put_varint(&mut cell, *rowid);
            cell.extend_from_slice(r);
            end -= cell.len();
            page[end..end + cell.len()].copy_from_slice(&cell);
            let p = hdr + 8 + 2 * i;
            page[p..p + 2].copy_from_slice(&(end as u16).to_be_bytes());
        }
        page
    }

    /// A two-page database: the schema naming `table` at page 2, and page 2 with `rows`.
    fn db(page_size: usize, table: &str, rows: &[&[u8]]) -> Vec<u8> {
        let sql = format!(
            "CREATE TABLE {table} (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)"
        );
        let schema = rec(
            &[
                Some(Ok(b"table")),
                Some(Ok(table.as_bytes())),
                Some(Ok(table.as_bytes())),
                Some(Err(2)),
                Some(Ok(sql.as_bytes())),
            ],
            false,
        );
        let mut out = leaf(page_size, HEADER_LEN, &[(1, schema)]);
        out[..16].copy_from_slice(MAGIC);
        let field = if page_size == 65536 {
            1
        } else {
            page_size as u16
        };
        out[16..18].copy_from_slice(&field.to_be_bytes());
        out[18] = 1;
        out[19] = 1;
        out[56..60].copy_from_slice(&1u32.to_be_bytes());
        let cells: Vec<(u64, Vec<u8>)> = rows
            .iter()
            .enumerate()
            .map(|(i, b)| (i as u64 + 1, rec(&[None, Some(Ok(b))], true)))
            .collect();
        out.extend(leaf(page_size, 0, &cells));
        out
    }

    #[test]
    fn page_sizes_512_to_65536() {
        for size in [512, 1024, 4096, 32768, 65536] {
            let d = db(size, "Packages", &[b"one", b"", b"three"]);
            assert_eq!(Db::open(&d, None).expect("header").page_size, size);
            let got = blobs(&d, None).unwrap_or_else(|e| panic!("{size}: {e}"));
            assert_eq!(got, [b"one".to_vec(), vec![], b"three".to_vec()], "{size}");
        }
    }

    #[test]
    fn table_name_is_case_insensitive_and_required() {
        let d = db(1024, "packages", &[b"x"]);
        assert_eq!(blobs(&d, None).expect("found"), [b"x".to_vec()]);
        let d = db(1024, "Other", &[b"x"]);
        assert!(
            blobs(&d, None)
                .expect_err("missing")
                .message
                .contains("no Packages table")
        );
    }

    #[test]
    fn blob_column_must_be_a_blob() {
        let mut d = db(1024, "Packages", &[b"x"]);
        // Rewrite the row's serial type for the blob column (14 = 1-byte blob) to text (15).
        let pos = d[1024..]
            .iter()
            .rposition(|&b| b == 14)
            .expect("serial type")
            + 1024;
        d[pos] = 15;
        assert!(
            blobs(&d, None)
                .expect_err("text")
                .message
                .contains("blob column is text")
        );
    }

    /// A log of `frames` (page, commit field, image), checksums in the given byte order.
    fn log(page_size: usize, big_endian: bool, frames: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let magic = WAL_MAGIC | u32::from(big_endian);
        for v in [
            magic,
            WAL_VERSION,
            page_size as u32,
            7,
            0x1234_5678,
            0x9abc_def0,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        let mut sum = wal_checksum(big_endian, &out, (0, 0));
        out.extend_from_slice(&sum.0.to_be_bytes());
        out.extend_from_slice(&sum.1.to_be_bytes());
        for &(page, commit, image) in frames {
            assert_eq!(image.len(), page_size);
            let mut header = Vec::new();
            header.extend_from_slice(&page.to_be_bytes());
            header.extend_from_slice(&commit.to_be_bytes());
            // The checksum covers the frame header's first 8 bytes, not the salts.
            sum = wal_checksum(big_endian, &header, sum);
            header.extend_from_slice(&out[16..24]);
            sum = wal_checksum(big_endian, image, sum);
            header.extend_from_slice(&sum.0.to_be_bytes());
            header.extend_from_slice(&sum.1.to_be_bytes());
            out.extend(header);
            out.extend_from_slice(image);
        }
        out
    }

    #[test]
    fn wal_checksum_matches_sqlite() {
        // The header of a log SQLite 3.40 wrote on x86-64 (1024-byte pages), and the
        // checksum it stored: little-endian words, from (0, 0).
        let header = [
            0x37, 0x7f, 0x06, 0x82, 0x00, 0x2d, 0xe2, 0x18, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00,
            0x00, 0x01, 0x1e, 0x9f, 0xb1, 0xd4, 0x36, 0xe2, 0xa9, 0x4d,
        ];
        assert_eq!(
            wal_checksum(false, &header, (0, 0)),
            (2_860_556_849, 2_969_984_012)
        );
        // Pairs of words, each sum carried into the next: [1, 2] then [3, 4].
        assert_eq!(
            wal_checksum(true, &[0, 0, 0, 1, 0, 0, 0, 2], (0, 0)),
            (1, 3)
        );
        let words = [0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4];
        assert_eq!(wal_checksum(true, &words, (0, 0)), (7, 14));
        assert_eq!(wal_checksum(true, &words[8..], (1, 3)), (7, 14));
        // Sums wrap: 1 + 0xffffffff + 1 = 1.
        assert_eq!(wal_checksum(true, &[0xff; 8], (1, 1)), (1, 1));
    }

    #[test]
    fn log_replaces_page_1_and_adds_pages() {
        // The main file has no Packages table; the log's page 1 names one, on page 2,
        // which only the log holds (the main file is one page long).
        let old = db(1024, "Other", &[b"old"]);
        let new = db(1024, "Packages", &[b"new", b"rows"]);
        let main = &old[..1024];
        assert!(
            blobs(main, None)
                .expect_err("no table")
                .message
                .contains("no Packages table")
        );
        for big_endian in [false, true] {
            let wal = log(
                1024,
                big_endian,
                &[(1, 0, &new[..1024]), (2, 2, &new[1024..])],
            );
            let got = read(main, Some(&wal)).expect("read with the log");
            assert_eq!(got.blobs, [b"new".to_vec(), b"rows".to_vec()]);
            assert_eq!(
                got.wal,
                WalUse::Applied {
                    commits: 1,
                    frames: 2,
                    pages: 2
                }
            );
        }
    }

    #[test]
    fn only_committed_frames_count() {
        let v1 = db(1024, "Packages", &[b"one"]);
        let v2 = db(1024, "Packages", &[b"one", b"two"]);
        let v3 = db(1024, "Packages", &[b"one", b"two", b"three"]);
        // Two commits, then a transaction that never committed.
        let wal = log(
            1024,
            false,
            &[
                (2, 2, &v2[1024..]),
                (2, 2, &v3[1024..]),
                (2, 0, &v1[1024..]),
            ],
        );
        let got = read(&v1, Some(&wal)).expect("read");
        assert_eq!(got.blobs.len(), 3);
        assert!(matches!(
            got.wal,
            WalUse::Applied {
                commits: 2,
                frames: 2,
                ..
            }
        ));
        // The second frame's checksum broken: the first commit stands.
        let mut bad = wal.clone();
        bad[WAL_HEADER_LEN + (24 + 1024) + 24] ^= 1;
        assert_eq!(blobs(&v1, Some(&bad)).expect("read").len(), 2);
        // Only uncommitted frames: the main file alone.
        let wal = log(1024, false, &[(2, 0, &v3[1024..])]);
        let got = read(&v1, Some(&wal)).expect("read");
        assert_eq!((got.blobs.len(), got.wal), (1, WalUse::Unused));
    }

    #[test]
    fn varints() {
        assert_eq!(varint(&[0x7f], 0), Some((0x7f, 1)));
        assert_eq!(varint(&[0x81, 0x00], 0), Some((0x80, 2)));
        assert_eq!(varint(&[0xff; 9], 0), Some((u64::MAX, 9)));
        assert_eq!(varint(&[0x81], 0), None);
        assert_eq!(varint(&[], 0), None);
    }

    #[test]
    fn records() {
        // Header length 5; types: NULL, 1-byte int, 8 (0), blob of 2; then the body.
        let r = [5, 0, 1, 8, 16, 0xfe, b'a', b'b'];
        assert_eq!(
            record(&r).expect("record"),
            [
                Value::Null,
                Value::Int(-2),
                Value::Int(0),
                Value::Blob(6..8)
            ]
        );
        assert!(
            record(&[5, 0, 1, 8, 16, 0xfe, b'a']).is_err(),
            "body too short"
        );
        assert!(record(&[9, 0]).is_err(), "header longer than record");
        assert!(record(&[2, 10]).is_err(), "reserved serial type");
        assert!(record(&[0x89, 0x80]).is_err(), "truncated header varint");
    }
}

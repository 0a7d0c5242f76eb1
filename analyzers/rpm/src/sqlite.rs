//! A read-only reader of the SQLite 3 file format, just large enough for `rpmdb.sqlite`.
//!
//! rpm ≥ 4.16 keeps one row per installed package in
//! `CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)`.
//! This module finds that table's root page in the schema table (page 1), walks its table
//! b-tree in rowid order, follows overflow chains, decodes each record and returns the
//! `blob` column. Format reference: <https://www.sqlite.org/fileformat2.html>.
//!
//! The file is untrusted. Every page is visited at most once: a b-tree child or overflow
//! page that has been seen before is corruption (in a valid file each page has exactly one
//! owner), so loops end in an error and the total work is bounded by the file size. The
//! b-tree is walked with an explicit stack, so a deep tree cannot overflow the call stack.
//!
//! Not handled: the write-ahead log. A database in WAL mode may have committed
//! transactions in `rpmdb.sqlite-wal` that are not yet copied into the main file; rpm
//! checkpoints when it closes the database, so images built the usual way have an empty
//! WAL, but a snapshot taken while rpm was running would be read as of the last
//! checkpoint.

use crate::DbError;

const MAGIC: &[u8; 16] = b"SQLite format 3\0";
const HEADER_LEN: usize = 100;

const TABLE_INTERIOR: u8 = 0x05;
const TABLE_LEAF: u8 = 0x0D;

/// Every rpm header blob stored in the database, in storage (rowid) order, which is the
/// order `rpm -qa` lists them in.
pub fn blobs(data: &[u8]) -> Result<Vec<Vec<u8>>, DbError> {
    let db = Db::open(data)?;
    let mut st = State {
        visited: vec![false; db.page_count as usize + 1],
        budget: data.len() as u64,
    };
    let root = db.find_table(b"Packages", &mut st)?;
    let mut out = Vec::new();
    db.walk_table(root, &mut st, |rowid, offset, payload| {
        out.push(packages_blob(payload, rowid, offset)?);
        Ok(())
    })?;
    Ok(out)
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
    page_size: usize,
    /// Bytes of each page available to b-trees (page size minus the reserved tail).
    usable: usize,
    page_count: u32,
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
    fn open(data: &'a [u8]) -> Result<Self, DbError> {
        if data.len() < HEADER_LEN {
            return Err(DbError::new(
                0,
                format!("{} bytes: too short for a SQLite header", data.len()),
            ));
        }
        if &data[..16] != MAGIC {
            return Err(DbError::new(0, "not a SQLite 3 database (bad magic)"));
        }
        // 1 encodes 65536, which does not fit the two-byte field.
        let page_size = match be16(data, 16) {
            1 => 65536,
            n => n as usize,
        };
        if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(DbError::new(16, format!("invalid page size {page_size}")));
        }
        // Read format version 1 is the rollback journal, 2 is WAL; anything newer must not
        // be read, says the format.
        if data[19] > 2 {
            return Err(DbError::new(
                19,
                format!("unsupported read format version {}", data[19]),
            ));
        }
        let reserved = data[20] as usize;
        let usable = page_size - reserved;
        if usable < 480 {
            return Err(DbError::new(
                20,
                format!(
                    "{reserved} reserved bytes leave {usable} usable bytes per page, the minimum is 480"
                ),
            ));
        }
        let encoding = match be32(data, 56) {
            1 => Encoding::Utf8,
            2 => Encoding::Utf16Le,
            3 => Encoding::Utf16Be,
            n => return Err(DbError::new(56, format!("invalid text encoding {n}"))),
        };
        // The file size is the authority; the header's page count is only trusted when it
        // is marked valid (version-valid-for == change counter) and may only shrink it.
        let mut page_count = u32::try_from(data.len() / page_size).unwrap_or(u32::MAX);
        let header_pages = be32(data, 28);
        if header_pages != 0 && be32(data, 92) == be32(data, 24) {
            page_count = page_count.min(header_pages);
        }
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
            page_size,
            usable,
            page_count,
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
        let seen = &mut st.visited[n as usize];
        if *seen {
            return Err(DbError::new(
                from,
                format!("page {n} is referenced twice (loop or shared page)"),
            ));
        }
        *seen = true;
        Ok(())
    }

    /// The bytes of page `n`, which [`Db::claim`] has checked.
    fn page(&self, n: u32) -> &'a [u8] {
        let start = (n as usize - 1) * self.page_size;
        &self.data[start..start + self.page_size]
    }

    fn page_offset(&self, n: u32) -> u64 {
        (u64::from(n) - 1) * self.page_size as u64
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
            let perr =
                |at: usize, m: String| DbError::new(base + at as u64, format!("page {n}: {m}"));
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
                        DbError::new(e.offset, format!("page {n} cell {i}: {}", e.message))
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
/// produce.
struct State {
    visited: Vec<bool>,
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
            assert_eq!(Db::open(&d).expect("header").page_size, size);
            let got = blobs(&d).unwrap_or_else(|e| panic!("{size}: {e}"));
            assert_eq!(got, [b"one".to_vec(), vec![], b"three".to_vec()], "{size}");
        }
    }

    #[test]
    fn table_name_is_case_insensitive_and_required() {
        let d = db(1024, "packages", &[b"x"]);
        assert_eq!(blobs(&d).expect("found"), [b"x".to_vec()]);
        let d = db(1024, "Other", &[b"x"]);
        assert!(
            blobs(&d)
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
            blobs(&d)
                .expect_err("text")
                .message
                .contains("blob column is text")
        );
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

//! rpm headers as the rpmdb stores them: no lead, no signature header, no magic.
//!
//! Layout (all integers big-endian): `il: u32` (number of index entries), `dl: u32` (size
//! of the data store), `il` index entries of 16 bytes `{tag, type, offset, count}`, then
//! `dl` bytes of data that the entries point into. The blob is untrusted: every count and
//! offset is checked against the data store before anything is read or allocated.

use std::fmt;

/// Tags this parser reads (rpm's `rpmtag.h`).
pub mod tag {
    pub const NAME: u32 = 1000;
    pub const VERSION: u32 = 1001;
    pub const RELEASE: u32 = 1002;
    pub const EPOCH: u32 = 1003;
    pub const LICENSE: u32 = 1014;
    pub const ARCH: u32 = 1022;
    pub const OLDFILENAMES: u32 = 1027;
    pub const SOURCERPM: u32 = 1044;
    pub const DIRINDEXES: u32 = 1116;
    pub const BASENAMES: u32 = 1117;
    pub const DIRNAMES: u32 = 1118;
    pub const MODULARITYLABEL: u32 = 5096;
}

/// Data types of index entries (rpm's `rpmTagType`).
mod ty {
    pub(super) const INT8: u32 = 2;
    pub(super) const INT16: u32 = 3;
    pub(super) const INT32: u32 = 4;
    pub(super) const INT64: u32 = 5;
    pub(super) const STRING: u32 = 6;
    pub(super) const STRING_ARRAY: u32 = 8;
    pub(super) const I18NSTRING: u32 = 9;
}

/// Same limits as rpm's `hdrchkTags`/`hdrchkData`: rpm refuses headers beyond them, and
/// they keep `8 + 16 * il + dl` far from overflowing.
const MAX_ENTRIES: u32 = 0x00ff_ffff;
const MAX_DATA: u32 = 0x3fff_ffff;
/// Largest total size of a package's file paths once directory and base names are
/// joined. Directory names are shared, so a small header can describe a huge list; a big
/// real package (a kernel, texlive) stays under a few MiB.
pub const MAX_FILE_PATH_BYTES: usize = 64 << 20;

/// One installed package, as read from its header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub release: String,
    /// `None` when the header has no EPOCH tag; rpm then prints no `epoch:` at all, while
    /// an explicit `Epoch: 0` prints `0:`.
    pub epoch: Option<u64>,
    pub arch: Option<String>,
    pub license: Option<String>,
    /// `name-version-release.src.rpm`; absent for gpg-pubkey pseudo-packages.
    pub source_rpm: Option<String>,
    pub modularity_label: Option<String>,
    /// Owned paths as rpm lists them (`rpm -ql`), absolute, in header order.
    pub files: Vec<String>,
}

impl Package {
    /// The version as rpm prints `%{EVR}`: `[epoch:]version-release`.
    pub fn evr(&self) -> String {
        match self.epoch {
            Some(e) => format!("{e}:{}-{}", self.version, self.release),
            None => format!("{}-{}", self.version, self.release),
        }
    }
}

/// A header that cannot be read. The caller adds the file and record number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderError {
    pub message: String,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HeaderError {}

fn err(message: impl Into<String>) -> HeaderError {
    HeaderError {
        message: message.into(),
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    tag: u32,
    ty: u32,
    offset: u32,
    count: u32,
}

/// A parsed index over a header blob.
#[derive(Debug)]
pub struct Header<'a> {
    entries: Vec<Entry>,
    data: &'a [u8],
}

impl<'a> Header<'a> {
    /// Check the blob's framing and read its index.
    pub fn parse(blob: &'a [u8]) -> Result<Self, HeaderError> {
        if blob.len() < 8 {
            return Err(err(format!(
                "{} bytes: too short for an rpm header",
                blob.len()
            )));
        }
        let il = be32(blob, 0);
        let dl = be32(blob, 4);
        if il == 0 || il > MAX_ENTRIES {
            return Err(err(format!("absurd index entry count {il}")));
        }
        if dl > MAX_DATA {
            return Err(err(format!("absurd data size {dl}")));
        }
        let index_end = 8 + 16 * il as usize;
        let data_end = index_end + dl as usize;
        if data_end > blob.len() {
            return Err(err(format!(
                "{il} index entries and {dl} data bytes need {data_end} bytes, the blob has {}",
                blob.len()
            )));
        }
        let entries = blob[8..index_end]
            .chunks_exact(16)
            .map(|e| Entry {
                tag: be32(e, 0),
                ty: be32(e, 4),
                offset: be32(e, 8),
                count: be32(e, 12),
            })
            .collect();
        Ok(Header {
            entries,
            data: &blob[index_end..data_end],
        })
    }

    /// The entry for `tag`. rpm appends entries added at install time after the immutable
    /// region and lets them replace a region entry of the same tag, so the last one wins.
    fn entry(&self, tag: u32) -> Option<Entry> {
        self.entries.iter().rev().find(|e| e.tag == tag).copied()
    }

    /// The data store from the entry's offset on.
    fn from(&self, e: Entry, what: &str) -> Result<&'a [u8], HeaderError> {
        self.data.get(e.offset as usize..).ok_or_else(|| {
            err(format!(
                "{what} (tag {}): offset {} outside the {}-byte data store",
                e.tag,
                e.offset,
                self.data.len()
            ))
        })
    }

    /// Strings of a STRING, STRING_ARRAY or I18NSTRING entry. For I18NSTRING the first is
    /// the untranslated one, which is what rpm shows in the C locale.
    pub fn strings(&self, tag: u32, what: &str) -> Result<Option<Vec<&'a [u8]>>, HeaderError> {
        let Some(e) = self.entry(tag) else {
            return Ok(None);
        };
        if !matches!(e.ty, ty::STRING | ty::STRING_ARRAY | ty::I18NSTRING) {
            return Err(err(format!(
                "{what} (tag {tag}) has type {}, not a string",
                e.ty
            )));
        }
        let mut rest = self.from(e, what)?;
        // Every string takes at least its NUL: a count beyond the bytes left is a lie,
        // and checking it first keeps the allocation bounded.
        if e.count as usize > rest.len() {
            return Err(err(format!(
                "{what} (tag {tag}): absurd count {} for {} bytes of data",
                e.count,
                rest.len()
            )));
        }
        let mut out = Vec::with_capacity(e.count as usize);
        for i in 0..e.count {
            let Some(nul) = rest.iter().position(|&b| b == 0) else {
                return Err(err(format!(
                    "{what} (tag {tag}): string {i} is not terminated"
                )));
            };
            out.push(&rest[..nul]);
            rest = &rest[nul + 1..];
        }
        Ok(Some(out))
    }

    /// The first string of `tag`, lossily decoded (rpm stores bytes; they are UTF-8 in
    /// practice).
    pub fn string(&self, tag: u32, what: &str) -> Result<Option<String>, HeaderError> {
        Ok(self
            .strings(tag, what)?
            .and_then(|v| v.first().map(|s| String::from_utf8_lossy(s).into_owned())))
    }

    /// Unsigned integers of an INT8/16/32/64 entry.
    pub fn numbers(&self, tag: u32, what: &str) -> Result<Option<Vec<u64>>, HeaderError> {
        let Some(e) = self.entry(tag) else {
            return Ok(None);
        };
        let width = match e.ty {
            ty::INT8 => 1,
            ty::INT16 => 2,
            ty::INT32 => 4,
            ty::INT64 => 8,
            other => {
                return Err(err(format!(
                    "{what} (tag {tag}) has type {other}, not an integer"
                )));
            }
        };
        let rest = self.from(e, what)?;
        let need = (e.count as usize)
            .checked_mul(width)
            .filter(|&n| n <= rest.len());
        let Some(need) = need else {
            return Err(err(format!(
                "{what} (tag {tag}): absurd count {} for {} bytes of data",
                e.count,
                rest.len()
            )));
        };
        Ok(Some(
            rest[..need]
                .chunks_exact(width)
                .map(|c| c.iter().fold(0u64, |v, &b| (v << 8) | u64::from(b)))
                .collect(),
        ))
    }
}

/// How [`parse_with`] returns owned files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paths {
    /// Absolute, as `rpm -ql` prints them.
    Absolute,
    /// Relative to the root, as the analyzer contract carries them: the root's `/` is
    /// left out while each path is built (a path can number in the tens of thousands per
    /// database, and inside the sandbox every further copy is a host call), and a path
    /// that is not absolute, or is the root itself, is dropped.
    Relative,
}

/// Read the package facts the analyzer reports from one header blob, with absolute
/// file paths.
pub fn parse(blob: &[u8]) -> Result<Package, HeaderError> {
    parse_with(blob, Paths::Absolute)
}

/// [`parse`], with owned files as `paths` says.
pub fn parse_with(blob: &[u8], paths: Paths) -> Result<Package, HeaderError> {
    let h = Header::parse(blob)?;
    let required = |tag, what: &str| -> Result<String, HeaderError> {
        h.string(tag, what)?
            .ok_or_else(|| err(format!("no {what} tag")))
    };
    let epoch = match h.numbers(tag::EPOCH, "EPOCH")? {
        Some(v) => Some(*v.first().ok_or_else(|| err("EPOCH has no value"))?),
        None => None,
    };
    Ok(Package {
        name: required(tag::NAME, "NAME")?,
        version: required(tag::VERSION, "VERSION")?,
        release: required(tag::RELEASE, "RELEASE")?,
        epoch,
        arch: h.string(tag::ARCH, "ARCH")?,
        license: h.string(tag::LICENSE, "LICENSE")?,
        source_rpm: h.string(tag::SOURCERPM, "SOURCERPM")?,
        modularity_label: h.string(tag::MODULARITYLABEL, "MODULARITYLABEL")?,
        files: files(&h, paths)?,
    })
}

/// Owned files: `DIRNAMES[DIRINDEXES[i]] + BASENAMES[i]`, or the flat `OLDFILENAMES` of
/// headers from before rpm 4.0's compressed file lists.
fn files(h: &Header<'_>, paths: Paths) -> Result<Vec<String>, HeaderError> {
    let Some(base) = h.strings(tag::BASENAMES, "BASENAMES")? else {
        let old = h
            .strings(tag::OLDFILENAMES, "OLDFILENAMES")?
            .unwrap_or_default();
        // Each name is a slice of the header, so their total is bounded by its size.
        return Ok(old
            .iter()
            .filter_map(|s| match paths {
                Paths::Absolute => Some(*s),
                Paths::Relative => s.strip_prefix(b"/").filter(|r| !r.is_empty()),
            })
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect());
    };
    let dirs = h.strings(tag::DIRNAMES, "DIRNAMES")?.unwrap_or_default();
    let idx = h
        .numbers(tag::DIRINDEXES, "DIRINDEXES")?
        .unwrap_or_default();
    if idx.len() != base.len() {
        return Err(err(format!(
            "{} BASENAMES but {} DIRINDEXES",
            base.len(),
            idx.len()
        )));
    }
    // A directory is shared by many files: check its UTF-8 once, not once per file. Two
    // valid strings joined are valid, so only a file whose parts are not both valid is
    // decoded joined (lossily, as a whole, as before).
    let dirs_utf8: Vec<Option<&str>> = dirs.iter().map(|d| std::str::from_utf8(d).ok()).collect();
    let mut total = 0usize;
    let mut out = Vec::with_capacity(base.len());
    for (i, (b, &d)) in base.iter().zip(&idx).enumerate() {
        let Some(at) = usize::try_from(d).ok().filter(|&d| d < dirs.len()) else {
            return Err(err(format!(
                "file {i}: DIRINDEXES value {d} but {} DIRNAMES",
                dirs.len()
            )));
        };
        let dir = dirs[at];
        total += dir.len() + b.len();
        if total > MAX_FILE_PATH_BYTES {
            return Err(err(format!(
                "file paths exceed {MAX_FILE_PATH_BYTES} bytes at file {i} of {}",
                base.len()
            )));
        }
        // Bytes to cut from the front of the directory or (when it is empty) of the base
        // name: the root's `/` of a relative path.
        let (cut_dir, cut_base) = match (paths, dir.first(), b.first()) {
            (Paths::Absolute, _, _) => (0, 0),
            (Paths::Relative, Some(b'/'), _) => (1, 0),
            (Paths::Relative, None, Some(b'/')) => (0, 1),
            (Paths::Relative, _, _) => continue,
        };
        let (dir_part, base_part) = (&dir[cut_dir..], &b[cut_base..]);
        if paths == Paths::Relative && dir_part.is_empty() && base_part.is_empty() {
            continue;
        }
        // Cutting the ASCII `/` keeps a valid string valid.
        let path = match (dirs_utf8[at], std::str::from_utf8(base_part)) {
            (Some(dir), Ok(b)) => {
                let dir = &dir[cut_dir..];
                let mut path = String::with_capacity(dir.len() + b.len());
                path.push_str(dir);
                path.push_str(b);
                path
            }
            _ => {
                let mut path = Vec::with_capacity(dir_part.len() + base_part.len());
                path.extend_from_slice(dir_part);
                path.extend_from_slice(base_part);
                String::from_utf8_lossy(&path).into_owned()
            }
        };
        out.push(path);
    }
    Ok(out)
}

/// Split a source rpm file name, `name-version-release.src.rpm` (or `.nosrc.rpm`), into
/// its name and `version-release`. Version and release cannot contain `-`, the name can.
pub fn split_source_rpm(srpm: &str) -> Option<(&str, &str)> {
    let stem = srpm
        .strip_suffix(".src.rpm")
        .or_else(|| srpm.strip_suffix(".nosrc.rpm"))?;
    let (rest, release) = stem.rsplit_once('-')?;
    let (name, version) = rest.rsplit_once('-')?;
    if name.is_empty() || version.is_empty() || release.is_empty() {
        return None;
    }
    Some((name, &stem[name.len() + 1..]))
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header blob built from `(tag, type, count, data)` entries, laid out in order.
    fn blob(entries: &[(u32, u32, u32, Vec<u8>)]) -> Vec<u8> {
        let mut index = Vec::new();
        let mut data = Vec::new();
        for (t, ty, count, bytes) in entries {
            for v in [*t, *ty, data.len() as u32, *count] {
                index.extend_from_slice(&v.to_be_bytes());
            }
            data.extend_from_slice(bytes);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend(index);
        out.extend(data);
        out
    }

    fn s(v: &str) -> (u32, Vec<u8>) {
        (1, format!("{v}\0").into_bytes())
    }

    fn arr(v: &[&str]) -> (u32, Vec<u8>) {
        (
            v.len() as u32,
            v.iter()
                .flat_map(|s| format!("{s}\0").into_bytes())
                .collect(),
        )
    }

    fn str_entry(t: u32, v: &str) -> (u32, u32, u32, Vec<u8>) {
        let (c, d) = s(v);
        (t, ty::STRING, c, d)
    }

    fn nvr() -> Vec<(u32, u32, u32, Vec<u8>)> {
        vec![
            str_entry(tag::NAME, "foo"),
            str_entry(tag::VERSION, "1.0"),
            str_entry(tag::RELEASE, "2"),
        ]
    }

    #[test]
    fn compressed_file_list() {
        let mut e = nvr();
        let (c, d) = arr(&["a", "b", "c"]);
        e.push((tag::BASENAMES, ty::STRING_ARRAY, c, d));
        let (c, d) = arr(&["/usr/bin/", "/etc/"]);
        e.push((tag::DIRNAMES, ty::STRING_ARRAY, c, d));
        let idx: Vec<u8> = [1u32, 0, 1].iter().flat_map(|v| v.to_be_bytes()).collect();
        e.push((tag::DIRINDEXES, ty::INT32, 3, idx));
        let p = parse(&blob(&e)).expect("parses");
        assert_eq!(p.files, ["/etc/a", "/usr/bin/b", "/etc/c"]);
        assert_eq!(p.evr(), "1.0-2");
    }

    #[test]
    fn file_paths_are_decoded_as_joined_bytes() {
        // rpm stores bytes: a path is its directory and base name joined, then decoded
        // lossily. A sequence split between the two parts is whole once joined.
        let mut e = nvr();
        let base: &[&[u8]] = &[b"ok", b"bad\xff", b"\xa9t\xc3\xa9"];
        let dirs: &[&[u8]] = &[b"/etc/", b"/caf\xc3"];
        let strings = |v: &[&[u8]]| v.iter().flat_map(|s| [*s, b"\0"].concat()).collect();
        e.push((tag::BASENAMES, ty::STRING_ARRAY, 3, strings(base)));
        e.push((tag::DIRNAMES, ty::STRING_ARRAY, 2, strings(dirs)));
        let idx: Vec<u8> = [0u32, 0, 1].iter().flat_map(|v| v.to_be_bytes()).collect();
        e.push((tag::DIRINDEXES, ty::INT32, 3, idx));
        let p = parse(&blob(&e)).expect("parses");
        assert_eq!(p.files, ["/etc/ok", "/etc/bad\u{fffd}", "/cafété"]);
        let p = parse_with(&blob(&e), Paths::Relative).expect("parses");
        assert_eq!(p.files, ["etc/ok", "etc/bad\u{fffd}", "cafété"]);
    }

    #[test]
    fn relative_paths_leave_out_the_root_and_what_is_not_absolute() {
        // The analyzer contract's paths are relative to the image root; rpm's own are
        // absolute, so anything else (or the root itself) names no file in the image.
        let mut e = nvr();
        let base: &[&[u8]] = &[b"a", b"", b"/x", b"b", b"", b"c"];
        let dirs: &[&[u8]] = &[b"/usr/", b"/", b"", b"rel/"];
        let strings = |v: &[&[u8]]| v.iter().flat_map(|s| [*s, b"\0"].concat()).collect();
        e.push((tag::BASENAMES, ty::STRING_ARRAY, 6, strings(base)));
        e.push((tag::DIRNAMES, ty::STRING_ARRAY, 4, strings(dirs)));
        let idx: Vec<u8> = [0u32, 1, 2, 3, 2, 1]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        e.push((tag::DIRINDEXES, ty::INT32, 6, idx));
        let absolute = parse(&blob(&e)).expect("parses").files;
        assert_eq!(absolute, ["/usr/a", "/", "/x", "rel/b", "", "/c"]);
        let relative = parse_with(&blob(&e), Paths::Relative)
            .expect("parses")
            .files;
        assert_eq!(relative, ["usr/a", "x", "c"]);
        // The same rule as cutting a `/` from every absolute path and keeping the rest.
        let cut: Vec<&str> = absolute
            .iter()
            .filter_map(|f| f.strip_prefix('/'))
            .filter(|f| !f.is_empty())
            .collect();
        assert_eq!(relative, cut);

        let mut e = nvr();
        let (c, d) = arr(&["/bin/sh", "/", "etc/x", "/etc/y"]);
        e.push((tag::OLDFILENAMES, ty::STRING_ARRAY, c, d));
        let relative = parse_with(&blob(&e), Paths::Relative)
            .expect("parses")
            .files;
        assert_eq!(relative, ["bin/sh", "etc/y"]);
    }

    #[test]
    fn old_file_list_and_epoch() {
        let mut e = nvr();
        let (c, d) = arr(&["/bin/sh", "/etc/x"]);
        e.push((tag::OLDFILENAMES, ty::STRING_ARRAY, c, d));
        e.push((tag::EPOCH, ty::INT32, 1, 7u32.to_be_bytes().to_vec()));
        let p = parse(&blob(&e)).expect("parses");
        assert_eq!(p.files, ["/bin/sh", "/etc/x"]);
        assert_eq!(p.evr(), "7:1.0-2");
    }

    #[test]
    fn later_entry_replaces_earlier() {
        let mut e = nvr();
        e.push(str_entry(tag::NAME, "bar"));
        assert_eq!(parse(&blob(&e)).expect("parses").name, "bar");
    }

    #[test]
    fn hostile_counts_and_offsets() {
        // Count larger than the data store.
        let mut e = nvr();
        e.push((tag::BASENAMES, ty::STRING_ARRAY, u32::MAX, b"a\0".to_vec()));
        let m = parse(&blob(&e)).expect_err("absurd count").message;
        assert!(m.contains("BASENAMES") && m.contains("absurd count"), "{m}");

        // Integer array running past the end.
        let mut e = nvr();
        e.push((tag::DIRINDEXES, ty::INT32, 1 << 30, vec![0; 4]));
        let (c, d) = arr(&["a"]);
        e.push((tag::BASENAMES, ty::STRING_ARRAY, c, d));
        let m = parse(&blob(&e)).expect_err("absurd count").message;
        assert!(m.contains("DIRINDEXES"), "{m}");

        // Directory index out of range.
        let mut e = nvr();
        let (c, d) = arr(&["a"]);
        e.push((tag::BASENAMES, ty::STRING_ARRAY, c, d));
        let (c, d) = arr(&["/"]);
        e.push((tag::DIRNAMES, ty::STRING_ARRAY, c, d));
        e.push((tag::DIRINDEXES, ty::INT32, 1, 5u32.to_be_bytes().to_vec()));
        let m = parse(&blob(&e)).expect_err("bad index").message;
        assert!(m.contains("DIRINDEXES value 5"), "{m}");

        // Unterminated string, offset outside the store, wrong type.
        let mut b = blob(&nvr());
        b.pop();
        let dl = be32(&b, 4) - 1;
        b[4..8].copy_from_slice(&dl.to_be_bytes());
        assert!(
            parse(&b)
                .expect_err("unterminated")
                .message
                .contains("not terminated")
        );
        let mut b = blob(&nvr());
        b[8 + 8..8 + 12].copy_from_slice(&1000u32.to_be_bytes());
        assert!(parse(&b).expect_err("offset").message.contains("outside"));
        let mut e = nvr();
        e[0].1 = ty::INT32;
        assert!(
            parse(&blob(&e))
                .expect_err("type")
                .message
                .contains("not a string")
        );

        // Framing: truncated, absurd il/dl, nothing at all.
        let b = blob(&nvr());
        assert!(parse(&b[..b.len() - 1]).is_err());
        assert!(parse(&[0xff; 8]).is_err());
        assert!(parse(&[0, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff]).is_err());
        assert!(parse(&[]).is_err());
        assert!(parse(&[0; 8]).is_err());
    }

    #[test]
    fn expanded_paths_are_bounded() {
        // 200 000 files in one 1 KiB directory: 8 bytes of index each, 200 MB once joined.
        let n = 200_000u32;
        let mut e = nvr();
        let long = "d".repeat(1024);
        let (c, d) = arr(&[long.as_str()]);
        e.push((tag::DIRNAMES, ty::STRING_ARRAY, c, d));
        e.push((
            tag::BASENAMES,
            ty::STRING_ARRAY,
            n,
            [b'x', 0].repeat(n as usize),
        ));
        e.push((tag::DIRINDEXES, ty::INT32, n, vec![0; 4 * n as usize]));
        let m = parse(&blob(&e)).expect_err("bounded").message;
        assert!(m.contains("exceed"), "{m}");
    }

    #[test]
    fn source_rpm_names() {
        assert_eq!(
            split_source_rpm("util-linux-2.32.1-42.el8_8.src.rpm"),
            Some(("util-linux", "2.32.1-42.el8_8"))
        );
        assert_eq!(split_source_rpm("a-1-2.nosrc.rpm"), Some(("a", "1-2")));
        assert_eq!(split_source_rpm("nodash.src.rpm"), None);
        assert_eq!(split_source_rpm("a-1.src.rpm"), None);
        assert_eq!(split_source_rpm("-1-2.src.rpm"), None);
        assert_eq!(split_source_rpm("(none)"), None);
    }
}

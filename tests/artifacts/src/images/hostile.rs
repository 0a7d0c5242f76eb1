//! The hostile image corpus: layouts whose layers attack the extractor, the decompressor
//! or the analyzers. Every image also carries a small real dpkg database (the "bait": four
//! stanzas of the Debian minbase fixture, [`BAIT_PACKAGES`], plus os-release) in a normal
//! first layer, so a test can tell "ignored the hostile part and scanned the rest" from
//! "gave up" and from "was fooled".
//!
//! Host paths a broken extractor would create are listed in [`CANARIES`]: a test checks
//! that none exists before and after the scan. Every image is tag `latest`, `linux/amd64`.
//! All of them can be pushed with skopeo except [`digest_mismatch`] (skopeo and the registry
//! verify digests, so that one is for `oci:` scans only).

use std::io::{self, Write};

use flate2::{Compress, FlushCompress, Status};
use tar::{EntryType, Header};

use super::builders::{minbase_root, minbase_status, select_stanzas};
use super::layout::{HashWriter, sha256_digest};
use super::{Compression, Image, LayerTar, OciLayout, Platform};

/// The packages of the bait dpkg status in every hostile image (versions as in
/// `tests/fixtures/dpkg/debian-bookworm-minbase/var/lib/dpkg/status`).
pub const BAIT_PACKAGES: &[&str] = &["libssl3", "zlib1g", "bash", "libc6"];

/// Absolute host paths that the entries of this corpus name, one way or another (`..`,
/// absolute names, writes through escaping symlinks). None of them may exist after a scan.
/// The `..` entries use enough `../` to reach `/` from any extraction directory up to 12
/// levels deep.
pub const CANARIES: &[&str] = &[
    "/tmp/bulkhead-test-traversal",
    "/tmp/bulkhead-test-traversal-mid",
    "/tmp/bulkhead-test-absolute",
    "/tmp/bulkhead-test-absolute-dir",
    "/tmp/bulkhead-test-double-slash",
    "/etc/passwd-bulkhead-test-absolute",
    "/etc/bulkhead-test-through-symlink",
    "/tmp/bulkhead-test-relative-escape",
    "/tmp/bulkhead-test-link-traversal",
];

/// What [`gzip_bomb`] and [`zstd_bomb`] inflate to by default: 10 GiB.
pub const BOMB_SIZE: u64 = 10 << 30;

/// The diff_id recorded for bombs larger than [`BOMB_DIFF_ID_LIMIT`]: hashing 10 GiB would
/// take longer than the test, so the config carries this stand-in, which matches nothing.
pub const BOMB_FAKE_DIFF_ID_INPUT: &[u8] =
    b"bulkhead-test: the diff_id of this bomb was not computed";

/// Bombs up to this size get their true diff_id.
pub const BOMB_DIFF_ID_LIMIT: u64 = 256 << 20;

/// `../` repeated: deep enough to leave any extraction dir up to 12 levels below `/`.
const UP: &str = "../../../../../../../../../../../../";

/// The bait layer: dirs, `usr/lib/os-release` (+ the `etc/os-release` symlink) and a dpkg
/// status with [`BAIT_PACKAGES`].
fn bait() -> LayerTar {
    let status = select_stanzas(&minbase_status(), BAIT_PACKAGES);
    let os_release =
        std::fs::read(minbase_root().join("usr/lib/os-release")).expect("fixture os-release");
    let mut t = LayerTar::new();
    for d in ["etc", "usr", "usr/lib", "var", "var/lib", "var/lib/dpkg"] {
        t.dir(d, 0o755);
    }
    t.file("usr/lib/os-release", &os_release, 0o644)
        .symlink("etc/os-release", "../usr/lib/os-release")
        .file("var/lib/dpkg/status", status.as_bytes(), 0o644);
    t
}

/// A `latest` image: the bait layer (gzip), then `hostile` layers (already in the layout).
fn image_with(build: impl FnOnce(&OciLayout) -> Vec<super::Layer>) -> Image {
    let (image, layout) = Image::new_layout("latest");
    let bait = layout
        .add_layer(
            &bait().into_bytes(),
            Compression::Gzip,
            "bait: real dpkg status",
        )
        .expect("write the bait layer");
    let mut layers = vec![bait];
    layers.extend(build(&layout));
    let manifest = layout
        .add_image(&layers, &Platform::linux_amd64())
        .expect("write the manifest");
    layout.tag(&manifest, "latest").expect("tag");
    image
}

/// The bait plus one gzip layer made of `tar`.
fn image_with_layer(tar: LayerTar, created_by: &str) -> Image {
    image_with(|layout| {
        vec![
            layout
                .add_layer(&tar.into_bytes(), Compression::Gzip, created_by)
                .expect("write a layer"),
        ]
    })
}

/// Entries whose names climb out of the root: `../../etc/passwd-bulkhead-test`, a deep
/// `../…/tmp/bulkhead-test-traversal`, one that climbs in the middle
/// (`var/../../…/tmp/bulkhead-test-traversal-mid`), a symlink and a directory named with `..`.
pub fn path_traversal() -> Image {
    let mut t = LayerTar::new();
    t.raw_file(
        b"../../etc/passwd-bulkhead-test",
        b"root::0:0::/root:/bin/sh\n",
    )
    .raw_file(
        format!("{UP}tmp/bulkhead-test-traversal").as_bytes(),
        b"escaped\n",
    )
    .raw_file(
        format!("var/{UP}tmp/bulkhead-test-traversal-mid").as_bytes(),
        b"escaped\n",
    )
    .raw(
        format!("{UP}tmp/bulkhead-test-link-traversal").as_bytes(),
        EntryType::Symlink,
        0o777,
        b"",
        b"/etc/passwd",
    )
    .raw(
        b"../bulkhead-test-dir/",
        EntryType::Directory,
        0o755,
        b"",
        b"",
    );
    image_with_layer(t, "hostile: .. in entry names")
}

/// Entries with absolute names: `/tmp/bulkhead-test-absolute`,
/// `/etc/passwd-bulkhead-test-absolute`, a directory `/tmp/bulkhead-test-absolute-dir/` and
/// `//tmp/bulkhead-test-double-slash`.
pub fn absolute_names() -> Image {
    let mut t = LayerTar::new();
    t.raw_file(b"/tmp/bulkhead-test-absolute", b"escaped\n")
        .raw_file(
            b"/etc/passwd-bulkhead-test-absolute",
            b"root::0:0::/root:/bin/sh\n",
        )
        .raw(
            b"/tmp/bulkhead-test-absolute-dir/",
            EntryType::Directory,
            0o755,
            b"",
            b"",
        )
        .raw_file(b"//tmp/bulkhead-test-double-slash", b"escaped\n");
    image_with_layer(t, "hostile: absolute entry names")
}

/// Symlinked directories that point out of the root, then entries written *through* them:
/// `var/lib/dpkg -> /etc` (replacing the bait's directory) and a file
/// `var/lib/dpkg/bulkhead-test-through-symlink`; `usr/share/escape -> ../…/tmp` and
/// `usr/share/escape/bulkhead-test-relative-escape`. Reading `var/lib/dpkg/status` through
/// the link would read the host's `/etc/status`.
pub fn symlink_escape_dir() -> Image {
    image_with(|layout| {
        // One layer removes the bait's real directory, the next one plants the link: in a
        // single layer a directory and a symlink of the same name would be ambiguous.
        let mut remove = LayerTar::new();
        remove.whiteout("var/lib/dpkg");
        let mut t = LayerTar::new();
        t.symlink("var/lib/dpkg", "/etc")
            .file(
                "var/lib/dpkg/bulkhead-test-through-symlink",
                b"escaped\n",
                0o644,
            )
            .dir("usr/share", 0o755)
            .symlink("usr/share/escape", &format!("{UP}tmp"))
            .file(
                "usr/share/escape/bulkhead-test-relative-escape",
                b"escaped\n",
                0o644,
            );
        vec![
            layout
                .add_layer(
                    &remove.into_bytes(),
                    Compression::Gzip,
                    "rm -r var/lib/dpkg",
                )
                .expect("layer"),
            layout
                .add_layer(
                    &t.into_bytes(),
                    Compression::Gzip,
                    "hostile: symlinked dirs out of the root",
                )
                .expect("layer"),
        ]
    })
}

/// Files replaced by symlinks out of the root: `var/lib/dpkg/status -> /etc/passwd`,
/// `usr/lib/os-release -> /etc/os-release` (read on the host: the host's OS; inside the
/// root: a loop through `etc/os-release`), and `var/lib/dpkg/info/bash.list ->
/// ../…/etc/shadow`.
pub fn symlink_escape_file() -> Image {
    let mut t = LayerTar::new();
    t.symlink("var/lib/dpkg/status", "/etc/passwd")
        .symlink("usr/lib/os-release", "/etc/os-release")
        .dir("var/lib/dpkg/info", 0o755)
        .symlink("var/lib/dpkg/info/bash.list", &format!("{UP}etc/shadow"));
    image_with_layer(t, "hostile: symlinked files out of the root")
}

/// Symlink loops: `var/lib/dpkg/status -> status` (itself), `etc/os-release -> os-release2
/// -> os-release`, and a chain of 100 links ending in the bait's os-release
/// (`usr/lib/chain/0 -> 1 -> … -> 99 -> ../os-release`).
pub fn symlink_loops() -> Image {
    let mut t = LayerTar::new();
    t.symlink("var/lib/dpkg/status", "status")
        .symlink("etc/os-release", "os-release2")
        .symlink("etc/os-release2", "os-release")
        .dir("usr/lib/chain", 0o755);
    for i in 0..99 {
        t.symlink(&format!("usr/lib/chain/{i}"), &(i + 1).to_string());
    }
    t.symlink("usr/lib/chain/99", "../os-release");
    image_with_layer(t, "hostile: symlink loops and a 100-link chain")
}

/// Hard links to files outside the archive: `var/lib/dpkg/status` linked to `/etc/passwd`,
/// `usr/lib/os-release` to `../…/etc/os-release`, and `etc/hostname` to a name that no
/// entry has (`nonexistent/target`).
pub fn hardlink_escape() -> Image {
    let mut t = LayerTar::new();
    t.hardlink("var/lib/dpkg/status", "/etc/passwd")
        .hardlink("usr/lib/os-release", &format!("{UP}etc/os-release"))
        .hardlink("etc/hostname", "nonexistent/target");
    image_with_layer(t, "hostile: hard links out of the archive")
}

/// A gzip bomb: a layer whose tar holds `var/lib/dpkg/status` of `uncompressed` zero bytes
/// (use [`BOMB_SIZE`], 10 GiB: the blob is ~10 MB). Written streaming in a few hundred ms:
/// one deflate block run of 1 MiB of zeros is compressed once (between full flushes, so it
/// is self-contained) and repeated; the gzip CRC is combined arithmetically. The diff_id is
/// true up to [`BOMB_DIFF_ID_LIMIT`], a stand-in above it.
pub fn gzip_bomb(uncompressed: u64) -> Image {
    image_with(|layout| {
        vec![
            layout
                .stream_layer(
                    Compression::Gzip.media_type(),
                    "hostile: gzip bomb",
                    |out| write_gzip_zeros_tar(out, uncompressed),
                )
                .expect("write the gzip bomb"),
        ]
    })
}

/// A zstd bomb: like [`gzip_bomb`] but zstd, made of RLE blocks (128 KiB of zeros in 4
/// bytes): 10 GiB is a ~320 KB blob.
pub fn zstd_bomb(uncompressed: u64) -> Image {
    image_with(|layout| {
        vec![
            layout
                .stream_layer(
                    Compression::Zstd.media_type(),
                    "hostile: zstd bomb",
                    |out| write_zstd_zeros_tar(out, uncompressed),
                )
                .expect("write the zstd bomb"),
        ]
    })
}

/// A layer with `count` empty files (`many/NNNN/NNN`, 1000 per directory, plus the
/// directories), streamed through gzip; use 1_000_000 for the hostile corpus (~512 MB of tar,
/// a few MB of gzip). The bait's status is in the first layer as always.
pub fn many_entries(count: u64) -> Image {
    image_with(|layout| {
        vec![
            layout
                .stream_layer(
                    Compression::Gzip.media_type(),
                    "hostile: a million tiny entries",
                    |out| {
                        let gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
                        let mut tar = tar::Builder::new(HashWriter::new(gz));
                        for i in 0..count {
                            if i % 1000 == 0 {
                                let mut h = entry_header(EntryType::Directory, 0o755, 0);
                                tar.append_data(
                                    &mut h,
                                    format!("many/{:04}", i / 1000),
                                    io::empty(),
                                )?;
                            }
                            let mut h = entry_header(EntryType::Regular, 0o644, 0);
                            tar.append_data(
                                &mut h,
                                format!("many/{:04}/{:03}", i / 1000, i % 1000),
                                io::empty(),
                            )?;
                        }
                        let hashed = tar.into_inner()?;
                        let diff_id = hashed.digest();
                        hashed.inner.finish()?;
                        Ok(diff_id)
                    },
                )
                .expect("write the many-entries layer"),
        ]
    })
}

/// A layer whose (valid) gzip stream holds a tar cut in the middle of a file's data: no
/// rest of the file, no end-of-archive blocks. The file is a second copy of the dpkg status.
pub fn truncated_tar() -> Image {
    let status = select_stanzas(&minbase_status(), BAIT_PACKAGES);
    let mut t = LayerTar::new();
    t.file("var/lib/dpkg/status", status.as_bytes(), 0o644);
    let tar = t.into_bytes();
    let cut = 512 + status.len() / 2;
    image_with(|layout| {
        vec![
            layout
                .add_layer(
                    &tar[..cut],
                    Compression::Gzip,
                    "hostile: tar cut in the middle of an entry",
                )
                .expect("layer"),
        ]
    })
}

/// A layer whose gzip stream itself is cut in half (the digest in the manifest is the digest
/// of the cut blob, so only decompression notices).
pub fn truncated_gzip() -> Image {
    let mut t = LayerTar::new();
    // Incompressible, so that half of the gzip stream is about half of the data.
    t.file(
        "opt/data.bin",
        &crate::pseudo_random(0x9e37_79b9_7f4a_7c15, 64 * 1024),
        0o644,
    );
    let tar = t.into_bytes();
    let gz = Compression::Gzip.compress(&tar);
    image_with(|layout| {
        vec![
            layout
                .add_compressed_layer(
                    &gz[..gz.len() / 2],
                    Compression::Gzip.media_type(),
                    &sha256_digest(&tar),
                    "hostile: gzip stream cut in half",
                )
                .expect("layer"),
        ]
    })
}

/// The registry lab's `insert-quirk` (umoci 0.4.7 `insert`): a complete tar without the two
/// end-of-archive blocks. Real images have this; GNU tar says "Unexpected EOF", lenient
/// readers keep every entry. The layer holds `opt/app/lib/c.so`.
pub fn tar_without_footer() -> Image {
    let mut t = LayerTar::new();
    t.dir("opt", 0o755)
        .dir("opt/app", 0o755)
        .file("opt/app/c.so", b"c\n", 0o755);
    let tar = t.into_bytes();
    let without_footer = &tar[..tar.len() - 1024];
    image_with(|layout| {
        vec![
            layout
                .add_layer(
                    without_footer,
                    Compression::Gzip,
                    "quirk: no end-of-archive blocks",
                )
                .expect("layer"),
        ]
    })
}

/// A layer blob that does not match its manifest entry: the uncompressed tar of the bait
/// status, tampered with after it was hashed (the libssl3 version's digits are replaced by
/// `9`s, same length). The tampered blob is still a valid tar, so only digest verification
/// catches it. Cannot be pushed (skopeo and the registry verify digests): scan it as `oci:`.
pub fn digest_mismatch() -> Image {
    let status = select_stanzas(&minbase_status(), BAIT_PACKAGES);
    let mut t = LayerTar::new();
    t.dir("var", 0o755)
        .dir("var/lib", 0o755)
        .dir("var/lib/dpkg", 0o755)
        .file("var/lib/dpkg/status", status.as_bytes(), 0o644);
    let image = image_with(|layout| {
        vec![
            layout
                .add_layer(&t.into_bytes(), Compression::None, "tampered after hashing")
                .expect("layer"),
        ]
    });
    let layout = image.open();
    let manifest: serde_json::Value = serde_json::from_slice(
        &layout
            .read_blob(&image.descriptor().digest)
            .expect("manifest"),
    )
    .expect("manifest JSON");
    let digest = manifest["layers"][1]["digest"]
        .as_str()
        .expect("layer digest")
        .to_string();
    let path = layout.blob_path(&digest);
    let mut blob = std::fs::read(&path).expect("layer blob");
    let at = find(&blob, b"Package: libssl3\n").expect("libssl3 stanza in the tar");
    let version =
        at + find(&blob[at..], b"\nVersion: ").expect("Version field") + b"\nVersion: ".len();
    for b in blob[version..].iter_mut().take_while(|b| **b != b'\n') {
        if b.is_ascii_digit() {
            *b = b'9';
        }
    }
    assert_ne!(
        sha256_digest(&blob),
        digest,
        "the tampering changed the blob"
    );
    std::fs::write(&path, &blob).expect("write the tampered blob");
    image
}

/// Special files next to the bait: character device `dev/bulkhead-null` (1,3), block device
/// `dev/bulkhead-sda` (8,0), FIFO `run/bulkhead.fifo`, setuid `usr/bin/bulkhead-suid`
/// (04755), setgid `usr/bin/bulkhead-sgid` (02755), sticky world-writable `tmp/` (01777),
/// and `root/unreadable` with mode 0000.
pub fn special_files() -> Image {
    let mut t = LayerTar::new();
    t.dir("dev", 0o755)
        .special("dev/bulkhead-null", EntryType::Char, 0o666, 1, 3)
        .special("dev/bulkhead-sda", EntryType::Block, 0o660, 8, 0)
        .dir("run", 0o755)
        .special("run/bulkhead.fifo", EntryType::Fifo, 0o644, 0, 0)
        .dir("usr/bin", 0o755)
        .file("usr/bin/bulkhead-suid", b"#!/bin/sh\nid\n", 0o4755)
        .file("usr/bin/bulkhead-sgid", b"#!/bin/sh\nid\n", 0o2755)
        .dir("tmp", 0o1777)
        .dir("root", 0o700)
        .file("root/unreadable", b"secret\n", 0o000);
    image_with_layer(
        t,
        "hostile: devices, fifo, setuid, setgid, sticky, mode 0000",
    )
}

/// The files the analyzers read, replaced by special files: `var/lib/dpkg/status` is a
/// character device 1,5 (`/dev/zero`: endless zeros if it were created and read),
/// `usr/lib/os-release` a FIFO (blocks forever when opened for reading), and
/// `etc/os-release` (replacing the symlink) a character device 1,3.
pub fn special_files_in_place() -> Image {
    let mut t = LayerTar::new();
    t.special("var/lib/dpkg/status", EntryType::Char, 0o644, 1, 5)
        .special("usr/lib/os-release", EntryType::Fifo, 0o644, 0, 0)
        .special("etc/os-release", EntryType::Char, 0o644, 1, 3);
    image_with_layer(
        t,
        "hostile: device and fifo in place of status and os-release",
    )
}

/// Names that break naive text handling: a newline, invalid UTF-8, an ANSI escape, an empty
/// name, a path longer than 100 bytes (ustar prefix), and the same path twice with different
/// contents (the later entry wins).
pub fn weird_names() -> Image {
    let long = format!("usr/share/{}file", "d/".repeat(60));
    let mut t = LayerTar::new();
    t.raw_file(b"etc/bulkhead\nnewline", b"newline in the name\n")
        .raw_file(
            b"usr/share/bulkhead-\xff\xfe-invalid-utf8",
            b"invalid utf-8 in the name\n",
        )
        .raw_file(
            b"usr/share/\x1b[31mbulkhead-ansi\x1b[0m",
            b"escape sequence in the name\n",
        )
        .raw_file(b"", b"empty name\n")
        .parents(&long)
        .file(&long, b"long name\n", 0o644)
        .file("etc/hostname", b"first\n", 0o644)
        .file("etc/hostname", b"second\n", 0o644);
    image_with_layer(
        t,
        "hostile: newline, invalid UTF-8, ANSI, empty, long and duplicate names",
    )
}

fn entry_header(kind: EntryType, mode: u32, size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(super::MTIME);
    h.set_size(size);
    h
}

/// The tar of a bomb: a GNU header for `var/lib/dpkg/status` of `size` bytes (base-256 size
/// field above 8 GiB), then zeros for the data, its padding and the end-of-archive blocks.
fn bomb_header(size: u64) -> ([u8; 512], u64) {
    let mut h = entry_header(EntryType::Regular, 0o644, size);
    h.set_path("var/lib/dpkg/status").expect("short path");
    h.set_cksum();
    let zeros = size.div_ceil(512) * 512 + 1024;
    (*h.as_bytes(), zeros)
}

fn bomb_diff_id(header: &[u8; 512], zeros: u64) -> String {
    if zeros > BOMB_DIFF_ID_LIMIT {
        return sha256_digest(BOMB_FAKE_DIFF_ID_INPUT);
    }
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(header);
    let chunk = vec![0u8; 1 << 20];
    let mut left = zeros;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        h.update(&chunk[..n]);
        left -= n as u64;
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// Raw deflate of `input` with `flush`, appended to `out`.
fn deflate_piece(
    c: &mut Compress,
    mut input: &[u8],
    flush: FlushCompress,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let (in0, out0) = (c.total_in(), c.total_out());
        let status = c
            .compress(input, &mut buf, flush)
            .map_err(io::Error::other)?;
        let consumed = (c.total_in() - in0) as usize;
        let produced = (c.total_out() - out0) as usize;
        input = &input[consumed..];
        out.extend_from_slice(&buf[..produced]);
        let drained = input.is_empty() && produced < buf.len();
        match flush {
            FlushCompress::Finish if status == Status::StreamEnd => return Ok(()),
            FlushCompress::Finish => {}
            _ if drained => return Ok(()),
            _ => {}
        }
    }
}

/// Writes a gzip member whose content is a bomb tar of `size` zero bytes; returns its
/// diff_id.
fn write_gzip_zeros_tar(out: &mut dyn Write, size: u64) -> io::Result<String> {
    const CHUNK: usize = 1 << 20;
    let (header, zeros) = bomb_header(size);
    let zero_chunk = vec![0u8; CHUNK];
    let mut c = Compress::new(flate2::Compression::best(), false);
    let (mut head_piece, mut chunk_piece, mut tail_piece) = (Vec::new(), Vec::new(), Vec::new());
    deflate_piece(&mut c, &header, FlushCompress::Full, &mut head_piece)?;
    // After a full flush the compressor starts on a byte boundary and never refers back, so
    // this piece decodes to CHUNK zeros wherever it is placed: repeat it.
    deflate_piece(&mut c, &zero_chunk, FlushCompress::Full, &mut chunk_piece)?;
    let (repeats, rest) = (zeros / CHUNK as u64, (zeros % CHUNK as u64) as usize);
    deflate_piece(
        &mut c,
        &zero_chunk[..rest],
        FlushCompress::Finish,
        &mut tail_piece,
    )?;

    let mut crc = crc32fast::Hasher::new();
    crc.update(&header);
    let mut chunk_crc = crc32fast::Hasher::new();
    chunk_crc.update(&zero_chunk);
    for _ in 0..repeats {
        crc.combine(&chunk_crc);
    }
    crc.update(&zero_chunk[..rest]);

    // gzip header: magic, deflate, no flags, mtime 0, no extra flags, OS unknown.
    out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff])?;
    out.write_all(&head_piece)?;
    for _ in 0..repeats {
        out.write_all(&chunk_piece)?;
    }
    out.write_all(&tail_piece)?;
    out.write_all(&crc.finalize().to_le_bytes())?;
    let isize = (512 + zeros) as u32; // ISIZE is the length modulo 2^32
    out.write_all(&isize.to_le_bytes())?;
    Ok(bomb_diff_id(&header, zeros))
}

/// Writes a zstd frame whose content is a bomb tar of `size` zero bytes; returns its
/// diff_id.
fn write_zstd_zeros_tar(out: &mut dyn Write, size: u64) -> io::Result<String> {
    const BLOCK: u64 = 128 * 1024; // Block_Maximum_Size with a 128 KiB window
    let (header, zeros) = bomb_header(size);
    // Magic; frame header descriptor 0 (no content size, no checksum, no dictionary, not
    // single-segment); window descriptor: exponent 7 = 2^17 bytes.
    out.write_all(&[0x28, 0xb5, 0x2f, 0xfd, 0x00, 7 << 3])?;
    let block_header = |last: bool, kind: u32, size: u32| {
        let v = u32::from(last) | (kind << 1) | (size << 3);
        [v as u8, (v >> 8) as u8, (v >> 16) as u8]
    };
    out.write_all(&block_header(false, 0, 512))?; // raw block: the tar header
    out.write_all(&header)?;
    let mut left = zeros;
    while left > 0 {
        let n = left.min(BLOCK);
        left -= n;
        out.write_all(&block_header(left == 0, 1, n as u32))?; // RLE block of n zeros
        out.write_all(&[0])?;
    }
    Ok(bomb_diff_id(&header, zeros))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn decode_all(blob: &[u8], zstd: bool) -> Vec<u8> {
        let mut out = Vec::new();
        if zstd {
            zstd::stream::read::Decoder::new(blob)
                .expect("zstd")
                .read_to_end(&mut out)
                .expect("zstd decode");
        } else {
            flate2::read::GzDecoder::new(blob)
                .read_to_end(&mut out)
                .expect("gzip decode");
        }
        out
    }

    /// A small bomb decodes (with the crates' own CRC and frame checks) to exactly a tar
    /// header for `var/lib/dpkg/status` of the asked size followed by zeros.
    #[test]
    fn bombs_decode_to_the_announced_zeros() {
        for zstd in [false, true] {
            let size = 3 * (1 << 20) + 123; // more than one chunk/block, not a multiple
            let mut blob = Vec::new();
            let diff_id = if zstd {
                write_zstd_zeros_tar(&mut blob, size)
            } else {
                write_gzip_zeros_tar(&mut blob, size)
            }
            .expect("write");
            let tar = decode_all(&blob, zstd);
            assert_eq!(diff_id, sha256_digest(&tar), "zstd={zstd}");
            let mut archive = tar::Archive::new(&tar[..]);
            let entries: Vec<(String, u64)> = archive
                .entries()
                .expect("entries")
                .map(|e| {
                    let e = e.expect("entry");
                    (e.path().expect("path").display().to_string(), e.size())
                })
                .collect();
            assert_eq!(
                entries,
                vec![("var/lib/dpkg/status".to_string(), size)],
                "zstd={zstd}"
            );
            assert!(tar[512..].iter().all(|b| *b == 0));
        }
    }

    #[test]
    fn ten_gib_bomb_headers_use_base256_sizes() {
        let (header, zeros) = bomb_header(BOMB_SIZE);
        let h = Header::from_byte_slice(&header);
        assert_eq!(h.size().expect("size"), BOMB_SIZE);
        assert_eq!(zeros, BOMB_SIZE + 1024);
    }
}

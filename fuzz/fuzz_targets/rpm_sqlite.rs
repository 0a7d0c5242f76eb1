//! The SQLite rpmdb reader must end in a result, never a panic or a loop, whatever the
//! bytes of the database and of its write-ahead log; every blob it returns then goes
//! through the header parser as in the analyzer.
//!
//! The input is the database, then optionally the log: it is split before the first log
//! magic number (0x377f0682 or 0x377f0683), so a database file alone and a database and
//! its log concatenated (as `seed.sh` makes them) are both seeds.
#![no_main]

use bulkhead_analyzer_rpm::{header, sqlite};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data
        .windows(4)
        .position(|w| w[..3] == [0x37, 0x7f, 0x06] && w[3] & 0xfe == 0x82);
    let (db, wal) = match split {
        Some(at) => (&data[..at], Some(&data[at..])),
        None => (data, None),
    };
    if let Ok(blobs) = sqlite::blobs(db, wal) {
        for blob in &blobs {
            let _ = header::parse(blob);
        }
    }
});

//! The SQLite rpmdb reader must end in a result, never a panic or a loop, whatever the
//! bytes; every blob it returns then goes through the header parser as in the analyzer.
#![no_main]

use bulkhead_analyzer_rpm::{header, sqlite};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(blobs) = sqlite::blobs(data, None) {
        for blob in &blobs {
            let _ = header::parse(blob);
        }
    }
});

//! The Berkeley DB `Packages` reader must never panic, loop or blow up memory, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(blobs) = bulkhead_analyzer_rpm::bdb::blobs(data) {
        // No page feeds two blobs, so together they never exceed the file.
        assert!(blobs.iter().map(Vec::len).sum::<usize>() <= data.len());
    }
});

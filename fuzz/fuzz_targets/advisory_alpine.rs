//! One Alpine secdb document (`bulkhead_advisories::sources::alpine::parse`), JSON and
//! YAML: whatever the bytes it must never panic; a bad entry is one `Err` among the records.
#![no_main]

use std::path::Path;

use bulkhead_advisories::sources::alpine::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for json in [true, false] {
        if let Ok(records) = parse(data, Path::new("fuzz"), json) {
            for a in records.into_iter().flatten() {
                assert!(!a.id.is_empty());
            }
        }
    }
});

//! An NVD CVE API 2.0 page or CVE object (`bulkhead_advisories::sources::nvd::parse`):
//! whatever the bytes it must never panic; a bad CVE is one `Err` among the records.
#![no_main]

use std::path::Path;

use bulkhead_advisories::sources::nvd::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(records) = parse(data, Path::new("fuzz")) {
        for e in records.into_iter().flatten() {
            let _ = format!("{e:?}");
        }
    }
});

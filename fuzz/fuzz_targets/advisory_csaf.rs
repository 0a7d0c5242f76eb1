//! One Red Hat CSAF advisory or VEX file (`bulkhead_advisories::sources::csaf::parse`):
//! whatever the bytes it must never panic (product ids, purls and CPEs are all untrusted).
#![no_main]

use std::path::Path;

use bulkhead_advisories::sources::csaf::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = parse(data, Path::new("fuzz")) {
        assert!(!a.id.is_empty());
    }
});

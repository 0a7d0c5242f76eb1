//! One OSV record (`bulkhead_advisories::sources::osv::parse`), JSON and YAML: whatever the
//! bytes it must never panic, and YAML nesting and aliases stay bounded.
#![no_main]

use std::path::Path;

use bulkhead_advisories::sources::osv::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for yaml in [false, true] {
        if let Ok(a) = parse(data, Path::new("fuzz"), yaml) {
            assert!(!a.id.is_empty());
        }
    }
});

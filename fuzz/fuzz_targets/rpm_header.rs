//! The rpm header parser must never panic or allocate without bound, whatever the bytes.
#![no_main]

use bulkhead_analyzer_rpm::header::{Header, parse, split_source_rpm, tag};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = parse(data) {
        let _ = p.evr();
        if let Some(srpm) = &p.source_rpm {
            let _ = split_source_rpm(srpm);
        }
    }
    // The typed accessors on their own, for tags parse() may never reach.
    if let Ok(h) = Header::parse(data) {
        let _ = h.strings(tag::BASENAMES, "BASENAMES");
        let _ = h.numbers(tag::DIRINDEXES, "DIRINDEXES");
    }
});

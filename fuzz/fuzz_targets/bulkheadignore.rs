//! `.bulkheadignore` files (`Suppressions::load_ignore_text`; YAML, and a checked-out
//! repository's file is untrusted): whatever the text, loading must never panic or
//! expand aliases without bound, and applying the rules must keep every finding (kept or
//! suppressed, never lost or doubled).
#![no_main]

#[path = "common/findings.rs"]
mod common;

use std::path::Path;

use bulkhead_scan::assess::Suppressions;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // read_text refuses what is not UTF-8
    };
    let mut s = Suppressions::default();
    if s.load_ignore_text(text, Path::new(".bulkheadignore"))
        .is_err()
    {
        return;
    }
    let now = common::NOW.parse().expect("a valid time");
    let findings = common::findings();
    for image in &common::IMAGES {
        let applied = s.apply(findings.clone(), image, now);
        assert_eq!(
            applied.kept.len() + applied.suppressed.len(),
            findings.len()
        );
    }
});

//! The apk installed-database parser must never panic, whatever the bytes.
#![no_main]

use bulkhead_analyzer_apk::installed::{MAX_WARNINGS, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(parsed) = parse(&text) {
        // Warnings are capped (plus one summary line) whatever the input.
        assert!(parsed.warnings.len() <= MAX_WARNINGS + 1);
        for p in &parsed.packages {
            assert!(!p.name.is_empty() && !p.version.is_empty());
        }
    }
});

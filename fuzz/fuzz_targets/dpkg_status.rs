//! The dpkg control-file parser must never panic, whatever the bytes, and what it reports
//! must keep the shape dpkg gives it.
#![no_main]

use bulkhead_analyzer_dpkg::status::{Kind, MAX_WARNINGS, parse, parse_list, parse_version};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for kind in [Kind::Status, Kind::StatusD] {
        match parse(&text, kind) {
            Ok(parsed) => {
                // Warnings are capped (plus one summary line) whatever the input.
                assert!(parsed.warnings.len() <= MAX_WARNINGS + 1);
                for p in &parsed.packages {
                    // Names are dpkg-valid and lowercase; versions are printed the way
                    // dpkg prints them, so reading one again changes nothing.
                    assert!(!p.name.is_empty() && p.name == p.name.to_ascii_lowercase());
                    assert_eq!(parse_version(&p.version).as_deref(), Ok(p.version.as_str()));
                    if let Some(v) = &p.source_version {
                        assert_eq!(parse_version(v).as_deref(), Ok(v.as_str()));
                    }
                    assert!(p.line >= 1);
                }
            }
            Err(e) => assert!(e.line >= 1),
        }
    }
    let _ = parse_version(&text);
    for path in parse_list(&text) {
        assert!(!path.is_empty() && !path.starts_with('/'));
    }
});

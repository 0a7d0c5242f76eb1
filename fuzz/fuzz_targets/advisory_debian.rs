//! The Debian security tracker's JSON export and the DSA/DLA lists
//! (`bulkhead_advisories::sources::debian::{parse_tracker_json, parse_list}`): whatever the
//! bytes neither may panic; a bad entry is one `Err` among the records.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use bulkhead_advisories::sources::debian::{Releases, parse_list, parse_tracker_json};
use libfuzzer_sys::fuzz_target;

fn releases() -> &'static Releases {
    static R: OnceLock<Releases> = OnceLock::new();
    R.get_or_init(Releases::builtin)
}

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz");
    if let Ok(records) = parse_tracker_json(data, path, releases()) {
        for a in records.into_iter().flatten() {
            assert!(!a.id.is_empty());
        }
    }
    let text = String::from_utf8_lossy(data);
    for a in parse_list(&text, path, releases()).into_iter().flatten() {
        assert!(!a.id.is_empty());
    }
});

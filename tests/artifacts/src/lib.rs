//! Paths of the test guests and of the fixtures the tests share.

#![forbid(unsafe_code)]

use std::path::PathBuf;

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

/// `tests/fixtures/<rel>` in this repository.
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(rel)
}

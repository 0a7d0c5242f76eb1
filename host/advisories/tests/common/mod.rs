//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};

/// A file or directory under `testdata/`.
pub fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(rel)
}

/// Splits parser output into the records and the errors.
pub fn split<T>(
    items: impl IntoIterator<Item = Result<T, bulkhead_advisories::Error>>,
) -> (Vec<T>, Vec<bulkhead_advisories::Error>) {
    let mut ok = Vec::new();
    let mut err = Vec::new();
    for item in items {
        match item {
            Ok(v) => ok.push(v),
            Err(e) => err.push(e),
        }
    }
    (ok, err)
}

pub fn ts(s: &str) -> jiff::Timestamp {
    s.parse().expect("timestamp literal")
}

//! Bulkhead's advisory database.
//!
//! Feeds are parsed by [`sources`] into the OSV-shaped [`model`] and stored by [`store`] in
//! one SQLite file, which the matcher queries with [`Store::lookup`]: "which advisories
//! name package P of ecosystem E (`Debian:12`, `Alpine:v3.19`, `AlmaLinux:9`, `PyPI`), for
//! which versions, and what fixes them".
//!
//! ```no_run
//! # fn main() -> Result<(), bulkhead_advisories::Error> {
//! use bulkhead_advisories::{Builder, Store, sources};
//! use std::path::Path;
//!
//! let mut builder = Builder::new("advisories.db")?;
//! let report = builder.import("osv-go", sources::osv::read_path(Path::new("vulndb/data/osv"))?)?;
//! eprintln!("{} records, {} skipped", report.records, report.skipped);
//! builder.commit()?;
//!
//! let store = Store::open("advisories.db")?;
//! for m in store.lookup("Go", "golang.org/x/net")? {
//!     println!("{} {:?}", m.advisory.id, m.affected.ranges);
//! }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod error;
pub mod matcher;
pub mod model;
pub mod sources;
pub mod store;

pub use error::{Error, Result};
pub use matcher::{
    AdvisoryMatch, MatchReport, PackageKind, ecosystem_for, match_packages, match_packages_report,
};
pub use model::{
    Advisory, Affected, Enrichment, Event, FixState, Range, RangeKind, Record, Reference, Severity,
    SeverityKind,
};
pub use store::{AdvisoryHeader, Builder, Entry, ImportReport, Match, SourceStatus, Store};

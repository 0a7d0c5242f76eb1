//! Bulkhead's result model: the types every stage, the store and the API exchange, each
//! defined once with one serde form.
//!
//! | what | module |
//! |---|---|
//! | what an analyzer says about itself and returns for a layer | [`analyzer`] |
//! | the inventory: OS and packages, with their provenance | [`inventory`] |
//! | findings, severity, fix state, health, recommendations | [`assessment`] |
//! | diagnostics | [`diagnostic`] |
//! | the JSON report and its schema | [`report`] |
//!
//! The crate is pure data (serde and schemars only): analyzers' SDK, the scanner, the
//! advisory matcher, the service's store and its API all depend on it and on nothing of
//! each other's.

#![forbid(unsafe_code)]

pub mod analyzer;
pub mod assessment;
pub mod diagnostic;
pub mod inventory;
mod named;
pub mod report;

pub use analyzer::{Analysis, AnalyzerMeta, AnalyzerWarning, FileRequest, Origin, PathPattern};
pub use assessment::{
    Assessment, Cvss, DbSource, Eol, Finding, FixState, Health, Recommendation, Severity, Summary,
    Suppressed, UnknownWord,
};
pub use diagnostic::{Diagnostic, Level};
pub use inventory::{Inventory, Os, Package};
pub use named::Named;
pub use report::{Report, SCHEMA_VERSION};

//! The analyzer SDK: everything a Rust analyzer needs to implement the
//! `bulkhead:analyzer` world (`wit/analyzer.wit`).
//!
//! ```ignore
//! use bulkhead_analyzer_sdk::{export, Guest, Metadata, Analysis, AnalyzeError};
//! struct MyAnalyzer;
//! impl Guest for MyAnalyzer { /* metadata(), analyze(root) */ }
//! export!(MyAnalyzer);
//! ```
//!
//! The SDK owns the bindings so that every analyzer is built against the same WIT version;
//! `WIT_VERSION` names it.

#![forbid(unsafe_code)]

/// Generated bindings for `bulkhead:analyzer@0.1.0`.
#[doc(hidden)]
#[allow(unreachable_pub, missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "analyzer",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "bulkhead_analyzer_sdk::bindings",
    });
}

pub use bindings::bulkhead::analyzer::types::{
    FileRequest, InstalledPackage, OsInfo, ParseError, PathPattern, Warning,
};
pub use bindings::{Analysis, AnalyzeError, Guest, Metadata, export};

/// The WIT package version this SDK implements.
pub const WIT_VERSION: &str = "0.1.0";

pub mod fs;
pub mod os;

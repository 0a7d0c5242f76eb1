//! Bulkhead: a container-image vulnerability scanner whose package analyzers run
//! sandboxed in WebAssembly.
//!
//! The pipeline, stage by stage (only [`scan`] knows their order):
//!
//! | stage | module | trust |
//! |---|---|---|
//! | where the image comes from | [`source`] | host |
//! | select and safely extract the files analyzers asked for | [`layers`] | host |
//! | read the release files, decide the OS | [`release`] | host |
//! | run analyzers under limits; validate what they return | [`sandbox`], [`analyzers`] | **untrusted guests** |
//! | stack layer inventories into the image inventory (OS claims checked, packages never shadowed) | [`merge`] | host |
//! | match against advisories; severity, suppressions, health, recommendations | [`assess`] | host (advisory data is untrusted input) |
//! | reports | [`report`] | host |
//!
//! [`pipeline`] puts the stages together from configuration, for the CLI and the service
//! alike. Untrusted analyzers produce inventory; trusted host code does everything else.
//! Stages exchange the types of the `bulkhead-model` crate, never each other's internals.
//! This crate has no web server, metrics or service store: `bulkhead serve` is the
//! `bulkhead-server` crate, the command line the `bulkhead` crate.

#![deny(unsafe_code)]

pub mod analyzers;
pub mod assess;
pub mod config;
pub mod db;
pub mod home;
pub mod image;
pub mod layers;
pub mod merge;
pub mod pipeline;
pub mod purl;
pub mod release;
pub mod report;
#[allow(unsafe_code)] // one audited use: loading .cwasm from the private cache (sandbox/cache.rs)
pub mod sandbox;
pub mod scan;
pub mod source;
pub mod text;

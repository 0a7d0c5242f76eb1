//! The end-to-end tests: one test binary (`cargo test --release -p bulkhead --test e2e`),
//! one module per area. What they share is in [`harness`] (the hermetic `bulkhead`
//! command, the demo) and in `bulkhead_test_artifacts` (the skip policy, `both!`, real
//! registries, the service and PostgreSQL harnesses, image builders).
//!
//! The skip policy: a test that needs a tool or an oracle the machine lacks (dpkg-query,
//! rpm, python3-rpm, python3-jsonschema, docker-registry, skopeo, htpasswd, PostgreSQL...)
//! prints `skipping <test>: <reason>` and passes, except with `CI` set (`.ci/run`, which
//! installs them all), where it fails.

mod harness;

mod accuracy;
mod accuracy_alpine;
mod cli;
mod db;
mod findings;
mod first_minutes;
mod images;
mod inventory;
mod query;
mod registry;
mod report_formats;
mod report_snapshots;
mod sandbox;
mod security;
mod service;
mod service_durability;
mod service_notify;
mod sources;

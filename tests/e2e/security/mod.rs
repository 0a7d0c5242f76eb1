//! The security suite: each attack of the threat model (docs/security.md) that once
//! succeeded, run against the real binaries and kept failing
//! (`cargo test --release -p bulkhead --test e2e security::`). One module per boundary;
//! docs/security.md names the test of each.

mod http_limits;
mod query_limits;
mod registries;

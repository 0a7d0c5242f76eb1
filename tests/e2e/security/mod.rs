//! The security suite: each attack on a running `bulkhead serve` that once succeeded, kept
//! failing (`cargo test --release -p bulkhead --test e2e security::`). docs/security.md
//! names the test of each boundary.

mod http_limits;
mod query_limits;

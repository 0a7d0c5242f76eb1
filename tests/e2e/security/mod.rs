//! The security suite (docs/security.md): each attack of the threat model that once
//! succeeded, run end to end against the real binaries (a real `bulkhead scan` or
//! `bulkhead serve` over real HTTP, on SQLite and PostgreSQL where the store is involved)
//! and kept failing. `cargo test --release -p bulkhead --test e2e security::` runs it (CI
//! runs it with the whole workspace). One module per boundary.

mod analyzers;
mod http_limits;
mod probes;
mod query_limits;
mod rates;
mod registries;
mod store_files;
mod tenants;
mod webhooks;

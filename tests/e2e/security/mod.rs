//! The security suite (docs/security.md): each boundary attacked end to end, against a
//! real `bulkhead serve`, over real HTTP, on SQLite and PostgreSQL where the store is
//! involved. `cargo test --release -p bulkhead --test e2e security::` runs it (CI runs it
//! with the whole workspace). One module per boundary.

mod tenants;

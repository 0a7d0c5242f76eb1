//! The security suite: each attack of the threat model (docs/security.md), run against the
//! real binaries. One module per boundary.

mod registries;

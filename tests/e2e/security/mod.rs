//! Attacks on the trust line, one module per attacker.

mod analyzers;

//! The query language must never panic, overflow its stack or loop, whatever the text;
//! and whatever compiles must be tenant-scoped: every table is
//! `(SELECT * FROM <view> WHERE tenant_id = $1)`, nothing else is read, no statement
//! separator or comment reaches the SQL.
#![no_main]

use bulkhead_query::{Catalog, Dialect, Options, Param, compile, parse};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn catalog() -> &'static Catalog {
    static C: OnceLock<Catalog> = OnceLock::new();
    C.get_or_init(Catalog::bulkhead_v1)
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = parse(&text) {
        let _ = e.render(&text);
        let _ = e.to_json(&text);
    }
    for dialect in [Dialect::Sqlite, Dialect::Postgres] {
        let opts = Options {
            dialect,
            tenant_id: 42,
            now_ms: 1_794_268_800_000,
            row_cap: 1000,
            max_value_bytes: Some(1 << 20),
        };
        match compile(&text, catalog(), &opts) {
            Err(e) => {
                let _ = e.render(&text);
            }
            Ok(q) => {
                let filter = match dialect {
                    Dialect::Sqlite => " WHERE tenant_id = $1)",
                    Dialect::Postgres => " WHERE tenant_id = $1::BIGINT)",
                };
                let views = q.sql.matches("FROM query_").count();
                let scoped = q
                    .sql
                    .match_indices("FROM query_")
                    .filter(|(i, _)| {
                        let rest = &q.sql[i + "FROM query_".len()..];
                        let n = rest
                            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                            .unwrap_or(rest.len());
                        rest[n..].starts_with(filter)
                    })
                    .count();
                assert!(views >= 1 && views == scoped, "unscoped: {}", q.sql);
                assert_eq!(q.sql.matches("tenant_id").count(), views, "{}", q.sql);
                assert_eq!(q.params.first(), Some(&Param::Int(42)));
                for bad in [";", "--", "/*"] {
                    assert!(!q.sql.contains(bad), "{bad:?} in {}", q.sql);
                }
            }
        }
    }
});

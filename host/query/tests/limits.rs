//! The limits hold: the deepest and longest queries the parser accepts compile without
//! exhausting a small stack, and the SQL they compile to still runs on both stores; past
//! the limits, the error is a `Limit` error with a span, never a crash.

mod common;

use bulkhead_query::{Catalog, Dialect, ErrorKind, MAX_DEPTH, MAX_OPERATORS, compile};

fn nest(open: &str, inner: &str, close: &str, n: usize) -> String {
    format!("{}{inner}{}", open.repeat(n), close.repeat(n))
}

/// Queries at (and beyond) every nesting limit.
fn deep_queries() -> Vec<String> {
    let mut out = Vec::new();
    // The query and its operator take two levels, so MAX_DEPTH - 4 is about the deepest
    // expression that compiles.
    for n in [
        MAX_DEPTH / 2 - 2,
        MAX_DEPTH - 4,
        MAX_DEPTH + 1,
        10 * MAX_DEPTH,
    ] {
        let parens = nest("(", "Critical > 0", ")", n);
        out.push(format!("Images | where {parens}"));
        out.push(format!(
            "Images | where {}",
            nest("not(", "Critical > 0", ")", n)
        ));
        out.push(format!(
            "Images | extend x = {}",
            nest("strlen(tostring(", "Critical", "))", n / 2)
        ));
        out.push(format!(
            "Images | extend x = {}",
            nest("-(", "Critical", ")", n)
        ));
        out.push(format!(
            "Images | extend x = {}",
            nest("iff(Critical > 0, ", "1", ", 2)", n)
        ));
        out.push(format!(
            "Images | where {}",
            vec!["Critical == 1"; n].join(" or ")
        ));
        out.push(format!(
            "Images | extend x = {}",
            vec!["Critical"; n].join(" + ")
        ));
        out.push(format!(
            "Images | summarize by x = {}",
            nest("bin(", "Critical", ", 1)", n)
        ));
    }
    for n in [1, 4, 8, 9, 40] {
        out.push(format!(
            "Images{}",
            " | join kind=inner (Images | where Critical >= 0".repeat(n)
                + &") on ImageId".repeat(n)
        ));
    }
    for n in [MAX_OPERATORS, MAX_OPERATORS + 1] {
        out.push(format!("Images{}", " | where Critical >= 0".repeat(n)));
        out.push(format!(
            "Images{}",
            " | extend x = Critical | summarize x = max(x) by ImageId, Critical".repeat(n / 2)
        ));
    }
    out
}

#[test]
fn deep_queries_compile_on_a_small_stack_or_fail_cleanly() {
    // 2 MiB: what a test thread or a tokio worker has (debug builds use far more stack
    // per level than release builds).
    let handle = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let catalog = Catalog::bulkhead_v1();
            let mut compiled = Vec::new();
            for q in deep_queries() {
                for dialect in [Dialect::Sqlite, Dialect::Postgres] {
                    match compile(&q, &catalog, &common::options(dialect, common::TENANT_A)) {
                        Ok(c) => compiled.push((dialect, c)),
                        Err(e) => {
                            assert_eq!(e.kind, ErrorKind::Limit, "{}\n{q}", e.render(&q));
                            assert!(e.span.start <= q.len());
                        }
                    }
                }
            }
            compiled
        })
        .expect("spawn");
    let compiled = handle.join().expect("no stack overflow");
    assert!(compiled.len() > 20, "the limits reject too much");

    // What compiles must also run: SQLite's parser and PostgreSQL's planner have depth
    // limits of their own.
    let conn = common::sqlite_store();
    let pg = common::PgStore::open();
    for (dialect, c) in &compiled {
        let r = match dialect {
            Dialect::Sqlite => common::run_sqlite(&conn, c),
            Dialect::Postgres => match &pg {
                Some(pg) => pg.run(c),
                None => continue,
            },
        };
        if let Err(e) = r {
            panic!("{dialect:?} cannot run a query the compiler accepts: {e}");
        }
    }
}

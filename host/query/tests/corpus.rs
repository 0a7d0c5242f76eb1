//! The corpus (tests/corpus.kql) against a seeded SQLite store: every query's result must
//! equal the one written by hand from the seed.

mod common;

use bulkhead_query::Dialect;

#[test]
fn corpus_has_at_least_fifty_queries() {
    let cases = common::corpus();
    assert!(cases.len() >= 50, "only {} cases", cases.len());
    for c in &cases {
        assert!(!c.query.trim().is_empty(), "{}: no query", c.name);
        assert!(!c.columns.is_empty(), "{}: no columns line", c.name);
    }
}

#[test]
fn corpus_on_sqlite() {
    let conn = common::sqlite_store();
    let failures = common::run_corpus(Dialect::Sqlite, |q| common::run_sqlite(&conn, q));
    assert!(
        failures.is_empty(),
        "{} of {} corpus queries failed on SQLite:\n\n{}",
        failures.len(),
        common::corpus().len(),
        failures.join("\n\n")
    );
}

#[test]
fn corpus_on_postgres() {
    let Some(pg) = common::PgStore::open() else {
        return;
    };
    let failures = common::run_corpus(Dialect::Postgres, |q| pg.run(q));
    assert!(
        failures.is_empty(),
        "{} of {} corpus queries failed on PostgreSQL:\n\n{}",
        failures.len(),
        common::corpus().len(),
        failures.join("\n\n")
    );
}

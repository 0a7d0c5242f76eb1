//! The query language's corpus (host/query/tests/corpus.kql, 50+ queries with results
//! worked out by hand) through the real execution path, on both stores: the store's own
//! migrations (schema v1 and the `query_*` views), the corpus's seed
//! (host/query/tests/seed.sql) written into those tables, and every query compiled for the
//! store's dialect and run by `Store::run_query` (bound parameters, `regexp()` on SQLite,
//! PostgreSQL's value types, the row cap).
//!
//! The corpus reader and runner are the query crate's (tests/common/mod.rs), shared by
//! path so that both crates read the one corpus the same way. PostgreSQL runs in a
//! throwaway cluster (skipped with a message when it is not installed, a failure in CI).

#[path = "../../query/tests/common/mod.rs"]
mod common;

use std::time::Duration;

use bulkhead_query::{Catalog, Options, compile};
use bulkhead_store::{Error, QueryLimits, Store, StoreConfig, TenantId};
use bulkhead_test_artifacts::postgres::PgCluster;
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(30);

/// The service's default limits, with a generous timeout for a loaded test machine.
fn limits() -> QueryLimits {
    QueryLimits {
        timeout: TIMEOUT,
        ..QueryLimits::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A SQLite store (migrated by `Store::open`) with the corpus's seed in its tables.
fn sqlite(rt: &tokio::runtime::Runtime) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    let store = rt
        .block_on(Store::open(StoreConfig::Sqlite { path: path.clone() }))
        .expect("open the SQLite store");
    // The store has no API for writing arbitrary rows: write the seed beside it.
    let conn = rusqlite::Connection::open(&path).expect("open the store file");
    conn.execute_batch(common::SEED_SQL)
        .expect("the seed fits the store's schema (SQLite)");
    drop(conn);
    (dir, store)
}

/// The same on PostgreSQL; `None` when PostgreSQL is not installed (outside CI).
fn postgres(rt: &tokio::runtime::Runtime) -> Option<Store> {
    let cluster = PgCluster::shared()?;
    let url = cluster.database();
    let store = rt
        .block_on(Store::open(StoreConfig::Postgres { url: url.clone() }))
        .expect("open the PostgreSQL store");
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect to PostgreSQL");
        let task = tokio::spawn(conn);
        client
            .batch_execute(common::SEED_SQL)
            .await
            .expect("the seed fits the store's schema (PostgreSQL)");
        drop(client);
        let _ = task.await;
    });
    Some(store)
}

/// Every corpus case through `Store::run_query` as tenant A; the failures.
fn run_corpus(rt: &tokio::runtime::Runtime, store: &Store) -> Vec<String> {
    common::run_corpus(store.query_dialect(), |q| {
        let r = rt
            .block_on(store.run_query(TenantId(common::TENANT_A), q, limits()))
            .map_err(|e| format!("{e}\nSQL: {}", q.sql))?;
        if r.truncated {
            return Err(format!("truncated at the row cap {}", q.row_cap));
        }
        Ok(r.rows)
    })
}

fn assert_corpus(rt: &tokio::runtime::Runtime, store: &Store, what: &str) {
    let failures = run_corpus(rt, store);
    assert!(
        failures.is_empty(),
        "{} of {} corpus queries failed on {what}:\n\n{}",
        failures.len(),
        common::corpus().len(),
        failures.join("\n\n")
    );
}

/// The executor's own rules, beyond the corpus: the row cap, the tenant check, the
/// columns' JSON types.
fn executor_rules(rt: &tokio::runtime::Runtime, store: &Store) {
    let catalog = Catalog::bulkhead_v1();
    let opts = |tenant: i64, row_cap: u64| Options {
        dialect: store.query_dialect(),
        tenant_id: tenant,
        now_ms: common::NOW_MS,
        row_cap,
        max_value_bytes: None,
    };
    // Tenant A has 11 packages (seed.sql): a cap of 3 cuts, a cap of 11 does not.
    let q = compile(
        "Packages | project Name",
        &catalog,
        &opts(common::TENANT_A, 3),
    )
    .expect("compiles");
    let r = rt
        .block_on(store.run_query(TenantId(common::TENANT_A), &q, limits()))
        .expect("runs");
    assert!(r.truncated);
    assert_eq!(r.rows.len(), 3);
    let q = compile(
        "Packages | project Name",
        &catalog,
        &opts(common::TENANT_A, 11),
    )
    .expect("compiles");
    let r = rt
        .block_on(store.run_query(TenantId(common::TENANT_A), &q, limits()))
        .expect("runs");
    assert!(!r.truncated);
    assert_eq!(r.rows.len(), 11);

    // A query compiled for tenant B is not run on behalf of tenant A (nor the reverse).
    let q = compile("Images | count", &catalog, &opts(common::TENANT_B, 10)).expect("compiles");
    let refused = rt.block_on(store.run_query(TenantId(common::TENANT_A), &q, limits()));
    assert!(matches!(refused, Err(Error::Invalid(_))), "{refused:?}");
    let r = rt
        .block_on(store.run_query(TenantId(common::TENANT_B), &q, limits()))
        .expect("runs");
    assert_eq!(r.rows, vec![vec![json!(2)]], "globex has 2 images");

    // The size limits. A value built past `max_value_bytes` stops the query in the
    // database (SQLITE_LIMIT_LENGTH; `bulkhead_value_limit` on PostgreSQL, which the
    // compiler calls when given the limit), whatever the row count.
    // Digests of 9 bytes (seed.sql), doubled five times: 576 bytes.
    let doubled = "Images | extend s = strcat(Digest, Digest) | extend s = strcat(s, s) \
                   | extend s = strcat(s, s) | extend s = strcat(s, s) \
                   | extend s = strcat(s, s) | project s";
    let value_opts = Options {
        max_value_bytes: Some(200),
        ..opts(common::TENANT_A, 10)
    };
    let q = compile(doubled, &catalog, &value_opts).expect("compiles");
    let small_values = QueryLimits {
        max_value_bytes: 200,
        ..limits()
    };
    let too_long = rt.block_on(store.run_query(TenantId(common::TENANT_A), &q, small_values));
    assert!(
        matches!(too_long, Err(Error::ValueTooLarge(200))),
        "{too_long:?}\nSQL: {}",
        q.sql
    );
    // The same query under a limit its values fit: it runs.
    let value_opts = Options {
        max_value_bytes: Some(100_000),
        ..opts(common::TENANT_A, 10)
    };
    let q = compile(doubled, &catalog, &value_opts).expect("compiles");
    let r = rt
        .block_on(store.run_query(TenantId(common::TENANT_A), &q, limits()))
        .expect("values under the limit");
    assert!(!r.rows.is_empty());
    let longest = r
        .rows
        .iter()
        .filter_map(|row| row[0].as_str().map(str::len))
        .max()
        .unwrap_or(0);
    assert!(
        longest > 200,
        "the doubled digests are longer than the small limit"
    );
    // A result past `max_result_bytes` stops as it is read, naming the limit.
    let small_result = QueryLimits {
        max_result_bytes: longest + 10,
        ..limits()
    };
    let too_big = rt.block_on(store.run_query(TenantId(common::TENANT_A), &q, small_result));
    assert!(
        matches!(too_big, Err(Error::ResultTooLarge(n)) if n == longest + 10),
        "{too_big:?}"
    );

    // Every type comes back as its JSON form: bools from 0/1 or BOOLEAN, datetimes as
    // RFC 3339, timespans, dynamic arrays parsed, reals (image 1: seed.sql).
    let q = compile(
        "Images | where ImageId == 1 \
         | project B = Critical > 0, FirstSeen, T = ScannedAt - FirstSeen, Tags, \
           R = toreal(High) / 4, N = LastError",
        &catalog,
        &opts(common::TENANT_A, 10),
    )
    .expect("compiles");
    let r = rt
        .block_on(store.run_query(TenantId(common::TENANT_A), &q, limits()))
        .expect("runs");
    assert_eq!(
        r.rows,
        vec![vec![
            json!(true),
            json!("2026-11-01T08:00:00Z"),
            json!("7.02:00:00"),
            json!(["1.25", "latest"]),
            json!(0.5),
            json!(null)
        ]]
    );
}

#[test]
fn corpus_on_the_sqlite_store() {
    let rt = runtime();
    let (_dir, store) = sqlite(&rt);
    assert_corpus(&rt, &store, "the SQLite store");
    executor_rules(&rt, &store);
}

#[test]
fn corpus_on_the_postgres_store() {
    let rt = runtime();
    let Some(store) = postgres(&rt) else {
        return;
    };
    assert_corpus(&rt, &store, "the PostgreSQL store");
    executor_rules(&rt, &store);
}

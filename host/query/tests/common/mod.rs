//! Shared by the integration tests: the seeded SQLite store, an executor for compiled
//! queries, and the corpus (tests/corpus.kql) with its hand-written expected results.
//!
//! The corpus runner takes the executor as a closure, so running it against PostgreSQL
//! is a matter of passing one that binds the same `params` with tokio-postgres.
#![allow(dead_code, unreachable_pub)]

use bulkhead_query::{
    Catalog, CompiledQuery, Dialect, Options, Param, SqlValue, compile, sqlite_regexp, to_json,
};
use rusqlite::functions::FunctionFlags;
use serde_json::Value;

pub const SCHEMA_SQL: &str = include_str!("../schema_v1.sql");
pub const SEED_SQL: &str = include_str!("../seed.sql");
pub const CORPUS: &str = include_str!("../corpus.kql");

/// 2026-11-10T00:00:00Z, the "now" the corpus's `ago()`s are relative to.
pub const NOW_MS: i64 = 1_794_268_800_000;
/// acme, the tenant the corpus queries as; globex (2) is the other one.
pub const TENANT_A: i64 = 1;
pub const TENANT_B: i64 = 2;

pub fn options(dialect: Dialect, tenant_id: i64) -> Options {
    Options {
        dialect,
        tenant_id,
        now_ms: NOW_MS,
        row_cap: 1000,
        max_value_bytes: None,
    }
}

/// Registers `regexp(pattern, text)` as the store does: the compiled pattern is cached
/// per statement through SQLite's auxiliary data.
pub fn register_regexp(conn: &rusqlite::Connection) {
    conn.create_scalar_function(
        "regexp",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let re = ctx.get_or_create_aux(0, |v| -> Result<_, String> {
                let p = v.as_str().map_err(|e| e.to_string())?;
                bulkhead_query::QueryRegex::new(p)
            })?;
            let text = ctx.get_raw(1);
            Ok(match text {
                rusqlite::types::ValueRef::Text(t) => {
                    re.is_match(std::str::from_utf8(t).unwrap_or(""))
                }
                _ => false,
            })
        },
    )
    .expect("register regexp");
    // The helper the store may call instead; the same semantics.
    assert_eq!(sqlite_regexp("^a", Some("abc")), Ok(true));
}

pub fn sqlite_store() -> rusqlite::Connection {
    let conn = rusqlite::Connection::open_in_memory().expect("open");
    conn.execute_batch(SCHEMA_SQL).expect("schema");
    conn.execute_batch(bulkhead_query::VIEWS_V1_SQL)
        .expect("views");
    conn.execute_batch(SEED_SQL).expect("seed");
    register_regexp(&conn);
    conn
}

/// Runs a compiled query on SQLite: binds `$n` by name (as the store does), reads every
/// value by position and gives it its language type.
pub fn run_sqlite(
    conn: &rusqlite::Connection,
    q: &CompiledQuery,
) -> Result<Vec<Vec<Value>>, String> {
    let mut stmt = conn
        .prepare(&q.sql)
        .map_err(|e| format!("{e}\nSQL: {}", q.sql))?;
    for (i, p) in q.params.iter().enumerate() {
        let name = format!("${}", i + 1);
        let idx = stmt
            .parameter_index(&name)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{name} is not in the SQL"))?;
        let r = match p {
            Param::Int(v) => stmt.raw_bind_parameter(idx, v),
            Param::Real(v) => stmt.raw_bind_parameter(idx, v),
            Param::Text(v) => stmt.raw_bind_parameter(idx, v),
            Param::Bool(v) => stmt.raw_bind_parameter(idx, v),
        };
        r.map_err(|e| e.to_string())?;
    }
    let n = q.columns.len();
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(|e| format!("{e}\nSQL: {}", q.sql))? {
        let mut values = Vec::with_capacity(n);
        for (i, col) in q.columns.iter().enumerate() {
            use rusqlite::types::ValueRef;
            let v = match row.get_ref(i).map_err(|e| e.to_string())? {
                ValueRef::Null => SqlValue::Null,
                ValueRef::Integer(v) => SqlValue::Int(v),
                ValueRef::Real(v) => SqlValue::Real(v),
                ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(_) => return Err("a blob in a result".into()),
            };
            values.push(to_json(col.ty, v));
        }
        out.push(values);
    }
    Ok(out)
}

#[derive(Debug)]
pub struct Case {
    pub name: String,
    pub line: usize,
    pub query: String,
    /// `Name:type` of each expected column.
    pub columns: Vec<(String, String)>,
    pub rows: Vec<Vec<Value>>,
}

/// The corpus format: `# name` starts a case, the query follows, a line `> Col:type …`
/// gives the columns, then one JSON array per expected row. Blank lines and `--` comment
/// lines between cases are ignored.
pub fn corpus() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut cur: Option<Case> = None;
    let mut in_rows = false;
    for (i, line) in CORPUS.lines().enumerate() {
        if let Some(name) = line.strip_prefix("# ") {
            cases.extend(cur.take());
            cur = Some(Case {
                name: name.trim().to_string(),
                line: i + 1,
                query: String::new(),
                columns: Vec::new(),
                rows: Vec::new(),
            });
            in_rows = false;
            continue;
        }
        let Some(c) = cur.as_mut() else { continue };
        if let Some(cols) = line.strip_prefix("> ") {
            c.columns = cols
                .split_whitespace()
                .map(|s| {
                    let (n, t) = s.split_once(':').expect("Name:type");
                    (n.to_string(), t.to_string())
                })
                .collect();
            in_rows = true;
        } else if in_rows {
            let t = line.trim();
            if t.is_empty() || t.starts_with("--") {
                continue;
            }
            let row: Vec<Value> =
                serde_json::from_str(t).unwrap_or_else(|e| panic!("corpus line {}: {e}", i + 1));
            c.rows.push(row);
        } else {
            c.query.push_str(line);
            c.query.push('\n');
        }
    }
    cases.extend(cur);
    cases
}

/// Numbers compare by value (1 and 1.0 alike; reals to 1e-9), everything else exactly.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(1.0),
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        _ => a == b,
    }
}

fn same_rows(a: &[Vec<Value>], b: &[Vec<Value>]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)))
}

fn sorted(rows: &[Vec<Value>]) -> Vec<Vec<Value>> {
    let mut r = rows.to_vec();
    r.sort_by_key(|row| serde_json::to_string(row).unwrap_or_default());
    r
}

/// Compiles and runs every case; returns the failures (empty when all pass).
pub fn run_corpus(
    dialect: Dialect,
    mut exec: impl FnMut(&CompiledQuery) -> Result<Vec<Vec<Value>>, String>,
) -> Vec<String> {
    let catalog = Catalog::bulkhead_v1();
    let mut failures = Vec::new();
    for case in corpus() {
        let at = format!("corpus.kql:{} '{}'", case.line, case.name);
        let q = match compile(&case.query, &catalog, &options(dialect, TENANT_A)) {
            Ok(q) => q,
            Err(e) => {
                failures.push(format!(
                    "{at}: does not compile:\n{}",
                    e.render(&case.query)
                ));
                continue;
            }
        };
        let got_cols: Vec<(String, String)> = q
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.ty.name().to_string()))
            .collect();
        if got_cols != case.columns {
            failures.push(format!(
                "{at}: columns\n  expected {:?}\n  got      {got_cols:?}",
                case.columns
            ));
            continue;
        }
        let rows = match exec(&q) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{at}: fails to run: {e}"));
                continue;
            }
        };
        // A sorted query must return its rows in order; otherwise any order will do.
        let ok = if q.ordered {
            same_rows(&rows, &case.rows)
        } else {
            same_rows(&sorted(&rows), &sorted(&case.rows))
        };
        if !ok {
            let show = |r: &[Vec<Value>]| {
                r.iter()
                    .map(|row| format!("    {}", Value::Array(row.clone())))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            failures.push(format!(
                "{at} ({}):\n  expected\n{}\n  got\n{}",
                if q.ordered { "ordered" } else { "any order" },
                show(&case.rows),
                show(&rows)
            ));
        }
    }
    failures
}

/// The same store on PostgreSQL: a fresh database in the shared throwaway cluster, with the
/// same schema, views and seed. `None` when PostgreSQL is not installed (outside CI).
pub struct PgStore {
    pub rt: tokio::runtime::Runtime,
    pub client: tokio_postgres::Client,
}

impl PgStore {
    pub fn open() -> Option<PgStore> {
        let cluster = bulkhead_test_artifacts::postgres::PgCluster::shared()?;
        let conninfo = cluster.database();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let client = rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
                .await
                .expect("connect to PostgreSQL");
            tokio::spawn(conn);
            client
                .batch_execute(SCHEMA_SQL)
                .await
                .expect("schema on PostgreSQL");
            client
                .batch_execute(bulkhead_query::VIEWS_V1_SQL)
                .await
                .expect("views on PostgreSQL");
            client
                .batch_execute(SEED_SQL)
                .await
                .expect("seed on PostgreSQL");
            client
        });
        Some(PgStore { rt, client })
    }

    /// Runs a compiled query: `params[n - 1]` binds `$n`; every output column has the
    /// canonical PostgreSQL type of its language type (the compiler casts them).
    pub fn run(&self, q: &CompiledQuery) -> Result<Vec<Vec<Value>>, String> {
        use bulkhead_query::Type;
        use tokio_postgres::types::ToSql;
        let params: Vec<Box<dyn ToSql + Sync>> = q
            .params
            .iter()
            .map(|p| -> Box<dyn ToSql + Sync> {
                match p {
                    Param::Int(v) => Box::new(*v),
                    Param::Real(v) => Box::new(*v),
                    Param::Text(v) => Box::new(v.clone()),
                    Param::Bool(v) => Box::new(*v),
                }
            })
            .collect();
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|b| b.as_ref()).collect();
        let rows = self
            .rt
            .block_on(self.client.query(&q.sql, &refs))
            .map_err(|e| {
                let detail = e
                    .as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_default();
                format!("{e}: {detail}\nSQL: {}", q.sql)
            })?;
        let mut out = Vec::new();
        for row in rows {
            let mut values = Vec::new();
            for (i, col) in q.columns.iter().enumerate() {
                let get_err = |e: tokio_postgres::Error| format!("column {i}: {e}");
                let v = match col.ty {
                    Type::Long | Type::Datetime | Type::Timespan => row
                        .try_get::<_, Option<i64>>(i)
                        .map_err(get_err)?
                        .map_or(SqlValue::Null, SqlValue::Int),
                    Type::Real => row
                        .try_get::<_, Option<f64>>(i)
                        .map_err(get_err)?
                        .map_or(SqlValue::Null, SqlValue::Real),
                    Type::Bool => row
                        .try_get::<_, Option<bool>>(i)
                        .map_err(get_err)?
                        .map_or(SqlValue::Null, SqlValue::Bool),
                    Type::String | Type::Dynamic => row
                        .try_get::<_, Option<String>>(i)
                        .map_err(get_err)?
                        .map_or(SqlValue::Null, SqlValue::Text),
                };
                values.push(to_json(col.ty, v));
            }
            out.push(values);
        }
        Ok(out)
    }
}

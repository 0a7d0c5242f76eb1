//! One SQL execution layer over SQLite and PostgreSQL.
//!
//! Statements are written once with `$1, $2…` placeholders. PostgreSQL understands them
//! natively; SQLite treats `$1` as a *named* parameter, so `bind_sqlite` binds each of a
//! statement's parameters by its name. Values cross the boundary as [`Value`] (null,
//! 64-bit integer, double, text): the types the schema uses, the same on both sides.
//!
//! Store logic is written once as `async fn(&mut dyn Tx, …)`. On PostgreSQL it runs on the
//! tokio runtime inside a pooled connection's transaction. On SQLite it runs inside
//! `spawn_blocking` on the one writer connection (or a reader): rusqlite is synchronous,
//! so the `Tx` futures complete without ever waiting, and a trivial executor drives them
//! there. That keeps the runtime's threads free while SQLite works or waits for its lock.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};
use tokio_postgres::{Client, IsolationLevel, NoTls, Statement};

use crate::{Error, Result, StoreConfig};

/// The two databases. Dialect differences (DDL types, `FOR UPDATE SKIP LOCKED`, a string
/// search function) are decided on this and nowhere else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A value bound to or read from a statement.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}
impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Real(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Int(i64::from(v))
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::Text(v.clone())
    }
}
/// A compiled query's parameter. Booleans become 0/1: SQLite has no other form, and on
/// PostgreSQL the compiler casts the placeholder (`$2::BOOLEAN`), to which an integer
/// binds as a bool.
impl From<&bulkhead_query::Param> for Value {
    fn from(p: &bulkhead_query::Param) -> Value {
        match p {
            bulkhead_query::Param::Int(v) => Value::Int(*v),
            bulkhead_query::Param::Real(v) => Value::Real(*v),
            bulkhead_query::Param::Text(v) => Value::Text(v.clone()),
            bulkhead_query::Param::Bool(v) => Value::Int(i64::from(*v)),
        }
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

/// One result row.
#[derive(Clone, Debug, PartialEq)]
pub struct Row(pub Vec<Value>);

impl Row {
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn get(&self, i: usize) -> Result<&Value> {
        self.0.get(i).ok_or_else(|| {
            Error::Db(format!(
                "result column {i} missing (row has {})",
                self.0.len()
            ))
        })
    }
    /// An integer column (not null).
    pub fn int(&self, i: usize) -> Result<i64> {
        self.opt_int(i)?.ok_or_else(|| {
            Error::Db(format!(
                "result column {i}: null where an integer was expected"
            ))
        })
    }
    pub fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        match self.get(i)? {
            Value::Null => Ok(None),
            Value::Int(v) => Ok(Some(*v)),
            other => Err(Error::Db(format!(
                "result column {i}: {other:?} where an integer was expected"
            ))),
        }
    }
    /// A text column (not null).
    pub fn text(&self, i: usize) -> Result<String> {
        self.opt_text(i)?
            .ok_or_else(|| Error::Db(format!("result column {i}: null where text was expected")))
    }
    pub fn opt_text(&self, i: usize) -> Result<Option<String>> {
        match self.get(i)? {
            Value::Null => Ok(None),
            Value::Text(v) => Ok(Some(v.clone())),
            other => Err(Error::Db(format!(
                "result column {i}: {other:?} where text was expected"
            ))),
        }
    }
    pub fn opt_real(&self, i: usize) -> Result<Option<f64>> {
        match self.get(i)? {
            Value::Null => Ok(None),
            Value::Real(v) => Ok(Some(*v)),
            // SQLite stores a REAL that has an integral value as written; be lenient.
            Value::Int(v) => Ok(Some(*v as f64)),
            other => Err(Error::Db(format!(
                "result column {i}: {other:?} where a number was expected"
            ))),
        }
    }
    /// A text column parsed with `FromStr` (the enums stored as words).
    /// A non-negative count column.
    pub fn count(&self, i: usize) -> Result<usize> {
        let n = self.int(i)?;
        usize::try_from(n).map_err(|_| Error::Db(format!("result column {i}: count {n}")))
    }
    pub fn parsed<T>(&self, i: usize) -> Result<T>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        self.text(i)?
            .parse()
            .map_err(|e: T::Err| Error::Db(format!("result column {i}: {e}")))
    }
    pub fn opt_parsed<T>(&self, i: usize) -> Result<Option<T>>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        self.opt_text(i)?
            .map(|s| {
                s.parse()
                    .map_err(|e: T::Err| Error::Db(format!("result column {i}: {e}")))
            })
            .transpose()
    }
}

/// Limits of [`crate::Store::query`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QueryLimits {
    pub max_rows: usize,
    /// How long the query may take, counted from `since`.
    pub timeout: Duration,
    /// When the time started: the service passes the request's arrival, so that waiting
    /// for a connection counts too. `None`: when the store is called.
    pub since: Option<Instant>,
    /// The most bytes the rows may hold (text bytes, and 8 per other value): a result that
    /// grows past it is stopped ([`Error::ResultTooLarge`]) as it is read, so it never sits
    /// in memory whole.
    pub max_result_bytes: usize,
    /// The longest single value, in bytes ([`Error::ValueTooLarge`]): SQLite's
    /// `SQLITE_LIMIT_LENGTH` on the query connections; on PostgreSQL the compiled query
    /// checks its text outputs itself (`bulkhead_value_limit`, migration 2).
    pub max_value_bytes: usize,
}

/// `[query] max_result_bytes` by default: 4 MiB, far above a screenful and far below what
/// would strain the service.
pub const DEFAULT_MAX_RESULT_BYTES: usize = 4 << 20;
/// `[query] max_value_bytes` by default: 1 MiB, far above any stored value (a digest, a
/// tag list, an error message).
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1 << 20;

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            max_rows: 10_000,
            timeout: Duration::from_secs(10),
            since: None,
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
        }
    }
}

impl QueryLimits {
    /// When the query must be done.
    pub fn deadline(&self) -> Instant {
        self.since.unwrap_or_else(Instant::now) + self.timeout
    }
}

/// What a value costs against [`QueryLimits::max_result_bytes`].
fn value_bytes(v: &Value) -> usize {
    match v {
        Value::Text(t) => t.len().saturating_add(2),
        _ => 8,
    }
}

/// Counts a result's bytes as its rows are read.
struct ResultBudget {
    used: usize,
    max: usize,
}

impl ResultBudget {
    fn new(max: usize) -> ResultBudget {
        ResultBudget { used: 0, max }
    }
    fn add(&mut self, row: &[Value]) -> Result<()> {
        for v in row {
            self.used = self.used.saturating_add(value_bytes(v));
        }
        if self.used > self.max {
            return Err(Error::ResultTooLarge(self.max));
        }
        Ok(())
    }
}

/// What [`crate::Store::query`] returns.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    /// More rows than `max_rows` were available; `rows` holds the first `max_rows`.
    pub truncated: bool,
}

/// A transaction. Every store operation is an `async fn(&mut dyn Tx, …)`.
#[async_trait]
pub(crate) trait Tx: Send {
    fn dialect(&self) -> Dialect;
    /// Runs a statement and returns its rows (also for `INSERT … RETURNING`).
    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>>;
    /// Runs a statement that returns no rows; the number of rows it changed.
    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64>;
    /// Runs several statements without parameters (DDL).
    async fn batch(&mut self, sql: &str) -> Result<()>;

    async fn query_opt(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }
    async fn query_one(&mut self, sql: &str, params: &[Value]) -> Result<Row> {
        self.query_opt(sql, params)
            .await?
            .ok_or_else(|| Error::Db(format!("no row returned by: {}", short(sql))))
    }
}

pub(crate) type TxFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// The first line of a statement, for error messages.
fn short(sql: &str) -> String {
    let one: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.len() > 100 {
        let mut end = 100;
        while !one.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &one[..end])
    } else {
        one
    }
}

// ---------------------------------------------------------------------------------------
// The database handle.

#[derive(Clone)]
pub(crate) enum Db {
    Sqlite(Arc<SqliteDb>, Arc<Semaphore>),
    Postgres(Arc<PgPool>, Arc<Semaphore>),
}

pub(crate) struct SqliteDb {
    /// Every write, serialised here and by `BEGIN IMMEDIATE` against other processes.
    writer: Mutex<Connection>,
    /// Reads of the API (WAL: they do not wait for the writer).
    reader: Mutex<Connection>,
    /// `Store::query`'s connections, idle ones: each query takes one of its own (opened
    /// when none is idle), so a slow query holds neither the writer, the API's reads nor
    /// another query. At most [`QUERY_CONNECTIONS`] are in use at once.
    queries: Mutex<Vec<Connection>>,
    path: PathBuf,
}

const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
const PG_POOL_SIZE: usize = 8;

/// The most `Store::query` statements running at once, on either store; more wait (their
/// deadline counting). On PostgreSQL they share the pool of [`PG_POOL_SIZE`], of which this
/// leaves half to the workers and the API.
pub const QUERY_CONNECTIONS: usize = 4;

impl Db {
    pub(crate) async fn open(config: &StoreConfig) -> Result<Db> {
        match config {
            StoreConfig::Sqlite { path } => {
                let path = path.clone();
                let db = tokio::task::spawn_blocking(move || SqliteDb::open(&path))
                    .await
                    .map_err(|e| Error::Db(format!("opening the SQLite store: {e}")))??;
                Ok(Db::Sqlite(
                    Arc::new(db),
                    Arc::new(Semaphore::new(QUERY_CONNECTIONS)),
                ))
            }
            StoreConfig::Postgres { url } => {
                let config: tokio_postgres::Config = url
                    .parse()
                    .map_err(|e| Error::Db(format!("PostgreSQL connection string: {e}")))?;
                let pool = Arc::new(PgPool {
                    config,
                    idle: Mutex::new(Vec::new()),
                    permits: Arc::new(Semaphore::new(PG_POOL_SIZE)),
                });
                // Connect once now so that a wrong URL fails at start, not at the first push.
                drop(pool.get().await?);
                Ok(Db::Postgres(
                    pool,
                    Arc::new(Semaphore::new(QUERY_CONNECTIONS)),
                ))
            }
        }
    }

    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Db::Sqlite(..) => Dialect::Sqlite,
            Db::Postgres(..) => Dialect::Postgres,
        }
    }

    /// Runs `f` in a write transaction, committed when it returns `Ok`.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a mut dyn Tx) -> TxFuture<'a, T> + Send + 'static,
    {
        self.run(true, f).await
    }

    /// Runs `f` in a read-only transaction (one snapshot for all its statements).
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a mut dyn Tx) -> TxFuture<'a, T> + Send + 'static,
    {
        self.run(false, f).await
    }

    async fn run<T, F>(&self, write: bool, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a mut dyn Tx) -> TxFuture<'a, T> + Send + 'static,
    {
        match self {
            Db::Sqlite(db, _) => {
                let db = db.clone();
                tokio::task::spawn_blocking(move || {
                    let conn = if write { &db.writer } else { &db.reader };
                    let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
                    sqlite_transaction(&mut conn, write, f)
                })
                .await
                .map_err(|e| Error::Db(format!("store task failed: {e}")))?
            }
            Db::Postgres(pool, _) => {
                let mut lease = pool.get().await?;
                let conn = lease.conn()?;
                let builder = conn.client.build_transaction();
                let builder = if write {
                    builder
                } else {
                    // Read-only REPEATABLE READ: one snapshot (a page and its details agree)
                    // and, being read-only, never a serialisation failure.
                    builder
                        .read_only(true)
                        .isolation_level(IsolationLevel::RepeatableRead)
                };
                let t = builder.start().await.map_err(|e| pg_error(e, "BEGIN"))?;
                let mut tx = PgTx {
                    tx: &t,
                    cache: &mut conn.cache,
                };
                match f(&mut tx).await {
                    Ok(v) => {
                        t.commit().await.map_err(|e| pg_error(e, "COMMIT"))?;
                        Ok(v)
                    }
                    Err(e) => {
                        // The error is what matters; a failed rollback closes the connection,
                        // which the pool then drops.
                        let _ = t.rollback().await;
                        Err(e)
                    }
                }
            }
        }
    }

    /// [`crate::Store::query`].
    pub(crate) async fn query(
        &self,
        sql: &str,
        params: &[Value],
        limits: QueryLimits,
    ) -> Result<QueryResult> {
        let deadline = limits.deadline();
        let slots = match self {
            Db::Sqlite(_, slots) | Db::Postgres(_, slots) => slots.clone(),
        };
        // Waiting for a slot counts against the deadline: a query that cannot start in
        // time is a timeout, not a wait without end.
        let permit = tokio::time::timeout_at(deadline.into(), slots.acquire_owned())
            .await
            .map_err(|_| Error::Timeout(limits.timeout))?
            .map_err(|e| Error::Db(format!("query slots closed: {e}")))?;
        // A slot that was free at once is taken even past the deadline (the timer is
        // checked after the wait): the time may have run out before the call.
        if Instant::now() >= deadline {
            return Err(Error::Timeout(limits.timeout));
        }
        match self {
            Db::Sqlite(db, _) => {
                let db = db.clone();
                let (sql, params) = (sql.to_string(), params.to_vec());
                tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    let mut conn = db.query_connection()?;
                    let result = sqlite_user_query(&mut conn, &sql, &params, limits, deadline);
                    db.give_back(conn);
                    result
                })
                .await
                .map_err(|e| Error::Db(format!("query task failed: {e}")))?
            }
            Db::Postgres(pool, _) => {
                let result = tokio::time::timeout_at(
                    deadline.into(),
                    pg_user_query(pool, sql, params, limits, deadline),
                )
                .await
                .unwrap_or(Err(Error::Timeout(limits.timeout)));
                drop(permit);
                result
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// SQLite.

impl SqliteDb {
    fn open(path: &Path) -> Result<SqliteDb> {
        let err = |e: rusqlite::Error| Error::Db(format!("{}: {e}", path.display()));
        let writer = Connection::open(path).map_err(err)?;
        writer.busy_timeout(SQLITE_BUSY_TIMEOUT).map_err(err)?;
        // WAL: readers do not block the writer nor it them. NORMAL is durable across an
        // application crash (a power loss may lose the last transactions, not corrupt).
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
            )
            .map_err(err)?;
        writer.set_prepared_statement_cache_capacity(128);
        let reader = || -> Result<Connection> {
            let c = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(err)?;
            c.busy_timeout(SQLITE_BUSY_TIMEOUT).map_err(err)?;
            c.set_prepared_statement_cache_capacity(64);
            Ok(c)
        };
        let db = SqliteDb {
            writer: Mutex::new(writer),
            reader: Mutex::new(reader()?),
            queries: Mutex::new(Vec::new()),
            path: path.to_path_buf(),
        };
        // One now, so that a store that cannot open one fails at start.
        let first = db.open_query_connection()?;
        db.give_back(first);
        Ok(db)
    }

    /// A read-only connection for compiled queries.
    fn open_query_connection(&self) -> Result<Connection> {
        let err = |e: rusqlite::Error| Error::Db(format!("{}: {e}", self.path.display()));
        let mut query = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        query.busy_timeout(SQLITE_BUSY_TIMEOUT).map_err(err)?;
        // Compiled queries only read. A read-only connection already refuses writes, and
        // `stmt.readonly()` refuses writing statements, but ATTACH counts as "read-only"
        // for SQLite: allow exactly what a SELECT needs.
        query
            .authorizer(Some(|ctx: AuthContext<'_>| match ctx.action {
                AuthAction::Select
                | AuthAction::Read { .. }
                | AuthAction::Function { .. }
                | AuthAction::Recursive
                | AuthAction::Transaction { .. } => Authorization::Allow,
                _ => Authorization::Deny,
            }))
            .map_err(err)?;
        register_regexp(&query).map_err(err)?;
        Ok(query)
    }

    /// An idle query connection, or a new one.
    fn query_connection(&self) -> Result<Connection> {
        let idle = self
            .queries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match idle {
            Some(c) => Ok(c),
            None => self.open_query_connection(),
        }
    }

    /// Keeps a query connection for the next query (at most [`QUERY_CONNECTIONS`] idle).
    fn give_back(&self, conn: Connection) {
        let mut idle = self.queries.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < QUERY_CONNECTIONS {
            idle.push(conn);
        }
    }
}

/// `regexp(pattern, text)`, which the query language's SQL calls on SQLite for `has` and
/// `matches regex` (SQLite has no regular expressions of its own). Backed by the
/// compiler's [`bulkhead_query::QueryRegex`]: the same engine and size limits that checked
/// the pattern at compile time, and linear-time matching, so a pattern cannot make a query
/// run away. The compiled pattern is kept as SQLite auxiliary data, i.e. built once per
/// statement rather than once per row. Null (or non-text) text never matches.
fn register_regexp(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "regexp",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let re = ctx.get_or_create_aux(0, |pattern| -> std::result::Result<_, String> {
                let pattern = pattern
                    .as_str()
                    .map_err(|e| format!("regexp: the pattern is not text: {e}"))?;
                bulkhead_query::QueryRegex::new(pattern)
                    .map_err(|e| format!("regexp: invalid pattern: {e}"))
            })?;
            Ok(match ctx.get_raw(1) {
                ValueRef::Text(t) => std::str::from_utf8(t).is_ok_and(|t| re.is_match(t)),
                _ => false,
            })
        },
    )
}

fn sqlite_error(e: rusqlite::Error, sql: &str) -> Error {
    if let rusqlite::Error::SqliteFailure(f, _) = &e
        && f.code == rusqlite::ErrorCode::ConstraintViolation
        && matches!(
            f.extended_code,
            rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
        )
    {
        return Error::Conflict(e.to_string());
    }
    Error::Db(format!("{e} (in: {})", short(sql)))
}

fn sqlite_transaction<T, F>(conn: &mut Connection, write: bool, f: F) -> Result<T>
where
    F: for<'a> FnOnce(&'a mut dyn Tx) -> TxFuture<'a, T>,
{
    // A task that panicked mid-transaction leaves it open (the mutex is then poisoned,
    // which we ignore): roll it back first.
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    // IMMEDIATE takes the write lock now: no deadlock-prone upgrade from a read lock, and
    // the busy timeout applies to the whole transaction's wait.
    let begin = if write { "BEGIN IMMEDIATE" } else { "BEGIN" };
    conn.execute_batch(begin)
        .map_err(|e| sqlite_error(e, begin))?;
    let mut tx = SqliteTx { conn: &mut *conn };
    let result = futures::executor::block_on(f(&mut tx));
    match result {
        Ok(v) => {
            if let Err(e) = conn.execute_batch("COMMIT") {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(sqlite_error(e, "COMMIT"));
            }
            Ok(v)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

struct SqliteTx<'c> {
    // `&mut`, not `&`: a `Connection` is `Send` but not `Sync`, and the transaction's
    // futures must be `Send`.
    conn: &'c mut Connection,
}

/// Binds `params` to the statement's `$n` parameters by name.
fn bind_sqlite(stmt: &mut rusqlite::Statement<'_>, params: &[Value]) -> rusqlite::Result<()> {
    for idx in 1..=stmt.parameter_count() {
        let name = stmt.parameter_name(idx).unwrap_or("?");
        let n = name
            .strip_prefix('$')
            .and_then(|d| d.parse::<usize>().ok())
            .filter(|n| (1..=params.len()).contains(n))
            .ok_or_else(|| {
                rusqlite::Error::InvalidParameterName(format!(
                    "{name} (the statement must use $1…${} only)",
                    params.len()
                ))
            })?;
        stmt.raw_bind_parameter(idx, &params[n - 1])?;
    }
    Ok(())
}

fn sqlite_value(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(r) => Value::Real(r),
        ValueRef::Text(t) | ValueRef::Blob(t) => {
            Value::Text(String::from_utf8_lossy(t).into_owned())
        }
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(*i),
            Value::Real(r) => ValueRef::Real(*r),
            Value::Text(t) => ValueRef::Text(t.as_bytes()),
        }))
    }
}

fn sqlite_rows(conn: &Connection, sql: &str, params: &[Value]) -> rusqlite::Result<Vec<Row>> {
    let mut stmt = conn.prepare_cached(sql)?;
    bind_sqlite(&mut stmt, params)?;
    let n = stmt.column_count();
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut row = Vec::with_capacity(n);
        for i in 0..n {
            row.push(sqlite_value(r.get_ref(i)?));
        }
        out.push(Row(row));
    }
    Ok(out)
}

#[async_trait]
impl Tx for SqliteTx<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }
    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        sqlite_rows(self.conn, sql, params).map_err(|e| sqlite_error(e, sql))
    }
    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        let run = || -> rusqlite::Result<usize> {
            let mut stmt = self.conn.prepare_cached(sql)?;
            bind_sqlite(&mut stmt, params)?;
            stmt.raw_execute()
        };
        run().map(|n| n as u64).map_err(|e| sqlite_error(e, sql))
    }
    async fn batch(&mut self, sql: &str) -> Result<()> {
        self.conn
            .execute_batch(sql)
            .map_err(|e| sqlite_error(e, sql))
    }
}

fn sqlite_user_query(
    conn: &mut Connection,
    sql: &str,
    params: &[Value],
    limits: QueryLimits,
    deadline: Instant,
) -> Result<QueryResult> {
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    // No string or blob the statement builds may be longer than the value limit: SQLite
    // itself refuses it (SQLITE_TOOBIG) before it is built, e.g. a `strcat` doubling
    // a column twelve times over. Set per query, as the limit is the caller's.
    let max_value = i32::try_from(limits.max_value_bytes).unwrap_or(i32::MAX);
    conn.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH, max_value)
        .map_err(|e| Error::Db(format!("setting the query's value limit: {e}")))?;
    // Called every 1000 virtual-machine instructions: returning true interrupts the
    // statement with SQLITE_INTERRUPT, which is how a runaway recursive CTE ends.
    conn.progress_handler(1000, Some(move || Instant::now() >= deadline))
        .map_err(|e| Error::Db(format!("installing the query deadline: {e}")))?;
    let mut budget = ResultBudget::new(limits.max_result_bytes);
    let result = (|| -> rusqlite::Result<Result<QueryResult>> {
        conn.execute_batch("BEGIN")?;
        let mut stmt = conn.prepare(sql)?;
        if !stmt.readonly() {
            return Ok(Err(Error::Query(
                "the statement is not read-only".to_string(),
            )));
        }
        bind_sqlite(&mut stmt, params)?;
        let columns: Vec<String> = stmt.column_names().map(|c| c.to_string()).collect();
        let n = columns.len();
        let mut rows = stmt.raw_query();
        let mut out = Vec::new();
        let mut truncated = false;
        while let Some(r) = rows.next()? {
            if out.len() == limits.max_rows {
                truncated = true;
                break;
            }
            let mut row = Vec::with_capacity(n);
            for i in 0..n {
                row.push(sqlite_value(r.get_ref(i)?));
            }
            if let Err(e) = budget.add(&row) {
                return Ok(Err(e));
            }
            out.push(row);
        }
        Ok(Ok(QueryResult {
            columns,
            rows: out,
            truncated,
        }))
    })();
    // Should removing fail, the next query replaces the handler with its own deadline.
    let _ = conn.progress_handler(0, None::<fn() -> bool>);
    let _ = conn.execute_batch("ROLLBACK");
    match result {
        Ok(r) => r,
        Err(rusqlite::Error::SqliteFailure(f, _))
            if f.code == rusqlite::ErrorCode::OperationInterrupted =>
        {
            Err(Error::Timeout(limits.timeout))
        }
        Err(rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ErrorCode::TooBig => {
            Err(Error::ValueTooLarge(limits.max_value_bytes))
        }
        Err(e) => Err(Error::Query(e.to_string())),
    }
}

// ---------------------------------------------------------------------------------------
// PostgreSQL.

/// A small connection pool: at most [`PG_POOL_SIZE`] connections, idle ones reused, closed
/// ones dropped. Each connection keeps its prepared statements.
pub(crate) struct PgPool {
    config: tokio_postgres::Config,
    idle: Mutex<Vec<PgConn>>,
    permits: Arc<Semaphore>,
}

struct PgConn {
    client: Client,
    cache: HashMap<String, Statement>,
}

struct PgLease {
    conn: Option<PgConn>,
    pool: Arc<PgPool>,
    _permit: OwnedSemaphorePermit,
}

impl PgLease {
    fn conn(&mut self) -> Result<&mut PgConn> {
        // Some from `get` until `drop` takes it.
        self.conn
            .as_mut()
            .ok_or_else(|| Error::Db("pooled connection used after release".to_string()))
    }
}

impl Drop for PgLease {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && !conn.client.is_closed()
        {
            self.pool
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(conn);
        }
    }
}

impl PgPool {
    async fn get(self: &Arc<Self>) -> Result<PgLease> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| Error::Db(format!("connection pool closed: {e}")))?;
        let reused = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            let mut found = None;
            while let Some(c) = idle.pop() {
                if !c.client.is_closed() {
                    found = Some(c);
                    break;
                }
            }
            found
        };
        let conn = match reused {
            Some(c) => c,
            None => {
                let (client, connection) = self
                    .config
                    .connect(NoTls)
                    .await
                    .map_err(|e| pg_error(e, "connect"))?;
                // The connection object does the I/O; it ends when the client is dropped.
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                PgConn {
                    client,
                    cache: HashMap::new(),
                }
            }
        };
        Ok(PgLease {
            conn: Some(conn),
            pool: self.clone(),
            _permit: permit,
        })
    }
}

fn pg_error(e: tokio_postgres::Error, sql: &str) -> Error {
    if let Some(db) = e.as_db_error() {
        if *db.code() == tokio_postgres::error::SqlState::UNIQUE_VIOLATION {
            return Error::Conflict(db.message().to_string());
        }
        let detail = db.detail().map(|d| format!(" ({d})")).unwrap_or_default();
        return Error::Db(format!("{}{detail} (in: {})", db.message(), short(sql)));
    }
    let source = std::error::Error::source(&e)
        .map(|s| format!(": {s}"))
        .unwrap_or_default();
    Error::Db(format!("{e}{source} (in: {})", short(sql)))
}

struct PgTx<'a, 'c> {
    tx: &'a tokio_postgres::Transaction<'c>,
    cache: &'a mut HashMap<String, Statement>,
}

impl PgTx<'_, '_> {
    async fn statement(&mut self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.cache.get(sql) {
            return Ok(s.clone());
        }
        let s = self.tx.prepare(sql).await.map_err(|e| pg_error(e, sql))?;
        // Multi-row INSERTs vary in their row count: keep the cache bounded.
        if self.cache.len() >= 256 {
            self.cache.clear();
        }
        self.cache.insert(sql.to_string(), s.clone());
        Ok(s)
    }
}

fn pg_params(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

fn pg_row(row: &tokio_postgres::Row) -> std::result::Result<Row, tokio_postgres::Error> {
    let mut out = Vec::with_capacity(row.len());
    for i in 0..row.len() {
        out.push(row.try_get::<_, Value>(i)?);
    }
    Ok(Row(out))
}

#[async_trait]
impl Tx for PgTx<'_, '_> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }
    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        let stmt = self.statement(sql).await?;
        let rows = self
            .tx
            .query(&stmt, &pg_params(params))
            .await
            .map_err(|e| pg_error(e, sql))?;
        rows.iter()
            .map(|r| pg_row(r).map_err(|e| pg_error(e, sql)))
            .collect()
    }
    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        let stmt = self.statement(sql).await?;
        self.tx
            .execute(&stmt, &pg_params(params))
            .await
            .map_err(|e| pg_error(e, sql))
    }
    async fn batch(&mut self, sql: &str) -> Result<()> {
        self.tx
            .batch_execute(sql)
            .await
            .map_err(|e| pg_error(e, sql))
    }
}

async fn pg_user_query(
    pool: &Arc<PgPool>,
    sql: &str,
    params: &[Value],
    limits: QueryLimits,
    deadline: Instant,
) -> Result<QueryResult> {
    let mut lease = pool.get().await?;
    let conn = lease.conn()?;
    let t = conn
        .client
        .build_transaction()
        .read_only(true)
        .isolation_level(IsolationLevel::RepeatableRead)
        .start()
        .await
        .map_err(|e| pg_error(e, "BEGIN"))?;
    // What is left of the deadline once a connection is ours.
    let left = deadline.saturating_duration_since(Instant::now());
    let ms = left.as_millis().clamp(1, i32::MAX as u128);
    t.batch_execute(&format!("SET LOCAL statement_timeout = {ms}"))
        .await
        .map_err(|e| pg_error(e, "SET LOCAL statement_timeout"))?;
    let user_err = |e: tokio_postgres::Error| -> Error {
        match e.as_db_error() {
            Some(db) if *db.code() == tokio_postgres::error::SqlState::QUERY_CANCELED => {
                Error::Timeout(limits.timeout)
            }
            // `bulkhead_value_limit` (migration 2), which the compiled query calls on its
            // text outputs; also PostgreSQL's own "value too large" errors.
            Some(db) if *db.code() == tokio_postgres::error::SqlState::PROGRAM_LIMIT_EXCEEDED => {
                Error::ValueTooLarge(limits.max_value_bytes)
            }
            Some(db) => Error::Query(db.message().to_string()),
            None => pg_error(e, "query"),
        }
    };
    let stmt = t.prepare(sql).await.map_err(user_err)?;
    let columns: Vec<String> = stmt
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    // A portal is read in batches, so that the rows in memory stay near the result
    // limit: a batch holds at most about `max_result_bytes` even if every value is as
    // long as a value may be. At most `max_rows + 1` rows are ever fetched: the rest is
    // never computed.
    let portal = t.bind(&stmt, &pg_params(params)).await.map_err(user_err)?;
    let widest_row = limits
        .max_value_bytes
        .saturating_mul(columns.len().max(1))
        .max(1);
    let batch = (limits.max_result_bytes / widest_row).clamp(1, 1000);
    let mut budget = ResultBudget::new(limits.max_result_bytes);
    let mut out = Vec::new();
    let mut truncated = false;
    'fetch: loop {
        let want = limits
            .max_rows
            .saturating_add(1)
            .saturating_sub(out.len())
            .min(batch);
        let fetch = i32::try_from(want).unwrap_or(i32::MAX);
        let rows = t.query_portal(&portal, fetch).await.map_err(user_err)?;
        let done = rows.len() < want;
        for r in &rows {
            if out.len() == limits.max_rows {
                truncated = true;
                break 'fetch;
            }
            let row = pg_row(r)
                .map_err(|e| {
                    Error::Query(format!(
                        "{e}: {}",
                        std::error::Error::source(&e)
                            .map(|s| s.to_string())
                            .unwrap_or_default()
                    ))
                })?
                .0;
            budget.add(&row)?;
            out.push(row);
        }
        if done {
            break;
        }
    }
    let _ = t.rollback().await;
    Ok(QueryResult {
        columns,
        rows: out,
        truncated,
    })
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, BoxError> {
        // PostgreSQL infers each parameter's type from the statement; a Value adapts to it
        // (an integer bound where `int4` or `float8` or text was inferred, …).
        let text_like = matches!(
            *ty,
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN
        );
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) => match *ty {
                Type::INT8 => v.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                Type::FLOAT8 => (*v as f64).to_sql(ty, out),
                Type::FLOAT4 => (*v as f32).to_sql(ty, out),
                Type::BOOL => (*v != 0).to_sql(ty, out),
                Type::NUMERIC => {
                    numeric::encode(&v.to_string(), out)?;
                    Ok(IsNull::No)
                }
                _ if text_like => v.to_string().as_str().to_sql(ty, out),
                _ => Err(format!("cannot bind the integer {v} to a parameter of type {ty}").into()),
            },
            Value::Real(v) => match *ty {
                Type::FLOAT8 => v.to_sql(ty, out),
                Type::FLOAT4 => (*v as f32).to_sql(ty, out),
                Type::NUMERIC => {
                    numeric::encode(&format!("{v}"), out)?;
                    Ok(IsNull::No)
                }
                _ if text_like => v.to_string().as_str().to_sql(ty, out),
                _ => Err(format!("cannot bind the number {v} to a parameter of type {ty}").into()),
            },
            Value::Text(s) => match *ty {
                Type::JSON => {
                    out.extend_from_slice(s.as_bytes());
                    Ok(IsNull::No)
                }
                Type::JSONB => {
                    out.extend_from_slice(&[1]);
                    out.extend_from_slice(s.as_bytes());
                    Ok(IsNull::No)
                }
                _ if text_like => s.as_str().to_sql(ty, out),
                _ => Err(format!("cannot bind text to a parameter of type {ty}").into()),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> std::result::Result<Value, BoxError> {
        Ok(match *ty {
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Int(i64::from(i32::from_sql(ty, raw)?)),
            Type::INT2 => Value::Int(i64::from(i16::from_sql(ty, raw)?)),
            Type::OID => Value::Int(i64::from(u32::from_sql(ty, raw)?)),
            Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => Value::Real(f64::from(f32::from_sql(ty, raw)?)),
            Type::BOOL => Value::Int(i64::from(bool::from_sql(ty, raw)?)),
            Type::NUMERIC => numeric::decode(raw)?,
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                Value::Text(<&str>::from_sql(ty, raw)?.to_string())
            }
            Type::JSON => Value::Text(std::str::from_utf8(raw)?.to_string()),
            Type::JSONB => match raw.split_first() {
                Some((1, rest)) => Value::Text(std::str::from_utf8(rest)?.to_string()),
                _ => return Err("unsupported jsonb version".into()),
            },
            _ => return Err(format!("unsupported result type {ty}").into()),
        })
    }

    fn from_sql_null(_: &Type) -> std::result::Result<Value, BoxError> {
        Ok(Value::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// PostgreSQL's binary NUMERIC: `ndigits, weight, sign, dscale` (16 bits each), then
/// `ndigits` base-10000 digits, the first worth `10000^weight`. `sum(bigint)` and `avg`
/// return it, so query results need it.
mod numeric {
    use super::{BoxError, Value};

    const NEG: u16 = 0x4000;
    const NAN: u16 = 0xC000;

    pub(super) fn decode(raw: &[u8]) -> Result<Value, BoxError> {
        let word = |i: usize| -> Result<u16, BoxError> {
            raw.get(i * 2..i * 2 + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .ok_or_else(|| "truncated numeric".into())
        };
        let ndigits = usize::from(word(0)?);
        let weight = i64::from(word(1)? as i16);
        let sign = word(2)?;
        let dscale = word(3)?;
        if sign == NAN {
            return Ok(Value::Real(f64::NAN));
        }
        let mut digits = Vec::with_capacity(ndigits);
        for i in 0..ndigits {
            let d = word(4 + i)?;
            if d >= 10000 {
                return Err("invalid numeric digit".into());
            }
            digits.push(d);
        }
        let negative = sign == NEG;
        if dscale == 0 {
            // An integer: exact when it fits in i64.
            let mut acc: Option<i128> = Some(0);
            for d in &digits {
                acc = acc.and_then(|a| a.checked_mul(10000)?.checked_add(i128::from(*d)));
            }
            let trailing = weight + 1 - ndigits as i64;
            for _ in 0..trailing.max(0) {
                acc = acc.and_then(|a| a.checked_mul(10000));
            }
            if let Some(v) = acc.map(|a| if negative { -a } else { a })
                && let Ok(v) = i64::try_from(v)
            {
                return Ok(Value::Int(v));
            }
        }
        // Otherwise through the decimal text, which f64 parses exactly-rounded.
        let mut text = String::new();
        if negative {
            text.push('-');
        }
        let lowest = (weight + 1 - ndigits as i64).min(0);
        let mut pos = weight.max(0);
        let digit_at = |p: i64| -> u16 {
            let i = weight - p;
            if i >= 0 && (i as usize) < digits.len() {
                digits[i as usize]
            } else {
                0
            }
        };
        while pos >= 0 {
            text.push_str(&format!("{:04}", digit_at(pos)));
            pos -= 1;
        }
        text.push('.');
        while pos >= lowest {
            text.push_str(&format!("{:04}", digit_at(pos)));
            pos -= 1;
        }
        text.push('0');
        Ok(Value::Real(text.parse::<f64>()?))
    }

    /// Encodes a plain decimal (`-12.5`, `3`; what `i64`/`f64` `Display` prints).
    pub(super) fn encode(text: &str, out: &mut bytes::BytesMut) -> Result<(), BoxError> {
        if text == "NaN" {
            for w in [0u16, 0, NAN, 0] {
                out.extend_from_slice(&w.to_be_bytes());
            }
            return Ok(());
        }
        let (negative, body) = match text.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, text),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        if int.is_empty() && frac.is_empty()
            || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        {
            return Err(format!("cannot encode {text:?} as numeric").into());
        }
        let dscale = u16::try_from(frac.len())?;
        let pad_int = (4 - int.len() % 4) % 4;
        let int_padded = format!("{}{int}", "0".repeat(pad_int));
        let pad_frac = (4 - frac.len() % 4) % 4;
        let frac_padded = format!("{frac}{}", "0".repeat(pad_frac));
        let group = |s: &str| -> Vec<u16> {
            s.as_bytes()
                .chunks(4)
                .map(|c| c.iter().fold(0u16, |a, b| a * 10 + u16::from(b - b'0')))
                .collect()
        };
        let int_groups = group(&int_padded);
        let mut digits: Vec<u16> = int_groups.clone();
        digits.extend(group(&frac_padded));
        let mut weight = int_groups.len() as i64 - 1;
        while digits.first() == Some(&0) {
            digits.remove(0);
            weight -= 1;
        }
        while digits.last() == Some(&0) {
            digits.pop();
        }
        if digits.is_empty() {
            weight = 0;
        }
        let sign = if negative && !digits.is_empty() {
            NEG
        } else {
            0
        };
        let header = [
            u16::try_from(digits.len())?,
            i16::try_from(weight)? as u16,
            sign,
            dscale,
        ];
        for w in header.iter().chain(digits.iter()) {
            out.extend_from_slice(&w.to_be_bytes());
        }
        Ok(())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn roundtrip(text: &str) -> Value {
            let mut b = bytes::BytesMut::new();
            encode(text, &mut b).expect("encode");
            decode(&b).expect("decode")
        }

        #[test]
        fn numeric_roundtrips() {
            assert_eq!(roundtrip("0"), Value::Int(0));
            assert_eq!(roundtrip("10000"), Value::Int(10000));
            assert_eq!(roundtrip("-123456789"), Value::Int(-123456789));
            assert_eq!(roundtrip("9223372036854775807"), Value::Int(i64::MAX));
            assert_eq!(roundtrip("12.5"), Value::Real(12.5));
            assert_eq!(roundtrip("-0.0001"), Value::Real(-0.0001));
            assert_eq!(roundtrip("123456.789"), Value::Real(123456.789));
            // Beyond i64: a real.
            assert_eq!(
                roundtrip("92233720368547758070"),
                Value::Real(9.223372036854776e19)
            );
        }

        #[test]
        fn hostile_numeric_is_an_error() {
            assert!(decode(&[0, 2, 0, 0]).is_err());
            assert!(decode(&[0, 1, 0, 0, 0, 0, 0, 0, 0xff, 0xff]).is_err());
        }
    }
}

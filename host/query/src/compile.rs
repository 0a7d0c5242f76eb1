//! Semantic check and compilation to SQL, in one pass over the parsed query.
//!
//! The shape of the output: every base table becomes
//! `(SELECT * FROM <view> WHERE tenant_id = $1)`; every operator that changes rows or
//! columns wraps the previous SQL as `SELECT … FROM (<previous>) AS tN …`; the outermost
//! SELECT lists the visible columns in order, re-applies the pipeline's sort order and adds
//! the row cap. Identifiers come from the catalog (view and column names) or are generated
//! (`tN` aliases, `cN` columns, `oN` outputs); every value from the query text is a bound
//! parameter. So the SQL text depends on the query's *shape* only, never on its strings.

use crate::ast::*;
use crate::catalog::{Catalog, Type};
use crate::error::{Error, Span, did_you_mean};
use crate::parser::{self, MAX_DEPTH};
use crate::regexp::QueryRegex;

/// The two stores' SQL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A bound parameter, `$n` in the SQL being `params[n - 1]`. SQLite binds `Bool` as an
/// integer 0/1 (rusqlite does), PostgreSQL as BOOLEAN; the SQL casts each placeholder on
/// PostgreSQL (`$2::TEXT`), so the types are never inferred.
#[derive(Clone, Debug, PartialEq)]
pub enum Param {
    Int(i64),
    Real(f64),
    Text(String),
    Bool(bool),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputColumn {
    pub name: String,
    pub ty: Type,
}

/// What [`compile`] needs besides the query.
#[derive(Clone, Debug)]
pub struct Options {
    pub dialect: Dialect,
    /// The caller's tenant: bound as `$1`, and every table reference filters on it.
    pub tenant_id: i64,
    /// "Now", in milliseconds since the epoch: `ago()` and `now()` become parameters
    /// computed from it, so a query's result is a function of its inputs (and tests are
    /// deterministic).
    pub now_ms: i64,
    /// The most rows a query may return. The SQL asks for `row_cap + 1` rows so the
    /// executor can tell "exactly the cap" from "more than the cap" ([`row_cap_message`]).
    pub row_cap: u64,
    /// The longest text value the result may hold, in bytes; `None`: no check. On
    /// PostgreSQL every text output is passed through `bulkhead_value_limit(value, max)`
    /// (the store's migration 2 defines it), which fails the query with SQLSTATE 54000
    /// rather than send a longer value. On SQLite the store sets `SQLITE_LIMIT_LENGTH`
    /// instead, which also bounds the values built along the way; nothing is added here.
    pub max_value_bytes: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct CompiledQuery {
    pub sql: String,
    pub params: Vec<Param>,
    /// The result's columns, in the order of the SQL's output columns (read them by
    /// position; the SQL's column names are generated).
    pub columns: Vec<OutputColumn>,
    /// Whether the rows come in a defined order (the query sorts, and nothing after the
    /// sort discards the order). Unordered results may come in any order.
    pub ordered: bool,
    pub row_cap: u64,
}

/// Most parameters one query may bind (both stores allow far more).
pub const MAX_PARAMS: usize = 4096;
/// Longest SQL a query may compile to. Some constructs repeat an operand (`bin()`), so
/// nesting them grows the SQL geometrically; this stops that early.
pub const MAX_SQL_BYTES: usize = 512 * 1024;
/// Longest name a query may give a column (PostgreSQL truncates identifiers at 63 bytes;
/// ours never reach SQL, but output headers should stay readable).
pub const MAX_NAME_LEN: usize = 128;

/// The message the executor shows when a query returns more than `row_cap` rows.
pub fn row_cap_message(row_cap: u64) -> String {
    format!(
        "the query returns more than {row_cap} rows: add '| take {row_cap}' (or a smaller \
         number) or narrow it with 'where', 'summarize' or 'distinct'"
    )
}

/// The message the executor shows when a result grows past its byte limit.
pub fn result_bytes_message(max_bytes: u64) -> String {
    format!(
        "the query's result is larger than {max_bytes} bytes (the service's \
         [query] max_result_bytes): project fewer or shorter columns, or take fewer rows"
    )
}

/// The message the executor shows when one value is longer than its limit.
pub fn value_bytes_message(max_bytes: u64) -> String {
    format!(
        "the query builds a value larger than {max_bytes} bytes (the service's \
         [query] max_value_bytes): build shorter strings (strcat, replace_string)"
    )
}

/// The message the executor shows when a query runs past its time limit.
pub fn timeout_message(seconds: u64) -> String {
    format!(
        "the query ran longer than {seconds} s and was stopped: narrow it with 'where' (e.g. \
         on a time column with ago()) before 'summarize', 'join' or 'sort'"
    )
}

pub(crate) const SCALAR_FUNCTIONS: &[&str] = &[
    "strlen",
    "tolower",
    "toupper",
    "substring",
    "strcat",
    "trim",
    "replace_string",
    "indexof",
    "tostring",
    "tolong",
    "toint",
    "toreal",
    "todouble",
    "iff",
    "iif",
    "case",
    "coalesce",
    "abs",
    "isnull",
    "isnotnull",
    "isempty",
    "isnotempty",
    "not",
    "now",
    "ago",
    "bin",
    "floor",
    "startofday",
    "array_length",
];

pub(crate) const AGGREGATE_FUNCTIONS: &[&str] = &[
    "count", "countif", "dcount", "min", "max", "avg", "sum", "make_set",
];

/// Names that would read as syntax if used as column names.
const RESERVED_NAMES: &[&str] = &[
    "and",
    "or",
    "by",
    "asc",
    "desc",
    "nulls",
    "on",
    "kind",
    "in",
    "has",
    "contains",
    "startswith",
    "endswith",
    "matches",
    "between",
    "true",
    "false",
];

/// Parses, checks and compiles `text` for the caller's tenant.
pub fn compile(text: &str, catalog: &Catalog, opts: &Options) -> Result<CompiledQuery, Error> {
    let query = parser::parse(text)?;
    compile_query(&query, catalog, opts)
}

/// Checks `text` against the catalog without producing SQL: the result's columns, or the
/// error a run would give.
pub fn check(text: &str, catalog: &Catalog) -> Result<Vec<OutputColumn>, Error> {
    let opts = Options {
        dialect: Dialect::Sqlite,
        tenant_id: 0,
        now_ms: 0,
        row_cap: 1,
        max_value_bytes: None,
    };
    compile(text, catalog, &opts).map(|c| c.columns)
}

pub fn compile_query(
    query: &Query,
    catalog: &Catalog,
    opts: &Options,
) -> Result<CompiledQuery, Error> {
    let mut c = Compiler {
        catalog,
        opts,
        params: Vec::new(),
        aliases: 0,
        names: 0,
    };
    // $1 is the tenant, always.
    let tenant = c.param(Param::Int(opts.tenant_id), query.table.span)?;
    debug_assert_eq!(tenant, c.placeholder(1, &Param::Int(0)));
    let rel = c.pipeline(query, 0)?;
    let t = c.alias();
    let mut items = Vec::new();
    for (i, col) in rel.cols.iter().enumerate() {
        let v = format!("{t}.{}", col.sql);
        let v = match opts.dialect {
            // On PostgreSQL every output has one canonical type per language type
            // (length() is INTEGER, sum() NUMERIC…), so the executor reads them uniformly.
            Dialect::Postgres => {
                let cast = format!("CAST({v} AS {})", pg_type(col.ty));
                match opts.max_value_bytes {
                    Some(max) if pg_type(col.ty) == "TEXT" => {
                        let max = i64::try_from(max).unwrap_or(i64::MAX);
                        let max = c.param(Param::Int(max), query.table.span)?;
                        format!("bulkhead_value_limit({cast}, {max})")
                    }
                    _ => cast,
                }
            }
            Dialect::Sqlite => v,
        };
        items.push(format!("{v} AS o{}", i + 1));
    }
    let cap = opts.row_cap.saturating_add(1).min(i64::MAX as u64) as i64;
    let cap = c.param(Param::Int(cap), query.table.span)?;
    let sql = format!(
        "SELECT {} FROM ({}) AS {t}{} LIMIT {cap}",
        items.join(", "),
        rel.sql,
        c.order_by(&t, &rel.order)
    );
    c.check_size(&sql, query.table.span)?;
    Ok(CompiledQuery {
        sql,
        params: c.params,
        columns: rel
            .cols
            .iter()
            .map(|c| OutputColumn {
                name: c.name.clone(),
                ty: c.ty,
            })
            .collect(),
        ordered: !rel.order.is_empty(),
        row_cap: opts.row_cap,
    })
}

fn pg_type(ty: Type) -> &'static str {
    match ty {
        Type::String | Type::Dynamic => "TEXT",
        Type::Long | Type::Datetime | Type::Timespan => "BIGINT",
        Type::Real => "DOUBLE PRECISION",
        Type::Bool => "BOOLEAN",
    }
}

/// A column of an intermediate result: its name in the query and its name in the SQL.
#[derive(Clone, Debug)]
struct RCol {
    name: String,
    sql: String,
    ty: Type,
}

#[derive(Clone, Debug)]
struct OrderKey {
    /// A column of the relation's SQL output (visible or not).
    sql: String,
    ty: Type,
    desc: bool,
    nulls_first: bool,
}

/// An intermediate result: a SELECT, its visible columns and its order.
#[derive(Clone, Debug)]
struct Rel {
    sql: String,
    cols: Vec<RCol>,
    order: Vec<OrderKey>,
}

/// What a name means inside an expression: SQL to reference it.
#[derive(Clone, Debug)]
struct ScopeCol {
    name: String,
    sql: String,
    ty: Type,
}

#[derive(Clone, Debug)]
struct Scope {
    cols: Vec<ScopeCol>,
}

impl Scope {
    fn of(alias: &str, cols: &[RCol]) -> Scope {
        Scope {
            cols: cols
                .iter()
                .map(|c| ScopeCol {
                    name: c.name.clone(),
                    sql: format!("{alias}.{}", c.sql),
                    ty: c.ty,
                })
                .collect(),
        }
    }
}

/// Where an expression sits with respect to aggregation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Agg {
    /// Not in summarize: aggregations are errors.
    None,
    /// The top of a summarize aggregation: aggregations allowed, bare columns not.
    Outside,
    /// Inside an aggregation's arguments: columns allowed, aggregations not.
    Inside,
}

struct Typed {
    sql: String,
    ty: Type,
}

struct Compiler<'a> {
    catalog: &'a Catalog,
    opts: &'a Options,
    params: Vec<Param>,
    aliases: usize,
    names: usize,
}

fn type_error(span: Span, msg: String) -> Error {
    Error::semantic(span, msg)
}

fn comparable(a: Type, b: Type) -> bool {
    a == b || (a.is_numeric() && b.is_numeric())
}

fn unify(a: Type, b: Type) -> Option<Type> {
    if a == b {
        Some(a)
    } else if a.is_numeric() && b.is_numeric() {
        Some(Type::Real)
    } else {
        None
    }
}

/// Escapes `%`, `_` and the escape character itself for `LIKE … ESCAPE '\'`.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Escapes a literal for a regular expression that both engines read the same way:
/// Rust's `regex` (SQLite's `regexp()`) and PostgreSQL's AREs. Both take a backslash before
/// any of these metacharacters as the character itself.
fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(
            c,
            '\\' | '.' | '+' | '*' | '?' | '(' | ')' | '|' | '[' | ']' | '{' | '}' | '^' | '$'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The pattern `has` compiles to: the term, case-insensitively, between non-alphanumeric
/// characters or the ends of the text (Kusto's "whole term" match).
pub(crate) fn has_pattern(term: &str) -> String {
    format!("(?i)(^|[^0-9A-Za-z]){}([^0-9A-Za-z]|$)", regex_escape(term))
}

fn validate_name(id: &Ident) -> Result<(), Error> {
    if id.name.len() > MAX_NAME_LEN {
        return Err(Error::limit(
            id.span,
            format!("a column name is at most {MAX_NAME_LEN} characters"),
        ));
    }
    if RESERVED_NAMES.contains(&id.name.as_str()) {
        return Err(Error::semantic(
            id.span,
            format!("'{}' is a keyword and cannot name a column", id.name),
        ));
    }
    Ok(())
}

/// `Column1`, `Column2`…: the first not taken.
fn auto_name(taken: &[String]) -> String {
    (1..)
        .map(|k| format!("Column{k}"))
        .find(|n| !taken.contains(n))
        .unwrap_or_default()
}

impl Compiler<'_> {
    fn pg(&self) -> bool {
        self.opts.dialect == Dialect::Postgres
    }

    fn placeholder(&self, n: usize, p: &Param) -> String {
        match self.opts.dialect {
            Dialect::Sqlite => format!("${n}"),
            Dialect::Postgres => {
                let ty = match p {
                    Param::Int(_) => "BIGINT",
                    Param::Real(_) => "DOUBLE PRECISION",
                    Param::Text(_) => "TEXT",
                    Param::Bool(_) => "BOOLEAN",
                };
                format!("${n}::{ty}")
            }
        }
    }

    fn param(&mut self, p: Param, span: Span) -> Result<String, Error> {
        if self.params.len() >= MAX_PARAMS {
            return Err(Error::limit(
                span,
                format!("the query has more than {MAX_PARAMS} values"),
            ));
        }
        let text = self.placeholder(self.params.len() + 1, &p);
        self.params.push(p);
        Ok(text)
    }

    fn alias(&mut self) -> String {
        self.aliases += 1;
        format!("t{}", self.aliases)
    }

    fn fresh(&mut self) -> String {
        self.names += 1;
        format!("c{}", self.names)
    }

    fn check_size(&self, sql: &str, span: Span) -> Result<(), Error> {
        if sql.len() > MAX_SQL_BYTES {
            return Err(Error::limit(
                span,
                "the query is too complex (its SQL would exceed the size limit)",
            )
            .with_hint("nest fewer functions, or split the query"));
        }
        Ok(())
    }

    /// Text-typed sort keys and comparisons use byte order on PostgreSQL too (its default
    /// collation follows the locale), so both stores order strings the same way.
    fn collate(&self, sql: &str, ty: Type) -> String {
        if self.pg() && matches!(ty, Type::String | Type::Dynamic) {
            format!("{sql} COLLATE \"C\"")
        } else {
            sql.to_string()
        }
    }

    fn order_by(&self, alias: &str, keys: &[OrderKey]) -> String {
        if keys.is_empty() {
            return String::new();
        }
        let keys: Vec<String> = keys
            .iter()
            .map(|k| {
                format!(
                    "{} {} NULLS {}",
                    self.collate(&format!("{alias}.{}", k.sql), k.ty),
                    if k.desc { "DESC" } else { "ASC" },
                    if k.nulls_first { "FIRST" } else { "LAST" }
                )
            })
            .collect();
        format!(" ORDER BY {}", keys.join(", "))
    }

    fn pipeline(&mut self, q: &Query, depth: usize) -> Result<Rel, Error> {
        if depth > 8 {
            return Err(Error::limit(q.table.span, "joins nest too deeply"));
        }
        let mut rel = self.base(&q.table)?;
        for op in &q.ops {
            rel = self.operator(rel, op, depth)?;
            self.check_size(&rel.sql, op.span)?;
        }
        Ok(rel)
    }

    fn base(&mut self, table: &Ident) -> Result<Rel, Error> {
        let Some(t) = self.catalog.table(&table.name) else {
            let hint = did_you_mean(&table.name, self.catalog.tables.iter().map(|t| t.name))
                .unwrap_or_else(|| {
                    let names: Vec<&str> = self.catalog.tables.iter().map(|t| t.name).collect();
                    format!("tables are: {}", names.join(", "))
                });
            return Err(
                Error::semantic(table.span, format!("unknown table '{}'", table.name))
                    .with_hint(hint),
            );
        };
        let tenant = self.placeholder(1, &Param::Int(0));
        Ok(Rel {
            sql: format!("SELECT * FROM {} WHERE tenant_id = {tenant}", t.view),
            cols: t
                .columns
                .iter()
                .map(|c| RCol {
                    name: c.name.to_string(),
                    sql: format!("\"{}\"", c.name),
                    ty: c.ty,
                })
                .collect(),
            order: Vec::new(),
        })
    }

    fn unknown_column(&self, name: &str, span: Span, cols: &[ScopeCol]) -> Error {
        let hint = did_you_mean(name, cols.iter().map(|c| c.name.as_str())).unwrap_or_else(|| {
            let names: Vec<&str> = cols.iter().take(30).map(|c| c.name.as_str()).collect();
            let more = if cols.len() > 30 { ", …" } else { "" };
            format!("columns here: {}{more}", names.join(", "))
        });
        Error::semantic(span, format!("unknown column '{name}'")).with_hint(hint)
    }

    fn find<'s>(&self, scope: &'s Scope, id: &Ident) -> Result<&'s ScopeCol, Error> {
        scope
            .cols
            .iter()
            .find(|c| c.name == id.name)
            .ok_or_else(|| self.unknown_column(&id.name, id.span, &scope.cols))
    }

    fn operator(&mut self, rel: Rel, op: &Op, depth: usize) -> Result<Rel, Error> {
        match &op.kind {
            OpKind::Where(cond) => {
                let t = self.alias();
                let scope = Scope::of(&t, &rel.cols);
                let c = self.expr(cond, &scope, Agg::None, 0)?;
                if c.ty != Type::Bool {
                    return Err(type_error(
                        cond.span,
                        format!("'where' needs a boolean condition; this is a {}", c.ty),
                    )
                    .with_hint("compare it, e.g. Column == 'value'"));
                }
                Ok(Rel {
                    sql: format!("SELECT * FROM ({}) AS {t} WHERE {}", rel.sql, c.sql),
                    ..rel
                })
            }
            OpKind::Project(items) => self.project(rel, items),
            OpKind::Extend(items) => self.extend(rel, items),
            OpKind::ProjectAway(names) => {
                let mut rel = rel;
                let scope = Scope::of("", &rel.cols);
                for id in names {
                    self.find(&scope, id)?;
                    rel.cols.retain(|c| c.name != id.name);
                }
                if rel.cols.is_empty() {
                    return Err(Error::semantic(
                        op.span,
                        "project-away removes every column",
                    ));
                }
                Ok(rel)
            }
            OpKind::ProjectRename(pairs) => {
                let mut rel = rel;
                for (new, old) in pairs {
                    validate_name(new)?;
                    let scope = Scope::of("", &rel.cols);
                    self.find(&scope, old)?;
                    if new.name != old.name && rel.cols.iter().any(|c| c.name == new.name) {
                        return Err(Error::semantic(
                            new.span,
                            format!("a column named '{}' already exists", new.name),
                        ));
                    }
                    for c in rel.cols.iter_mut().filter(|c| c.name == old.name) {
                        c.name = new.name.clone();
                    }
                }
                Ok(rel)
            }
            OpKind::Summarize { aggs, by } => self.summarize(rel, op.span, aggs, by),
            OpKind::Sort(keys) => self.sort(rel, keys, true),
            OpKind::Take { count, span } => self.take(rel, *count, *span),
            OpKind::Top {
                count,
                count_span,
                key,
            } => {
                let rel = self.sort(rel, std::slice::from_ref(key), false)?;
                self.take(rel, *count, *count_span)
            }
            OpKind::Distinct(names) => {
                let t = self.alias();
                let scope = Scope::of(&t, &rel.cols);
                let mut cols = Vec::new();
                let mut items = Vec::new();
                for id in names {
                    let found = self.find(&scope, id)?;
                    if cols.iter().any(|c: &RCol| c.name == id.name) {
                        return Err(Error::semantic(
                            id.span,
                            format!("'{}' is listed twice", id.name),
                        ));
                    }
                    let sql = self.fresh();
                    items.push(format!("{} AS {sql}", found.sql));
                    cols.push(RCol {
                        name: id.name.clone(),
                        sql,
                        ty: found.ty,
                    });
                }
                Ok(Rel {
                    sql: format!(
                        "SELECT DISTINCT {} FROM ({}) AS {t}",
                        items.join(", "),
                        rel.sql
                    ),
                    cols,
                    order: Vec::new(),
                })
            }
            OpKind::Count => {
                let t = self.alias();
                let sql = self.fresh();
                Ok(Rel {
                    sql: format!("SELECT COUNT(*) AS {sql} FROM ({}) AS {t}", rel.sql),
                    cols: vec![RCol {
                        name: "Count".into(),
                        sql,
                        ty: Type::Long,
                    }],
                    order: Vec::new(),
                })
            }
            OpKind::Join { kind, right, on } => self.join(rel, *kind, right, on, depth),
        }
    }

    fn take(&mut self, rel: Rel, count: i64, span: Span) -> Result<Rel, Error> {
        let t = self.alias();
        let n = self.param(Param::Int(count), span)?;
        Ok(Rel {
            sql: format!(
                "SELECT * FROM ({}) AS {t}{} LIMIT {n}",
                rel.sql,
                self.order_by(&t, &rel.order)
            ),
            ..rel
        })
    }

    fn project(&mut self, rel: Rel, items: &[NamedExpr]) -> Result<Rel, Error> {
        let t = self.alias();
        let scope = Scope::of(&t, &rel.cols);
        let mut cols: Vec<RCol> = Vec::new();
        let mut select = Vec::new();
        let mut computed = false;
        for item in items {
            let name = self.item_name(item, &cols, None)?;
            if let ExprKind::Column(c) = &item.expr.kind
                && *c == name
            {
                // A column kept under its own name keeps its SQL name.
                let id = Ident {
                    name: c.clone(),
                    span: item.expr.span,
                };
                self.find(&scope, &id)?;
                let Some(src) = rel.cols.iter().find(|rc| rc.name == *c) else {
                    return Err(self.unknown_column(c, item.expr.span, &scope.cols));
                };
                select.push(format!("{t}.{} AS {}", src.sql, src.sql));
                cols.push(RCol {
                    name,
                    ..src.clone()
                });
                continue;
            }
            computed = true;
            let v = self.expr(&item.expr, &scope, Agg::None, 0)?;
            let sql = self.fresh();
            select.push(format!("{} AS {sql}", v.sql));
            cols.push(RCol {
                name,
                sql,
                ty: v.ty,
            });
        }
        if !computed {
            // Choosing and reordering columns changes nothing in SQL: only which columns
            // the outermost SELECT lists. The order keys stay available.
            return Ok(Rel { cols, ..rel });
        }
        // Keep the order keys reachable for the SELECTs above this one.
        for k in &rel.order {
            if !cols.iter().any(|c| c.sql == k.sql) {
                select.push(format!("{t}.{} AS {}", k.sql, k.sql));
            }
        }
        Ok(Rel {
            sql: format!("SELECT {} FROM ({}) AS {t}", select.join(", "), rel.sql),
            cols,
            order: rel.order,
        })
    }

    /// The name an output column gets: the one given, the column's own, or `Column<k>`.
    /// `bin(Col, …)` and `startofday(Col)` in a `by` keep `Col`'s name, as in Kusto.
    fn item_name(
        &self,
        item: &NamedExpr,
        taken: &[RCol],
        agg_name: Option<String>,
    ) -> Result<String, Error> {
        let taken_names: Vec<String> = taken.iter().map(|c| c.name.clone()).collect();
        let (name, span) = match &item.name {
            Some(id) => {
                validate_name(id)?;
                (id.name.clone(), id.span)
            }
            None => {
                let derived = match &item.expr.kind {
                    ExprKind::Column(c) => Some(c.clone()),
                    ExprKind::Call { name, args }
                        if matches!(name.name.as_str(), "bin" | "floor" | "startofday") =>
                    {
                        match args.first().map(|a| &a.kind) {
                            Some(ExprKind::Column(c)) => Some(c.clone()),
                            _ => None,
                        }
                    }
                    _ => None,
                };
                let n = agg_name
                    .or(derived)
                    .unwrap_or_else(|| auto_name(&taken_names));
                (n, item.expr.span)
            }
        };
        if taken_names.contains(&name) {
            return Err(
                Error::semantic(span, format!("duplicate column name '{name}'"))
                    .with_hint("name it: NewName = …"),
            );
        }
        Ok(name)
    }

    fn extend(&mut self, rel: Rel, items: &[NamedExpr]) -> Result<Rel, Error> {
        let t = self.alias();
        let mut scope = Scope::of(&t, &rel.cols);
        let mut cols = rel.cols.clone();
        let mut select = vec![format!("{t}.*")];
        let mut defined: Vec<String> = Vec::new();
        for item in items {
            let v = self.expr(&item.expr, &scope, Agg::None, 0)?;
            let name = match &item.name {
                Some(id) => {
                    validate_name(id)?;
                    if defined.contains(&id.name) {
                        return Err(Error::semantic(
                            id.span,
                            format!("'{}' is defined twice in this extend", id.name),
                        ));
                    }
                    id.name.clone()
                }
                None => {
                    let taken: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
                    match &item.expr.kind {
                        ExprKind::Column(c) if !taken.contains(c) => c.clone(),
                        _ => auto_name(&taken),
                    }
                }
            };
            defined.push(name.clone());
            let sql = self.fresh();
            // Later items of the same extend see this one (Kusto allows
            // `extend a = …, b = a * 2`): the reference is the expression itself.
            let inline = format!("({})", v.sql);
            select.push(format!("{} AS {sql}", v.sql));
            let col = RCol {
                name: name.clone(),
                sql,
                ty: v.ty,
            };
            // Extending an existing name replaces that column in place.
            match cols.iter_mut().find(|c| c.name == name) {
                Some(existing) => *existing = col,
                None => cols.push(col),
            }
            match scope.cols.iter_mut().find(|c| c.name == name) {
                Some(existing) => {
                    existing.sql = inline;
                    existing.ty = v.ty;
                }
                None => scope.cols.push(ScopeCol {
                    name,
                    sql: inline,
                    ty: v.ty,
                }),
            }
        }
        Ok(Rel {
            sql: format!("SELECT {} FROM ({}) AS {t}", select.join(", "), rel.sql),
            cols,
            order: rel.order,
        })
    }

    fn summarize(
        &mut self,
        rel: Rel,
        span: Span,
        aggs: &[NamedExpr],
        by: &[NamedExpr],
    ) -> Result<Rel, Error> {
        if aggs.is_empty() && by.is_empty() {
            return Err(
                Error::semantic(span, "summarize needs an aggregation or 'by'")
                    .with_hint("e.g. summarize count() by Repository"),
            );
        }
        let t = self.alias();
        let scope = Scope::of(&t, &rel.cols);
        let mut cols: Vec<RCol> = Vec::new();
        let mut select = Vec::new();
        for item in by {
            let name = self.item_name(item, &cols, None)?;
            let v = self.expr(&item.expr, &scope, Agg::None, 0)?;
            let sql = self.fresh();
            select.push(format!("{} AS {sql}", v.sql));
            cols.push(RCol {
                name,
                sql,
                ty: v.ty,
            });
        }
        let keys = cols.len();
        for item in aggs {
            let name = self.item_name(item, &cols, agg_default_name(&item.expr))?;
            let v = self.expr(&item.expr, &scope, Agg::Outside, 0)?;
            let sql = self.fresh();
            select.push(format!("{} AS {sql}", v.sql));
            cols.push(RCol {
                name,
                sql,
                ty: v.ty,
            });
        }
        let group = if keys == 0 {
            String::new()
        } else {
            let n: Vec<String> = (1..=keys).map(|i| i.to_string()).collect();
            format!(" GROUP BY {}", n.join(", "))
        };
        Ok(Rel {
            sql: format!(
                "SELECT {} FROM ({}) AS {t}{group}",
                select.join(", "),
                rel.sql
            ),
            cols,
            order: Vec::new(),
        })
    }

    /// Sorting only records the order (applied where rows are cut and at the end); keys
    /// that are expressions first become hidden columns.
    fn sort(&mut self, rel: Rel, keys: &[SortKey], keep_previous: bool) -> Result<Rel, Error> {
        let t = self.alias();
        let scope = Scope::of(&t, &rel.cols);
        let mut hidden = Vec::new();
        let mut order = Vec::new();
        for k in keys {
            let (sql, ty) = match &k.expr.kind {
                ExprKind::Column(name) => {
                    let id = Ident {
                        name: name.clone(),
                        span: k.expr.span,
                    };
                    self.find(&scope, &id)?;
                    let Some(c) = rel.cols.iter().find(|c| c.name == *name) else {
                        return Err(self.unknown_column(name, k.expr.span, &scope.cols));
                    };
                    (c.sql.clone(), c.ty)
                }
                _ => {
                    let v = self.expr(&k.expr, &scope, Agg::None, 0)?;
                    let sql = self.fresh();
                    hidden.push(format!("{} AS {sql}", v.sql));
                    (sql, v.ty)
                }
            };
            if ty == Type::Dynamic {
                return Err(type_error(
                    k.expr.span,
                    "cannot sort by a dynamic (JSON) value".into(),
                )
                .with_hint("sort by tostring(...) or array_length(...)"));
            }
            order.push(OrderKey {
                sql,
                ty,
                desc: k.desc,
                nulls_first: k.nulls_first,
            });
        }
        if keep_previous {
            // The previous order breaks ties: sorting is stable.
            for k in rel.order {
                if !order.iter().any(|o| o.sql == k.sql) {
                    order.push(k);
                }
            }
        }
        let sql = if hidden.is_empty() {
            rel.sql
        } else {
            format!(
                "SELECT {t}.*, {} FROM ({}) AS {t}",
                hidden.join(", "),
                rel.sql
            )
        };
        Ok(Rel {
            sql,
            cols: rel.cols,
            order,
        })
    }

    fn join(
        &mut self,
        left: Rel,
        kind: JoinKind,
        right_q: &Query,
        on: &[JoinKey],
        depth: usize,
    ) -> Result<Rel, Error> {
        let right = self.pipeline(right_q, depth + 1)?;
        let tl = self.alias();
        let tr = self.alias();
        let ls = Scope::of(&tl, &left.cols);
        let rs = Scope::of(&tr, &right.cols);
        let mut conds = Vec::new();
        for key in on {
            let l = self.find(&ls, &key.left)?;
            let r = self.find(&rs, &key.right)?;
            if !comparable(l.ty, r.ty) || l.ty == Type::Dynamic {
                return Err(type_error(
                    key.left.span.to(key.right.span),
                    format!(
                        "join key types differ: '{}' is {} on the left, '{}' is {} on the right",
                        key.left.name, l.ty, key.right.name, r.ty
                    ),
                ));
            }
            conds.push(format!("{} = {}", l.sql, r.sql));
        }
        let on_sql = conds.join(" AND ");
        let mut cols = Vec::new();
        let mut select = Vec::new();
        for c in &left.cols {
            select.push(format!("{tl}.{} AS {}", c.sql, c.sql));
            cols.push(c.clone());
        }
        if matches!(kind, JoinKind::LeftSemi | JoinKind::LeftAnti) {
            let not = if kind == JoinKind::LeftAnti {
                "NOT "
            } else {
                ""
            };
            return Ok(Rel {
                sql: format!(
                    "SELECT {} FROM ({}) AS {tl} WHERE {not}EXISTS (SELECT 1 FROM ({}) AS {tr} WHERE {on_sql})",
                    select.join(", "),
                    left.sql,
                    right.sql
                ),
                cols,
                order: Vec::new(),
            });
        }
        for c in &right.cols {
            // Kusto's naming: a right column whose name is taken gets a number.
            let mut name = c.name.clone();
            let mut k = 1;
            while cols.iter().any(|x: &RCol| x.name == name) {
                name = format!("{}{k}", c.name);
                k += 1;
            }
            let sql = self.fresh();
            select.push(format!("{tr}.{} AS {sql}", c.sql));
            cols.push(RCol {
                name,
                sql,
                ty: c.ty,
            });
        }
        let join = match kind {
            JoinKind::Inner => "INNER JOIN",
            JoinKind::LeftOuter => "LEFT JOIN",
            JoinKind::RightOuter => "RIGHT JOIN",
            _ => "FULL JOIN",
        };
        Ok(Rel {
            sql: format!(
                "SELECT {} FROM ({}) AS {tl} {join} ({}) AS {tr} ON {on_sql}",
                select.join(", "),
                left.sql,
                right.sql
            ),
            cols,
            order: Vec::new(),
        })
    }

    // Expressions.

    // Expressions. The functions on the recursive path (expr, expr_inner, binary, call)
    // only compile the operands and hand them to a `*_finish` function that builds the SQL:
    // those have large frames (in debug builds especially) but are never on the stack
    // while a deeper level compiles, so nesting costs little stack per level.

    fn expr(&mut self, e: &Expr, scope: &Scope, agg: Agg, depth: usize) -> Result<Typed, Error> {
        // The parser bounds the tree's depth already; this is a second line of defence.
        if depth > 2 * MAX_DEPTH {
            return Err(Error::limit(e.span, "the expression nests too deeply"));
        }
        let v = self.expr_inner(e, scope, agg, depth + 1)?;
        self.check_size(&v.sql, e.span)?;
        Ok(v)
    }

    fn lit(&mut self, p: Param, ty: Type, span: Span) -> Result<Typed, Error> {
        Ok(Typed {
            sql: self.param(p, span)?,
            ty,
        })
    }

    fn expr_inner(
        &mut self,
        e: &Expr,
        scope: &Scope,
        agg: Agg,
        depth: usize,
    ) -> Result<Typed, Error> {
        match &e.kind {
            ExprKind::Str(s) => self.lit(Param::Text(s.clone()), Type::String, e.span),
            ExprKind::Long(v) => self.lit(Param::Int(*v), Type::Long, e.span),
            ExprKind::Real(v) => self.lit(Param::Real(*v), Type::Real, e.span),
            ExprKind::Bool(v) => self.lit(Param::Bool(*v), Type::Bool, e.span),
            ExprKind::Datetime(v) => self.lit(Param::Int(*v), Type::Datetime, e.span),
            ExprKind::Timespan(v) => self.lit(Param::Int(*v), Type::Timespan, e.span),
            ExprKind::Column(name) => self.column_ref(name, e.span, scope, agg),
            ExprKind::Neg(inner) => {
                let v = self.expr(inner, scope, agg, depth)?;
                neg_finish(v, inner.span)
            }
            ExprKind::Binary {
                op,
                op_span,
                left,
                right,
            } => {
                let l = self.expr(left, scope, agg, depth)?;
                let r = self.expr(right, scope, agg, depth)?;
                self.binary_finish(*op, *op_span, (l, left.span), (r, right.span))
            }
            ExprKind::StrOp {
                op,
                negated,
                left,
                right,
                ..
            } => {
                let l = self.expr(left, scope, agg, depth)?;
                self.str_op_finish(*op, *negated, (l, left.span), right)
            }
            ExprKind::In {
                negated,
                expr,
                list,
            } => {
                let l = self.expr(expr, scope, agg, depth)?;
                let mut items = Vec::with_capacity(list.len());
                for item in list {
                    items.push((self.expr(item, scope, agg, depth)?, item.span));
                }
                in_finish(*negated, l, items)
            }
            ExprKind::Between {
                negated,
                expr,
                low,
                high,
            } => {
                let v = self.expr(expr, scope, agg, depth)?;
                let lo = self.expr(low, scope, agg, depth)?;
                let hi = self.expr(high, scope, agg, depth)?;
                self.between_finish(*negated, v, (lo, low.span), (hi, high.span))
            }
            ExprKind::Call { name, args } => self.call(name, args, e.span, scope, agg, depth),
        }
    }

    #[inline(never)]
    fn column_ref(&self, name: &str, span: Span, scope: &Scope, agg: Agg) -> Result<Typed, Error> {
        let id = Ident {
            name: name.to_string(),
            span,
        };
        let c = self.find(scope, &id)?;
        if agg == Agg::Outside {
            return Err(Error::semantic(
                span,
                format!("'{name}' is neither aggregated nor listed after 'by'"),
            )
            .with_hint(format!(
                "aggregate it, e.g. max({name}), or group by it: … by {name}"
            )));
        }
        Ok(Typed {
            sql: c.sql.clone(),
            ty: c.ty,
        })
    }

    #[inline(never)]
    fn str_op_finish(
        &mut self,
        op: StrOp,
        negated: bool,
        (l, left_span): (Typed, Span),
        right: &Expr,
    ) -> Result<Typed, Error> {
        if !matches!(l.ty, Type::String | Type::Dynamic) {
            return Err(type_error(
                left_span,
                format!("'{}' works on strings; this is a {}", op.name(), l.ty),
            )
            .with_hint("convert it with tostring(...)"));
        }
        let ExprKind::Str(lit) = &right.kind else {
            return Err(Error::semantic(
                right.span,
                format!("the right side of '{}' must be a string literal", op.name()),
            ));
        };
        let pos = match op {
            StrOp::Has => {
                let p = self.param(Param::Text(has_pattern(lit)), right.span)?;
                self.regex_match(&l.sql, &p)
            }
            StrOp::MatchesRegex => {
                if let Err(msg) = QueryRegex::new(lit) {
                    return Err(Error::semantic(
                        right.span,
                        format!("invalid regular expression: {msg}"),
                    ));
                }
                let p = self.param(Param::Text(lit.clone()), right.span)?;
                self.regex_match(&l.sql, &p)
            }
            StrOp::Contains | StrOp::StartsWith | StrOp::EndsWith => {
                let esc = like_escape(lit);
                let pattern = match op {
                    StrOp::Contains => format!("%{esc}%"),
                    StrOp::StartsWith => format!("{esc}%"),
                    _ => format!("%{esc}"),
                };
                let p = self.param(Param::Text(pattern), right.span)?;
                // SQLite's LIKE ignores ASCII case; PostgreSQL's ILIKE does.
                let like = if self.pg() { "ILIKE" } else { "LIKE" };
                format!("({} {like} {p} ESCAPE '\\')", l.sql)
            }
        };
        Ok(Typed {
            sql: if negated { negate(&pos) } else { pos },
            ty: Type::Bool,
        })
    }

    #[inline(never)]
    fn between_finish(
        &self,
        negated: bool,
        v: Typed,
        low: (Typed, Span),
        high: (Typed, Span),
    ) -> Result<Typed, Error> {
        for (b, span) in [&low, &high] {
            if !comparable(v.ty, b.ty) || matches!(v.ty, Type::Bool | Type::Dynamic) {
                return Err(type_error(
                    *span,
                    format!("'between' compares a {} with a {}", v.ty, b.ty),
                ));
            }
        }
        let pos = format!(
            "({} BETWEEN {} AND {})",
            self.collate(&v.sql, v.ty),
            low.0.sql,
            high.0.sql
        );
        Ok(Typed {
            sql: if negated { negate(&pos) } else { pos },
            ty: Type::Bool,
        })
    }

    fn regex_match(&self, text: &str, pattern: &str) -> String {
        match self.opts.dialect {
            // The store registers regexp(pattern, text) on its SQLite connections
            // (crate::sqlite_regexp).
            Dialect::Sqlite => format!("regexp({pattern}, {text})"),
            Dialect::Postgres => format!("({text} ~ {pattern})"),
        }
    }

    #[inline(never)]
    fn binary_finish(
        &self,
        op: BinOp,
        op_span: Span,
        (l, left_span): (Typed, Span),
        (r, right_span): (Typed, Span),
    ) -> Result<Typed, Error> {
        let sym = op.symbol();
        let mismatch = |hint: Option<std::string::String>| {
            type_error(
                op_span,
                format!("cannot apply '{sym}' to a {} and a {}", l.ty, r.ty),
            )
            .with_opt_hint(hint)
        };
        use Type::*;
        match op {
            BinOp::And | BinOp::Or => {
                for (v, span) in [(&l, left_span), (&r, right_span)] {
                    if v.ty != Bool {
                        return Err(type_error(
                            span,
                            format!("'{sym}' needs boolean operands; this is a {}", v.ty),
                        ));
                    }
                }
                let word = if op == BinOp::And { "AND" } else { "OR" };
                Ok(Typed {
                    sql: format!("({} {word} {})", l.sql, r.sql),
                    ty: Bool,
                })
            }
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod => {
                let ty = match (op, l.ty, r.ty) {
                    (BinOp::Mod, Long, Long) => Long,
                    (BinOp::Mod, _, _) => {
                        return Err(mismatch(Some("'%' works on longs".into())));
                    }
                    (_, Long, Long) => Long,
                    (_, a, b) if a.is_numeric() && b.is_numeric() => Real,
                    (BinOp::Add, Datetime, Timespan) | (BinOp::Add, Timespan, Datetime) => Datetime,
                    (BinOp::Sub, Datetime, Timespan) => Datetime,
                    (BinOp::Sub, Datetime, Datetime) => Timespan,
                    (BinOp::Add | BinOp::Sub, Timespan, Timespan) => Timespan,
                    (BinOp::Mul | BinOp::Div, Timespan, Long) => Timespan,
                    (BinOp::Mul, Long, Timespan) => Timespan,
                    (BinOp::Add, String, String) => {
                        return Err(mismatch(Some("join strings with strcat(a, b)".into())));
                    }
                    _ => return Err(mismatch(None)),
                };
                let sql = match op {
                    // Division by zero is null on both stores (PostgreSQL would fail the
                    // whole query).
                    BinOp::Div => format!("({} / NULLIF({}, 0))", l.sql, r.sql),
                    BinOp::Mod => format!("({} % NULLIF({}, 0))", l.sql, r.sql),
                    _ => format!("({} {sym} {})", l.sql, r.sql),
                };
                Ok(Typed { sql, ty })
            }
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                let ordering = !matches!(op, BinOp::Eq | BinOp::Ne);
                let ok = comparable(l.ty, r.ty) && !(ordering && matches!(l.ty, Bool | Dynamic))
                    || (!ordering && matches!((l.ty, r.ty), (Dynamic, String) | (String, Dynamic)));
                if !ok {
                    let hint = match (l.ty, r.ty) {
                        (Datetime, String) | (String, Datetime) => {
                            Some("write dates as datetime(2026-11-01) or ago(7d)".to_string())
                        }
                        (String, Long | Real) | (Long | Real, String) => {
                            Some("convert one side with tolong(...) or tostring(...)".to_string())
                        }
                        (Datetime, Long) | (Long, Datetime) => {
                            Some("datetimes compare with datetime(...), now() or ago(...)".into())
                        }
                        _ => None,
                    };
                    return Err(type_error(
                        op_span,
                        format!("cannot compare a {} with a {}", l.ty, r.ty),
                    )
                    .with_opt_hint(hint));
                }
                let sql_op = match op {
                    BinOp::Eq | BinOp::Ne => "=",
                    BinOp::Lt => "<",
                    BinOp::Le => "<=",
                    BinOp::Gt => ">",
                    _ => ">=",
                };
                let lsql = if ordering {
                    self.collate(&l.sql, l.ty)
                } else {
                    l.sql
                };
                let pos = format!("({lsql} {sql_op} {})", r.sql);
                Ok(Typed {
                    sql: if op == BinOp::Ne { negate(&pos) } else { pos },
                    ty: Bool,
                })
            }
            BinOp::EqCi | BinOp::NeCi => {
                if !(matches!(l.ty, String | Dynamic) && matches!(r.ty, String | Dynamic)) {
                    return Err(mismatch(Some("'=~' compares strings".into())));
                }
                let pos = format!("(lower({}) = lower({}))", l.sql, r.sql);
                Ok(Typed {
                    sql: if op == BinOp::NeCi { negate(&pos) } else { pos },
                    ty: Bool,
                })
            }
        }
    }

    fn call(
        &mut self,
        name: &Ident,
        args: &[Expr],
        span: Span,
        scope: &Scope,
        agg: Agg,
        depth: usize,
    ) -> Result<Typed, Error> {
        let f = name.name.as_str();
        if AGGREGATE_FUNCTIONS.contains(&f) {
            if agg != Agg::Outside {
                return Err(misplaced_aggregate(name, agg));
            }
            let v = match args {
                [arg] => Some(self.expr(arg, scope, Agg::Inside, depth)?),
                _ => None,
            };
            return self.aggregate_finish(name, args, v, span);
        }
        if !SCALAR_FUNCTIONS.contains(&f) {
            return self.call_finish(name, args, Vec::new(), span);
        }
        if f == "ago"
            && let [
                Expr {
                    kind: ExprKind::Timespan(ms),
                    ..
                },
            ] = args
        {
            // Folded: one parameter, computed here from the given "now".
            let at = self.opts.now_ms.saturating_sub(*ms);
            return self.lit(Param::Int(at), Type::Datetime, span);
        }
        // bin()'s size is read as a literal, not compiled.
        let n = if matches!(f, "bin" | "floor") {
            args.len().min(1)
        } else {
            args.len()
        };
        let mut a = Vec::with_capacity(n);
        for arg in &args[..n] {
            a.push(self.expr(arg, scope, agg, depth)?);
        }
        self.call_finish(name, args, a, span)
    }

    #[inline(never)]
    fn call_finish(
        &mut self,
        name: &Ident,
        args: &[Expr],
        a: Vec<Typed>,
        span: Span,
    ) -> Result<Typed, Error> {
        let f = name.name.as_str();
        let arity = |lo: usize, hi: usize| -> Result<(), Error> {
            if args.len() < lo || args.len() > hi {
                let want = if lo == hi {
                    format!("{lo}")
                } else if hi == usize::MAX {
                    format!("at least {lo}")
                } else {
                    format!("{lo} to {hi}")
                };
                return Err(Error::semantic(
                    span,
                    format!("{f}() takes {want} argument(s), not {}", args.len()),
                ));
            }
            Ok(())
        };
        let want = |v: &Typed, a: &Expr, ok: &[Type], what: &str| -> Result<(), Error> {
            if ok.contains(&v.ty) {
                Ok(())
            } else {
                Err(type_error(
                    a.span,
                    format!("{f}() expects {what}; this is a {}", v.ty),
                ))
            }
        };
        use Type::*;
        let pg = self.pg();
        let t = |sql: std::string::String, ty: Type| Ok(Typed { sql, ty });
        match f {
            "strlen" | "tolower" | "toupper" | "trim" => {
                arity(1, 1)?;
                want(&a[0], &args[0], &[String], "a string")?;
                let (func, ty) = match f {
                    "strlen" => ("length", Long),
                    "tolower" => ("lower", String),
                    "toupper" => ("upper", String),
                    _ => ("trim", String),
                };
                t(format!("{func}({})", a[0].sql), ty)
            }
            "substring" => {
                arity(2, 3)?;
                want(&a[0], &args[0], &[String], "a string")?;
                let mut parts = vec![a[0].sql.clone()];
                for (i, v) in a.iter().enumerate().skip(1) {
                    want(v, &args[i], &[Long], "a long")?;
                    // 0-based start, negative start or length clamped to 0, as in Kusto.
                    let (max, plus) = if pg { ("GREATEST", "") } else { ("max", "") };
                    let base = format!("{max}({}, 0){plus}", v.sql);
                    let base = if i == 1 { format!("{base} + 1") } else { base };
                    parts.push(if pg {
                        format!("CAST({base} AS INTEGER)")
                    } else {
                        base
                    });
                }
                t(format!("substr({})", parts.join(", ")), String)
            }
            "strcat" => {
                arity(1, 64)?;
                let parts: Vec<std::string::String> = a
                    .iter()
                    .map(|v| format!("COALESCE({}, '')", self.to_string_sql(v)))
                    .collect();
                t(format!("({})", parts.join(" || ")), String)
            }
            "replace_string" => {
                arity(3, 3)?;
                for (i, v) in a.iter().enumerate() {
                    want(v, &args[i], &[String], "strings")?;
                }
                t(
                    format!("replace({}, {}, {})", a[0].sql, a[1].sql, a[2].sql),
                    String,
                )
            }
            "indexof" => {
                arity(2, 2)?;
                want(&a[0], &args[0], &[String], "strings")?;
                want(&a[1], &args[1], &[String], "strings")?;
                let func = if pg { "strpos" } else { "instr" };
                t(format!("({func}({}, {}) - 1)", a[0].sql, a[1].sql), Long)
            }
            "tostring" => {
                arity(1, 1)?;
                t(self.to_string_sql(&a[0]), String)
            }
            "tolong" | "toint" => {
                arity(1, 1)?;
                let v = &a[0];
                let sql = match v.ty {
                    Long | Datetime | Timespan => v.sql.clone(),
                    Bool => format!("(CASE {} WHEN TRUE THEN 1 WHEN FALSE THEN 0 END)", v.sql),
                    Real if pg => format!("CAST(trunc({}) AS BIGINT)", v.sql),
                    Real => format!("CAST({} AS INTEGER)", v.sql),
                    String => self.parse_number(&v.sql, LONG_TEXT, span)?,
                    _ => {
                        return Err(type_error(
                            args[0].span,
                            format!("tolong() cannot convert a {}", v.ty),
                        ));
                    }
                };
                t(sql, Long)
            }
            "toreal" | "todouble" => {
                arity(1, 1)?;
                want(&a[0], &args[0], &[Long, Real, String], "a number or a string")?;
                let sql = match a[0].ty {
                    String => self.parse_number(&a[0].sql, REAL_TEXT, span)?,
                    _ if pg => format!("CAST({} AS DOUBLE PRECISION)", a[0].sql),
                    _ => format!("CAST({} AS REAL)", a[0].sql),
                };
                t(sql, Real)
            }
            "iff" | "iif" => {
                arity(3, 3)?;
                want(&a[0], &args[0], &[Bool], "a boolean condition first")?;
                let ty = unify(a[1].ty, a[2].ty).ok_or_else(|| {
                    type_error(
                        span,
                        format!("{f}()'s branches differ: {} and {}", a[1].ty, a[2].ty),
                    )
                })?;
                t(
                    format!(
                        "(CASE WHEN {} THEN {} ELSE {} END)",
                        a[0].sql, a[1].sql, a[2].sql
                    ),
                    ty,
                )
            }
            "case" => {
                if args.len() < 3 || args.len().is_multiple_of(2) {
                    return Err(Error::semantic(
                        span,
                        "case() takes pairs of condition and value, then a default",
                    ));
                }
                let mut ty = a[a.len() - 1].ty;
                let mut sql = std::string::String::from("(CASE");
                for pair in 0..a.len() / 2 {
                    let (c, v) = (&a[2 * pair], &a[2 * pair + 1]);
                    want(c, &args[2 * pair], &[Bool], "boolean conditions")?;
                    ty = unify(ty, v.ty).ok_or_else(|| {
                        type_error(args[2 * pair + 1].span, "case()'s values differ in type".into())
                    })?;
                    sql.push_str(&format!(" WHEN {} THEN {}", c.sql, v.sql));
                }
                sql.push_str(&format!(" ELSE {} END)", a[a.len() - 1].sql));
                t(sql, ty)
            }
            "coalesce" => {
                arity(2, 64)?;
                let mut ty = a[0].ty;
                for (i, v) in a.iter().enumerate() {
                    ty = unify(ty, v.ty).ok_or_else(|| {
                        type_error(args[i].span, "coalesce()'s arguments differ in type".into())
                    })?;
                }
                let parts: Vec<&str> = a.iter().map(|v| v.sql.as_str()).collect();
                t(format!("COALESCE({})", parts.join(", ")), ty)
            }
            "abs" => {
                arity(1, 1)?;
                want(&a[0], &args[0], &[Long, Real, Timespan], "a number")?;
                t(format!("abs({})", a[0].sql), a[0].ty)
            }
            "isnull" | "isnotnull" => {
                arity(1, 1)?;
                let not = if f == "isnull" { "" } else { "NOT " };
                t(format!("({} IS {not}NULL)", a[0].sql), Bool)
            }
            "isempty" | "isnotempty" => {
                arity(1, 1)?;
                let cmp = if f == "isempty" { "=" } else { "<>" };
                let sql = if matches!(a[0].ty, String | Dynamic) {
                    format!("(COALESCE({}, '') {cmp} '')", a[0].sql)
                } else {
                    let not = if f == "isempty" { "" } else { "NOT " };
                    format!("({} IS {not}NULL)", a[0].sql)
                };
                t(sql, Bool)
            }
            "not" => {
                arity(1, 1)?;
                want(&a[0], &args[0], &[Bool], "a boolean")?;
                t(negate(&a[0].sql), Bool)
            }
            "now" => {
                arity(0, 0)?;
                let p = self.param(Param::Int(self.opts.now_ms), span)?;
                t(p, Datetime)
            }
            "ago" => {
                arity(1, 1)?;
                want(&a[0], &args[0], &[Timespan], "a timespan, e.g. ago(7d)")?;
                let now = self.param(Param::Int(self.opts.now_ms), span)?;
                t(format!("({now} - {})", a[0].sql), Datetime)
            }
            "bin" | "floor" => {
                arity(2, 2)?;
                self.bin(&a[0], &args[0], &args[1], span)
            }
            "startofday" => {
                arity(1, 1)?;
                want(&a[0], &args[0], &[Datetime], "a datetime")?;
                let day = Expr {
                    kind: ExprKind::Timespan(crate::time::MS_PER_DAY),
                    span,
                };
                self.bin(&a[0], &args[0], &day, span)
            }
            "array_length" => {
                arity(1, 1)?;
                want(&a[0], &args[0], &[Dynamic], "a dynamic (JSON array)")?;
                let sql = if pg {
                    format!("json_array_length(CAST({} AS JSON))", a[0].sql)
                } else {
                    format!("json_array_length({})", a[0].sql)
                };
                t(sql, Long)
            }
            "dynamic" | "todynamic" | "parse_json" | "pack_array" | "bag_pack" => Err(
                Error::semantic(span, format!("{f}() is not supported"))
                    .with_hint("dynamic columns can be tested with has/contains and measured with array_length()"),
            ),
            _ => {
                let hint = did_you_mean(
                    f,
                    SCALAR_FUNCTIONS
                        .iter()
                        .chain(AGGREGATE_FUNCTIONS.iter())
                        .copied(),
                )
                .unwrap_or_else(|| "see docs/query.md for the functions".to_string());
                Err(Error::semantic(name.span, format!("unknown function '{f}'")).with_hint(hint))
            }
        }
    }

    /// A string to a number, null unless the whole string is one (SQLite's CAST would read
    /// a prefix, PostgreSQL's would fail the query). The pattern is a parameter like any
    /// other value.
    fn parse_number(&mut self, text: &str, pattern: &str, span: Span) -> Result<String, Error> {
        let p = self.param(Param::Text(pattern.to_string()), span)?;
        let (test, ty) = match self.opts.dialect {
            Dialect::Sqlite => (format!("regexp({p}, {text})"), "REAL"),
            Dialect::Postgres => (format!("({text} ~ {p})"), "DOUBLE PRECISION"),
        };
        let target = match (pattern == LONG_TEXT, self.pg()) {
            (true, true) => "BIGINT",
            (true, false) => "INTEGER",
            (false, _) => ty,
        };
        Ok(format!(
            "(CASE WHEN {test} THEN CAST({text} AS {target}) END)"
        ))
    }

    fn to_string_sql(&self, v: &Typed) -> String {
        match v.ty {
            Type::String | Type::Dynamic => v.sql.clone(),
            Type::Bool => format!(
                "(CASE {} WHEN TRUE THEN 'true' WHEN FALSE THEN 'false' END)",
                v.sql
            ),
            Type::Datetime => {
                if self.pg() {
                    format!(
                        "to_char(to_timestamp({} / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
                        v.sql
                    )
                } else {
                    format!(
                        "strftime('%Y-%m-%dT%H:%M:%fZ', {} / 1000.0, 'unixepoch')",
                        v.sql
                    )
                }
            }
            _ => format!("CAST({} AS TEXT)", v.sql),
        }
    }

    /// `bin(x, size)`: rounds down to a multiple of `size` (floor, also below zero).
    fn bin(&mut self, v: &Typed, arg: &Expr, size: &Expr, span: Span) -> Result<Typed, Error> {
        use Type::*;
        let (size_param, size_ty) = match (v.ty, &size.kind) {
            (Datetime | Timespan, ExprKind::Timespan(ms)) if *ms > 0 => (Param::Int(*ms), v.ty),
            (Long, ExprKind::Long(n)) if *n > 0 => (Param::Int(*n), Long),
            (Long | Real, ExprKind::Real(r)) if *r > 0.0 => (Param::Real(*r), Real),
            (Real, ExprKind::Long(n)) if *n > 0 => (Param::Real(*n as f64), Real),
            (Datetime | Timespan | Long | Real, _) => {
                return Err(Error::semantic(
                    size.span,
                    "bin()'s size must be a positive literal: a timespan (1d) for datetimes, a number for numbers",
                ));
            }
            _ => {
                return Err(type_error(
                    arg.span,
                    format!("bin() rounds numbers and datetimes; this is a {}", v.ty),
                ));
            }
        };
        let s = self.param(size_param, span)?;
        let x = &v.sql;
        let sql = if size_ty == Real {
            if self.pg() {
                format!("(floor({x} / {s}) * {s})")
            } else {
                // SQLite's bundled build has no floor(): truncate, then step down for
                // negative non-integral quotients.
                format!(
                    "((CAST({x} / {s} AS INTEGER) - (CASE WHEN {x} / {s} < CAST({x} / {s} AS INTEGER) THEN 1 ELSE 0 END)) * {s})"
                )
            }
        } else {
            format!("({x} - ((({x} % {s}) + {s}) % {s}))")
        };
        Ok(Typed { sql, ty: size_ty })
    }

    #[inline(never)]
    fn aggregate_finish(
        &mut self,
        name: &Ident,
        args: &[Expr],
        v: Option<Typed>,
        span: Span,
    ) -> Result<Typed, Error> {
        let f = name.name.as_str();
        let want_args = if f == "count" { 0 } else { 1 };
        if args.len() != want_args {
            return Err(Error::semantic(
                span,
                format!("{f}() takes {want_args} argument(s), not {}", args.len()),
            ));
        }
        if f == "count" {
            return Ok(Typed {
                sql: "COUNT(*)".into(),
                ty: Type::Long,
            });
        }
        let Some(v) = v else {
            return Err(Error::semantic(span, format!("{f}() takes 1 argument")));
        };
        let bad = |what: &str| {
            Err(type_error(
                args[0].span,
                format!("{f}() needs {what}; this is a {}", v.ty),
            ))
        };
        let pg = self.pg();
        use Type::*;
        let (sql, ty) = match f {
            "countif" => {
                if v.ty != Bool {
                    return bad("a boolean condition");
                }
                (format!("COUNT(CASE WHEN {} THEN 1 END)", v.sql), Long)
            }
            "dcount" => (format!("COUNT(DISTINCT {})", v.sql), Long),
            "min" | "max" => {
                if matches!(v.ty, Bool | Dynamic) {
                    return bad("an orderable value");
                }
                let func = if f == "min" { "MIN" } else { "MAX" };
                (format!("{func}({})", self.collate(&v.sql, v.ty)), v.ty)
            }
            "avg" => {
                if !v.ty.is_numeric() {
                    return bad("a number");
                }
                let sql = if pg {
                    format!("CAST(AVG({}) AS DOUBLE PRECISION)", v.sql)
                } else {
                    format!("AVG({})", v.sql)
                };
                (sql, Real)
            }
            "sum" => {
                if !(v.ty.is_numeric() || v.ty == Timespan) {
                    return bad("a number");
                }
                let sql = if pg && v.ty != Real {
                    // PostgreSQL sums BIGINT into NUMERIC.
                    format!("CAST(SUM({}) AS BIGINT)", v.sql)
                } else {
                    format!("SUM({})", v.sql)
                };
                (sql, v.ty)
            }
            _ => {
                // make_set: distinct non-null values, sorted, as a JSON array ('[]' when
                // there are none, on both stores).
                if v.ty == Dynamic {
                    return bad("a scalar value");
                }
                let x = self.collate(&v.sql, v.ty);
                let sql = if pg {
                    format!(
                        "COALESCE(CAST(json_agg(DISTINCT {x} ORDER BY {x}) FILTER (WHERE {} IS NOT NULL) AS TEXT), '[]')",
                        v.sql
                    )
                } else {
                    format!(
                        "json_group_array(DISTINCT {x} ORDER BY {x}) FILTER (WHERE {} IS NOT NULL)",
                        v.sql
                    )
                };
                (sql, Dynamic)
            }
        };
        Ok(Typed { sql, ty })
    }
}

#[cold]
fn misplaced_aggregate(name: &Ident, agg: Agg) -> Error {
    let f = &name.name;
    if agg == Agg::Inside {
        return Error::semantic(name.span, "aggregations cannot be nested");
    }
    Error::semantic(
        name.span,
        format!("{f}() is an aggregation: use it in summarize"),
    )
    .with_hint(format!("… | summarize {f}(…) by Column"))
}

#[inline(never)]
fn neg_finish(v: Typed, span: Span) -> Result<Typed, Error> {
    if !(v.ty.is_numeric() || v.ty == Type::Timespan) {
        return Err(type_error(span, format!("cannot negate a {}", v.ty)));
    }
    Ok(Typed {
        sql: format!("(-{})", v.sql),
        ty: v.ty,
    })
}

#[inline(never)]
fn in_finish(negated: bool, l: Typed, items: Vec<(Typed, Span)>) -> Result<Typed, Error> {
    let mut sql = Vec::with_capacity(items.len());
    for (v, span) in items {
        if !comparable(l.ty, v.ty) || l.ty == Type::Dynamic {
            return Err(type_error(
                span,
                format!("cannot compare a {} with a {} in 'in'", l.ty, v.ty),
            ));
        }
        sql.push(v.sql);
    }
    let pos = format!("({} IN ({}))", l.sql, sql.join(", "));
    Ok(Typed {
        sql: if negated { negate(&pos) } else { pos },
        ty: Type::Bool,
    })
}

/// What tolong() and toreal() accept: optional spaces and sign, decimal digits (at most 18
/// for a long, so it cannot overflow), for reals a fraction and an exponent.
const LONG_TEXT: &str = r"^\s*[-+]?[0-9]{1,18}\s*$";
const REAL_TEXT: &str = r"^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]{1,2})?\s*$";

/// Two-valued logic: a comparison with null is false, so its negation is true.
fn negate(pos: &str) -> String {
    format!("(NOT COALESCE({pos}, FALSE))")
}

/// Kusto's default names for aggregations: `count_`, `dcount_Col`, `set_Col`…
fn agg_default_name(e: &Expr) -> Option<String> {
    let ExprKind::Call { name, args } = &e.kind else {
        return None;
    };
    let prefix = match name.name.as_str() {
        "count" => return Some("count_".into()),
        "countif" => return Some("countif_".into()),
        "make_set" => "set",
        f @ ("dcount" | "min" | "max" | "avg" | "sum") => f,
        _ => return None,
    };
    match args.first().map(|a| &a.kind) {
        Some(ExprKind::Column(c)) => Some(format!("{prefix}_{c}")),
        _ => Some(format!("{prefix}_")),
    }
}

//! Bulkhead's query language over scan results: a subset of Kusto (KQL), compiled to
//! parameterised SQL for SQLite and PostgreSQL. The reference is `docs/query.md`.
//!
//! ```text
//! Findings
//! | where Severity == 'critical' and isnotempty(FixedVersion)
//! | summarize Findings = count() by Repository
//! | top 10 by Findings
//! ```
//!
//! What callers use:
//! - [`compile`] (or [`check`]) with the [`Catalog::bulkhead_v1`] catalog and [`Options`]
//!   (dialect, the caller's tenant, "now", the row cap) → [`CompiledQuery`]: SQL text with
//!   `$1…` placeholders, its [`Param`]s (`$1` is the tenant), the output columns and types.
//! - [`to_json`] turns each value the store returns into its JSON form;
//!   [`format_json`], [`format_table`] and [`format_csv`] print a result.
//! - [`Error::render`] shows an error with line, column, caret and hint.
//! - On SQLite, the store registers `regexp(pattern, text)` backed by [`sqlite_regexp`].
//!
//! Safety properties (tests/injection.rs): every base table compiles to
//! `(SELECT * FROM <view> WHERE tenant_id = $1)`, join sides included, and `tenant_id` is
//! not a column of any table; no text from the query reaches the SQL except through a
//! bound parameter; identifiers come from the catalog or are generated.

pub mod ast;
mod catalog;
mod compile;
mod error;
mod format;
mod lexer;
mod parser;
mod regexp;
mod time;

pub use ast::Query;
pub use catalog::{Catalog, Column, Table, Type, VIEWS_V1_SQL};
pub use compile::{
    CompiledQuery, Dialect, MAX_NAME_LEN, MAX_PARAMS, MAX_SQL_BYTES, Options, OutputColumn, Param,
    check, compile, compile_query, result_bytes_message, row_cap_message, timeout_message,
    value_bytes_message,
};
pub use error::{Error, ErrorKind, Span};
pub use format::{SqlValue, format_csv, format_json, format_table, to_json};
pub use parser::{MAX_DEPTH, MAX_LIST, MAX_OPERATORS, MAX_QUERY_BYTES, OPERATORS, parse};
pub use regexp::{QueryRegex, sqlite_regexp};
pub use time::{format_datetime, format_timespan};

/// The scalar and aggregation functions the language has (for docs and completion).
pub fn functions() -> (&'static [&'static str], &'static [&'static str]) {
    (compile::SCALAR_FUNCTIONS, compile::AGGREGATE_FUNCTIONS)
}

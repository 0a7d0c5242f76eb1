//! Results as JSON, a text table or CSV. Rows are `serde_json::Value`s, one per column,
//! as [`to_json`] makes them from what the store returns.

use crate::catalog::Type;
use crate::compile::OutputColumn;
use crate::time::{format_datetime, format_timespan};
use serde_json::Value;

/// A value as a store returns it, before it is given its language type.
#[derive(Clone, Debug, PartialEq)]
pub enum SqlValue {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Bool(bool),
}

/// The JSON form of a result value of type `ty`: datetimes as RFC 3339 strings,
/// timespans as `d.hh:mm:ss`, bools from SQLite's 0/1, dynamic parsed from its JSON text.
pub fn to_json(ty: Type, v: SqlValue) -> Value {
    match (ty, v) {
        (_, SqlValue::Null) => Value::Null,
        (Type::Bool, SqlValue::Int(i)) => Value::Bool(i != 0),
        (Type::Bool, SqlValue::Bool(b)) => Value::Bool(b),
        (Type::Datetime, SqlValue::Int(ms)) => Value::String(format_datetime(ms)),
        (Type::Datetime, SqlValue::Real(ms)) => Value::String(format_datetime(ms as i64)),
        (Type::Timespan, SqlValue::Int(ms)) => Value::String(format_timespan(ms)),
        (Type::Timespan, SqlValue::Real(ms)) => Value::String(format_timespan(ms as i64)),
        (Type::Real, SqlValue::Int(i)) => real(i as f64),
        (Type::Dynamic, SqlValue::Text(s)) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        (_, SqlValue::Int(i)) => Value::from(i),
        (_, SqlValue::Real(r)) => real(r),
        (_, SqlValue::Text(s)) => Value::String(s),
        (_, SqlValue::Bool(b)) => Value::Bool(b),
    }
}

fn real(r: f64) -> Value {
    serde_json::Number::from_f64(r).map_or(Value::Null, Value::Number)
}

/// `{"columns":[{"name":…,"type":…}],"rows":[[…]]}`; `truncated` is added when the
/// executor cut the result at the row cap.
pub fn format_json(columns: &[OutputColumn], rows: &[Vec<Value>]) -> String {
    let cols: Vec<Value> = columns
        .iter()
        .map(|c| serde_json::json!({"name": c.name, "type": c.ty.name()}))
        .collect();
    serde_json::json!({"columns": cols, "rows": rows}).to_string()
}

/// A cell as text: strings as they are, null as empty, the rest in their JSON form.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Widest a table cell gets before it is cut with `…`.
const MAX_CELL: usize = 80;

/// An aligned text table for a terminal. Control characters (newlines, escapes) are
/// shown as `\n`, `\u{1b}`…: a value from an image cannot draw on the terminal or break
/// the layout. Numbers are right-aligned.
pub fn format_table(columns: &[OutputColumn], rows: &[Vec<Value>]) -> String {
    let sanitize = |s: &str| -> String {
        let mut out = String::new();
        for c in s.chars() {
            if c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        if out.chars().count() > MAX_CELL {
            out = out.chars().take(MAX_CELL - 1).collect::<String>() + "…";
        }
        out
    };
    let header: Vec<String> = columns.iter().map(|c| sanitize(&c.name)).collect();
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|v| sanitize(&cell(v))).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &body {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let right: Vec<bool> = columns
        .iter()
        .map(|c| matches!(c.ty, Type::Long | Type::Real))
        .collect();
    let line = |cells: &[String]| -> String {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let w = widths.get(i).copied().unwrap_or(0);
                let pad = " ".repeat(w.saturating_sub(c.chars().count()));
                if right.get(i).copied().unwrap_or(false) {
                    format!("{pad}{c}")
                } else {
                    format!("{c}{pad}")
                }
            })
            .collect();
        parts.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(&header);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&(rule.join("  ") + "\n"));
    for r in &body {
        out.push_str(&line(r));
    }
    out
}

/// RFC 4180: a header line, CRLF line ends, fields with a comma, quote, CR or LF quoted
/// and their quotes doubled. A text cell that a spreadsheet would run as a formula (it
/// starts with `=`, `+`, `-`, `@`, a tab or a CR: OWASP's "CSV injection") gets a leading
/// `'`, so it is shown as text; numbers are written as they are (`-3` stays a number).
/// Image data is attacker-controlled (package names, versions, tags), and a CSV export is
/// typically opened in a spreadsheet.
pub fn format_csv(columns: &[OutputColumn], rows: &[Vec<Value>]) -> String {
    let field = |s: &str| -> String {
        let neutralised;
        let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            neutralised = format!("'{s}");
            neutralised.as_str()
        } else {
            s
        };
        if s.contains([',', '"', '\r', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut out = String::new();
    let header: Vec<String> = columns.iter().map(|c| field(&c.name)).collect();
    out.push_str(&header.join(","));
    out.push_str("\r\n");
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .map(|v| match v {
                // Numbers and booleans are not text a spreadsheet could misread.
                Value::String(_) => field(&cell(v)),
                other => plain(&cell(other)),
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

/// A non-text CSV cell: quoted when it must be (never, for numbers), never altered.
fn plain(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cols() -> Vec<OutputColumn> {
        vec![
            OutputColumn {
                name: "Repository".into(),
                ty: Type::String,
            },
            OutputColumn {
                name: "n".into(),
                ty: Type::Long,
            },
        ]
    }

    #[test]
    fn csv_quotes_per_rfc4180() {
        let rows = vec![
            vec![json!("plain"), json!(1)],
            vec![json!("a,b"), json!(22)],
            vec![json!("say \"hi\"\nbye"), Value::Null],
        ];
        assert_eq!(
            format_csv(&cols(), &rows),
            "Repository,n\r\nplain,1\r\n\"a,b\",22\r\n\"say \"\"hi\"\"\nbye\",\r\n"
        );
    }

    #[test]
    fn csv_neutralises_formulas_in_text_but_not_numbers() {
        let rows = vec![
            vec![json!("=HYPERLINK(\"http://x\",\"y\")"), json!(-3)],
            vec![json!("+1"), json!(1)],
            vec![json!("-2+3"), json!(2)],
            vec![json!("@SUM(A1)"), json!(3)],
            vec![json!("\tx"), json!(4)],
            vec![json!("a=b"), json!(5)],
        ];
        assert_eq!(
            format_csv(&cols(), &rows),
            "Repository,n\r\n\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",-3\r\n'+1,1\r\n'-2+3,2\r\n\
             '@SUM(A1),3\r\n'\tx,4\r\na=b,5\r\n"
        );
    }

    #[test]
    fn table_aligns_and_sanitises() {
        let rows = vec![
            vec![json!("library/nginx"), json!(2)],
            vec![json!("evil\u{1b}[2J\nx"), json!(10)],
        ];
        assert_eq!(
            format_table(&cols(), &rows),
            "Repository         n\n\
             ----------------  --\n\
             library/nginx      2\n\
             evil\\u{1b}[2J\\nx  10\n"
        );
    }

    #[test]
    fn json_shape_and_values() {
        let rows = vec![vec![json!("x"), json!(1)]];
        assert_eq!(
            format_json(&cols(), &rows),
            r#"{"columns":[{"name":"Repository","type":"string"},{"name":"n","type":"long"}],"rows":[["x",1]]}"#
        );
        assert_eq!(to_json(Type::Bool, SqlValue::Int(1)), json!(true));
        assert_eq!(
            to_json(Type::Datetime, SqlValue::Int(1_793_491_200_000)),
            json!("2026-11-01T00:00:00Z")
        );
        assert_eq!(
            to_json(Type::Dynamic, SqlValue::Text("[\"a\", 1]".into())),
            json!(["a", 1])
        );
        assert_eq!(to_json(Type::Real, SqlValue::Int(3)), json!(3.0));
        assert_eq!(to_json(Type::Real, SqlValue::Real(f64::NAN)), Value::Null);
    }
}

//! Errors point at the right place (line, column, caret) and say what would fix them.

use bulkhead_query::{Catalog, ErrorKind, check};

/// The rendered error of a query that must fail.
fn render(q: &str) -> String {
    match check(q, &Catalog::bulkhead_v1()) {
        Ok(cols) => panic!("compiled: {q} -> {cols:?}"),
        Err(e) => e.render(q),
    }
}

/// (line, column, message, hint) of a query that must fail.
fn parts(q: &str) -> (usize, usize, String, Option<String>) {
    let e = check(q, &Catalog::bulkhead_v1()).expect_err(q);
    let (l, c) = e.line_col(q);
    (l, c, e.message, e.hint)
}

#[test]
fn misspelt_column() {
    assert_eq!(
        render("Findings | where Sevrity == 'critical'"),
        "error: unknown column 'Sevrity'\n \
         --> 1:18\n  \
         |\n\
         1 | Findings | where Sevrity == 'critical'\n  \
         |                  ^^^^^^^\n  \
         = hint: did you mean 'Severity'?\n"
    );
}

#[test]
fn misspelt_operator_on_a_later_line() {
    assert_eq!(
        render("Images\n| where Health == 'unhealthy'\n| summerize count() by Repository"),
        "error: unknown operator 'summerize'\n \
         --> 3:3\n  \
         |\n\
         3 | | summerize count() by Repository\n  \
         |   ^^^^^^^^^\n  \
         = hint: did you mean 'summarize'?\n"
    );
}

#[test]
fn misspelt_table_and_function() {
    assert_eq!(
        parts("Image | take 1"),
        (
            1,
            1,
            "unknown table 'Image'".into(),
            Some("did you mean 'Images'?".into())
        )
    );
    assert_eq!(
        parts("Findings | summarize dcont(ImageId) by Severity"),
        (
            1,
            22,
            "unknown function 'dcont'".into(),
            Some("did you mean 'dcount'?".into())
        )
    );
    // Case is a typo too: names are case-sensitive.
    assert_eq!(
        parts("Images | project repository"),
        (
            1,
            18,
            "unknown column 'repository'".into(),
            Some("did you mean 'Repository'?".into())
        )
    );
    let (_, _, _, hint) = parts("Images | where Helth == 'x'");
    assert_eq!(hint.as_deref(), Some("did you mean 'Health'?"));
}

#[test]
fn columns_follow_the_pipeline() {
    // After summarize only its columns exist; the hint lists them.
    assert_eq!(
        parts("Findings | summarize count() by Severity | where Package == 'x'"),
        (
            1,
            50,
            "unknown column 'Package'".into(),
            Some("columns here: Severity, count_".into())
        )
    );
    assert_eq!(
        parts("Images | project ImageId, N = Repository | where Repository == 'x'").2,
        "unknown column 'Repository'"
    );
    assert_eq!(
        parts("Images | project-away Health | project Health").2,
        "unknown column 'Health'"
    );
    // A join's right side is its own scope.
    assert_eq!(
        parts("Images | join (Scans | project ScanId) on ImageId").2,
        "unknown column 'ImageId'"
    );
}

#[test]
fn type_errors_have_hints() {
    assert_eq!(
        parts("Images | where ScannedAt > '2026-11-01'"),
        (
            1,
            26,
            "cannot compare a datetime with a string".into(),
            Some("write dates as datetime(2026-11-01) or ago(7d)".into())
        )
    );
    assert_eq!(
        parts("Images | extend x = Repository + '/'").3.as_deref(),
        Some("join strings with strcat(a, b)")
    );
    assert_eq!(
        parts("Images | where Critical").2,
        "'where' needs a boolean condition; this is a long"
    );
    assert_eq!(
        parts("Images | where Critical > 0 and Repository").2,
        "'and' needs boolean operands; this is a string"
    );
    assert_eq!(
        parts("Images | join (Scans) on $left.ImageId == $right.Repository").2,
        "join key types differ: 'ImageId' is long on the left, 'Repository' is string on the right"
    );
    assert_eq!(
        parts("Images | summarize avg(Repository)").2,
        "avg() needs a number; this is a string"
    );
    assert_eq!(
        parts("Images | extend x = iff(Critical > 0, 'a', 1)").2,
        "iff()'s branches differ: string and long"
    );
}

#[test]
fn syntax_errors() {
    assert_eq!(
        parts("Images | where Health = 'x'"),
        (
            1,
            23,
            "expected '|' or the end of the query, found '='".into(),
            Some("comparison is '==' (a single '=' names a column)".into())
        )
    );
    assert_eq!(
        render("Images | where Repository == 'abc"),
        "error: unterminated string\n \
         --> 1:30\n  \
         |\n\
         1 | Images | where Repository == 'abc\n  \
         |                              ^^^^\n  \
         = hint: close the string with the same quote it starts with, on the same line\n"
    );
    assert_eq!(parts("").2, "the query is empty");
    assert_eq!(parts("| take 1").2, "expected a table name, found '|'");
    assert_eq!(
        parts("Images | take -1").2,
        "expected a row count (a whole number), found '-'"
    );
    assert_eq!(
        parts("Images | union Findings").2,
        "the 'union' operator is not supported"
    );
    assert_eq!(
        parts("Images | where Repository has_any ('a')").2,
        "the 'has_any' operator is not supported"
    );
    assert_eq!(
        parts("Images | where ScannedAt > datetime(2026-02-30)").0,
        1
    );
    assert_eq!(
        parts("Images | where ScannedAt > datetime(2026-02-30)").2,
        "'2026-02-30' is not a valid date"
    );
    assert_eq!(
        parts("Images | where x == 7weeks").2,
        "unknown timespan unit 'weeks'"
    );
    assert_eq!(
        parts("Images | where Repository matches regex '('").2,
        "invalid regular expression: unclosed group"
    );
    assert_eq!(
        parts("Images | where Repository has Registry").2,
        "the right side of 'has' must be a string literal"
    );
    assert_eq!(parts("Images | take 1 )").2, "unbalanced ')'");
}

#[test]
fn aggregation_errors() {
    assert_eq!(
        parts("Images | summarize Repository").2,
        "'Repository' is neither aggregated nor listed after 'by'"
    );
    assert_eq!(
        parts("Images | where count() > 1").2,
        "count() is an aggregation: use it in summarize"
    );
    assert_eq!(
        parts("Images | summarize max(count())").2,
        "aggregations cannot be nested"
    );
    assert_eq!(
        parts("Images | summarize count(), count()").2,
        "duplicate column name 'count_'"
    );
}

#[test]
fn columns_count_characters_not_bytes() {
    // 'é' is two bytes; the caret must still sit under Foo.
    let q = "Images | where LastError == 'éé' and Foo == 1";
    let r = render(q);
    let lines: Vec<&str> = r.lines().collect();
    assert_eq!(lines[1], " --> 1:38");
    let caret_col = lines[4].find('^').expect("caret") - "  | ".len();
    let foo_col = lines[3]["1 | ".len()..]
        .chars()
        .take_while(|&c| c != 'F')
        .count();
    assert_eq!(caret_col, foo_col);
}

#[test]
fn control_characters_do_not_reach_the_terminal() {
    let q = "Images | where \u{1b}[2J == 1";
    let r = render(q);
    assert!(!r.contains('\u{1b}'), "{r:?}");
}

#[test]
fn error_kinds_and_json() {
    let catalog = Catalog::bulkhead_v1();
    let q = "Findings | where Sevrity == 'x'";
    let e = check(q, &catalog).expect_err("unknown column");
    assert_eq!(e.kind, ErrorKind::Semantic);
    let j = e.to_json(q);
    assert_eq!(j["line"], 1);
    assert_eq!(j["column"], 18);
    assert_eq!(j["hint"], "did you mean 'Severity'?");
    assert_eq!(j["kind"], "semantic");
    assert_eq!(
        check("Images | where", &catalog).expect_err("eof").kind,
        ErrorKind::Syntax
    );
    let long = format!(
        "Images | where Repository in ({})",
        vec!["'x'"; 5000].join(",")
    );
    assert_eq!(
        check(&long, &catalog).expect_err("limit").kind,
        ErrorKind::Limit
    );
}

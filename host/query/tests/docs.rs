//! Every example in docs/query.md compiles, and the tables and columns it documents are
//! the catalog's (and the views' in sql/views_v1.sql).

mod common;

use bulkhead_query::{Catalog, check};

const DOC: &str = include_str!("../../../docs/query.md");

#[test]
fn examples_compile() {
    let catalog = Catalog::bulkhead_v1();
    let mut n = 0;
    let mut rest = DOC;
    while let Some(start) = rest.find("```kusto\n") {
        let body = &rest[start + "```kusto\n".len()..];
        let end = body.find("```").expect("closed code block");
        let q = &body[..end];
        if let Err(e) = check(q, &catalog) {
            panic!("docs/query.md example does not compile:\n{}", e.render(q));
        }
        n += 1;
        rest = &body[end..];
    }
    assert!(n >= 10, "only {n} examples");
}

#[test]
fn every_column_is_documented() {
    for table in Catalog::bulkhead_v1().tables {
        assert!(
            DOC.contains(&format!("### {}\n", table.name)),
            "{}",
            table.name
        );
        for col in &table.columns {
            assert!(
                DOC.contains(&format!("`{}`", col.name)),
                "{}.{}",
                table.name,
                col.name
            );
        }
    }
}

#[test]
fn views_have_exactly_the_catalogs_columns() {
    let conn = common::sqlite_store();
    for table in Catalog::bulkhead_v1().tables {
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM {} LIMIT 0", table.view))
            .expect("view exists");
        let got: Vec<String> = stmt.column_names().map(|s| s.to_string()).collect();
        let mut want = vec!["tenant_id".to_string()];
        want.extend(table.columns.iter().map(|c| c.name.to_string()));
        assert_eq!(got, want, "{}", table.view);
        stmt.raw_query().next().expect("runs");
    }
}

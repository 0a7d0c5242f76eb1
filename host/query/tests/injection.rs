//! Attempts to escape the tenant scope or to smuggle SQL. Each must either fail to compile
//! or, run as tenant A (and as tenant B), return exactly what it returns on a store that
//! holds only that tenant's rows: the other tenant's rows, however targeted, change
//! nothing. The SQL of everything that compiles is checked structurally too.

mod common;

use bulkhead_query::{Catalog, CompiledQuery, Dialect, Param, compile};
use serde_json::Value;

const HOSTILE: &[&str] = &[
    // Quotes, comments and statement separators inside strings.
    r#"Images | where Repository == "x' OR 1=1 --""#,
    r"Images | where Repository == 'x\' OR tenant_id = 2 --'",
    r#"Images | where Repository == "x\" OR 1=1 OR \"""#,
    r#"Images | project Repository = "'; DELETE FROM images; --""#,
    r#"Images | where strcat(Repository, "') OR (1=1") has 'x'"#,
    r#"Scans | where Error contains "%' OR '%'='""#,
    r#"Images | where Repository has "\\""#,
    "Images | where Repository == '$1' or Repository == '?1' or Repository == ':tenant'",
    "Images | where Repository == 'a' // ' or 1==1",
    // Statement separators and comments in the query itself.
    "Images; DROP TABLE images",
    "Images | where Repository == 'x' ; Images",
    "Images | take 1 /* comment */",
    "Images | take 1 -- comment",
    // The tenant column, under every guise.
    "Images | where tenant_id == 2",
    "Images | project tenant_id",
    "Images | summarize count() by tenant_id",
    "Images | extend tenant_id = 2 | where tenant_id == 2",
    "Images | join kind=inner (Images | project ImageId, tenant = 1) on $left.ImageId == $right.ImageId",
    "Images | join kind=inner (Images) on $left.ImageId == $right.tenant_id",
    // Other tables, views and schemas.
    "Images | union (Images)",
    "images | take 1",
    "query_images | take 1",
    "tenants | take 1",
    "tokens | take 1",
    "sqlite_master | take 1",
    "pg_catalog.pg_tables | take 1",
    "Images | join kind=inner (tenants) on ImageId",
    "Images | join kind=inner (query_images) on ImageId",
    // Identifiers that are not identifiers.
    r#"Images | extend ["x; DROP"] = 1"#,
    r#"Images | project-rename a" = Repository"#,
    "Images | extend x = $1",
    "Images | where Repository == ’x’",
    "Images\u{0} | take 1",
    "Images | where Repository == 'x'\u{0}",
    // Targeting the other tenant's rows by value.
    "Images | where ImageId in (6, 7)",
    "Images | where ImageId == 6 or ImageId == 7 or Critical >= 0",
    "Images | where Digest == 'sha256:b6'",
    "Images | where Repository in ('secret/db')",
    "Findings | where VulnId startswith 'CVE-2024-99'",
    "Packages | where Name == 'postgresql-16'",
    "Recommendations | where Fixes has 'CVE-2024-9999'",
    "Scans | where ScanId >= 8",
    "HealthEvents | where ImageId > 5",
    // Tautologies and everything-matching patterns.
    "Images | where Repository == 'x' or 1 == 1",
    "Images | where Repository matches regex '.*'",
    "Images | where Repository contains '%'",
    "Images | where Repository contains '_'",
    "Images | where not(Repository == 'x')",
    // Joins of every kind: both sides are scoped.
    "Images | join kind=inner (Images | where Registry == 'local') on ImageId",
    "Images | join kind=fullouter (Images) on ImageId | project ImageId, ImageId1",
    "Scans | join kind=rightouter (Images) on ImageId | project ScanId, ImageId1",
    "Images | project Digest | join kind=leftanti (Images) on Digest",
    "Findings | join kind=inner (Scans | where State == 'failed') on ImageId | project ScanId",
    "HealthEvents | join kind=leftouter (Images) on ImageId | summarize count()",
    "Images | join kind=leftsemi (Findings | where VulnId == 'CVE-2024-9999') on ImageId",
    // Aggregates over everything.
    "Images | summarize make_set(Digest), count(), dcount(Repository)",
    "Findings | summarize count() by VulnId",
    "Images | count",
    "Images | take 9223372036854775807",
];

fn delete_tenant(conn: &rusqlite::Connection, tenant: i64) {
    for t in [
        "health_events",
        "recommendations",
        "packages",
        "findings",
        "jobs",
        "images",
    ] {
        conn.execute(&format!("DELETE FROM {t} WHERE tenant_id = ?1"), [tenant])
            .expect("delete");
    }
}

/// Every base-table reference is the tenant-scoped form; no other table, comment or
/// statement separator appears; `tenant_id` appears only in those filters.
fn assert_scoped(q: &CompiledQuery, dialect: Dialect, query: &str) {
    let sql = &q.sql;
    let filter = match dialect {
        Dialect::Sqlite => "WHERE tenant_id = $1)",
        Dialect::Postgres => "WHERE tenant_id = $1::BIGINT)",
    };
    let views = sql.matches("FROM query_").count();
    let scoped = sql
        .match_indices("FROM query_")
        .filter(|(i, _)| {
            let rest = &sql[i + "FROM query_".len()..];
            let name_len = rest
                .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .unwrap_or(rest.len());
            rest[name_len..].starts_with(&format!(" {filter}"))
        })
        .count();
    assert!(views >= 1, "{query}: no table in {sql}");
    assert_eq!(views, scoped, "{query}: an unscoped table in {sql}");
    assert_eq!(sql.matches("tenant_id").count(), views, "{query}: {sql}");
    assert_eq!(q.params[0], Param::Int(common::TENANT_A), "{query}");
    for bad in [
        ";", "--", "/*", "DROP", "DELETE", "UNION", "tenants", "tokens",
    ] {
        assert!(!sql.contains(bad), "{query}: {bad:?} in {sql}");
    }
    for table in [
        "images",
        "findings",
        "packages",
        "recommendations",
        "jobs",
        "health_events",
    ] {
        for kw in ["FROM", "JOIN"] {
            assert!(!sql.contains(&format!("{kw} {table}")), "{query}: {sql}");
        }
    }
}

fn sorted(mut rows: Vec<Vec<Value>>) -> Vec<Vec<Value>> {
    rows.sort_by_key(|r| serde_json::to_string(r).unwrap_or_default());
    rows
}

#[test]
fn hostile_queries_fail_or_see_only_their_tenant() {
    let catalog = Catalog::bulkhead_v1();
    let full = common::sqlite_store();
    let only = [
        (common::TENANT_A, common::TENANT_B),
        (common::TENANT_B, common::TENANT_A),
    ]
    .map(|(keep, drop)| {
        let c = common::sqlite_store();
        delete_tenant(&c, drop);
        (keep, c)
    });
    let pg = common::PgStore::open();
    let mut compiled = 0;
    let mut rejected = Vec::new();
    for query in HOSTILE {
        let Ok(a) = compile(
            query,
            &catalog,
            &common::options(Dialect::Sqlite, common::TENANT_A),
        ) else {
            rejected.push(*query);
            continue;
        };
        compiled += 1;
        assert_scoped(&a, Dialect::Sqlite, query);
        let pg_a = compile(
            query,
            &catalog,
            &common::options(Dialect::Postgres, common::TENANT_A),
        )
        .expect("compiles for PostgreSQL too");
        assert_scoped(&pg_a, Dialect::Postgres, query);
        for (tenant, alone) in &only {
            let opts = common::options(Dialect::Sqlite, *tenant);
            let q = compile(query, &catalog, &opts).expect("compiles");
            let shared = common::run_sqlite(&full, &q).expect("runs");
            let expected = common::run_sqlite(alone, &q).expect("runs");
            assert_eq!(
                sorted(shared.clone()),
                sorted(expected.clone()),
                "{query}: tenant {tenant} sees other rows"
            );
            if let Some(pg) = &pg {
                let opts = common::options(Dialect::Postgres, *tenant);
                let q = compile(query, &catalog, &opts).expect("compiles");
                let got = pg.run(&q).expect("runs on PostgreSQL");
                assert_eq!(
                    sorted(got),
                    sorted(expected),
                    "{query}: tenant {tenant} on PostgreSQL"
                );
            }
        }
    }
    // Both halves are exercised.
    assert!(compiled >= 30, "only {compiled} compiled");
    for must_fail in [
        "Images; DROP TABLE images",
        "Images | where tenant_id == 2",
        "Images | project tenant_id",
        "tenants | take 1",
        "query_images | take 1",
        "Images | union (Images)",
        "Images | extend x = $1",
    ] {
        assert!(rejected.contains(&must_fail), "{must_fail} compiled");
    }
}

#[test]
fn the_tenants_do_differ() {
    // Without this the differential test above could pass on an empty or one-tenant store.
    let conn = common::sqlite_store();
    let catalog = Catalog::bulkhead_v1();
    let count = |tenant, q: &str| {
        let c = compile(q, &catalog, &common::options(Dialect::Sqlite, tenant)).expect("compiles");
        common::run_sqlite(&conn, &c).expect("runs")
    };
    assert_eq!(
        count(common::TENANT_A, "Images | count"),
        vec![vec![Value::from(5)]]
    );
    assert_eq!(
        count(common::TENANT_B, "Images | count"),
        vec![vec![Value::from(2)]]
    );
    assert_eq!(
        count(
            common::TENANT_B,
            "Images | where Digest == 'sha256:b6' | project ImageId"
        ),
        vec![vec![Value::from(6)]]
    );
    assert!(count(common::TENANT_A, "Images | where Digest == 'sha256:b6'").is_empty());
    assert_eq!(count(3, "Images | count"), vec![vec![Value::from(0)]]);
}

/// The SQL depends on the query's shape only: swapping a string's content for hostile text
/// leaves the SQL byte-for-byte the same, and the text travels as a parameter.
#[test]
fn strings_never_reach_the_sql() {
    const TEMPLATES: &[&str] = &[
        "Images | where Repository == '{}'",
        "Images | where Repository has '{}'",
        "Images | where Repository !contains '{}'",
        "Images | where Repository startswith '{}' or Repository endswith '{}'",
        "Images | where Repository in ('{}', 'b')",
        "Images | where Repository =~ '{}'",
        "Images | extend x = strcat(Repository, '{}') | project x",
        "Images | extend x = replace_string(Repository, '{}', '{}') | project x",
        "Images | summarize n = countif(Repository == '{}') by Health",
        "Images | join kind=inner (Scans | where Error == '{}') on ImageId",
        "Images | where Repository == \"{}\"",
    ];
    const TEXTS: &[&str] = &[
        "x' OR '1'='1",
        "x'; DROP TABLE images; --",
        "x\" OR tenant_id = 2 --",
        "') UNION SELECT * FROM images --",
        "$1",
        "?",
        ":tenant",
        "%_\\",
        "*/ OR 1=1 /*",
        "\n;\r\t",
        "ü∞𝄞",
    ];
    let catalog = Catalog::bulkhead_v1();
    for dialect in [Dialect::Sqlite, Dialect::Postgres] {
        let opts = common::options(dialect, common::TENANT_A);
        for t in TEMPLATES {
            let benign = compile(&t.replace("{}", "x"), &catalog, &opts).expect("benign");
            for text in TEXTS {
                let escaped = text
                    .replace('\\', "\\\\")
                    .replace('\'', "\\'")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n")
                    .replace('\r', "\\r")
                    .replace('\t', "\\t");
                let q = t.replace("{}", &escaped);
                let hostile = compile(&q, &catalog, &opts).expect("hostile text compiles");
                assert_eq!(benign.sql, hostile.sql, "{q}");
                // ... and the text went into the parameters instead.
                assert_ne!(benign.params, hostile.params, "{q}");
                assert_eq!(benign.params.len(), hostile.params.len(), "{q}");
            }
        }
    }
}

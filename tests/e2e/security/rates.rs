//! A tenant's rates on a real `bulkhead serve` (SQLite, then PostgreSQL): manual scans
//! (`POST /v1/scans`) and queries past the tenant's `scans_per_minute` and
//! `queries_per_minute` are answered 429 with `Retry-After`, another tenant's are not. The
//! claim order across tenants is `host/store/tests/store.rs` `fair_claims` (both stores)
//! and the benchmark `cargo bench -p bulkhead --bench fairness`.

use bulkhead_test_artifacts::{StoreKind, both};
use serde_json::json;

use super::query_limits::{query, service};

fn manual_scans_and_queries_are_rate_limited_per_tenant(kind: StoreKind) {
    let Some(store) = kind.store() else { return };
    let svc = service(
        store,
        &["team-a", "team-b"],
        "scans_per_minute = 3\n",
        "[query]\nqueries_per_minute = 4\n",
    );
    let [a, b] = ["team-a", "team-b"].map(|t| svc.create_token(t, "operator"));
    let scan = |token: &str, tenant: &str| {
        svc.post_json(
            "/v1/scans",
            Some(token),
            &json!({"registry": "local", "repository": format!("{tenant}/app"), "tag": "v1"}),
        )
    };
    // The registry does not answer: an admitted scan is a 502, a refused one a 429.
    for i in 0..3 {
        let r = scan(&a, "team-a");
        assert_eq!(r.status, 502, "scan {i}: {}", r.text());
    }
    let refused = scan(&a, "team-a");
    assert_eq!(refused.status, 429, "{}", refused.text());
    let body = refused.json().expect("JSON");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("scans_per_minute")),
        "{body}"
    );
    let retry: u64 = refused
        .header("Retry-After")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    // 3 a minute: the next in at most 20 s.
    assert!((1..=20).contains(&retry), "{retry}");
    // Team B has its own.
    assert_eq!(scan(&b, "team-b").status, 502);

    for i in 0..4 {
        let (status, _, body) = query(&svc, &a, "Images | count");
        assert_eq!(status, 200, "query {i}: {body}");
    }
    let (status, retry_after, body) = query(&svc, &a, "Images | count");
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "query_rate", "{body}");
    assert_eq!(body["error"]["per_minute"], 4, "{body}");
    let retry: u64 = retry_after
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=15).contains(&retry), "{retry}");
    let (status, _, body) = query(&svc, &b, "Images | count");
    assert_eq!(status, 200, "another tenant's rate is its own: {body}");
}

both!(manual_scans_and_queries_are_rate_limited_per_tenant);

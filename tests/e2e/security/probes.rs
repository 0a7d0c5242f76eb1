//! What the service says without a token, and what its exports carry (issue 12, item 11):
//! `/readyz` says ready or not and which check, never a path or an error's text;
//! `/metrics` can require a token and move to an address of its own; the query's CSV
//! neutralises text cells a spreadsheet would run as formulas.

use bulkhead_test_artifacts::registry::{self, Auth, Registry};
use bulkhead_test_artifacts::service::{ServiceHarness, ServiceOptions, free_port};
use bulkhead_test_artifacts::{http, require_tools};
use serde_json::json;

use crate::harness::bin;

const HOOK_SECRET: &str = "probes-webhook-secret";
const METRICS_TOKEN: &str = "probes-metrics-token";

#[test]
fn probes_say_little_metrics_are_protected_and_csv_is_neutralised() {
    if !require_tools(registry::TOOLS) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = Registry::start(Auth::None);
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let missing_db = dir.path().join("no-advisories-here.db");
    let mut opts = ServiceOptions::new(&missing_db);
    opts.registry("local", &reg.url(), HOOK_SECRET)
        .tenant("alpha", &[("local", "team-a")]);
    opts.server_toml = format!(
        "metrics_listen = \"{metrics_addr}\"\nmetrics_token_env = \"BULKHEAD_TEST_METRICS_TOKEN\""
    );
    opts.env
        .push(("BULKHEAD_TEST_METRICS_TOKEN".into(), METRICS_TOKEN.into()));
    let svc = ServiceHarness::start(bin(), opts);

    // /readyz: which check fails, and nothing else.
    let r = svc.get("/readyz", None);
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(
        r.json().expect("json"),
        json!({"status": "not_ready", "checks": {"store": "ok", "advisory_db": "missing"}})
    );
    let text = r.text();
    for secret in [
        missing_db.to_string_lossy().into_owned(),
        svc.store_path().to_string_lossy().into_owned(),
        "/".to_string(),
    ] {
        assert!(!text.contains(&secret), "/readyz shows {secret:?}: {text}");
    }

    // /metrics: only on its own address, only with the token.
    assert_eq!(svc.get("/metrics", None).status, 404);
    assert_eq!(svc.get("/metrics", Some(METRICS_TOKEN)).status, 404);
    let get = |auth: Option<&str>| {
        let header = auth.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = header
            .as_deref()
            .map(|h| vec![("Authorization", h)])
            .unwrap_or_default();
        http::get(&metrics_addr, "/metrics", &headers).expect("GET /metrics")
    };
    assert_eq!(get(None).status, 401);
    assert_eq!(get(Some("probes-metrics-tokeN")).status, 401);
    let r = get(Some(METRICS_TOKEN));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("bulkhead_jobs"), "{}", r.text());

    // CSV: a pushed image, and a query whose text cells start like formulas.
    let envelope = json!({"events": [{"action": "push", "target": {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": format!("sha256:{}", "ab".repeat(32)),
        "repository": "team-a/app", "tag": "v1"}}]});
    let r = svc.post_json("/v1/webhooks/registry", Some(HOOK_SECRET), &envelope);
    assert_eq!(r.status, 200, "{}", r.text());
    let reader = svc.create_token("alpha", "reader");
    let query = "Images | extend f = strcat('=HYPERLINK(\"http://evil\")', Repository), \
                 p = strcat('+', Repository), m = strcat('-', Repository), \
                 a = strcat('@', Repository), n = Packages - 1, r = Repository \
                 | project f, p, m, a, n, r";
    let r = svc.post_json(
        "/v1/query",
        Some(&reader),
        &json!({"query": query, "format": "csv"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.text(),
        "f,p,m,a,n,r\r\n\
         \"'=HYPERLINK(\"\"http://evil\"\")team-a/app\",'+team-a/app,'-team-a/app,'@team-a/app,-1,team-a/app\r\n"
    );
}

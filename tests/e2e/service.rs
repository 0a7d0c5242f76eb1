//! `bulkhead serve` end to end: a real registry (Debian's `docker-registry`, distribution
//! 2.8) notifies a running `bulkhead serve` (the binary) of pushes made with skopeo; the
//! results are read through the REST API with tokens of two tenants. Every test runs on
//! both stores: SQLite, and PostgreSQL (a database of a throwaway cluster). The durability
//! tests (restarts, kill -9, bursts, two instances) are `tests/e2e/service_durability.rs`.
//!
//! Oracles: the demo image's own documentation (`demo/README.md`: AlmaLinux 9.4, 30 rpm
//! packages, the packages that must have no finding), the registry's notifications and
//! the OCI layout we pushed (which digests exist), and the CLI's scan of the same archive
//! with the same advisory database (the service must store what the pipeline reports).
//!
//! Needs the apt packages docker-registry, skopeo, apache2-utils, openssl and postgresql:
//! without them the test skips (the PostgreSQL half alone when only PostgreSQL is missing),
//! except in CI (`CI` set), where it fails.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use bulkhead_test_artifacts::registry::{self, Auth, Options, Registry};
use bulkhead_test_artifacts::service::{ServiceHarness, ServiceOptions, free_port};
use bulkhead_test_artifacts::skopeo::{self, PushOptions};
use bulkhead_test_artifacts::{StoreKind, both, http, images, require_tools};
use serde_json::{Value, json};

use crate::harness::{bin, cli_report, demo_archive, demo_db, push_archive};

const HOOK_SECRET: &str = "e2e-webhook-secret";
const SCAN_TIMEOUT: Duration = Duration::from_secs(180);

/// What the CLI reports for the demo archive with `db`: (id, package, installed, fixed,
/// severity) of every finding.
fn cli_findings(dir: &Path, db: &Path) -> BTreeSet<(String, String, String, String, String)> {
    let report = cli_report(dir, db);
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap_or_default().to_string(),
                f["package"].as_str().unwrap_or_default().to_string(),
                f["installed_version"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                f["fixed_version"].as_str().unwrap_or_default().to_string(),
                f["severity"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The tenant's images in `repository`, once none is pending or scanning and there are
/// `want` of them.
fn scanned_images(svc: &ServiceHarness, token: &str, repository: &str, want: usize) -> Vec<Value> {
    svc.wait_for(
        &format!("{want} scanned image(s) in {repository}"),
        SCAN_TIMEOUT,
        || {
            let items = svc.get_all(&format!("/v1/images?repository={repository}"), token);
            let done = items.len() == want
                && items
                    .iter()
                    .all(|i| !matches!(i["health"].as_str(), Some("pending" | "scanning")));
            done.then_some(items)
        },
    )
}

/// No job of the tenant is queued or running.
fn queue_idle(svc: &ServiceHarness, token: &str) {
    svc.wait_for("an idle queue", SCAN_TIMEOUT, || {
        let q = svc.get_all("/v1/scans?state=queued", token);
        let r = svc.get_all("/v1/scans?state=running", token);
        (q.is_empty() && r.is_empty()).then_some(())
    });
}

// Each test body takes the store kind; `both!` makes it a test on each store.
both!(pushes_are_scanned_once_and_results_are_tenant_scoped);

fn pushes_are_scanned_once_and_results_are_tenant_scoped(kind: StoreKind) {
    if !require_tools(registry::TOOLS) {
        return;
    }
    let Some(store) = kind.store() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = demo_db(dir.path());

    let port = free_port();
    let hook = ServiceHarness::notifications_for(port, HOOK_SECRET);
    let reg = Registry::start_with(Options {
        auth: Auth::None,
        notifications: Some(hook),
    });
    let mut opts = ServiceOptions::new(&db);
    opts.port = Some(port);
    opts.store = store;
    opts.registry("local", &reg.url(), HOOK_SECRET)
        .tenant("a", &[("local", "team-a")])
        .tenant("b", &[("local", "team-b")]);
    let svc = ServiceHarness::start(bin(), opts);
    assert_eq!(
        svc.store_path().exists(),
        kind == StoreKind::Sqlite,
        "the service runs on the store asked for"
    );
    let reader_a = svc.create_token("a", "reader");
    let operator_a = svc.create_token("a", "operator");
    let reader_b = svc.create_token("b", "reader");

    let ready = svc.get("/readyz", None);
    assert_eq!(ready.status, 200, "{}", ready.text());

    // --- a push leads to findings ----------------------------------------------------
    let archive = demo_archive(dir.path());
    push_archive(&reg, &archive, "team-a/demo:2024-10-31");
    let demo = scanned_images(&svc, &reader_a, "team-a/demo", 1).remove(0);
    assert_eq!(demo["health"], "unhealthy", "{demo}");
    assert_eq!(demo["tags"], json!(["2024-10-31"]), "{demo}");
    // demo/README.md: AlmaLinux 9.4 with 30 rpm packages.
    assert_eq!(demo["os"]["id"], "almalinux", "{demo}");
    assert_eq!(demo["os"]["version"], "9.4", "{demo}");
    assert_eq!(demo["packages"], 30, "{demo}");
    let id = demo["id"].as_i64().expect("image id");
    let packages = svc.get_all(&format!("/v1/images/{id}/packages?limit=7"), &reader_a);
    assert_eq!(packages.len(), 30, "paging over 7 per page");

    let findings = svc.get_all(&format!("/v1/images/{id}/findings?limit=50"), &reader_a);
    let got: BTreeSet<(String, String, String, String, String)> = findings
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap_or_default().to_string(),
                f["package"].as_str().unwrap_or_default().to_string(),
                f["installed_version"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                f["fixed_version"].as_str().unwrap_or_default().to_string(),
                f["severity"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(got.len(), findings.len(), "a finding listed twice");
    assert!(!got.is_empty());
    assert_eq!(
        got,
        cli_findings(dir.path(), &db),
        "the service stores what the CLI reports"
    );
    // demo/README.md: these packages have no later erratum and must produce no finding.
    for clean in ["zlib", "xz-libs", "bash", "less", "rpm", "dbus-libs"] {
        assert!(
            findings.iter().all(|f| f["package"] != clean),
            "{clean} has a finding"
        );
    }
    let counts = &demo["counts"];
    let counted: i64 = ["critical", "high", "medium", "low", "negligible", "unknown"]
        .iter()
        .map(|k| counts[k].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(counted, findings.len() as i64, "{counts}");
    let f = &findings[0];
    assert!(
        f["remediation"].as_str().is_some_and(|r| !r.is_empty()),
        "{f}"
    );
    assert!(f["description"].is_string(), "{f}");
    let recs = svc.get_all("/v1/recommendations", &reader_a);
    assert!(!recs.is_empty(), "an unhealthy image has recommendations");
    answers_match_the_openapi_document(&svc, &reader_a, id);
    assert_eq!(svc.metric("bulkhead_scans_total{outcome=\"done\"}"), 1.0);

    // --- the same digest pushed again (another tag) is not scanned again: no job ----------
    push_archive(&reg, &archive, "team-a/demo:again");
    svc.wait_for("the second tag", SCAN_TIMEOUT, || {
        let i = svc.get_json(&format!("/v1/images/{id}"), &reader_a);
        (i["tags"] == json!(["2024-10-31", "again"])).then_some(())
    });
    queue_idle(&svc, &reader_a);
    assert_eq!(
        svc.metric("bulkhead_scans_total{outcome=\"done\"}"),
        1.0,
        "one digest, one scan\n{}",
        svc.log()
    );
    assert_eq!(svc.get_all("/v1/images", &reader_a).len(), 1);
    assert_eq!(
        svc.get_all("/v1/scans", &reader_a).len(),
        1,
        "a re-push of a scanned digest records the tag without a job"
    );
    assert!(
        svc.metric(
            "bulkhead_webhook_events_total{kind=\"manifest_push\",result=\"already_scanned\"}"
        ) >= 1.0,
        "{}",
        svc.metrics()
    );

    // --- an index push scans each platform manifest once --------------------------------
    let multi = images::multi_platform();
    skopeo::push_with(
        &multi.layout,
        &multi.tag,
        reg.addr(),
        None,
        "team-a/multi",
        &PushOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // The layout's own index names the platform manifests (the oracle for which digests
    // must be scanned).
    let index: Value = serde_json::from_slice(
        &multi
            .open()
            .read_blob(&multi.descriptor().digest)
            .expect("index blob"),
    )
    .expect("index JSON");
    let want: BTreeSet<String> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| m["digest"].as_str().expect("digest").to_string())
        .collect();
    assert_eq!(want.len(), 2);
    let platforms = scanned_images(&svc, &reader_a, "team-a/multi", 2);
    queue_idle(&svc, &reader_a);
    let got: BTreeSet<String> = platforms
        .iter()
        .map(|i| i["digest"].as_str().expect("digest").to_string())
        .collect();
    assert_eq!(got, want, "exactly the index's platform manifests");
    let got_platforms: BTreeSet<&str> = platforms
        .iter()
        .filter_map(|i| i["platform"].as_str())
        .collect();
    assert_eq!(
        got_platforms,
        BTreeSet::from(["linux/amd64", "linux/arm64/v8"]),
        "{platforms:?}"
    );
    for p in &platforms {
        assert_eq!(p["tags"], json!(["latest"]), "the index's tag: {p}");
        assert!(p["packages"].as_i64().is_some_and(|n| n > 0), "{p}");
    }
    assert_eq!(
        svc.metric("bulkhead_scans_total{outcome=\"done\"}"),
        3.0,
        "the demo once and each platform once\n{}",
        svc.log()
    );
    // The index's event comes after its platform manifests' (untagged) pushes: it joins
    // their jobs, or only tags them if they are done already.
    assert!(
        ["coalesced", "enqueued", "already_scanned"]
            .iter()
            .map(|r| svc.metric(&format!(
                "bulkhead_webhook_events_total{{kind=\"index_push\",result=\"{r}\"}}"
            )))
            .sum::<f64>()
            >= 1.0
    );
    assert!(
        svc.metric("bulkhead_webhook_events_total{kind=\"blob_push\",result=\"ignored\"}") > 0.0,
        "blob pushes arrive and are ignored"
    );

    // --- a Harbor push of the index: looked up in the registry, per platform, no rescan --
    let harbor = json!({
        "type": "PUSH_ARTIFACT",
        "occur_at": 1_700_000_000,
        "operator": "admin",
        "event_data": {
            "resources": [{"digest": multi.descriptor().digest, "tag": "harbor"}],
            "repository": {"name": "multi", "namespace": "team-a", "repo_full_name": "team-a/multi", "repo_type": "private"}
        }
    });
    let auth = format!("Bearer {HOOK_SECRET}");
    let r = http::request(
        "POST",
        svc.addr(),
        "/v1/webhooks/registry",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        harbor.to_string().as_bytes(),
    )
    .expect("POST the Harbor payload");
    assert_eq!(r.status, 200, "{}", r.text());
    svc.wait_for("the Harbor tag on both platforms", SCAN_TIMEOUT, || {
        let items = svc.get_all("/v1/images?tag=harbor", &reader_a);
        (items.len() == 2).then_some(())
    });
    queue_idle(&svc, &reader_a);
    assert_eq!(
        svc.metric("bulkhead_scans_total{outcome=\"done\"}"),
        3.0,
        "a known digest is not scanned again\n{}",
        svc.log()
    );

    // --- tenant B sees nothing of tenant A's ----------------------------------------------
    assert!(svc.get_all("/v1/images", &reader_b).is_empty());
    assert!(svc.get_all("/v1/scans", &reader_b).is_empty());
    assert!(svc.get_all("/v1/recommendations", &reader_b).is_empty());
    let summary = svc.get_json("/v1/summary", &reader_b);
    for key in ["images", "jobs", "findings"] {
        let total: i64 = summary[key]
            .as_object()
            .expect("counts")
            .values()
            .map(|v| v.as_i64().unwrap_or(0))
            .sum();
        assert_eq!(total, 0, "tenant b's {key}: {summary}");
    }
    let summary_a = svc.get_json("/v1/summary", &reader_a);
    assert_eq!(summary_a["images"]["unhealthy"], 1, "{summary_a}");
    let missing = svc.get("/v1/images/999999999", Some(&reader_b));
    for suffix in ["", "/findings", "/packages"] {
        let theirs = svc.get(&format!("/v1/images/{id}{suffix}"), Some(&reader_b));
        let none = svc.get(&format!("/v1/images/999999999{suffix}"), Some(&reader_b));
        assert_eq!(theirs.status, 404, "{suffix}");
        assert_eq!(
            theirs.body, none.body,
            "{suffix}: same body as a missing id"
        );
    }
    assert_eq!(missing.status, 404);
    let scan_ids: Vec<i64> = svc
        .get_all("/v1/scans", &reader_a)
        .iter()
        .filter_map(|s| s["id"].as_i64())
        .collect();
    assert!(!scan_ids.is_empty());
    for sid in &scan_ids {
        let r = svc.get(&format!("/v1/scans/{sid}"), Some(&reader_b));
        assert_eq!(r.status, 404);
        assert_eq!(r.body, svc.get("/v1/scans/999999999", Some(&reader_b)).body);
    }

    // --- roles and authentication -------------------------------------------------------
    let manual = json!({"registry": "local", "repository": "team-a/demo", "tag": "2024-10-31"});
    let r = svc.post_json("/v1/scans", Some(&reader_a), &manual);
    assert_eq!(r.status, 403, "{}", r.text());
    let r = svc.get("/v1/images", None);
    assert_eq!(r.status, 401, "{}", r.text());
    let r = svc.get("/v1/images", Some("bh_0000"));
    assert_eq!(r.status, 401, "{}", r.text());
    // Tenant b's operator cannot scan a's repository: the same 404 as a missing tag.
    let operator_b = svc.create_token("b", "operator");
    let r = svc.post_json("/v1/scans", Some(&operator_b), &manual);
    assert_eq!(r.status, 404, "{}", r.text());

    // --- a manual scan by an operator runs again (no reuse) -------------------------------
    let r = svc.post_json("/v1/scans", Some(&operator_a), &manual);
    assert_eq!(r.status, 202, "{}", r.text());
    let body = r.json().expect("json");
    let sid = body["items"][0]["scan"]["id"].as_i64().expect("scan id");
    let done = svc.wait_for("the manual scan", SCAN_TIMEOUT, || {
        let s = svc.get_json(&format!("/v1/scans/{sid}"), &reader_a);
        (s["state"] == "done").then_some(s)
    });
    assert_eq!(done["reason"], "manual");
    assert_eq!(done["image_id"], id);
    assert_eq!(
        svc.metric("bulkhead_scans_total{outcome=\"done\"}"),
        4.0,
        "{}",
        svc.log()
    );
}

/// The service's answers are what its OpenAPI document says (the document is generated
/// from the route table and the handlers' types; this checks the generation against real
/// answers): each answer is validated against the schema of its route's success response.
fn answers_match_the_openapi_document(svc: &ServiceHarness, token: &str, image: i64) {
    let Some(python) = crate::report_formats::python() else {
        return;
    };
    let doc = svc.get_json("/v1/openapi.json", token);
    let dir = tempfile::tempdir().expect("tempdir");
    let scan = svc.get_json("/v1/scans?limit=1", token)["items"][0]["id"]
        .as_i64()
        .expect("a scan");
    for (route, path) in [
        ("/v1/whoami", "/v1/whoami".to_string()),
        ("/v1/summary", "/v1/summary".to_string()),
        ("/v1/images", "/v1/images?limit=1".to_string()),
        ("/v1/images/{id}", format!("/v1/images/{image}")),
        (
            "/v1/images/{id}/findings",
            format!("/v1/images/{image}/findings?limit=5"),
        ),
        (
            "/v1/images/{id}/packages",
            format!("/v1/images/{image}/packages?limit=5"),
        ),
        ("/v1/recommendations", "/v1/recommendations".to_string()),
        ("/v1/scans", "/v1/scans".to_string()),
        ("/v1/scans/{id}", format!("/v1/scans/{scan}")),
        ("/v1/ownership", "/v1/ownership".to_string()),
    ] {
        let answer = svc.get_json(&path, token);
        let mut schema =
            doc["paths"][route]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
                .clone();
        assert!(schema.is_object(), "{route}: no documented answer");
        schema["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
        schema["components"] = doc["components"].clone();
        let file = dir.path().join("schema.json");
        std::fs::write(&file, serde_json::to_vec(&schema).expect("schema")).expect("write");
        if let Err(e) = &crate::report_formats::validate(&python, &file, &[], &[&answer])[0] {
            panic!("GET {path} does not match the OpenAPI document: {e}\n{answer:#}");
        }
    }
}

//! Fair claiming under a burst (`cargo bench -p bulkhead --bench fairness`): tenant A
//! pushes 200 images, then tenant B pushes one, to a real `bulkhead serve` (the release
//! binary, SQLite, two workers) behind a real registry (`docker-registry`), with the demo
//! image and its advisory database. Prints how long B's scan waited, in seconds and in
//! scans, how many of A's scans started between B's push and B's scan, and where B's scan
//! came in the order. The target is "delayed by at most the scans already running when B
//! pushed" (no scan of A started after B's push, before B's); it is reported, not
//! asserted, like every benchmark here (bench/README.md). The claim order itself is
//! asserted by `host/store/tests/store.rs` `fair_claims`, on SQLite and PostgreSQL.
//!
//! The 200 images are the demo image in 200 repositories: pushed once with skopeo, then
//! its repository's links copied in the registry's storage (what a cross-repository
//! mount makes), so that the burst is the service's work and not the push's.

// The e2e tests' helpers: the binary, the demo image and database, pushing.
#[path = "../../../tests/e2e/harness.rs"]
mod harness;

use std::time::Duration;

use bulkhead_test_artifacts::registry::{Auth, Registry};
use bulkhead_test_artifacts::service::{ServiceHarness, ServiceOptions};
use serde_json::{Value, json};

const SECRET: &str = "bench-fairness-webhook-secret";
const BURST: usize = 200;
const WORKERS: usize = 2;

/// Seconds since the epoch of an RFC 3339 time the API writes.
fn seconds(t: &Value) -> f64 {
    let text = t.as_str().unwrap_or_else(|| panic!("not a time: {t}"));
    let at: jiff::Timestamp = text
        .parse()
        .unwrap_or_else(|e| panic!("not RFC 3339: {text}: {e}"));
    at.as_millisecond() as f64 / 1000.0
}

fn webhook(svc: &ServiceHarness, events: Vec<Value>) {
    let r = svc.post_json(
        "/v1/webhooks/registry",
        Some(SECRET),
        &json!({ "events": &events }),
    );
    assert_eq!(r.status, 200, "webhook: {}", r.text());
    let summary: Value = serde_json::from_str(&r.text()).expect("the webhook's summary");
    assert_eq!(
        summary["enqueued"].as_u64(),
        Some(events.len() as u64),
        "every push enqueued: {summary}"
    );
}

fn main() {
    if !bulkhead_test_artifacts::require_tools(&["docker-registry", "skopeo"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let db = harness::demo_db(dir.path());
    let reg = Registry::start(Auth::None);
    harness::push_archive(&reg, &harness::demo_archive(dir.path()), "team-a/app0:v1");
    // Without an Accept header the registry would convert the manifest to schema 1.
    let accept = "application/vnd.oci.image.manifest.v1+json, \
                  application/vnd.docker.distribution.manifest.v2+json";
    let manifest = reg
        .get_as(
            "/v2/team-a/app0/manifests/v1",
            reg.creds(),
            &[("Accept", accept)],
        )
        .expect("the pushed manifest");
    assert_eq!(manifest.status, 200, "{}", manifest.text());
    let digest = manifest
        .header("Docker-Content-Digest")
        .expect("digest")
        .to_string();
    let media_type = manifest
        .header("Content-Type")
        .expect("media type")
        .to_string();
    let repos = reg.storage().join("docker/registry/v2/repositories");
    for i in 1..BURST {
        bulkhead_test_artifacts::copy_dir(
            &repos.join("team-a/app0"),
            &repos.join(format!("team-a/app{i}")),
        );
    }
    bulkhead_test_artifacts::copy_dir(&repos.join("team-a/app0"), &repos.join("team-b/app"));

    let mut opts = ServiceOptions::new(&db);
    opts.workers = WORKERS;
    opts.reconcile_seconds = 0;
    opts.registry("local", &reg.url(), SECRET);
    opts.tenant("team-a", &[("local", "team-a")]);
    opts.tenant("team-b", &[("local", "team-b")]);
    let svc = ServiceHarness::start(harness::bin(), opts);
    let (a, b) = (
        svc.create_token("team-a", "reader"),
        svc.create_token("team-b", "reader"),
    );
    let event = |repo: String| {
        json!({"action": "push", "target": {
            "mediaType": media_type, "digest": digest, "repository": repo, "tag": "v1"}})
    };
    webhook(
        &svc,
        (0..BURST)
            .map(|i| event(format!("team-a/app{i}")))
            .collect(),
    );
    webhook(&svc, vec![event("team-b/app".into())]);

    let done = |token: &str, n: usize| {
        let scans = svc.get_all("/v1/scans?limit=500", token);
        (scans.len() == n
            && scans
                .iter()
                .all(|s| s["state"] != "queued" && s["state"] != "running"))
        .then_some(scans)
    };
    let b_scans = svc.wait_for("team B's scan", Duration::from_secs(1800), || done(&b, 1));
    let a_scans = svc.wait_for("team A's scans", Duration::from_secs(1800), || {
        done(&a, BURST)
    });
    let b_scan = &b_scans[0];
    let (b_created, b_started, b_finished) = (
        seconds(&b_scan["created_at"]),
        seconds(&b_scan["started_at"]),
        seconds(&b_scan["finished_at"]),
    );
    let mut durations: Vec<f64> = a_scans
        .iter()
        .map(|s| seconds(&s["finished_at"]) - seconds(&s["started_at"]))
        .collect();
    durations.sort_by(f64::total_cmp);
    let median = durations[durations.len() / 2];
    let overtook = a_scans
        .iter()
        .filter(|s| {
            let started = seconds(&s["started_at"]);
            started > b_created && started < b_started
        })
        .count();
    let position = 1 + a_scans
        .iter()
        .filter(|s| seconds(&s["started_at"]) < b_started)
        .count();
    let a_all = a_scans
        .iter()
        .map(|s| seconds(&s["finished_at"]))
        .fold(0.0, f64::max)
        - a_scans
            .iter()
            .map(|s| seconds(&s["created_at"]))
            .fold(f64::MAX, f64::min);
    let waited = b_started - b_created;
    // The scans B had to wait for: A's that were running when B pushed.
    let running: Vec<String> = a_scans
        .iter()
        .filter(|s| {
            seconds(&s["started_at"]) <= b_created && seconds(&s["finished_at"]) > b_created
        })
        .map(|s| {
            format!(
                "{:.3} s (of which {:.3} s after B's push)",
                seconds(&s["finished_at"]) - seconds(&s["started_at"]),
                seconds(&s["finished_at"]) - b_created
            )
        })
        .collect();
    println!("fairness: tenant A pushed {BURST} images, then tenant B one ({WORKERS} workers)");
    println!("  A's scans: median {median:.3} s each, all {BURST} done in {a_all:.1} s");
    // A worker's time per job: the scan plus claiming and recording it (what a push
    // waiting for a free worker waits for), from A's throughput.
    let cycle = a_all * WORKERS as f64 / BURST as f64;
    println!(
        "  a worker's time per job (scan, claim, record): {:.3} s",
        cycle
    );
    println!(
        "  B's scan: waited {waited:.3} s ({:.2} scans of A, {:.2} job times) and took {:.3} s",
        waited / median.max(1e-3),
        waited / cycle.max(1e-3),
        b_finished - b_started
    );
    println!(
        "  B's scan started {position} of {} (oldest first across tenants would make it {})",
        BURST + 1,
        BURST + 1
    );
    println!(
        "  A's scans running when B pushed: {}",
        if running.is_empty() {
            "none".to_string()
        } else {
            running.join(", ")
        }
    );
    println!("  A's scans started after B's push and before B's scan: {overtook} (target 0)");
    println!(
        "  target (B delayed by at most the scans already running): {}",
        if overtook == 0 { "met" } else { "MISSED" }
    );
}

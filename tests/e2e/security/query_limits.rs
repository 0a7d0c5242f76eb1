//! A hostile tenant's queries against a real `bulkhead serve` (the binary; SQLite, then
//! PostgreSQL): a result built to take gigabytes is refused with a 422 naming the limit
//! while the service's memory stays bounded (its peak RSS, `VmHWM`, is read from /proc and
//! printed); one tenant's slow queries neither stall another tenant's nor run beyond the
//! tenant's share (429 with `Retry-After`), and waiting for a connection counts against a
//! query's deadline.
//!
//! The images are real pushes as a registry announces them (Distribution envelopes on the
//! webhook, with the registry's secret), of digests no registry has: no advisory database
//! is configured, so the workers wait for one and every image stays `pending`: the rows
//! are the tenant's own, which is all a query needs.

use std::io::Read as _;
use std::thread;
use std::time::{Duration, Instant};

use bulkhead_test_artifacts::service::{ServiceHarness, ServiceOptions, ServiceStore};
use bulkhead_test_artifacts::{StoreKind, both};
use serde_json::{Value, json};

use crate::harness::bin;

pub(super) const HOOK_SECRET: &str = "e2e-security-webhook-secret";

/// The attack: 2000 rows, each a digest doubled thirteen times (1.16 GB in all
/// before the limits, 3.3 GB of RSS).
const RESULT_BOMB: &str = "Images | take 2000 | extend s=strcat(Digest,Digest) \
    | extend s=strcat(s,s) | extend s=strcat(s,s) | extend s=strcat(s,s) \
    | extend s=strcat(s,s) | extend s=strcat(s,s) | extend s=strcat(s,s) \
    | extend s=strcat(s,s) | extend s=strcat(s,s) | extend s=strcat(s,s) \
    | extend s=strcat(s,s) | extend s=strcat(s,s) | extend s=strcat(s,s)";

/// A cross join of a tenant's images with themselves four times: endless for a few hundred
/// images (it runs until the deadline).
const CROSS_JOINS: &str = "Images | join (Images) on Registry | join (Images) on Registry \
    | join (Images) on Registry | count";

/// What the service may use at most while the attacks run (the bound).
const MAX_RSS_KB: u64 = 200 * 1024;

/// A service on `store` with one registry (`local`, an address where nothing answers) and
/// tenants owning `local/<tenant>`; `server` is added to its `[server]` section and
/// `extra` appended to its configuration. No advisory database: workers never claim,
/// images stay pending.
pub(super) fn service(
    store: ServiceStore,
    tenants: &[&str],
    server: &str,
    extra: &str,
) -> ServiceHarness {
    let dir = std::env::temp_dir();
    let mut opts = ServiceOptions::new(&dir.join("bulkhead-security-no-such-advisories.db"));
    opts.store = store;
    opts.reconcile_seconds = 0;
    opts.registry("local", "http://127.0.0.1:9", HOOK_SECRET);
    for t in tenants {
        opts.tenant(t, &[("local", t)]);
    }
    opts.server_toml = server.to_string();
    opts.extra_toml = extra.to_string();
    ServiceHarness::start(bin(), opts)
}

/// Announces `n` pushes of distinct made-up manifests in `tenant/app` on the webhook, at
/// most 1000 events per envelope (the webhook's limit).
pub(super) fn push_images(svc: &ServiceHarness, tenant: &str, n: usize) {
    let mut i = 0;
    while i < n {
        let events: Vec<Value> = (i..n.min(i + 1000))
            .map(|k| {
                json!({
                    "action": "push",
                    "target": {
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": format!("sha256:{:064x}", (tenant.len() << 32) + k),
                        "repository": format!("{tenant}/app"),
                        "tag": format!("v{k}"),
                    }
                })
            })
            .collect();
        let r = bulkhead_test_artifacts::http::request(
            "POST",
            svc.addr(),
            "/v1/webhooks/registry",
            &[
                ("Authorization", &format!("Bearer {HOOK_SECRET}")),
                ("Content-Type", "application/json"),
            ],
            json!({ "events": events }).to_string().as_bytes(),
        )
        .unwrap_or_else(|e| panic!("webhook: {e}\nservice log:\n{}", svc.log()));
        assert_eq!(r.status, 200, "webhook: {}", r.text());
        i += 1000;
    }
}

/// `POST /v1/query` as `token`: (status, Retry-After, JSON body).
pub(super) fn query(svc: &ServiceHarness, token: &str, text: &str) -> (u16, Option<String>, Value) {
    let r = svc.post_json("/v1/query", Some(token), &json!({ "query": text }));
    let body = r
        .json()
        .unwrap_or_else(|e| panic!("{text}: not JSON ({e}): {}", r.text()));
    (r.status, r.header("Retry-After").map(str::to_string), body)
}

/// The one number of a `count` query.
pub(super) fn count(svc: &ServiceHarness, token: &str, text: &str) -> i64 {
    let (status, _, body) = query(svc, token, text);
    assert_eq!(status, 200, "{text}: {body}");
    body["rows"][0][0]
        .as_i64()
        .unwrap_or_else(|| panic!("{text}: {body}"))
}

/// `VmHWM` (peak resident set) of `pid`, in KiB.
fn peak_rss_kb(pid: u32) -> u64 {
    let mut status = String::new();
    std::fs::File::open(format!("/proc/{pid}/status"))
        .and_then(|mut f| f.read_to_string(&mut status))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in /proc/{pid}/status:\n{status}"))
}

fn result_bomb_is_refused_in_bounded_memory(kind: StoreKind) {
    let Some(store) = kind.store() else { return };
    // A timeout the attack cannot reach first: the byte limits must stop it.
    let svc = service(store, &["team-a"], "", "[query]\ntimeout_seconds = 50\n");
    let pid = svc.pid().expect("running");
    let token = svc.create_token("team-a", "reader");
    push_images(&svc, "team-a", 2000);
    assert_eq!(count(&svc, &token, "Images | count"), 2000);
    let before = peak_rss_kb(pid);

    // The query: 2000 values of 581 KB each. Each is under the value limit, the
    // result passes the result limit after a few rows and is stopped there.
    for _ in 0..3 {
        let (status, _, body) = query(&svc, &token, RESULT_BOMB);
        assert_eq!(status, 422, "{body}\nservice log:\n{}", svc.log());
        assert_eq!(body["error"]["code"], "query_result_bytes", "{body}");
        assert_eq!(body["error"]["max_result_bytes"], 4 << 20, "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("4194304") && message.contains("max_result_bytes"),
            "the message names the limit: {message}"
        );
    }
    // One doubling more: each value is 1.16 MB, over the value limit, refused before it
    // is built (SQLite) or sent (PostgreSQL).
    let value_bomb = format!("{RESULT_BOMB} | extend s=strcat(s,s)");
    let (status, _, body) = query(&svc, &token, &value_bomb);
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "query_value_bytes", "{body}");
    assert_eq!(body["error"]["max_value_bytes"], 1 << 20, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("1048576") && message.contains("max_value_bytes"),
        "the message names the limit: {message}"
    );

    // Both at once, twice each: the limits hold per query, not only for one.
    let attackers: Vec<_> = [RESULT_BOMB.to_string(), value_bomb]
        .into_iter()
        .cycle()
        .take(4)
        .map(|q| {
            let (addr, token) = (svc.addr().to_string(), token.clone());
            thread::spawn(move || {
                let body = json!({ "query": q }).to_string();
                bulkhead_test_artifacts::http::request(
                    "POST",
                    &addr,
                    "/v1/query",
                    &[
                        ("Authorization", &format!("Bearer {token}")),
                        ("Content-Type", "application/json"),
                    ],
                    body.as_bytes(),
                )
                .map(|r| r.status)
            })
        })
        .collect();
    for a in attackers {
        let status = a.join().expect("thread").expect("answered");
        // Two at once per tenant (the default): the others are told to come back.
        assert!(matches!(status, 422 | 429), "{status}");
    }

    let after = peak_rss_kb(pid);
    println!(
        "bulkhead serve ({kind:?}) peak RSS (VmHWM): {before} KiB before the attacks, \
         {after} KiB after"
    );
    assert!(
        after < MAX_RSS_KB,
        "the service's peak RSS reached {after} KiB (limit {MAX_RSS_KB} KiB)"
    );
    // And a query of a sensible size still works.
    let (status, _, body) = query(&svc, &token, "Images | take 3 | project Digest");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"].as_array().map(Vec::len), Some(3), "{body}");
}

/// Sends `text` as `token` on a thread: its (status, JSON body) and how long it took.
fn in_background(
    svc: &ServiceHarness,
    token: &str,
    text: &str,
) -> thread::JoinHandle<(u16, Value, Duration)> {
    let (addr, token, text) = (svc.addr().to_string(), token.to_string(), text.to_string());
    thread::spawn(move || {
        let start = Instant::now();
        let r = bulkhead_test_artifacts::http::request(
            "POST",
            &addr,
            "/v1/query",
            &[
                ("Authorization", &format!("Bearer {token}")),
                ("Content-Type", "application/json"),
            ],
            json!({ "query": text }).to_string().as_bytes(),
        )
        .unwrap_or_else(|e| panic!("{text}: {e}"));
        let body = r.json().unwrap_or(Value::Null);
        (r.status, body, start.elapsed())
    })
}

fn slow_queries_stay_within_their_tenant(kind: StoreKind) {
    let Some(store) = kind.store() else { return };
    const TIMEOUT_S: u64 = 6;
    let svc = service(
        store,
        &["team-a", "team-b", "team-c"],
        "",
        &format!("[query]\ntimeout_seconds = {TIMEOUT_S}\nmax_concurrent_per_tenant = 2\n"),
    );
    let [a, b, c] = ["team-a", "team-b", "team-c"].map(|t| svc.create_token(t, "reader"));
    for t in ["team-a", "team-b", "team-c"] {
        push_images(&svc, t, 300);
    }

    // Team A runs as many slow queries as it may.
    let a_slow: Vec<_> = (0..2)
        .map(|_| in_background(&svc, &a, CROSS_JOINS))
        .collect();
    thread::sleep(Duration::from_millis(800));
    // A third is refused at once, with when to come back.
    let (status, retry_after, body) = query(&svc, &a, "Images | count");
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "query_busy", "{body}");
    assert_eq!(body["error"]["max_concurrent"], 2, "{body}");
    let retry_after: u64 = retry_after
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a 429 has a Retry-After in seconds: {body}"));
    assert!(retry_after >= 1, "{retry_after}");
    // Team B is answered while team A's queries still run (they run until their
    // deadline): one reader does not stall every tenant.
    assert_eq!(count(&svc, &b, "Images | count"), 300);
    assert!(
        a_slow.iter().all(|h| !h.is_finished()),
        "team A's queries were still running when team B was answered"
    );

    // Team B takes the store's two other query connections; team C's slow query waits
    // for one, and its deadline counts the wait: it ends about TIMEOUT_S after it was
    // sent, not after waiting and then running for TIMEOUT_S more.
    let b_slow: Vec<_> = (0..2)
        .map(|_| in_background(&svc, &b, CROSS_JOINS))
        .collect();
    thread::sleep(Duration::from_millis(1500));
    let (status, body, took) = in_background(&svc, &c, CROSS_JOINS).join().expect("c");
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "query_timeout", "{body}");
    assert!(
        took < Duration::from_secs(TIMEOUT_S) + Duration::from_millis(2500),
        "team C's query took {took:?}: its wait for a connection was not counted"
    );
    println!(
        "{kind:?}: a query that waited for a connection ended after {took:?} (timeout {TIMEOUT_S} s)"
    );
    for h in a_slow.into_iter().chain(b_slow) {
        let (status, body, took) = h.join().expect("slow query");
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["code"], "query_timeout", "{body}");
        assert!(took < Duration::from_secs(TIMEOUT_S * 3), "{took:?}");
    }
    // Nothing is left held: every tenant can query again.
    for t in [&a, &b, &c] {
        assert_eq!(count(&svc, t, "Images | count"), 300);
    }
}

both!(
    result_bomb_is_refused_in_bounded_memory,
    slow_queries_stay_within_their_tenant
);

//! `bulkhead serve` notifications and rescans, end to end: a real registry (Debian's
//! `docker-registry`) notifies a spawned `bulkhead serve` of pushes made with skopeo; the
//! service's problem notifications go to a real HTTP receiver started by the test, which
//! records every request and can refuse the first ones.
//!
//! Oracles: the HMAC-SHA256 of each request computed here with the `hmac` crate from the
//! secret (not with the service's code), the service's own API for the image (digest,
//! counts, findings), the CLI's scan of the same archive with the same advisory database
//! (a rescan must find what a fresh scan finds), the registry's access log (no pull during
//! a rescan) and the store's health events.
//!
//! Needs the apt packages docker-registry, skopeo, apache2-utils and openssl: without them
//! the tests skip, except in CI (`CI` set), where they fail.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulkhead_test_artifacts::registry::{self, Auth, Options, Registry};
use bulkhead_test_artifacts::require_tools;
use bulkhead_test_artifacts::service::{ServiceHarness, ServiceOptions, free_port};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

use crate::harness::{bin, cli_report, gunzip, import, push_archive, repo};

const HOOK_SECRET: &str = "e2e-webhook-secret";
const NOTIFY_SECRET: &str = "e2e-notify-secret-9f2c";
const SCAN_TIMEOUT: Duration = Duration::from_secs(180);

/// What the CLI reports for the demo archive with `db`: (id, package, installed, fixed,
/// severity) of every finding.
fn cli_findings(dir: &Path, db: &Path) -> BTreeSet<(String, String, String, String, String)> {
    let report = cli_report(dir, db);
    finding_set(report["findings"].as_array().expect("findings"))
}

fn finding_set(findings: &[Value]) -> BTreeSet<(String, String, String, String, String)> {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    findings
        .iter()
        .map(|f| {
            (
                s(&f["id"]),
                s(&f["package"]),
                s(&f["installed_version"]),
                s(&f["fixed_version"]),
                s(&f["severity"]),
            )
        })
        .collect()
}

/// The one image of the tenant in `repository`, once it is neither pending nor scanning.
fn scanned_image(svc: &ServiceHarness, token: &str, repository: &str) -> Value {
    svc.wait_for(
        &format!("a scanned image in {repository}"),
        SCAN_TIMEOUT,
        || {
            let items = svc.get_all(&format!("/v1/images?repository={repository}"), token);
            match items.as_slice() {
                [one] if !matches!(one["health"].as_str(), Some("pending" | "scanning")) => {
                    Some(one.clone())
                }
                _ => None,
            }
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

// ---- the receiver ------------------------------------------------------------------------

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    /// Header names lowercased.
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
            .unwrap_or_default()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the notification body is JSON")
    }
}

/// A webhook receiver on a loopback port: records every POST, answers 500 to the first
/// `refuse` ones and 200 to the others.
struct Receiver {
    url: String,
    seen: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start(refuse: usize) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        let addr = listener.local_addr().expect("receiver address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                // One request per connection (`Connection: close`); a malformed one is
                // dropped, which the service sees as a failed attempt.
                let _ = serve_one(stream, &record, refuse);
            }
        });
        Receiver {
            url: format!("http://{addr}/hook"),
            seen,
        }
    }

    fn requests(&self) -> Vec<Received> {
        self.seen.lock().expect("receiver lock").clone()
    }
}

fn serve_one(stream: TcpStream, seen: &Mutex<Vec<Received>>, refuse: usize) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if !line.starts_with("POST /hook ") {
        return Err(std::io::Error::other(format!(
            "unexpected request {line:?}"
        )));
    }
    let mut headers = BTreeMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len.min(1 << 20)];
    reader.read_exact(&mut body)?;
    let n = {
        let mut s = seen.lock().expect("receiver lock");
        s.push(Received { headers, body });
        s.len()
    };
    let status = if n <= refuse {
        "500 Internal Server Error"
    } else {
        "200 OK"
    };
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    out.flush()
}

/// The signature a receiver computes: HMAC-SHA256 with the tenant's secret over
/// `"<X-Bulkhead-Timestamp>.<body>"`, as docs/service.md says.
fn verify(r: &Received, secret: &str) {
    let ts = r.header("X-Bulkhead-Timestamp");
    assert!(
        !ts.is_empty() && ts.bytes().all(|b| b.is_ascii_digit()),
        "timestamp {ts:?}"
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC key");
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(&r.body);
    let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(r.header("X-Bulkhead-Signature"), want, "{r:?}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let sent: u64 = ts.parse().expect("timestamp");
    assert!(now.abs_diff(sent) < 300, "timestamp {sent} vs now {now}");
    assert_eq!(r.header("Content-Type"), "application/json");
}

// ---- the service -------------------------------------------------------------------------

/// A registry notifying a service whose tenant `a` (owning `team-a`) sends notifications
/// to `receiver`; tenant `b` owns `team-b` and has no notification target.
fn start(dir: &Path, db: &Path, receiver: &Receiver) -> (Registry, ServiceHarness) {
    let port = free_port();
    let hook = ServiceHarness::notifications_for(port, HOOK_SECRET);
    let reg = Registry::start_with(Options {
        auth: Auth::None,
        notifications: Some(hook),
    });
    let secret_file = dir.join("notify-secret");
    std::fs::write(&secret_file, format!("{NOTIFY_SECRET}\n")).expect("write the secret");
    let q = |s: &str| Value::from(s).to_string();
    let mut opts = ServiceOptions::new(db);
    opts.port = Some(port);
    opts.registry("local", &reg.url(), HOOK_SECRET);
    // Appended right after `[scan] db = …`: the first line is a `[scan]` key; the tenants
    // are written here because the harness's tenants have no notification target.
    opts.extra_toml = format!(
        "rescan_poll_seconds = 0.3\n\n\
         [notifications]\nmax_attempts = 5\ntimeout_seconds = 5\n\
         backoff = {{ first_seconds = 1, max_seconds = 2 }}\n\n\
         [[tenants]]\nname = \"a\"\nowns = [{{ registry = \"local\", prefix = \"team-a\" }}]\n\
         notify_url = {}\nnotify_secret_file = {}\n\n\
         [[tenants]]\nname = \"b\"\nowns = [{{ registry = \"local\", prefix = \"team-b\" }}]\n",
        q(&receiver.url),
        q(&secret_file.to_string_lossy()),
    );
    let svc = ServiceHarness::start(bin(), opts);
    (reg, svc)
}

/// `GET /v1/deliveries` of the token's tenant.
fn deliveries(svc: &ServiceHarness, token: &str) -> Vec<Value> {
    svc.get_all("/v1/deliveries", token)
}

#[test]
fn problems_are_notified_once_signed_and_retried_and_healthy_images_are_not() {
    if !require_tools(registry::TOOLS) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("advisories.db");
    import(
        &dir.path().join("import-home"),
        &repo("demo/advisories/almalinux9"),
        &db,
    );
    // Alpine 3.11's advisories too, so that alpine:3.11 below is assessed (its findings,
    // of unknown severity, stay under the threshold): a healthy image.
    import(
        &dir.path().join("import-home"),
        &repo("host/advisories/testdata/alpine/v3.11-main.yaml"),
        &db,
    );
    // The first two attempts are refused.
    let receiver = Receiver::start(2);
    let (reg, svc) = start(dir.path(), &db, &receiver);
    let reader = svc.create_token("a", "reader");
    let operator = svc.create_token("a", "operator");
    let operator_b = svc.create_token("b", "operator");

    // Readers may not list deliveries (they show the tenant's webhook URL).
    assert_eq!(svc.get("/v1/deliveries", Some(&reader)).status, 403);

    // --- an unhealthy image: one delivery, refused twice, delivered on the third attempt ---
    push_archive(
        &reg,
        &gunzip(&repo("demo/almalinux9-demo.tar.gz"), dir.path()),
        "team-a/demo:1",
    );
    let image = scanned_image(&svc, &reader, "team-a/demo");
    assert_eq!(image["health"], "unhealthy", "{image}");

    // Between the refused attempts and the accepted one, the delivery is pending with the
    // receiver's answer recorded (the third attempt comes 2 s after the second).
    svc.wait_for("two refused attempts", SCAN_TIMEOUT, || {
        (receiver.requests().len() >= 2).then_some(())
    });
    let pending = svc.wait_for(
        "the second refusal recorded",
        Duration::from_secs(10),
        || {
            let d = deliveries(&svc, &operator);
            (d.len() == 1 && d[0]["attempts"] == 2 && d[0]["last_status"] == 500)
                .then(|| d[0].clone())
        },
    );
    assert_eq!(pending["state"], "pending", "{pending}");
    assert!(
        pending["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("500")),
        "{pending}"
    );
    assert!(pending["next_at"].is_string(), "{pending}");

    let delivered = svc.wait_for("the delivery", Duration::from_secs(30), || {
        let d = deliveries(&svc, &operator);
        (d.len() == 1 && d[0]["state"] != "pending").then(|| d[0].clone())
    });
    assert_eq!(delivered["state"], "delivered", "{delivered}");
    assert_eq!(delivered["attempts"], 3, "{delivered}");
    assert_eq!(delivered["last_status"], 200, "{delivered}");
    assert_eq!(delivered["url"], receiver.url.as_str());
    assert!(delivered["delivered_at"].is_string(), "{delivered}");

    let requests = receiver.requests();
    assert_eq!(requests.len(), 3, "three attempts: {requests:?}");
    let id = delivered["id"].as_i64().expect("delivery id").to_string();
    for r in &requests {
        verify(r, NOTIFY_SECRET);
        assert_eq!(r.header("X-Bulkhead-Delivery"), id, "the same delivery id");
        assert_eq!(r.header("X-Bulkhead-Event"), "image.unhealthy");
        assert_eq!(
            r.body, requests[0].body,
            "every attempt sends the same body"
        );
    }
    // A signature made with another secret does not verify (the check above can fail).
    let forged = Received {
        headers: requests[0].headers.clone(),
        body: requests[0].body.clone(),
    };
    let wrong = std::panic::catch_unwind(|| verify(&forged, "another-secret"));
    assert!(wrong.is_err(), "a wrong secret must not verify");

    let body = requests[0].json();
    assert_eq!(body, delivered["event"], "the API shows the body sent");
    assert_eq!(body["event"], "image.unhealthy", "{body}");
    assert_eq!(body["tenant"], "a", "{body}");
    assert_eq!(body["reason"], "scan", "{body}");
    assert_eq!(body["image"]["id"], image["id"], "{body}");
    assert_eq!(body["image"]["digest"], image["digest"], "{body}");
    assert_eq!(body["image"]["repository"], "team-a/demo", "{body}");
    assert_eq!(body["image"]["tags"], json!(["1"]), "{body}");
    assert_eq!(
        body["health"],
        json!({"from": null, "to": "unhealthy"}),
        "{body}"
    );
    for k in ["critical", "high", "medium", "low", "negligible", "unknown"] {
        assert_eq!(body["summary"][k], image["counts"][k], "{k}: {body}");
    }
    // A first scan: every critical and high finding is new, as the API lists them.
    let image_id = image["id"].as_i64().expect("image id");
    let listed: BTreeSet<(String, String, String)> = svc
        .get_all(&format!("/v1/images/{image_id}/findings"), &reader)
        .iter()
        .filter(|f| matches!(f["severity"].as_str(), Some("critical" | "high")))
        .map(|f| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (s(&f["id"]), s(&f["package"]), s(&f["severity"]))
        })
        .collect();
    assert!(!listed.is_empty(), "the demo has high findings");
    let announced: BTreeSet<(String, String, String)> = body["new_findings"]
        .as_array()
        .expect("new_findings")
        .iter()
        .map(|f| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (s(&f["id"]), s(&f["package"]), s(&f["severity"]))
        })
        .collect();
    assert_eq!(announced, listed, "{body}");
    assert_eq!(
        svc.metric("bulkhead_delivery_attempts_total{result=\"retried\"}"),
        2.0
    );
    assert_eq!(
        svc.metric("bulkhead_delivery_attempts_total{result=\"delivered\"}"),
        1.0
    );
    assert!(
        deliveries(&svc, &operator_b).is_empty(),
        "tenant b sees none"
    );

    // --- a healthy image: nothing -------------------------------------------------------
    // alpine 3.11, every package checked against Alpine 3.11's advisories, nothing at or
    // above the threshold.
    push_archive(
        &reg,
        &gunzip(&repo("tests/fixtures/images/alpine-311.tar.gz"), dir.path()),
        "team-a/alpine:3.11",
    );
    let alpine = scanned_image(&svc, &reader, "team-a/alpine");
    assert_eq!(alpine["health"], "healthy", "{alpine}");
    assert_eq!(alpine["os"]["id"], "alpine", "{alpine}");
    queue_idle(&svc, &reader);
    // Several notifier polls (0.2 s) later, still nothing new.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(deliveries(&svc, &operator).len(), 1);
    assert_eq!(receiver.requests().len(), 3);

    // --- the same unhealthy digest pushed again (another tag): no second notification ----
    push_archive(
        &reg,
        &gunzip(&repo("demo/almalinux9-demo.tar.gz"), dir.path()),
        "team-a/demo:2",
    );
    svc.wait_for("the second tag", SCAN_TIMEOUT, || {
        let i = svc.get_json(&format!("/v1/images/{}", image["id"]), &reader);
        (i["tags"] == json!(["1", "2"])).then_some(())
    });
    queue_idle(&svc, &reader);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        deliveries(&svc, &operator).len(),
        1,
        "still unhealthy: no news"
    );
    assert_eq!(receiver.requests().len(), 3);
}

/// `GET /v2/team-a/demo/…` requests in the registry's access log: the manifest and blob
/// reads of a pull.
fn pulls(reg: &Registry) -> usize {
    reg.log()
        .lines()
        .filter(|l| l.contains("\"GET /v2/team-a/demo/"))
        .count()
}

#[test]
fn a_new_advisory_database_rescans_stored_inventories_without_pulling() {
    if !require_tools(registry::TOOLS) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // A database without any AlmaLinux advisory: the demo image has no finding, but
    // nothing of it could be checked either: `unknown`, which is a problem.
    let db = dir.path().join("advisories.db");
    import(
        &dir.path().join("import-home"),
        &repo("host/advisories/testdata/osv/crates"),
        &db,
    );
    let receiver = Receiver::start(0);
    let (reg, svc) = start(dir.path(), &db, &receiver);
    let reader = svc.create_token("a", "reader");
    let operator = svc.create_token("a", "operator");

    push_archive(
        &reg,
        &gunzip(&repo("demo/almalinux9-demo.tar.gz"), dir.path()),
        "team-a/demo:1",
    );
    let image = scanned_image(&svc, &reader, "team-a/demo");
    assert_eq!(image["health"], "unknown", "{image}");
    let id = image["id"].as_i64().expect("image id");
    assert!(
        svc.get_all(&format!("/v1/images/{id}/findings"), &reader)
            .is_empty()
    );
    queue_idle(&svc, &reader);
    let scans_before = svc.get_all("/v1/scans", &reader);
    assert_eq!(scans_before.len(), 1, "{scans_before:?}");
    let done_before = svc.metric("bulkhead_scans_total{outcome=\"done\"}");
    let pulls_before = pulls(&reg);
    assert!(
        pulls_before > 0,
        "the scan's pull is in the registry log (else this check is blind):\n{}",
        reg.log()
    );
    // Not assessed: notified as `image.unknown`, once.
    let unknown = svc.wait_for(
        "the image.unknown notification",
        Duration::from_secs(30),
        || {
            let d = deliveries(&svc, &operator);
            (d.len() == 1 && d[0]["state"] == "delivered").then(|| d[0].clone())
        },
    );
    assert_eq!(unknown["event"]["event"], "image.unknown", "{unknown}");
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    verify(&requests[0], NOTIFY_SECRET);
    assert_eq!(
        requests[0].json()["health"],
        json!({"from": null, "to": "unknown"})
    );

    // --- new advisories while the service runs ------------------------------------------
    import(&svc.home(), &repo("demo/advisories/almalinux9"), &db);
    let after = svc.wait_for(
        "the rescan to find the image unhealthy",
        SCAN_TIMEOUT,
        || {
            let i = svc.get_json(&format!("/v1/images/{id}"), &reader);
            (i["health"] == "unhealthy").then_some(i)
        },
    );
    assert_eq!(after["digest"], image["digest"]);

    // No pull, no job.
    let scans_after = svc.get_all("/v1/scans", &reader);
    assert_eq!(scans_after, scans_before, "a rescan is not a scan job");
    assert_eq!(
        svc.metric("bulkhead_scans_total{outcome=\"done\"}"),
        done_before
    );
    assert_eq!(
        pulls(&reg),
        pulls_before,
        "nothing was pulled:\n{}",
        reg.log()
    );

    // What a fresh scan with the new database finds.
    let findings = svc.get_all(&format!("/v1/images/{id}/findings"), &reader);
    assert!(!findings.is_empty());
    assert_eq!(
        finding_set(&findings),
        cli_findings(dir.path(), &db),
        "the rescan finds what a scan with the new database finds"
    );
    assert_eq!(
        svc.metric("bulkhead_rescanned_images_total{result=\"changed\"}"),
        1.0
    );

    // The health event, read from the store itself (the API has no route for it).
    let events = health_events(&svc.store_path(), "a", id);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].reason, "rescan", "newest first: {events:?}");
    assert_eq!(
        events[0].from_health,
        Some(bulkhead_store::ImageHealth::Unknown)
    );
    assert_eq!(events[0].to_health, bulkhead_store::ImageHealth::Unhealthy);
    assert_eq!(events[1].reason, "scan");

    // --- the notification -------------------------------------------------------------
    let delivered = svc.wait_for("the rescan's notification", Duration::from_secs(30), || {
        let d = deliveries(&svc, &operator);
        (d.len() == 2 && d.iter().all(|d| d["state"] == "delivered"))
            .then(|| {
                d.into_iter()
                    .find(|d| d["event"]["event"] != "image.unknown")
            })
            .flatten()
    });
    assert_eq!(delivered["attempts"], 1, "{delivered}");
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    verify(&requests[1], NOTIFY_SECRET);
    let body = requests[1].json();
    assert_eq!(body["event"], "image.unhealthy", "{body}");
    assert_eq!(body["reason"], "rescan", "{body}");
    assert_eq!(body["image"]["digest"], image["digest"], "{body}");
    assert_eq!(
        body["health"],
        json!({"from": "unknown", "to": "unhealthy"}),
        "{body}"
    );
    // Every critical and high finding is new.
    let problems: BTreeSet<(String, String, String)> = findings
        .iter()
        .filter(|f| matches!(f["severity"].as_str(), Some("critical" | "high")))
        .map(|f| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (s(&f["id"]), s(&f["package"]), s(&f["severity"]))
        })
        .collect();
    assert!(!problems.is_empty(), "the demo has high findings");
    let announced: BTreeSet<(String, String, String)> = body["new_findings"]
        .as_array()
        .expect("new_findings")
        .iter()
        .map(|f| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (s(&f["id"]), s(&f["package"]), s(&f["severity"]))
        })
        .collect();
    assert_eq!(announced, problems, "{body}");

    // --- the same database again: nothing changes, nothing is sent ----------------------
    let metric = |result: &str| {
        svc.metric(&format!(
            "bulkhead_rescanned_images_total{{result=\"{result}\"}}"
        ))
    };
    let changed_before = metric("changed");
    let unchanged_before = metric("unchanged");
    import(&svc.home(), &repo("demo/advisories/almalinux9"), &db);
    // The import's time is part of the database's identity in a report: matched again,
    // to the same result.
    svc.wait_for("a second rescan", Duration::from_secs(60), || {
        (metric("unchanged") > unchanged_before).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(metric("changed"), changed_before);
    assert_eq!(
        svc.get_json(&format!("/v1/images/{id}"), &reader)["health"],
        "unhealthy"
    );
    assert_eq!(deliveries(&svc, &operator).len(), 2);
    assert_eq!(pulls(&reg), pulls_before);
}

/// The tenant's health events of `image`, newest first, from the SQLite store.
fn health_events(store: &Path, tenant: &str, image: i64) -> Vec<bulkhead_store::HealthEvent> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let store = bulkhead_store::Store::open(bulkhead_store::StoreConfig::Sqlite {
            path: store.to_path_buf(),
        })
        .await
        .expect("open the service's store");
        let t = store
            .tenant_by_name(tenant)
            .await
            .expect("tenants")
            .expect("the tenant");
        store
            .health_events(t.id, Some(image), &bulkhead_store::Page::default())
            .await
            .expect("health events")
            .items
    })
}

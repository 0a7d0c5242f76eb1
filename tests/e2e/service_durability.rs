//! `bulkhead serve` loses nothing: the durability half of issue 6, end to end with real
//! parts (Debian's `docker-registry` notifying the spawned binary, pushes with skopeo,
//! results read through the API), each test on SQLite and on PostgreSQL:
//!
//! * the service is down while pushes happen: the registry retries its notifications
//!   (from memory) until the service is back, and every push is scanned;
//! * the registry restarts: a push notified before is scanned; a push whose notification
//!   died with the registry's memory (made while the service was down) is found by the
//!   service's reconcile, which lists the registry, including a tag moved to a new digest
//!   and an index;
//! * `kill -9` of the service in the middle of a scan (held there deterministically: a
//!   proxy in front of the registry keeps the blob downloads waiting): after a restart the
//!   job runs again once its lease expires and completes exactly once (attempts = 2);
//! * two instances on one PostgreSQL database share the queue: each push is scanned once
//!   in all, by one of them, and either API shows all results;
//! * a burst of 300 pushes (8 at a time): every pushed digest ends up scanned exactly once
//!   and the queue drains.
//!
//! Oracles: the OCI layouts we push (which digests exist, what each tag names), the Alpine
//! fixture's package list (`tests/fixtures/apk/alpine-3.20/expected-packages.tsv`, from
//! apk itself), and the job rows the API shows.
//!
//! Needs the apt packages docker-registry, skopeo, apache2-utils, openssl and postgresql:
//! without them a test skips (the PostgreSQL half alone when only PostgreSQL is missing),
//! except in CI (`CI` set), where it fails.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bulkhead_test_artifacts::images::{self, Compression, Image, Layer, LayerTar, Platform};
use bulkhead_test_artifacts::registry::{self, Auth, Options, Registry};
use bulkhead_test_artifacts::service::{
    BlobGate, ServiceHarness, ServiceOptions, ServiceStore, free_port,
};
use bulkhead_test_artifacts::{StoreKind, both, fixture, require_tools, skopeo};
use serde_json::Value;

use crate::harness::{bin, demo_db};

const HOOK_SECRET: &str = "durability-webhook-secret";
const TIMEOUT: Duration = Duration::from_secs(180);

both!(
    service_down_pushes_are_delivered_when_it_is_back,
    registry_restart_loses_no_push,
    kill_mid_scan_runs_the_job_again_exactly_once,
    a_burst_of_pushes_loses_nothing,
);

/// The packages of Alpine 3.20 as apk lists them (the fixture's oracle).
fn alpine_package_count() -> i64 {
    let text = std::fs::read_to_string(fixture("apk/alpine-3.20/expected-packages.tsv"))
        .expect("the Alpine package list");
    text.lines().filter(|l| !l.trim().is_empty()).count() as i64
}

/// A registry notifying a service that will listen on a port chosen now, the advisory
/// database, and the service's options (tenant `a` owns `team-a/…`), for `configure` to
/// adjust before the service starts.
struct Lab {
    /// Holds the advisory database.
    _dir: tempfile::TempDir,
    reg: Registry,
    options: ServiceOptions,
}

impl Lab {
    /// `None` (the test skips) when the tools or, for `kind` PostgreSQL, the database are
    /// missing outside CI.
    fn new(kind: StoreKind) -> Option<Lab> {
        if !require_tools(registry::TOOLS) {
            return None;
        }
        let store = kind.store()?;
        let dir = tempfile::tempdir().expect("tempdir");
        let db = demo_db(dir.path());
        let port = free_port();
        let hook = ServiceHarness::notifications_for(port, HOOK_SECRET);
        let reg = Registry::start_with(Options {
            auth: Auth::None,
            notifications: Some(hook),
        });
        let mut options = ServiceOptions::new(&db);
        options.port = Some(port);
        options.store = store;
        options.tenant("a", &[("local", "team-a")]);
        Some(Lab {
            _dir: dir,
            reg,
            options,
        })
    }

    /// Starts the service with the registry at `registry_url` (the registry's own, or a
    /// proxy in front of it).
    fn start(&mut self, registry_url: &str) -> ServiceHarness {
        let mut options = self.options.clone();
        options.registry("local", registry_url, HOOK_SECRET);
        let sqlite = options.store == ServiceStore::Sqlite;
        let svc = ServiceHarness::start(bin(), options);
        assert_eq!(
            svc.store_path().exists(),
            sqlite,
            "the service runs on the store asked for"
        );
        svc
    }
}

/// `n` distinct small images in one OCI layout, tagged `b0` … `b{n-1}`: the Alpine 3.20
/// minirootfs as a shared base layer, plus one tiny layer of each image's own (so every
/// manifest digest differs). Returns the layout and each tag's manifest digest.
fn distinct_images(n: usize) -> (Image, Vec<(String, String)>) {
    let (image, layout) = Image::new_layout("b0");
    let gz_path = fixture("images/alpine-minirootfs-3.20.3-x86_64.tar.gz");
    let gz = std::fs::read(&gz_path).unwrap_or_else(|e| panic!("{}: {e}", gz_path.display()));
    let mut tar = Vec::new();
    flate2::read::MultiGzDecoder::new(&gz[..])
        .read_to_end(&mut tar)
        .expect("gunzip the minirootfs");
    let base: Layer = layout
        .add_compressed_layer(
            &gz,
            Compression::Gzip.media_type(),
            &images::sha256_digest(&tar),
            "ADD alpine-minirootfs-3.20.3-x86_64.tar.gz /",
        )
        .expect("base layer");
    let mut tags = Vec::with_capacity(n);
    for i in 0..n {
        let mut own = LayerTar::new();
        own.parents("etc/bulkhead").file(
            "etc/bulkhead/burst",
            format!("image {i}\n").as_bytes(),
            0o644,
        );
        let own = layout
            .add_layer(
                &own.into_bytes(),
                Compression::Gzip,
                &format!("RUN echo image {i}"),
            )
            .expect("own layer");
        let manifest = layout
            .add_image(&[base.clone(), own], &Platform::linux_amd64())
            .expect("manifest");
        let tag = format!("b{i}");
        layout.tag(&manifest, &tag).expect("tag");
        tags.push((tag, manifest.digest));
    }
    (image, tags)
}

/// Pushes `layout:tag` to `dest` (`repo:tag`).
fn push(reg: &Registry, layout: &Path, tag: &str, dest: &str) {
    skopeo::push(layout, tag, reg.addr(), None, dest)
        .unwrap_or_else(|e| panic!("push {dest}: {e}\nregistry log:\n{}", reg.log()));
}

/// Pushes every `(source tag, destination)` of `layout`, `parallel` at a time.
fn push_all(reg: &Registry, layout: &Path, pushes: &[(String, String)], parallel: usize) {
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..parallel {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((tag, dest)) = pushes.get(i) else {
                        return;
                    };
                    push(reg, layout, tag, dest);
                }
            });
        }
    });
}

/// `(repository, digest)` of every image the tenant has.
fn image_keys(images: &[Value]) -> BTreeSet<(String, String)> {
    images
        .iter()
        .map(|i| {
            (
                i["repository"].as_str().unwrap_or_default().to_string(),
                i["digest"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The tenant's images once every `(repository, digest)` of `want` is among them with a
/// result (not pending or scanning).
fn wait_scanned(
    svc: &ServiceHarness,
    token: &str,
    want: &BTreeSet<(String, String)>,
    timeout: Duration,
) -> Vec<Value> {
    svc.wait_for(&format!("{} scanned image(s)", want.len()), timeout, || {
        let images = svc.get_all("/v1/images?limit=500", token);
        let done: BTreeSet<(String, String)> = image_keys(
            &images
                .iter()
                .filter(|i| !matches!(i["health"].as_str(), Some("pending" | "scanning")))
                .cloned()
                .collect::<Vec<_>>(),
        );
        want.is_subset(&done).then_some(images)
    })
}

/// No job of the tenant is queued or running.
fn wait_idle(svc: &ServiceHarness, token: &str) {
    svc.wait_for("an idle queue", TIMEOUT, || {
        let q = svc.get_all("/v1/scans?state=queued", token);
        let r = svc.get_all("/v1/scans?state=running", token);
        (q.is_empty() && r.is_empty()).then_some(())
    });
}

/// Every job of the tenant, by (repository, digest).
fn jobs_by_image(svc: &ServiceHarness, token: &str) -> BTreeMap<(String, String), Vec<Value>> {
    let mut by: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
    for j in svc.get_all("/v1/scans?limit=500", token) {
        let key = (
            j["repository"].as_str().unwrap_or_default().to_string(),
            j["digest"].as_str().unwrap_or_default().to_string(),
        );
        by.entry(key).or_default().push(j);
    }
    by
}

/// Each of `want` has exactly one job, and it is `done`; no other job exists.
fn assert_scanned_once(svc: &ServiceHarness, token: &str, want: &BTreeSet<(String, String)>) {
    let by = jobs_by_image(svc, token);
    let keys: BTreeSet<(String, String)> = by.keys().cloned().collect();
    assert_eq!(&keys, want, "jobs exist for exactly the pushed manifests");
    for (key, jobs) in &by {
        assert_eq!(jobs.len(), 1, "{key:?}: {jobs:?}\n{}", svc.log());
        assert_eq!(jobs[0]["state"], "done", "{key:?}: {jobs:?}");
        assert_eq!(jobs[0]["reason"], "push", "{key:?}: {jobs:?}");
    }
}

// --- the tests ---------------------------------------------------------------------------

/// The service is stopped, images are pushed, the service starts again: the registry has
/// kept the notifications (in memory, retrying) and delivers them; every push is scanned.
/// The reconcile is off, so the notifications are the only way the pushes can be found.
fn service_down_pushes_are_delivered_when_it_is_back(kind: StoreKind) {
    let Some(mut lab) = Lab::new(kind) else {
        return;
    };
    lab.options.reconcile_seconds = 0;
    let url = lab.reg.url();
    let mut svc = lab.start(&url);
    let reader = svc.create_token("a", "reader");
    let (image, tags) = distinct_images(4);
    let key = |i: usize| ("team-a/down".to_string(), tags[i].1.clone());

    push(&lab.reg, &image.layout, &tags[0].0, "team-a/down:b0");
    wait_scanned(&svc, &reader, &BTreeSet::from([key(0)]), TIMEOUT);

    svc.stop();
    for (tag, _) in &tags[1..] {
        push(&lab.reg, &image.layout, tag, &format!("team-a/down:{tag}"));
    }
    svc.start_again();
    let want: BTreeSet<(String, String)> = (0..tags.len()).map(key).collect();
    let images = wait_scanned(&svc, &reader, &want, TIMEOUT);
    assert_eq!(image_keys(&images), want);
    wait_idle(&svc, &reader);
    assert_scanned_once(&svc, &reader, &want);
    let packages = alpine_package_count();
    for i in &images {
        assert_eq!(i["packages"], packages, "{i}");
        assert_eq!(i["tags"].as_array().map(Vec::len), Some(1), "{i}");
    }
    assert!(
        svc.metric("bulkhead_webhook_events_total{kind=\"manifest_push\",result=\"enqueued\"}")
            >= 1.0,
        "the held notifications arrived after the restart\n{}",
        svc.log()
    );
}

/// The registry restarts between pushes; then, while the service is down, a new image, a
/// tag moved to a new digest and a multi-platform index are pushed and the registry
/// restarts again, losing those notifications: the reconcile finds all of them.
fn registry_restart_loses_no_push(kind: StoreKind) {
    let Some(mut lab) = Lab::new(kind) else {
        return;
    };
    lab.options.reconcile_seconds = 2;
    let url = lab.reg.url();
    let mut svc = lab.start(&url);
    let reader = svc.create_token("a", "reader");
    let (image, tags) = distinct_images(4);
    let key = |repo: &str, i: usize| (repo.to_string(), tags[i].1.clone());

    // Notified before a registry restart: scanned.
    push(&lab.reg, &image.layout, "b0", "team-a/app:v1");
    wait_scanned(
        &svc,
        &reader,
        &BTreeSet::from([key("team-a/app", 0)]),
        TIMEOUT,
    );
    lab.reg.restart();
    // Notified by the restarted registry: scanned.
    push(&lab.reg, &image.layout, "b1", "team-a/app:v2");
    wait_scanned(
        &svc,
        &reader,
        &BTreeSet::from([key("team-a/app", 1)]),
        TIMEOUT,
    );

    // Pushed while the service is down; the registry restarts before it is back, so
    // these notifications are lost.
    svc.stop();
    push(&lab.reg, &image.layout, "b2", "team-a/other:v1");
    // `v1` moves from b0 to b3.
    push(&lab.reg, &image.layout, "b3", "team-a/app:v1");
    let multi = images::multi_platform();
    skopeo::push(
        &multi.layout,
        &multi.tag,
        lab.reg.addr(),
        None,
        "team-a/multi",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let index: Value = serde_json::from_slice(
        &multi
            .open()
            .read_blob(&multi.descriptor().digest)
            .expect("index blob"),
    )
    .expect("index JSON");
    let platforms: Vec<String> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| m["digest"].as_str().expect("digest").to_string())
        .collect();
    assert_eq!(platforms.len(), 2);
    lab.reg.restart();
    assert!(
        lab.reg.log().contains("retrying"),
        "the registry was holding undelivered notifications when it restarted:\n{}",
        lab.reg.log()
    );
    svc.start_again();

    let mut want: BTreeSet<(String, String)> = [
        key("team-a/app", 0),
        key("team-a/app", 1),
        key("team-a/other", 2),
        key("team-a/app", 3),
    ]
    .into();
    for p in &platforms {
        want.insert(("team-a/multi".to_string(), p.clone()));
    }
    let images = wait_scanned(&svc, &reader, &want, TIMEOUT);
    assert_eq!(image_keys(&images), want);
    wait_idle(&svc, &reader);
    assert_scanned_once(&svc, &reader, &want);
    let tags_of = |repo: &str, digest: &str| -> BTreeSet<String> {
        images
            .iter()
            .find(|i| i["repository"] == repo && i["digest"] == digest)
            .and_then(|i| i["tags"].as_array())
            .map(|t| {
                t.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        tags_of("team-a/app", &tags[3].1),
        BTreeSet::from(["v1".to_string()]),
        "the moved tag is recorded on its new digest"
    );
    for p in &platforms {
        assert_eq!(
            tags_of("team-a/multi", p),
            BTreeSet::from([multi.tag.clone()]),
            "each platform manifest of the index, under the index's tag"
        );
    }
    assert!(
        svc.log().contains("reconcile: found pushes"),
        "the reconcile found them\n{}",
        svc.log()
    );
}

/// `kill -9` while a scan is in the middle of downloading the image: the restarted
/// service claims the job again once its lease has expired and completes it, once.
fn kill_mid_scan_runs_the_job_again_exactly_once(kind: StoreKind) {
    let Some(mut lab) = Lab::new(kind) else {
        return;
    };
    // The shortest lease the configuration allows: the job is claimed again 5 s after the
    // kill.
    lab.options.lease_seconds = 5;
    let gate = BlobGate::start(lab.reg.addr());
    let mut svc = lab.start(&gate.url());
    let reader = svc.create_token("a", "reader");
    let alpine = images::alpine("3.20");
    let digest = alpine.descriptor().digest;
    let want = BTreeSet::from([("team-a/alpine".to_string(), digest.clone())]);

    gate.close();
    push(&lab.reg, &alpine.layout, &alpine.tag, "team-a/alpine:3.20");
    // The scan has begun (a worker claimed the job and asked for a blob) and cannot end.
    assert!(
        gate.wait_for_waiting(TIMEOUT),
        "no blob download reached the gate\n{}",
        svc.log()
    );
    let running = svc.wait_for("the running job", TIMEOUT, || {
        svc.get_all("/v1/scans?state=running", &reader)
            .into_iter()
            .next()
    });
    assert_eq!(running["digest"], digest, "{running}");
    assert_eq!(running["attempts"], 1, "{running}");
    let job_id = running["id"].as_i64().expect("job id");
    svc.kill();
    gate.open();

    svc.start_again();
    let done = svc.wait_for("the job to run again", TIMEOUT, || {
        let j = svc.get_json(&format!("/v1/scans/{job_id}"), &reader);
        (j["state"] == "done").then_some(j)
    });
    assert_eq!(done["attempts"], 2, "claimed again after the kill: {done}");
    let images = wait_scanned(&svc, &reader, &want, TIMEOUT);
    assert_eq!(image_keys(&images), want);
    // Alpine against the demo's AlmaLinux-only database: scanned, but nothing could be
    // checked, which is `unknown`, not `healthy`.
    assert_eq!(images[0]["health"], "unknown", "{}", images[0]);
    assert_eq!(
        images[0]["packages"],
        alpine_package_count(),
        "{}",
        images[0]
    );
    wait_idle(&svc, &reader);
    assert_scanned_once(&svc, &reader, &want);
    assert_eq!(
        svc.metric("bulkhead_scans_total{outcome=\"done\"}"),
        1.0,
        "the restarted process completed it once\n{}",
        svc.log()
    );
    assert!(gate.held() >= 1);
}

/// 300 pushes of distinct images, 8 at a time, into 10 repositories: every digest is
/// scanned exactly once, none is lost, the queue drains. The reconcile is off: the
/// notifications alone carry the burst.
fn a_burst_of_pushes_loses_nothing(kind: StoreKind) {
    const IMAGES: usize = 300;
    let Some(mut lab) = Lab::new(kind) else {
        return;
    };
    lab.options.reconcile_seconds = 0;
    let url = lab.reg.url();
    let svc = lab.start(&url);
    let reader = svc.create_token("a", "reader");
    let (image, tags) = distinct_images(IMAGES);
    let pushes: Vec<(String, String)> = tags
        .iter()
        .enumerate()
        .map(|(i, (tag, _))| (tag.clone(), format!("team-a/burst-{}:{tag}", i % 10)))
        .collect();
    let want: BTreeSet<(String, String)> = tags
        .iter()
        .enumerate()
        .map(|(i, (_, digest))| (format!("team-a/burst-{}", i % 10), digest.clone()))
        .collect();
    assert_eq!(want.len(), IMAGES, "distinct digests");

    push_all(&lab.reg, &image.layout, &pushes, 8);
    let images = wait_scanned(&svc, &reader, &want, Duration::from_secs(300));
    assert_eq!(
        image_keys(&images),
        want,
        "the API lists exactly what was pushed"
    );
    wait_idle(&svc, &reader);
    assert_scanned_once(&svc, &reader, &want);
    let packages = alpine_package_count();
    for i in &images {
        assert_eq!(i["packages"], packages, "{i}");
    }
    for state in ["queued", "running", "failed"] {
        assert_eq!(
            svc.metric(&format!("bulkhead_jobs{{state=\"{state}\"}}")),
            0.0,
            "{state}"
        );
    }
    assert_eq!(
        svc.metric("bulkhead_jobs{state=\"done\"}"),
        IMAGES as f64,
        "{}",
        svc.metrics()
    );
}

/// The reconcile on a registry with token authentication: the catalog needs a token for
/// `registry:catalog:*` (the tags and manifests, repository tokens), asked for with the
/// service's pull credentials. One store is enough: this is about the registry.
#[test]
fn reconcile_lists_a_registry_with_token_authentication() {
    const USER: &str = "scanner";
    const PASS: &str = "token-s3cret";
    if !require_tools(registry::TOOLS) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let db = demo_db(dir.path());
    let port = free_port();
    let hook = ServiceHarness::notifications_for(port, HOOK_SECRET);
    let mut reg = Registry::start_with(Options {
        auth: Auth::token(USER, PASS, &[]),
        notifications: Some(hook),
    });
    let mut options = ServiceOptions::new(&db);
    options.port = Some(port);
    options.reconcile_seconds = 2;
    options
        .registry("local", &reg.url(), HOOK_SECRET)
        .tenant("a", &[("local", "team-a")]);
    options.registries[0].creds = Some((USER.into(), PASS.into()));
    // The token server listens on another port: the registry's credentials go there only
    // because it is listed.
    options.registries[0].token_hosts = vec![token_authority(&reg)];
    let mut svc = ServiceHarness::start(bin(), options);
    let reader = svc.create_token("a", "reader");
    let (image, tags) = distinct_images(1);

    svc.stop();
    skopeo::push(
        &image.layout,
        "b0",
        reg.addr(),
        Some((USER, PASS)),
        "team-a/locked:v1",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    reg.restart();
    svc.start_again();
    let want = BTreeSet::from([("team-a/locked".to_string(), tags[0].1.clone())]);
    let images = wait_scanned(&svc, &reader, &want, TIMEOUT);
    assert_eq!(image_keys(&images), want);
    assert_eq!(
        images[0]["packages"],
        alpine_package_count(),
        "{}",
        images[0]
    );
    assert_scanned_once(&svc, &reader, &want);
    let requests = reg.token_server().expect("a token server").requests();
    assert!(
        requests.iter().any(|r| r.user.as_deref() == Some(USER)
            && r.status == 200
            && r.scopes.iter().any(|s| s == "registry:catalog:*")),
        "the service asked for a catalog token: {requests:?}"
    );
}

/// Two `bulkhead serve` on one PostgreSQL database: the registry notifies the first, both
/// claim from the shared queue; each push is scanned once in all, and the second's API
/// shows every result.
#[test]
fn two_instances_share_one_postgres_queue() {
    const IMAGES: usize = 24;
    let Some(mut lab) = Lab::new(StoreKind::Postgres) else {
        return;
    };
    assert!(matches!(lab.options.store, ServiceStore::Postgres(_)));
    // One worker each, so that neither drains the queue alone before the other looks.
    lab.options.workers = 1;
    lab.options.reconcile_seconds = 0;
    let url = lab.reg.url();
    let first = lab.start(&url);
    lab.options.port = Some(free_port());
    let second = lab.start(&url);
    assert_ne!(first.addr(), second.addr());
    let reader = first.create_token("a", "reader");
    let (image, tags) = distinct_images(IMAGES);
    let pushes: Vec<(String, String)> = tags
        .iter()
        .enumerate()
        .map(|(i, (tag, _))| (tag.clone(), format!("team-a/shared-{}:{tag}", i % 3)))
        .collect();
    let want: BTreeSet<(String, String)> = tags
        .iter()
        .enumerate()
        .map(|(i, (_, digest))| (format!("team-a/shared-{}", i % 3), digest.clone()))
        .collect();

    push_all(&lab.reg, &image.layout, &pushes, 8);
    // Read through the instance the registry does not notify: one result set.
    let images = wait_scanned(&second, &reader, &want, TIMEOUT);
    assert_eq!(image_keys(&images), want);
    wait_idle(&second, &reader);
    assert_scanned_once(&second, &reader, &want);
    let done = |s: &ServiceHarness| s.metric("bulkhead_scans_total{outcome=\"done\"}");
    let (a, b) = (done(&first), done(&second));
    assert_eq!(
        a + b,
        IMAGES as f64,
        "each push scanned once in all: {a} + {b}"
    );
    assert!(
        a > 0.0 && b > 0.0,
        "both instances took jobs from the shared queue: {a} and {b}\nfirst:\n{}\nsecond:\n{}",
        first.log(),
        second.log()
    );
}

/// `HOST:PORT` of a registry's token server.
fn token_authority(reg: &Registry) -> String {
    let realm = reg.token_server().expect("a token server").realm();
    let rest = realm
        .split_once("://")
        .map_or(realm.as_str(), |(_, r)| r)
        .to_string();
    rest.split('/').next().unwrap_or_default().to_string()
}

//! One suite, run against both stores: SQLite in a temporary file, and PostgreSQL in a
//! throwaway cluster (`bulkhead_test_artifacts::postgres`; skipped with a message when
//! PostgreSQL is not installed, a failure in CI).
//!
//! The scan results are the demo image's real JSON report (tests/data/README.md); what the
//! tests expect of it is computed from the report's own fields.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulkhead_store::schema::SCHEMA_VERSION;
use bulkhead_store::{
    Completed, Enqueued, Error, FindingFilter, ImageFilter, ImageHealth, JobState, NewJob,
    OwnershipActor, Page, Pushed, QueryLimits, Reason, Role, ScanFilter, Severity, Store,
    StoreConfig, TenantId, TenantSpec, Value,
};
use bulkhead_test_artifacts::postgres::PgCluster;
use bulkhead_test_artifacts::{StoreKind, both};
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};

const T0: i64 = 1_700_000_000_000;
const LEASE: Duration = Duration::from_secs(60);

struct Env {
    store: Store,
    config: StoreConfig,
    _dir: Option<tempfile::TempDir>,
}

impl Env {
    async fn sqlite() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = StoreConfig::Sqlite {
            path: dir.path().join("store.db"),
        };
        let store = Store::open(config.clone())
            .await
            .expect("open sqlite store");
        Env {
            store,
            config,
            _dir: Some(dir),
        }
    }

    async fn postgres() -> Option<Env> {
        let cluster = PgCluster::shared()?;
        let config = StoreConfig::Postgres {
            url: cluster.database(),
        };
        let store = Store::open(config.clone())
            .await
            .expect("open postgres store");
        Some(Env {
            store,
            config,
            _dir: None,
        })
    }

    /// The store of one test; `None` (the test skips) when PostgreSQL is unavailable
    /// outside CI.
    async fn new(kind: StoreKind) -> Option<Env> {
        match kind {
            StoreKind::Sqlite => Some(Env::sqlite().await),
            StoreKind::Postgres => Env::postgres().await,
        }
    }

    fn sqlite_path(&self) -> Option<&std::path::Path> {
        match &self.config {
            StoreConfig::Sqlite { path } => Some(path),
            StoreConfig::Postgres { .. } => None,
        }
    }
}

both!(
    async migrations,
    coalescing,
    pushes_of_scanned_images,
    claim_race,
    fair_claims,
    lease_expiry,
    retry_and_fail,
    assessment_rows,
    first_seen_and_new_findings,
    events_and_notifications_only_for_problems,
    an_unassessed_image_is_unknown_and_notified,
    deliveries,
    tenant_isolation,
    pagination_and_filters,
    tenants_and_ownership,
    tokens,
    query_limits,
);

// --- helpers ---------------------------------------------------------------------------

fn report() -> Json {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/almalinux9-report.json"),
    )
    .expect("read the report fixture");
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// A report as the scanner would hand it to the store, from its JSON.
fn typed(r: &Json) -> bulkhead_store::Report {
    serde_json::from_value(r.clone()).expect("the fixture is a report of the model's shape")
}

fn findings(r: &Json) -> &Vec<Json> {
    r["findings"].as_array().expect("findings array")
}

fn count_severity(r: &Json, sev: &str) -> i64 {
    findings(r).iter().filter(|f| f["severity"] == sev).count() as i64
}

/// The report made healthy: no findings at or above the threshold, no recommendations.
fn healthy(r: &Json) -> Json {
    let mut r = r.clone();
    r["findings"] = json!([]);
    r["recommendations"] = json!([]);
    r["health"] = json!("healthy");
    r["summary"] = json!({"critical": 0, "high": 0, "medium": 0, "low": 0, "negligible": 0,
                          "unknown": 0, "suppressed": 0});
    r
}

/// The report with one more finding (a copy of the first, under a new id and severity).
fn with_extra_finding(r: &Json, id: &str, severity: &str) -> Json {
    let mut r = r.clone();
    let mut f = findings(&report())[0].clone();
    f["id"] = json!(id);
    f["aliases"] = json!([]);
    f["severity"] = json!(severity);
    r["findings"].as_array_mut().expect("array").push(f);
    r
}

async fn tenants(store: &Store, specs: &[(&str, &str, bool)]) -> Vec<TenantId> {
    let specs: Vec<TenantSpec> = specs
        .iter()
        .map(|(name, prefix, notify)| TenantSpec {
            name: name.to_string(),
            ownership: vec![("main".to_string(), prefix.to_string())],
            notify: notify.then(|| {
                (
                    format!("http://127.0.0.1:9/{name}"),
                    format!("secret-{name}"),
                )
            }),
        })
        .collect();
    store.sync_tenants(&specs, T0).await.expect("sync tenants");
    let mut ids = Vec::new();
    for s in &specs {
        ids.push(
            store
                .tenant_by_name(&s.name)
                .await
                .expect("lookup")
                .expect("tenant exists")
                .id,
        );
    }
    ids
}

fn new_job(
    tenant: TenantId,
    repository: &str,
    digest: &str,
    tag: Option<&str>,
    now: i64,
) -> NewJob {
    NewJob {
        tenant_id: tenant,
        registry: "main".to_string(),
        repository: repository.to_string(),
        digest: digest.to_string(),
        tag: tag.map(str::to_string),
        media_type: Some("application/vnd.oci.image.manifest.v1+json".to_string()),
        platform: None,
        reason: Reason::Push,
        run_at: now,
        now,
    }
}

/// Enqueues, claims and completes one scan of `report`.
async fn scan(
    store: &Store,
    tenant: TenantId,
    repository: &str,
    digest: &str,
    report: &Json,
    now: i64,
) -> (i64, Completed) {
    let job = store
        .enqueue(new_job(tenant, repository, digest, Some("latest"), now))
        .await
        .expect("enqueue")
        .job_id();
    let claimed = store
        .claim("w", LEASE, now)
        .await
        .expect("claim")
        .expect("a job to claim");
    assert_eq!(claimed.id, job);
    let done = store
        .complete(
            job,
            claimed.lease_token.as_deref().expect("lease token"),
            &typed(report),
            now,
        )
        .await
        .expect("complete");
    (job, done)
}

async fn count(store: &Store, sql: &str, params: &[Value]) -> i64 {
    let r = store
        .query(sql, params, QueryLimits::default())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    match r.rows.first().and_then(|r| r.first()) {
        Some(Value::Int(n)) => *n,
        other => panic!("{sql}: expected a count, got {other:?}"),
    }
}

fn all() -> Page {
    Page {
        limit: Some(500),
        cursor: None,
    }
}

// --- tests -----------------------------------------------------------------------------

async fn migrations(kind: StoreKind) {
    let Some(env) = Env::new(kind).await else {
        return;
    };
    assert_eq!(
        env.store.schema_version().await.expect("version"),
        SCHEMA_VERSION
    );
    // Opening again, twice at once, applies nothing twice.
    let (a, b) = tokio::join!(
        Store::open(env.config.clone()),
        Store::open(env.config.clone())
    );
    a.expect("reopen");
    b.expect("reopen concurrently");
    assert_eq!(
        count(&env.store, "SELECT COUNT(*) FROM schema_migrations", &[]).await,
        SCHEMA_VERSION
    );

    // The query-language views (host/query/sql/views_v1.sql) have the columns of
    // docs/service-design.md (the query crate may add more), with their case kept
    // (PostgreSQL folds unquoted names), and a `tenant_id`.
    let expected: &[(&str, &[&str])] = &[
        (
            "query_images",
            &[
                "ImageId",
                "Registry",
                "Repository",
                "Digest",
                "Tags",
                "Platform",
                "OsId",
                "OsVersion",
                "OsName",
                "Health",
                "Critical",
                "High",
                "Medium",
                "Low",
                "Negligible",
                "Unknown",
                "Suppressed",
                "Packages",
                "FirstSeen",
                "ScannedAt",
                "LastError",
            ],
        ),
        (
            "query_findings",
            &[
                "ImageId",
                "Registry",
                "Repository",
                "Digest",
                "VulnId",
                "Aliases",
                "Package",
                "InstalledVersion",
                "FixedVersion",
                "FixState",
                "Severity",
                "SeverityRank",
                "CvssScore",
                "CvssVector",
                "Title",
                "Ecosystem",
                "PackageType",
                "LayerDigest",
                "FirstSeen",
            ],
        ),
        (
            "query_packages",
            &[
                "ImageId",
                "Registry",
                "Repository",
                "Digest",
                "Name",
                "Version",
                "Ecosystem",
                "SourceName",
                "SourceVersion",
                "Arch",
                "License",
                "Purl",
                "LayerDigest",
            ],
        ),
        (
            "query_recommendations",
            &[
                "ImageId",
                "Registry",
                "Repository",
                "Digest",
                "Package",
                "InstalledVersion",
                "FixedVersion",
                "Fixes",
                "FixCount",
                "Severity",
            ],
        ),
        (
            "query_scans",
            &[
                "ScanId",
                "ImageId",
                "Registry",
                "Repository",
                "Digest",
                "Tag",
                "Reason",
                "State",
                "Attempts",
                "Error",
                "CreatedAt",
                "StartedAt",
                "FinishedAt",
            ],
        ),
        (
            "query_health_events",
            &[
                "ImageId",
                "Registry",
                "Repository",
                "Digest",
                "At",
                "FromHealth",
                "ToHealth",
                "Reason",
            ],
        ),
    ];
    for (view, columns) in expected {
        let r = env
            .store
            .query(
                &format!("SELECT * FROM {view} WHERE 1 = 0"),
                &[],
                QueryLimits::default(),
            )
            .await
            .expect("view exists");
        assert!(
            r.columns.iter().any(|c| c == "tenant_id"),
            "{view}: {:?}",
            r.columns
        );
        for c in *columns {
            assert!(
                r.columns.iter().any(|have| have == c),
                "{view} lacks {c}: {:?}",
                r.columns
            );
        }
    }
}

async fn coalescing(kind: StoreKind) {
    let Some(env) = Env::new(kind).await else {
        return;
    };
    let store = &env.store;
    let [t] = tenants(store, &[("a", "", false)]).await[..] else {
        unreachable!()
    };
    // Many concurrent pushes of one digest under different tags: one job, every tag kept.
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .enqueue(new_job(t, "app", "sha256:aa", Some(&format!("v{i}")), T0))
                    .await
                    .expect("enqueue")
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("task"));
    }
    let new: Vec<_> = results
        .iter()
        .filter(|r| matches!(r, Enqueued::New(_)))
        .collect();
    assert_eq!(new.len(), 1, "{results:?}");
    let id = results[0].job_id();
    assert!(results.iter().all(|r| r.job_id() == id), "{results:?}");
    assert_eq!(count(store, "SELECT COUNT(*) FROM jobs", &[]).await, 1);
    let images = store
        .images(t, &ImageFilter::default(), &all())
        .await
        .expect("images");
    assert_eq!(images.items.len(), 1);
    let image = &images.items[0];
    assert_eq!(image.health, ImageHealth::Pending);
    let tags: BTreeSet<String> = image.tags.iter().cloned().collect();
    let want: BTreeSet<String> = (0..24).map(|i| format!("v{i}")).collect();
    assert_eq!(tags, want);

    // Running: still coalesced. Done: a new job.
    let job = store
        .claim("w", LEASE, T0)
        .await
        .expect("claim")
        .expect("job");
    assert_eq!(
        store
            .enqueue(new_job(t, "app", "sha256:aa", None, T0))
            .await
            .expect("enqueue"),
        Enqueued::Coalesced(id)
    );
    assert_eq!(image.id, job.image_id.expect("job has its image"));
    store
        .complete(
            id,
            job.lease_token.as_deref().expect("token"),
            &typed(&report()),
            T0 + 1,
        )
        .await
        .expect("complete");
    let again = store
        .enqueue(new_job(t, "app", "sha256:aa", None, T0 + 2))
        .await
        .expect("enqueue");
    assert!(matches!(again, Enqueued::New(n) if n != id), "{again:?}");
    // Another digest, another repository, another tenant: not coalesced.
    let [_, u] = tenants(store, &[("a", "app", false), ("b", "other", false)]).await[..] else {
        unreachable!()
    };
    for job in [
        new_job(t, "app", "sha256:bb", None, T0),
        new_job(t, "app2", "sha256:aa", None, T0),
        new_job(u, "app", "sha256:aa", None, T0),
    ] {
        assert!(matches!(
            store.enqueue(job).await.expect("enqueue"),
            Enqueued::New(_)
        ));
    }
}

/// `enqueue_if_unscanned` (the webhook's and the reconcile's enqueue): a push of an image
/// that has a result records the tag and creates no job; one that has none is enqueued or
/// joins the active job, exactly like `enqueue`.
async fn pushes_of_scanned_images(kind: StoreKind) {
    let Some(env) = Env::new(kind).await else {
        return;
    };
    let store = &env.store;
    let [t] = tenants(store, &[("a", "", false)]).await[..] else {
        unreachable!()
    };
    let jobs = |state: &'static str| {
        let store = store.clone();
        async move {
            count(
                &store,
                "SELECT COUNT(*) FROM jobs WHERE state = $1",
                &[state.into()],
            )
            .await
        }
    };
    let tags = |image_id: i64| {
        let store = store.clone();
        async move {
            let image = store
                .image(t, image_id)
                .await
                .expect("read")
                .expect("image");
            image.tags.into_iter().collect::<BTreeSet<String>>()
        }
    };
    let set = |v: &[&str]| {
        v.iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<String>>()
    };

    // Never seen: a job; pushed again meanwhile: the same job.
    let first = store
        .enqueue_if_unscanned(new_job(t, "app", "sha256:aa", Some("v1"), T0))
        .await
        .expect("enqueue");
    let Pushed::Job(Enqueued::New(id)) = first else {
        panic!("{first:?}")
    };
    assert_eq!(
        store
            .enqueue_if_unscanned(new_job(t, "app", "sha256:aa", Some("v2"), T0))
            .await
            .expect("enqueue"),
        Pushed::Job(Enqueued::Coalesced(id))
    );
    let job = store
        .claim("w", LEASE, T0)
        .await
        .expect("claim")
        .expect("job");
    let image_id = job.image_id.expect("image");
    store
        .complete(
            id,
            job.lease_token.as_deref().expect("token"),
            &typed(&report()),
            T0 + 1,
        )
        .await
        .expect("complete");

    // Scanned: the tag is recorded, no job.
    assert_eq!(
        store
            .enqueue_if_unscanned(new_job(t, "app", "sha256:aa", Some("v3"), T0 + 2))
            .await
            .expect("enqueue"),
        Pushed::AlreadyScanned { image_id }
    );
    assert_eq!(count(store, "SELECT COUNT(*) FROM jobs", &[]).await, 1);
    assert_eq!(tags(image_id).await, set(&["v1", "v2", "v3"]));
    // The same digest in another repository is another image: scanned on its own.
    assert!(matches!(
        store
            .enqueue_if_unscanned(new_job(t, "app2", "sha256:aa", Some("v1"), T0 + 2))
            .await
            .expect("enqueue"),
        Pushed::Job(Enqueued::New(_))
    ));
    // A manual scan always enqueues; a push meanwhile does not join it (the image has a
    // result already), it only records its tag.
    let manual = store
        .enqueue(NewJob {
            reason: Reason::Manual,
            ..new_job(t, "app", "sha256:aa", None, T0 + 3)
        })
        .await
        .expect("enqueue");
    assert!(matches!(manual, Enqueued::New(n) if n != id), "{manual:?}");
    assert_eq!(
        store
            .enqueue_if_unscanned(new_job(t, "app", "sha256:aa", Some("v4"), T0 + 4))
            .await
            .expect("enqueue"),
        Pushed::AlreadyScanned { image_id }
    );
    assert_eq!(tags(image_id).await, set(&["v1", "v2", "v3", "v4"]));
    assert_eq!(jobs("queued").await, 2, "the manual job and app2's");

    // Unsupported (a Helm chart): as good as scanned. Failed: pushed again, scanned again.
    for (digest, unsupported) in [("sha256:cc", true), ("sha256:dd", false)] {
        let Pushed::Job(Enqueued::New(jid)) = store
            .enqueue_if_unscanned(new_job(t, "chart", digest, Some("1.0"), T0))
            .await
            .expect("enqueue")
        else {
            panic!("{digest}: a new job expected");
        };
        // Claim exactly this job: others are queued too.
        let mut claimed = Vec::new();
        let job = loop {
            let j = store
                .claim("w", LEASE, T0 + 10)
                .await
                .expect("claim")
                .expect("a queued job");
            if j.id == jid {
                break j;
            }
            claimed.push(j);
        };
        store
            .fail(
                jid,
                job.lease_token.as_deref().expect("token"),
                "not an image",
                unsupported,
                T0 + 11,
            )
            .await
            .expect("fail");
        for j in claimed {
            store
                .retry(
                    j.id,
                    j.lease_token.as_deref().expect("token"),
                    "put back",
                    T0,
                    T0,
                )
                .await
                .expect("retry");
        }
        let again = store
            .enqueue_if_unscanned(new_job(t, "chart", digest, Some("1.1"), T0 + 12))
            .await
            .expect("enqueue");
        let chart = store
            .image(t, job.image_id.expect("image"))
            .await
            .expect("read")
            .expect("image");
        if unsupported {
            assert_eq!(chart.health, ImageHealth::Unsupported);
            assert_eq!(again, Pushed::AlreadyScanned { image_id: chart.id });
        } else {
            assert_eq!(chart.health, ImageHealth::Failed);
            assert!(
                matches!(again, Pushed::Job(Enqueued::New(n)) if n != jid),
                "{again:?}"
            );
        }
        assert_eq!(tags(chart.id).await, set(&["1.0", "1.1"]));
    }

    // Pushes racing with the completion of the image's running job: each either joins the
    // job (before the completion) or finds the result (after); none leaves a second job
    // behind, and every tag is kept.
    let Pushed::Job(Enqueued::New(rid)) = store
        .enqueue_if_unscanned(new_job(t, "race", "sha256:ee", Some("t0"), T0))
        .await
        .expect("enqueue")
    else {
        panic!("a new job expected");
    };
    let running = loop {
        let j = store
            .claim("w", LEASE, T0 + 20)
            .await
            .expect("claim")
            .expect("a queued job");
        if j.id == rid {
            break j;
        }
    };
    let pushes: Vec<_> = (1..=24)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .enqueue_if_unscanned(new_job(
                        t,
                        "race",
                        "sha256:ee",
                        Some(&format!("t{i}")),
                        T0 + 21,
                    ))
                    .await
                    .expect("enqueue")
            })
        })
        .collect();
    let completion = {
        let store = store.clone();
        let token = running.lease_token.clone().expect("token");
        tokio::spawn(async move {
            store
                .complete(rid, &token, &typed(&report()), T0 + 21)
                .await
                .expect("complete")
        })
    };
    let mut results = Vec::new();
    for p in pushes {
        results.push(p.await.expect("task"));
    }
    let race_image = completion.await.expect("task").image_id;
    for r in &results {
        assert!(
            matches!(r, Pushed::Job(Enqueued::Coalesced(n)) if *n == rid)
                || *r
                    == Pushed::AlreadyScanned {
                        image_id: race_image
                    },
            "{results:?}"
        );
    }
    assert_eq!(
        count(
            store,
            "SELECT COUNT(*) FROM jobs WHERE digest = $1",
            &["sha256:ee".into()]
        )
        .await,
        1,
        "{results:?}"
    );
    let want: BTreeSet<String> = (0..=24).map(|i| format!("t{i}")).collect();
    assert_eq!(tags(race_image).await, want);
}

async fn claim_race(kind: StoreKind) {
    let Some(env) = Env::new(kind).await else {
        return;
    };
    let store = &env.store;
    let [t] = tenants(store, &[("a", "", false)]).await[..] else {
        unreachable!()
    };
    const JOBS: usize = 12;
    for i in 0..JOBS {
        store
            .enqueue(new_job(t, "app", &format!("sha256:{i:02}"), None, T0))
            .await
            .expect("enqueue");
    }
    let report = Arc::new(typed(&report()));
    // Three workers race: every job is claimed and completed exactly once.
    let workers: Vec<_> = (0..3)
        .map(|w| {
            let store = store.clone();
            let report = report.clone();
            tokio::spawn(async move {
                let mut done = Vec::new();
                while let Some(job) = store
                    .claim(&format!("w{w}"), LEASE, T0)
                    .await
                    .expect("claim")
                {
                    store
                        .complete(
                            job.id,
                            job.lease_token.as_deref().expect("token"),
                            &(*report).clone(),
                            T0,
                        )
                        .await
                        .expect("complete: each claim is exclusive");
                    done.push(job.id);
                }
                done
            })
        })
        .collect();
    let mut all_done = Vec::new();
    for w in workers {
        all_done.extend(w.await.expect("worker"));
    }
    let unique: HashSet<_> = all_done.iter().collect();
    assert_eq!(all_done.len(), JOBS, "{all_done:?}");
    assert_eq!(unique.len(), JOBS);
    let scans = store
        .scans(t, &ScanFilter::default(), &all())
        .await
        .expect("scans");
    assert!(
        scans
            .items
            .iter()
            .all(|j| j.state == JobState::Done && j.attempts == 1)
    );

    // Two workers claim the one remaining job at once: exactly one gets it.
    store
        .enqueue(new_job(t, "app", "sha256:last", None, T0))
        .await
        .expect("enqueue");
    let (a, b) = tokio::join!(store.claim("x", LEASE, T0), store.claim("y", LEASE, T0));
    let got = [a.expect("claim"), b.expect("claim")];
    assert_eq!(got.iter().filter(|j| j.is_some()).count(), 1, "{got:?}");
}

/// Jobs are claimed round-robin across tenants: the tenant with the fewest jobs running,
/// then the one served longest ago, then the oldest job. One tenant's burst does not hold
/// back another's single push.
async fn fair_claims(kind: StoreKind) {
    let Some(env) = Env::new(kind).await else {
        return;
    };
    let store = &env.store;
    let [a, b, c] = tenants(
        store,
        &[("a", "a", false), ("b", "b", false), ("c", "c", false)],
    )
    .await[..] else {
        unreachable!()
    };
    let name = |t: TenantId| {
        if t == a {
            "a"
        } else if t == b {
            "b"
        } else if t == c {
            "c"
        } else {
            "?"
        }
    };
    // A pushes five images, then B two, then C one: oldest first would serve A five times.
    for (t, n) in [(a, 5), (b, 2), (c, 1)] {
        for i in 0..n {
            store
                .enqueue(new_job(
                    t,
                    &format!("{}/app", name(t)),
                    &format!("sha256:{}{i}", name(t)),
                    None,
                    T0,
                ))
                .await
                .expect("enqueue");
        }
    }
    // One worker, each scan finished before the next claim.
    let mut order = Vec::new();
    let mut a_jobs = Vec::new();
    for k in 1..=8 {
        let now = T0 + k;
        let job = store
            .claim("w", LEASE, now)
            .await
            .expect("claim")
            .expect("a job is runnable");
        order.push(name(job.tenant_id));
        if job.tenant_id == a {
            a_jobs.push(job.id);
        }
        store
            .fail(
                job.id,
                job.lease_token.as_deref().expect("token"),
                "done",
                false,
                now,
            )
            .await
            .expect("fail");
    }
    assert_eq!(order, ["a", "b", "c", "a", "b", "a", "a", "a"]);
    assert!(
        a_jobs.windows(2).all(|w| w[0] < w[1]),
        "a tenant's own jobs oldest first: {a_jobs:?}"
    );
    assert!(
        store
            .claim("w", LEASE, T0 + 9)
            .await
            .expect("claim")
            .is_none()
    );

    // Two workers: while a job of A runs, B's push made after A's burst goes first.
    for i in 0..3 {
        store
            .enqueue(new_job(
                a,
                "a/app",
                &format!("sha256:a-again{i}"),
                None,
                T0 + 10,
            ))
            .await
            .expect("enqueue");
    }
    let first = store
        .claim("w1", LEASE, T0 + 11)
        .await
        .expect("claim")
        .expect("job");
    assert_eq!(name(first.tenant_id), "a");
    store
        .enqueue(new_job(b, "b/app", "sha256:b-late", None, T0 + 12))
        .await
        .expect("enqueue");
    let second = store
        .claim("w2", LEASE, T0 + 13)
        .await
        .expect("claim")
        .expect("job");
    assert_eq!(name(second.tenant_id), "b", "{second:?}");
    assert_eq!(second.digest, "sha256:b-late");
    // B has nothing left: A again.
    let third = store
        .claim("w3", LEASE, T0 + 14)
        .await
        .expect("claim")
        .expect("job");
    assert_eq!(name(third.tenant_id), "a");
}

async fn lease_expiry(kind: StoreKind) {
    let Some(env) = Env::new(kind).await else {
        return;
    };
    let store = &env.store;
    let [t] = tenants(store, &[("a", "", false)]).await[..] else {
        unreachable!()
    };
    let lease = Duration::from_secs(1);
    store
        .enqueue(new_job(t, "app", "sha256:aa", None, T0))
        .await
        .expect("enqueue");
    let first = store
        .claim("w1", lease, T0)
        .await
        .expect("claim")
        .expect("job");
    assert_eq!(first.attempts, 1);
    assert_eq!(first.lease_until, Some(T0 + 1000));
    let image = store
        .image(t, first.image_id.expect("image"))
        .await
        .expect("read")
        .expect("image");
    assert_eq!(image.health, ImageHealth::Scanning);
    // Still leased: nobody else gets it; a heartbeat extends it.
    assert!(
        store
            .claim("w2", lease, T0 + 500)
            .await
            .expect("claim")
            .is_none()
    );
    let token1 = first.lease_token.clone().expect("token");
    assert!(
        store
            .heartbeat(first.id, &token1, T0 + 1500)
            .await
            .expect("heartbeat")
    );
    assert!(
        store
            .claim("w2", lease, T0 + 1200)
            .await
            .expect("claim")
            .is_none()
    );
    // w1 is killed: after its lease, w2 takes the job over.
    let second = store
        .claim("w2", lease, T0 + 1501)
        .await
        .expect("claim")
        .expect("re-claim");
    assert_eq!(second.id, first.id);
    assert_eq!(second.attempts, 2);
    assert_eq!(second.worker.as_deref(), Some("w2"));
    assert_ne!(second.lease_token, first.lease_token);
    // w1 comes back: its lease is gone and its results are refused, writing nothing.
    assert!(
        !store
            .heartbeat(first.id, &token1, T0 + 3000)
            .await
            .expect("heartbeat")
    );
    let r = report();
    let lost = store
        .complete(first.id, &token1, &typed(&r), T0 + 1600)
        .await;
    assert!(
        matches!(lost, Err(Error::LeaseLost(id)) if id == first.id),
        "{lost:?}"
    );
    assert!(matches!(
        store.retry(first.id, &token1, "x", T0, T0).await,
        Err(Error::LeaseLost(_))
    ));
    assert!(matches!(
        store.fail(first.id, &token1, "x", false, T0).await,
        Err(Error::LeaseLost(_))
    ));
    for table in [
        "findings",
        "packages",
        "recommendations",
        "health_events",
        "deliveries",
    ] {
        assert_eq!(
            count(store, &format!("SELECT COUNT(*) FROM {table}"), &[]).await,
            0,
            "{table}"
        );
    }
    let image = store
        .image(t, image.id)
        .await
        .expect("read")
        .expect("image");
    assert_eq!(image.health, ImageHealth::Scanning);
    assert!(
        store
            .image_report(t, image.id)
            .await
            .expect("read")
            .is_none()
    );
    let job = store.job(first.id).await.expect("read").expect("job");
    assert_eq!(
        (job.state, job.worker.as_deref()),
        (JobState::Running, Some("w2"))
    );
    // w2 completes.
    let done = store
        .complete(
            second.id,
            second.lease_token.as_deref().expect("token"),
            &typed(&r),
            T0 + 1700,
        )
        .await
        .expect("complete");
    assert_eq!(done.health, ImageHealth::Unhealthy);
    assert_eq!(
        store.job(first.id).await.expect("read").expect("job").state,
        JobState::Done
    );
    // Completing twice is refused too.
    let twice = store
        .complete(
            second.id,
            second.lease_token.as_deref().expect("token"),
            &typed(&r),
            T0 + 1800,
        )
        .await;
    assert!(matches!(twice, Err(Error::LeaseLost(_))), "{twice:?}");
}

async fn retry_and_fail(kind: StoreKind) {
    let Some(env) = Env::new(kind).await else {
        return;
    };
    let store = &env.store;
    let [t] = tenants(store, &[("a", "", false)]).await[..] else {
        unreachable!()
    };
    store
        .enqueue(new_job(t, "app", "sha256:aa", None, T0))
        .await
        .expect("enqueue");
    let job = store
        .claim("w", LEASE, T0)
        .await
        .expect("claim")
        .expect("job");
    store
        .retry(
            job.id,
            job.lease_token.as_deref().expect("token"),
            "registry answered 503",
            T0 + 30_000,
            T0,
        )
        .await
        .expect("retry");
    let queued = store.scan(t, job.id).await.expect("read").expect("job");
    assert_eq!(queued.state, JobState::Queued);
    assert_eq!(queued.run_at, T0 + 30_000);
    assert_eq!(queued.error.as_deref(), Some("registry answered 503"));
    assert!(queued.lease_token.is_none());
    let image = store
        .image(t, job.image_id.expect("image"))
        .await
        .expect("read")
        .expect("image");
    assert_eq!(image.health, ImageHealth::Pending);
    assert_eq!(image.last_error.as_deref(), Some("registry answered 503"));
    assert_eq!(store.queue_depth().await.expect("depth"), 1);
    assert_eq!(store.stats(T0).await.expect("stats").jobs_ready, 0);
    // Not before its time.
    assert!(
        store
            .claim("w", LEASE, T0 + 29_999)
            .await
            .expect("claim")
            .is_none()
    );
    let again = store
        .claim("w", LEASE, T0 + 30_000)
        .await
        .expect("claim")
        .expect("due");
    assert_eq!(again.attempts, 2);
    // A permanent failure: an unsupported artifact.
    store
        .fail(
            again.id,
            again.lease_token.as_deref().expect("token"),
            "a Helm chart",
            true,
            T0 + 31_000,
        )
        .await
        .expect("fail");
    let failed = store.scan(t, job.id).await.expect("read").expect("job");
    assert_eq!(
        (failed.state, failed.error.as_deref()),
        (JobState::Failed, Some("a Helm chart"))
    );
    assert_eq!(failed.finished_at, Some(T0 + 31_000));
    let image = store
        .image(t, image.id)
        .await
        .expect("read")
        .expect("image");
    assert_eq!(image.health, ImageHealth::Unsupported);
    assert_eq!(store.queue_depth().await.expect("depth"), 0);

    // A failed rescan of an assessed image keeps its health, records the error.
    let r = report();
    let (_, done) = scan(store, t, "app", "sha256:bb", &r, T0).await;
    store
        .enqueue(new_job(t, "app", "sha256:bb", None, T0 + 1))
        .await
        .expect("enqueue");
    let job = store
        .claim("w", LEASE, T0 + 1)
        .await
        .expect("claim")
        .expect("job");
    let image = store
        .image(t, done.image_id)
        .await
        .expect("read")
        .expect("image");
    assert_eq!(
        image.health,
        ImageHealth::Unhealthy,
        "a rescan does not hide the health"
    );
    store
        .fail(
            job.id,
            job.lease_token.as_deref().expect("token"),
            "manifest unknown",
            false,
            T0 + 2,
        )
        .await
        .expect("fail");
    let image = store
        .image(t, done.image_id)
        .await
        .expect("read")
        .expect("image");
    assert_eq!(image.health, ImageHealth::Unhealthy);
    assert_eq!(image.last_error.as_deref(), Some("manifest unknown"));
    let stats = store.stats(T0).await.expect("stats");
    assert_eq!(stats.jobs["failed"], 2);
    assert_eq!(stats.jobs["done"], 1);
    assert_eq!(stats.images["unhealthy"], 1);
    assert_eq!(stats.images["unsupported"], 1);
}

async fn assessment_rows(kind: StoreKind) {
    let Some(env) = Env::new(kind).await else {
        return;
    };
    let store = &env.store;
    let [t] = tenants(store, &[("a", "", false)]).await[..] else {
        unreachable!()
    };
    let r = report();
    let (job, done) = scan(store, t, "app", "sha256:aa", &r, T0).await;
    assert_eq!(done.previous_health, None);
    assert_eq!(done.health, ImageHealth::Unhealthy);
    // A first assessment: every critical and high finding is new (what the notification
    // of a new unhealthy image lists), once per (id, package).
    let mut problems: Vec<(String, String)> = r["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["severity"] == "critical" || f["severity"] == "high")
        .map(|f| {
            (
                f["id"].as_str().expect("id").to_string(),
                f["package"].as_str().expect("package").to_string(),
            )
        })
        .collect();
    problems.sort();
    problems.dedup();
    let mut got: Vec<(String, String)> = done
        .new_problem_findings
        .iter()
        .map(|f| (f.id.clone(), f.package.clone()))
        .collect();
    got.sort();
    assert_eq!(got, problems);
    let image = store
        .image(t, done.image_id)
        .await
        .expect("read")
        .expect("image");
    assert_eq!(image.counts.critical as i64, count_severity(&r, "critical"));
    assert_eq!(image.counts.high as i64, count_severity(&r, "high"));
    assert_eq!(image.counts.medium as i64, count_severity(&r, "medium"));
    assert_eq!(image.counts.low as i64, count_severity(&r, "low"));
    assert_eq!(
        image.packages,
        r["packages"].as_array().expect("packages").len() as i64
    );
    assert_eq!(image.os_id.as_deref(), r["os"]["id"].as_str());
    assert_eq!(image.os_version.as_deref(), r["os"]["version_id"].as_str());
    assert_eq!(image.os_name.as_deref(), r["os"]["name"].as_str());
    // `date -u -d 2032-05-31 +%s` is 1969574400 (the fixture's end of life).
    assert_eq!(r["os"]["eol"]["date"], "2032-05-31");
    assert_eq!(image.os_eol, Some(1_969_574_400_000));
    assert_eq!(image.platform.as_deref(), Some("linux/amd64"));
    assert_eq!(image.scanned_at, Some(T0));
    assert_eq!(image.tags, vec!["latest".to_string()]);
    assert_eq!(
        store
            .scan(t, job)
            .await
            .expect("read")
            .expect("job")
            .image_id,
        Some(image.id)
    );
    let stored = store
        .image_report(t, image.id)
        .await
        .expect("read")
        .expect("report");
    assert_eq!(serde_json::from_str::<Json>(&stored).expect("json"), r);

    let all_findings = store
        .findings(
            t,
            &FindingFilter {
                image_id: Some(image.id),
                ..Default::default()
            },
            &all(),
        )
        .await
        .expect("findings");
    assert_eq!(all_findings.items.len(), findings(&r).len());
    // Worst first.
    let ranks: Vec<i64> = all_findings
        .items
        .iter()
        .map(|f| f.severity.rank())
        .collect();
    assert!(ranks.windows(2).all(|w| w[0] >= w[1]));
    let want: BTreeSet<(String, String)> = findings(&r)
        .iter()
        .map(|f| {
            (
                f["id"].as_str().expect("id").to_string(),
                f["package"].as_str().expect("pkg").to_string(),
            )
        })
        .collect();
    let got: BTreeSet<(String, String)> = all_findings
        .items
        .iter()
        .map(|f| (f.vuln_id.clone(), f.package.clone()))
        .collect();
    assert_eq!(got, want);
    let first = &findings(&r)[0];
    let stored_first = all_findings
        .items
        .iter()
        .find(|f| f.vuln_id == first["id"] && f.package == first["package"])
        .expect("first finding stored");
    assert_eq!(
        stored_first.fixed_version.as_deref(),
        first["fixed_version"].as_str()
    );
    assert_eq!(stored_first.title, first["title"]);
    assert_eq!(json!(stored_first.aliases), first["aliases"]);
    assert_eq!(stored_first.first_seen_at, T0);

    let packages = store.packages(t, image.id, &all()).await.expect("packages");
    let want: BTreeSet<String> = r["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| p["purl"].as_str().expect("purl").to_string())
        .collect();
    let got: BTreeSet<String> = packages.items.iter().map(|p| p.purl.clone()).collect();
    assert_eq!(got, want);
    assert_eq!(
        count(store, "SELECT COUNT(*) FROM recommendations", &[]).await,
        r["recommendations"].as_array().expect("recs").len() as i64
    );
    // The query views see the rows.
    assert_eq!(
        count(
            store,
            "SELECT COUNT(*) FROM query_findings WHERE tenant_id = $1 AND \"Severity\" = $2",
            &[Value::Int(t.0), Value::Text("critical".into())]
        )
        .await,
        count_severity(&r, "critical")
    );
    let summary = store.tenant_summary(t).await.expect("summary");
    assert_eq!(summary.images["unhealthy"], 1);
    assert_eq!(summary.findings["high"], count_severity(&r, "high"));
    assert_eq!(summary.jobs["done"], 1);

    // Rescan material.
    let reports = store.stored_reports(0, 10).await.expect("stored");
    assert_eq!(reports.len(), 1);
    assert_eq!((reports[0].image_id, reports[0].tenant_id), (image.id, t));
    assert!(
        store
            .stored_reports(image.id, 10)
            .await
            .expect("stored")
            .is_empty()
    );
    // A report without an assessment is refused before anything is written.
    let mut unassessed = r.clone();
    unassessed["health"] = Json::Null;
    assert!(matches!(
        store
            .update_assessment(image.id, &typed(&unassessed), T0)
            .await,
        Err(Error::Report(_))
    ));
    assert!(matches!(
        store.update_assessment(999_999, &typed(&r), T0).await,
        Err(Error::NotFound(_))
    ));
}

async fn first_seen_and_new_findings(kind: StoreKind) {
    let Some(env) = Env::new(kind).await else {
        return;
    };
    let store = &env.store;
    let [t] = tenants(store, &[("a", "", true)]).await[..] else {
        unreachable!()
    };
    let r = report();
    let (_, first) = scan(store, t, "app", "sha256:aa", &r, T0).await;
    let image = first.image_id;
    // The same report again, later: nothing new, first_seen kept.
    let again = store
        .update_assessment(image, &typed(&r), T0 + 1000)
        .await
        .expect("rescan");
    assert_eq!(again.previous_health, Some(ImageHealth::Unhealthy));
    assert!(again.new_problem_findings.is_empty());
    assert!(!again.health_event && !again.notified);
    // Plus one new critical finding.
    let more = with_extra_finding(&r, "CVE-2099-0001", "critical");
    let third = store
        .update_assessment(image, &typed(&more), T0 + 2000)
        .await
        .expect("rescan");
    let package = findings(&r)[0]["package"]
        .as_str()
        .expect("package")
        .to_string();
    assert_eq!(third.new_problem_findings.len(), 1);
    assert_eq!(third.new_problem_findings[0].id, "CVE-2099-0001");
    assert_eq!(third.new_problem_findings[0].package, package);
    assert_eq!(third.new_problem_findings[0].severity, Severity::Critical);
    assert!(third.health_event && third.notified);
    let list = store
        .findings(
            t,
            &FindingFilter {
                image_id: Some(image),
                ..Default::default()
            },
            &all(),
        )
        .await
        .expect("findings");
    assert_eq!(list.items.len(), findings(&r).len() + 1);
    for f in &list.items {
        let want = if f.vuln_id == "CVE-2099-0001" {
            T0 + 2000
        } else {
            T0
        };
        assert_eq!(f.first_seen_at, want, "{} {}", f.vuln_id, f.package);
    }
    let events = store
        .health_events(t, Some(image), &all())
        .await
        .expect("events");
    assert_eq!(events.items.len(), 2, "first scan and the new critical");
    assert_eq!(events.items[0].new_findings, third.new_problem_findings);
    assert_eq!(events.items[0].reason, "rescan");
    assert_eq!(
        (events.items[1].from_health, events.items[1].to_health),
        (None, ImageHealth::Unhealthy)
    );
    assert_eq!(events.items[1].reason, "scan");
    let deliveries = store.deliveries(t, &all()).await.expect("deliveries");
    assert_eq!(deliveries.items.len(), 2);
    let body: Json = serde_json::from_str(&deliveries.items[0].event).expect("event json");
    assert_eq!(body["event"], "image.new_findings");
    assert_eq!(body["new_findings"][0]["id"], "CVE-2099-0001");
    assert_eq!(body["image"]["repository"], "app");
    assert_eq!(body["health"]["from"], "unhealthy");
    assert_eq!(body["reason"], "rescan");
    assert_eq!(body["at"], "2023-11-14T22:13:22.000Z");
    let body: Json = serde_json::from_str(&deliveries.items[1].event).expect("event json");
    assert_eq!(body["event"], "image.unhealthy");
    assert_eq!(body["health"]["from"], Json::Null);
    assert_eq!(body["summary"]["critical"], count_severity(&r, "critical"));
    assert_eq!(body["tenant"], "a");
}

async fn events_and_notifications_only_for_problems(kind: StoreKind) {
    let Some(env) = Env::new(kind).await else {
        return;
    };
    let store = &env.store;
    let [notify, quiet] = tenants(store, &[("a", "a", true), ("b", "b", false)]).await[..] else {
        unreachable!()
    };
    let r = report();
    let ok = healthy(&r);
    // A healthy first scan: an event (pending → healthy is a change), no notification.
    let (_, c) = scan(store, notify, "a/app", "sha256:aa", &ok, T0).await;
    assert_eq!((c.previous_health, c.health), (None, ImageHealth::Healthy));
    assert!(c.health_event && !c.notified);
    let image = c.image_id;
    // A new medium finding: not a problem.
    let medium = with_extra_finding(&ok, "CVE-2099-0002", "medium");
    let c = store
        .update_assessment(image, &typed(&medium), T0 + 1)
        .await
        .expect("rescan");
    assert!(!c.health_event && !c.notified && c.new_problem_findings.is_empty());
    // Becomes unhealthy: event and notification.
    let c = store
        .update_assessment(image, &typed(&r), T0 + 2)
        .await
        .expect("rescan");
    assert_eq!(
        (c.previous_health, c.health),
        (Some(ImageHealth::Healthy), ImageHealth::Unhealthy)
    );
    assert!(c.health_event && c.notified);
    // Stays unhealthy, nothing new: nothing.
    let c = store
        .update_assessment(image, &typed(&r), T0 + 3)
        .await
        .expect("rescan");
    assert!(!c.health_event && !c.notified);
    // Healthy again: an event, but good news is not notified.
    let c = store
        .update_assessment(image, &typed(&ok), T0 + 4)
        .await
        .expect("rescan");
    assert_eq!(
        (c.previous_health, c.health),
        (Some(ImageHealth::Unhealthy), ImageHealth::Healthy)
    );
    assert!(c.health_event && !c.notified);
    assert_eq!(
        store
            .health_events(notify, None, &all())
            .await
            .expect("events")
            .items
            .len(),
        3
    );
    assert_eq!(
        store
            .deliveries(notify, &all())
            .await
            .expect("deliveries")
            .items
            .len(),
        1
    );
    // A tenant without a notification target: events, no deliveries.
    let (_, c) = scan(store, quiet, "b/app", "sha256:bb", &r, T0).await;
    assert!(c.health_event && !c.notified);
    assert_eq!(
        count(store, "SELECT COUNT(*) FROM deliveries", &[]).await,
        1
    );
}

/// The report with health `unknown`: nothing assessed reaches the threshold, but part of
/// the image could not be assessed (what `bulkhead scan` says of a release no feed covers).
fn unknown(r: &Json) -> Json {
    let mut r = healthy(r);
    r["health"] = json!("unknown");
    r
}

async fn an_unassessed_image_is_unknown_and_notified(kind: StoreKind) {
    let Some(env) = Env::new(kind).await else {
        return;
    };
    let store = &env.store;
    let [t] = tenants(store, &[("a", "a", true)]).await[..] else {
        unreachable!()
    };
    let r = report();
    // A first scan that could not assess the image: a problem, notified as such.
    let (_, c) = scan(store, t, "a/app", "sha256:aa", &unknown(&r), T0).await;
    assert_eq!((c.previous_health, c.health), (None, ImageHealth::Unknown));
    assert!(c.health_event && c.notified);
    let image = c.image_id;
    // It stays unknown: nothing new.
    let c = store
        .update_assessment(image, &typed(&unknown(&r)), T0 + 1)
        .await
        .expect("rescan");
    assert!(!c.health_event && !c.notified);
    // Assessed and clean: good news is not notified.
    let c = store
        .update_assessment(image, &typed(&healthy(&r)), T0 + 2)
        .await
        .expect("rescan");
    assert_eq!(c.health, ImageHealth::Healthy);
    assert!(c.health_event && !c.notified);
    // Healthy → unknown (new data no longer covers it): notified again.
    let c = store
        .update_assessment(image, &typed(&unknown(&r)), T0 + 3)
        .await
        .expect("rescan");
    assert_eq!(
        (c.previous_health, c.health),
        (Some(ImageHealth::Healthy), ImageHealth::Unknown)
    );
    assert!(c.health_event && c.notified);
    let events: Vec<String> = store
        .deliveries(t, &all())
        .await
        .expect("deliveries")
        .items
        .iter()
        .map(|d| {
            let body: Json = serde_json::from_str(&d.event).expect("event json");
            assert_eq!(body["health"]["to"], "unknown", "{body}");
            body["event"].as_str().expect("event").to_string()
        })
        .collect();
    assert_eq!(events, ["image.unknown", "image.unknown"]);
    // The image's health and the health events say `unknown`, and it can be listed by it.
    let unknown_images = store
        .images(
            t,
            &bulkhead_store::ImageFilter {
                health: Some(ImageHealth::Unknown),
                ..Default::default()
            },
            &all(),
        )
        .await
        .expect("images");
    assert_eq!(unknown_images.items.len(), 1);
    assert_eq!(unknown_images.items[0].health, ImageHealth::Unknown);
    let mut to: Vec<ImageHealth> = store
        .health_events(t, None, &all())
        .await
        .expect("events")
        .items
        .iter()
        .map(|e| e.to_health)
        .collect();
    to.sort();
    assert_eq!(
        to,
        [
            ImageHealth::Healthy,
            ImageHealth::Unknown,
            ImageHealth::Unknown
        ]
    );
}

async fn deliveries(kind: StoreKind) {
    let Some(env) = Env::new(kind).await else {
        return;
    };
    let store = &env.store;
    let [t] = tenants(store, &[("a", "", true)]).await[..] else {
        unreachable!()
    };
    let (_, c) = scan(store, t, "app", "sha256:aa", &report(), T0).await;
    assert!(c.notified);
    let lease = Duration::from_secs(30);
    let d = store
        .claim_delivery(T0, lease)
        .await
        .expect("claim")
        .expect("a delivery");
    assert_eq!(d.tenant_id, t);
    assert_eq!(d.url, "http://127.0.0.1:9/a");
    assert_eq!(d.secret.as_deref(), Some("secret-a"));
    assert_eq!(d.attempts, 1);
    // Leased: not handed out twice.
    assert!(
        store
            .claim_delivery(T0 + 1, lease)
            .await
            .expect("claim")
            .is_none()
    );
    store
        .delivery_retry(d.id, Some(502), "bad gateway", T0 + 5000)
        .await
        .expect("retry");
    assert!(
        store
            .claim_delivery(T0 + 4999, lease)
            .await
            .expect("claim")
            .is_none()
    );
    let d2 = store
        .claim_delivery(T0 + 5000, lease)
        .await
        .expect("claim")
        .expect("due again");
    assert_eq!((d2.id, d2.attempts), (d.id, 2));
    store
        .delivery_done(d.id, 204, T0 + 5001)
        .await
        .expect("done");
    assert!(
        store
            .claim_delivery(T0 + 100_000, lease)
            .await
            .expect("claim")
            .is_none()
    );
    let list = store.deliveries(t, &all()).await.expect("list");
    let info = &list.items[0];
    assert_eq!(info.state, bulkhead_store::DeliveryState::Delivered);
    assert_eq!(
        (info.last_status, info.delivered_at, info.attempts),
        (Some(204), Some(T0 + 5001), 2)
    );
    // A sender that died: the delivery comes back after its lease; then it is given up.
    let (_, c) = scan(store, t, "app", "sha256:bb", &report(), T0).await;
    assert!(c.notified);
    let d = store
        .claim_delivery(T0, lease)
        .await
        .expect("claim")
        .expect("delivery");
    let again = store
        .claim_delivery(T0 + 30_000, lease)
        .await
        .expect("claim")
        .expect("after the lease");
    assert_eq!((again.id, again.attempts), (d.id, 2));
    store
        .delivery_failed(d.id, None, "connection refused")
        .await
        .expect("failed");
    let stats = store.stats(T0).await.expect("stats");
    assert_eq!(
        (
            stats.deliveries["delivered"],
            stats.deliveries["failed"],
            stats.deliveries["pending"]
        ),
        (1, 1, 0)
    );
}

async fn tenant_isolation(kind: StoreKind) {
    let Some(env) = Env::new(kind).await else {
        return;
    };
    let store = &env.store;
    let [a, b] = tenants(store, &[("a", "team-a", true), ("b", "team-b", true)]).await[..] else {
        unreachable!()
    };
    let r = report();
    // A has three images (so that its listings have several pages), B one.
    let mut a_images = Vec::new();
    let mut a_jobs = Vec::new();
    for i in 0..3i64 {
        let (job, c) = scan(store, a, "team-a/app", &format!("sha256:a{i}"), &r, T0 + i).await;
        a_images.push(c.image_id);
        a_jobs.push(job);
    }
    // B's one finding, a medium one: its lists are not empty, and hold only its own.
    let b_report = with_extra_finding(&healthy(&r), "CVE-2099-0003", "medium");
    let (b_job, b_done) = scan(store, b, "team-b/app", "sha256:b0", &b_report, T0).await;
    let b_image = b_done.image_id;
    let a_token = store
        .create_token("a", Role::Admin, "ci", T0)
        .await
        .expect("token");
    let a_own = store
        .add_ownership(a, "main", "shared/a", by(a_token.id, T0), 100)
        .await
        .expect("ownership");

    // Lists hold only B's rows.
    let images = store
        .images(b, &ImageFilter::default(), &all())
        .await
        .expect("images");
    assert_eq!(
        images.items.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![b_image]
    );
    let unhealthy = ImageFilter {
        health: Some(ImageHealth::Unhealthy),
        ..Default::default()
    };
    assert!(
        store
            .images(b, &unhealthy, &all())
            .await
            .expect("images")
            .items
            .is_empty()
    );
    let b_findings = store
        .findings(b, &FindingFilter::default(), &all())
        .await
        .expect("findings");
    assert_eq!(
        b_findings
            .items
            .iter()
            .map(|f| (f.image_id, f.vuln_id.as_str()))
            .collect::<Vec<_>>(),
        [(b_image, "CVE-2099-0003")]
    );
    let b_packages = store.packages(b, b_image, &all()).await.expect("packages");
    assert!(!b_packages.items.is_empty() && b_packages.items.iter().all(|p| p.image_id == b_image));
    assert!(
        store
            .recommendations(b, &all())
            .await
            .expect("recs")
            .items
            .is_empty()
    );
    let scans = store
        .scans(b, &ScanFilter::default(), &all())
        .await
        .expect("scans");
    assert_eq!(
        scans.items.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![b_job]
    );
    let events = store.health_events(b, None, &all()).await.expect("events");
    assert!(!events.items.is_empty() && events.items.iter().all(|e| e.image_id == b_image));
    assert!(
        store
            .deliveries(b, &all())
            .await
            .expect("deliveries")
            .items
            .is_empty()
    );
    assert!(store.tokens(b).await.expect("tokens").is_empty());
    assert!(
        store
            .ownership(b)
            .await
            .expect("ownership")
            .iter()
            .all(|o| o.prefix == "team-b")
    );
    let summary = store.tenant_summary(b).await.expect("summary");
    assert_eq!(summary.images["unhealthy"], 0);
    assert_eq!(summary.images["healthy"], 1);
    assert_eq!(summary.findings.values().sum::<i64>(), 1);
    assert_eq!(summary.jobs["done"], 1);

    // Lookups by A's ids are indistinguishable from ids that do not exist.
    for &id in &a_images {
        assert!(store.image(b, id).await.expect("image").is_none());
        assert!(store.image_report(b, id).await.expect("report").is_none());
        let f = FindingFilter {
            image_id: Some(id),
            ..Default::default()
        };
        assert!(
            store
                .findings(b, &f, &all())
                .await
                .expect("findings")
                .items
                .is_empty()
        );
        assert!(
            store
                .packages(b, id, &all())
                .await
                .expect("packages")
                .items
                .is_empty()
        );
        assert!(
            store
                .health_events(b, Some(id), &all())
                .await
                .expect("events")
                .items
                .is_empty()
        );
        let s = ScanFilter {
            image_id: Some(id),
            ..Default::default()
        };
        assert!(
            store
                .scans(b, &s, &all())
                .await
                .expect("scans")
                .items
                .is_empty()
        );
    }
    for &job in &a_jobs {
        assert!(store.scan(b, job).await.expect("scan").is_none());
    }
    assert!(
        !store
            .revoke_token(Some(b), a_token.id, T0)
            .await
            .expect("revoke")
    );
    assert!(
        !store
            .remove_ownership(b, a_own.id, by(a_token.id, T0))
            .await
            .expect("remove")
    );
    assert!(
        store
            .authenticate(&a_token.secret, T0)
            .await
            .expect("auth")
            .is_some(),
        "A's token survived B"
    );
    // A sees its own, as a control.
    assert!(store.image(a, a_images[0]).await.expect("image").is_some());
    assert!(store.scan(a, a_jobs[0]).await.expect("scan").is_some());

    // A's cursors, handed to B, give B nothing.
    let one = Page {
        limit: Some(1),
        cursor: None,
    };
    let next = |c: Option<String>| Page {
        limit: Some(1),
        cursor: Some(c.expect("A has a second page")),
    };
    let p = store
        .images(a, &ImageFilter::default(), &one)
        .await
        .expect("images");
    assert!(
        store
            .images(b, &ImageFilter::default(), &next(p.next_cursor))
            .await
            .expect("images")
            .items
            .is_empty()
    );
    let p = store
        .findings(a, &FindingFilter::default(), &one)
        .await
        .expect("findings");
    assert!(
        store
            .findings(b, &FindingFilter::default(), &next(p.next_cursor))
            .await
            .expect("findings")
            .items
            .is_empty()
    );
    let p = store
        .packages(a, a_images[0], &one)
        .await
        .expect("packages");
    assert!(
        store
            .packages(b, a_images[0], &next(p.next_cursor.clone()))
            .await
            .expect("packages")
            .items
            .is_empty()
    );
    assert!(
        store
            .packages(b, b_image, &next(p.next_cursor))
            .await
            .expect("packages")
            .items
            .is_empty()
    );
    let p = store.recommendations(a, &one).await.expect("recs");
    assert!(
        store
            .recommendations(b, &next(p.next_cursor))
            .await
            .expect("recs")
            .items
            .is_empty()
    );
    let p = store
        .scans(a, &ScanFilter::default(), &one)
        .await
        .expect("scans");
    assert!(
        store
            .scans(b, &ScanFilter::default(), &next(p.next_cursor))
            .await
            .expect("scans")
            .items
            .is_empty()
    );
    let p = store.health_events(a, None, &one).await.expect("events");
    assert!(
        store
            .health_events(b, None, &next(p.next_cursor))
            .await
            .expect("events")
            .items
            .is_empty()
    );
    let p = store.deliveries(a, &one).await.expect("deliveries");
    assert!(
        store
            .deliveries(b, &next(p.next_cursor))
            .await
            .expect("deliveries")
            .items
            .is_empty()
    );
    // A forged cursor is an error, not a position.
    let forged = Page {
        limit: None,
        cursor: Some("zz".into()),
    };
    assert!(matches!(
        store.images(b, &ImageFilter::default(), &forged).await,
        Err(Error::BadCursor)
    ));
}

async fn pagination_and_filters(kind: StoreKind) {
    let Some(env) = Env::new(kind).await else {
        return;
    };
    let store = &env.store;
    let [t] = tenants(store, &[("a", "", false)]).await[..] else {
        unreachable!()
    };
    let r = report();
    for (i, (repo, rep)) in [
        ("team/web", &r),
        ("team/api", &r),
        ("other/db", &healthy(&r)),
    ]
    .into_iter()
    .enumerate()
    {
        scan(store, t, repo, &format!("sha256:{i}"), rep, T0).await;
    }
    store
        .enqueue(new_job(t, "team/web", "sha256:0", Some("v2"), T0))
        .await
        .expect("tag");

    // Pages of 2: every image exactly once, newest first.
    let mut seen = Vec::new();
    let mut page = Page {
        limit: Some(2),
        cursor: None,
    };
    loop {
        let p = store
            .images(t, &ImageFilter::default(), &page)
            .await
            .expect("images");
        assert!(p.items.len() <= 2);
        seen.extend(p.items.iter().map(|i| i.id));
        match p.next_cursor {
            Some(c) => page.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 3);
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "{seen:?}");
    let ids = |p: bulkhead_store::PageOf<bulkhead_store::Image>| {
        p.items
            .into_iter()
            .map(|i| i.repository)
            .collect::<Vec<_>>()
    };
    let f = |filter: ImageFilter| async move {
        ids(store.images(t, &filter, &all()).await.expect("images"))
    };
    assert_eq!(
        f(ImageFilter {
            repository_prefix: Some("team/".into()),
            ..Default::default()
        })
        .await,
        ["team/api", "team/web"]
    );
    assert_eq!(
        f(ImageFilter {
            repository: Some("other/db".into()),
            ..Default::default()
        })
        .await,
        ["other/db"]
    );
    assert_eq!(
        f(ImageFilter {
            health: Some(ImageHealth::Healthy),
            ..Default::default()
        })
        .await,
        ["other/db"]
    );
    assert_eq!(
        f(ImageFilter {
            min_severity: Some(Severity::Critical),
            ..Default::default()
        })
        .await,
        ["team/api", "team/web"]
    );
    assert_eq!(
        f(ImageFilter {
            tag: Some("v2".into()),
            ..Default::default()
        })
        .await,
        ["team/web"]
    );
    assert_eq!(
        f(ImageFilter {
            tag: Some("v".into()),
            ..Default::default()
        })
        .await,
        Vec::<String>::new()
    );
    assert_eq!(
        f(ImageFilter {
            registry: Some("elsewhere".into()),
            ..Default::default()
        })
        .await,
        Vec::<String>::new()
    );

    // Findings: keyset pages (severity, id) cover the list exactly once, worst first.
    let mut seen = Vec::new();
    let mut page = Page {
        limit: Some(7),
        cursor: None,
    };
    loop {
        let p = store
            .findings(t, &FindingFilter::default(), &page)
            .await
            .expect("findings");
        seen.extend(p.items.iter().map(|f| (f.severity.rank(), f.id)));
        match p.next_cursor {
            Some(c) => page.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 2 * findings(&r).len());
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), seen.len());
    assert!(seen.windows(2).all(|w| w[0].0 >= w[1].0));
    let n = |filter: FindingFilter| async move {
        store
            .findings(t, &filter, &all())
            .await
            .expect("findings")
            .items
    };
    let crit = n(FindingFilter {
        min_severity: Some(Severity::Critical),
        ..Default::default()
    })
    .await;
    assert_eq!(crit.len() as i64, 2 * count_severity(&r, "critical"));
    let high = n(FindingFilter {
        min_severity: Some(Severity::High),
        ..Default::default()
    })
    .await;
    assert_eq!(
        high.len() as i64,
        2 * (count_severity(&r, "critical") + count_severity(&r, "high"))
    );
    let fixable = findings(&r)
        .iter()
        .filter(|f| !f["fixed_version"].is_null())
        .count();
    assert_eq!(
        n(FindingFilter {
            fixable: Some(true),
            ..Default::default()
        })
        .await
        .len(),
        2 * fixable
    );
    assert_eq!(
        n(FindingFilter {
            fixable: Some(false),
            ..Default::default()
        })
        .await
        .len(),
        2 * (findings(&r).len() - fixable)
    );
    let first = &findings(&r)[0];
    let pkg = first["package"].as_str().expect("package");
    let by_pkg = n(FindingFilter {
        package: Some(pkg.into()),
        ..Default::default()
    })
    .await;
    assert_eq!(
        by_pkg.len(),
        2 * findings(&r).iter().filter(|f| f["package"] == pkg).count()
    );
    // By an alias (the advisory id of a CVE finding).
    let alias = first["aliases"][0]
        .as_str()
        .expect("the first finding has an alias");
    let want = findings(&r)
        .iter()
        .filter(|f| {
            f["id"] == alias
                || f["aliases"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x == alias))
        })
        .count();
    assert!(want > 0);
    assert_eq!(
        n(FindingFilter {
            vuln_id: Some(alias.into()),
            ..Default::default()
        })
        .await
        .len(),
        2 * want
    );

    // Recommendations: grouped by (package, fixed version) over the two unhealthy images.
    let recs = store.recommendations(t, &all()).await.expect("recs");
    let want: BTreeSet<(String, String)> = r["recommendations"]
        .as_array()
        .expect("recs")
        .iter()
        .map(|x| {
            (
                x["package"].as_str().expect("p").to_string(),
                x["fixed_version"].as_str().expect("v").to_string(),
            )
        })
        .collect();
    let got: BTreeSet<(String, String)> = recs
        .items
        .iter()
        .map(|g| (g.package.clone(), g.fixed_version.clone()))
        .collect();
    assert_eq!(got, want);
    for g in &recs.items {
        assert_eq!(g.image_count, 2);
        let repos: BTreeSet<&str> = g.images.iter().map(|i| i.repository.as_str()).collect();
        assert_eq!(repos, BTreeSet::from(["team/api", "team/web"]));
        let src = r["recommendations"]
            .as_array()
            .expect("recs")
            .iter()
            .find(|x| {
                x["package"] == g.package.as_str() && x["fixed_version"] == g.fixed_version.as_str()
            })
            .expect("source recommendation");
        let fixes: BTreeSet<String> = src["fixes"]
            .as_array()
            .expect("fixes")
            .iter()
            .map(|f| f.as_str().expect("id").to_string())
            .collect();
        assert_eq!(g.fixes.iter().cloned().collect::<BTreeSet<_>>(), fixes);
        assert_eq!(json!(g.severity), src["severity"]);
    }
    let sev: Vec<i64> = recs.items.iter().map(|g| g.severity.rank()).collect();
    assert!(sev.windows(2).all(|w| w[0] >= w[1]));
    // Offset pages of recommendations agree with the whole list.
    let mut paged = Vec::new();
    let mut page = Page {
        limit: Some(4),
        cursor: None,
    };
    loop {
        let p = store.recommendations(t, &page).await.expect("recs");
        paged.extend(p.items.into_iter().map(|g| (g.package, g.fixed_version)));
        match p.next_cursor {
            Some(c) => page.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(
        paged,
        recs.items
            .iter()
            .map(|g| (g.package.clone(), g.fixed_version.clone()))
            .collect::<Vec<_>>()
    );
    // Limits are capped.
    let huge = Page {
        limit: Some(100_000),
        cursor: None,
    };
    assert!(
        store
            .findings(t, &FindingFilter::default(), &huge)
            .await
            .expect("findings")
            .items
            .len()
            <= 500
    );
    let scans = store
        .scans(
            t,
            &ScanFilter {
                state: Some(JobState::Queued),
                ..Default::default()
            },
            &all(),
        )
        .await
        .expect("scans");
    assert_eq!(scans.items.len(), 1);
    assert_eq!(scans.items[0].tag.as_deref(), Some("v2"));
}

/// Who changes ownership in these tests: token `token_id` at `at`.
fn by(token_id: i64, at: i64) -> OwnershipActor {
    OwnershipActor { token_id, at }
}

async fn tenants_and_ownership(kind: StoreKind) {
    let Some(env) = Env::new(kind).await else {
        return;
    };
    let store = &env.store;
    let spec = |name: &str, own: &[(&str, &str)]| TenantSpec {
        name: name.into(),
        ownership: own
            .iter()
            .map(|(r, p)| (r.to_string(), p.to_string()))
            .collect(),
        notify: None,
    };
    let specs = vec![
        spec("platform", &[("main", "library")]),
        spec("webteam", &[("main", "team/web/"), ("mirror", "web")]),
    ];
    store.sync_tenants(&specs, T0).await.expect("sync");
    store
        .sync_tenants(&specs, T0 + 1)
        .await
        .expect("sync again");
    let all_tenants = store.tenants().await.expect("tenants");
    assert_eq!(
        all_tenants
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        ["platform", "webteam"]
    );
    assert!(
        all_tenants.iter().all(|t| t.created_at == T0),
        "created once"
    );
    let platform = all_tenants[0].id;
    let web = all_tenants[1].id;
    let owner = |reg: &'static str, repo: &'static str| async move {
        store.owner_of(reg, repo).await.expect("owner")
    };
    assert_eq!(owner("main", "team/web").await, Some(web));
    assert_eq!(owner("main", "team/web/frontend").await, Some(web));
    assert_eq!(
        owner("main", "team/webby").await,
        None,
        "whole segments only"
    );
    assert_eq!(owner("main", "library/alpine").await, Some(platform));
    assert_eq!(owner("mirror", "web").await, Some(web));
    assert_eq!(owner("mirror", "other").await, None);
    assert_eq!(owner("unknown", "web").await, None);

    // API entries are recorded (who, when) and survive a sync.
    let added = store
        .add_ownership(web, "mirror", "/extra/", by(7, T0 + 5), 100)
        .await
        .expect("add");
    assert_eq!(
        (
            added.prefix.as_str(),
            added.origin.as_str(),
            added.created_at,
            added.created_by_token
        ),
        ("extra", "api", Some(T0 + 5), Some(7))
    );
    // Takeovers: the same prefix, one inside another tenant's, one holding it, the whole
    // registry. Each is refused without naming the owner or its prefix.
    for (registry, prefix, theirs) in [
        ("mirror", "web", None),
        ("mirror", "web/app", None),
        ("main", "team", Some("team/web")),
        ("main", "team/web/frontend", None),
        ("mirror", "", Some("\"web\"")),
    ] {
        let taken = store
            .add_ownership(platform, registry, prefix, by(8, T0 + 6), 100)
            .await;
        match &taken {
            Err(Error::Conflict(m)) => assert!(
                !m.contains("webteam") && theirs.is_none_or(|t| !m.contains(t)),
                "{m}"
            ),
            other => panic!("{registry}/{prefix}: expected a conflict, got {other:?}"),
        }
    }
    assert_eq!(owner("mirror", "web/app").await, Some(web), "still theirs");
    // The tenant's own duplicate is a conflict too; a sub-prefix of its own is fine.
    let again = store
        .add_ownership(web, "mirror", "extra", by(7, T0 + 7), 100)
        .await;
    assert!(matches!(again, Err(Error::Conflict(_))), "{again:?}");
    let sub = store
        .add_ownership(web, "mirror", "extra/sub", by(7, T0 + 7), 100)
        .await
        .expect("own sub-prefix");
    // The cap counts API entries (two now).
    let capped = store
        .add_ownership(web, "mirror", "more", by(7, T0 + 8), 2)
        .await;
    assert!(
        matches!(&capped, Err(Error::Conflict(m)) if m.contains("(2)")),
        "{capped:?}"
    );
    assert!(
        store
            .remove_ownership(web, sub.id, by(9, T0 + 9))
            .await
            .expect("remove")
    );
    let changes = store
        .ownership_changes(web, &Page::default())
        .await
        .expect("changes")
        .items;
    assert_eq!(
        changes
            .iter()
            .map(|c| (c.action.as_str(), c.prefix.as_str(), c.token_id, c.at))
            .collect::<Vec<_>>(),
        [
            ("remove", "extra/sub", Some(9), T0 + 9),
            ("add", "extra/sub", Some(7), T0 + 7),
            ("add", "extra", Some(7), T0 + 5),
        ],
        "newest first"
    );
    assert!(
        store
            .ownership_changes(platform, &Page::default())
            .await
            .expect("changes")
            .items
            .is_empty(),
        "refused claims change nothing"
    );

    store.sync_tenants(&specs, T0 + 2).await.expect("sync");
    assert_eq!(owner("mirror", "extra/x").await, Some(web));
    assert_eq!(store.ownership(web).await.expect("list").len(), 3);
    // Removing an entry from the configuration removes it from the store.
    store
        .sync_tenants(
            &[
                spec("platform", &[("main", "library")]),
                spec("webteam", &[("mirror", "web")]),
            ],
            T0 + 3,
        )
        .await
        .expect("sync");
    assert_eq!(owner("main", "team/web").await, None);
    // A configuration that overlaps another tenant's API entry is refused, and changes
    // nothing.
    let bad = store
        .sync_tenants(
            &[
                spec("platform", &[("main", "library"), ("mirror", "extra/x")]),
                spec("webteam", &[("mirror", "web")]),
            ],
            T0 + 4,
        )
        .await;
    assert!(
        matches!(&bad, Err(Error::Invalid(m)) if m.contains("webteam") && m.contains("API")),
        "{bad:?}"
    );
    assert_eq!(owner("mirror", "extra/x").await, Some(web));
    assert_eq!(owner("main", "library").await, Some(platform));
    assert!(
        store
            .remove_ownership(web, added.id, by(7, T0 + 10))
            .await
            .expect("remove")
    );
    assert_eq!(owner("mirror", "extra/x").await, None);
    // An ambiguous configuration is refused and changes nothing: the same prefix, or
    // nested prefixes of two tenants.
    for (x, y) in [("a", "a/"), ("a", "a/b"), ("", "b")] {
        let bad = store
            .sync_tenants(&[spec("x", &[("main", x)]), spec("y", &[("main", y)])], T0)
            .await;
        assert!(matches!(bad, Err(Error::Invalid(_))), "{x} {y}: {bad:?}");
    }
    assert_eq!(owner("mirror", "web").await, Some(web));
}

async fn tokens(kind: StoreKind) {
    let Some(env) = Env::new(kind).await else {
        return;
    };
    let store = &env.store;
    tenants(store, &[("a", "", false)]).await;
    let t = store
        .create_token("a", Role::Operator, "deploy bot", T0)
        .await
        .expect("create");
    assert!(t.secret.starts_with("bh_"));
    let p = store
        .authenticate(&t.secret, T0 + 10)
        .await
        .expect("auth")
        .expect("valid");
    assert_eq!(
        (p.tenant_name.as_str(), p.role, p.token_id),
        ("a", Role::Operator, t.id)
    );
    assert!(
        store
            .authenticate("bh_0000", T0)
            .await
            .expect("auth")
            .is_none()
    );
    assert!(
        store
            .authenticate(&format!("{}x", t.secret), T0)
            .await
            .expect("auth")
            .is_none()
    );
    let list = store.tokens(p.tenant_id).await.expect("tokens");
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].name.as_str(), list[0].last_used_at),
        ("deploy bot", Some(T0 + 10))
    );
    assert!(matches!(
        store.create_token("nobody", Role::Reader, "x", T0).await,
        Err(Error::NotFound(_))
    ));

    // The store holds the sha256, never the secret.
    let hash = hex::encode(Sha256::digest(t.secret.as_bytes()));
    let rows = store
        .query("SELECT * FROM tokens", &[], QueryLimits::default())
        .await
        .expect("tokens");
    let cells: Vec<String> = rows
        .rows
        .iter()
        .flatten()
        .map(|v| format!("{v:?}"))
        .collect();
    assert!(cells.iter().any(|c| c.contains(&hash)), "{cells:?}");
    assert!(
        !cells.iter().any(|c| c.contains(&t.secret[3..])),
        "{cells:?}"
    );
    if let Some(path) = env.sqlite_path() {
        let mut bytes = Vec::new();
        for suffix in ["", "-wal"] {
            let f = format!("{}{suffix}", path.display());
            bytes.extend(std::fs::read(&f).unwrap_or_default());
        }
        let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        assert!(
            has(hash.as_bytes()),
            "the grep itself works: the hash is in the files"
        );
        assert!(
            !has(&t.secret.as_bytes()[3..]),
            "the secret is in the SQLite files"
        );
    }

    assert!(
        store
            .revoke_token(None, t.id, T0 + 20)
            .await
            .expect("revoke")
    );
    assert!(
        !store
            .revoke_token(None, t.id, T0 + 21)
            .await
            .expect("revoke twice")
    );
    assert!(
        store
            .authenticate(&t.secret, T0 + 30)
            .await
            .expect("auth")
            .is_none()
    );
    assert_eq!(
        store.tokens(p.tenant_id).await.expect("tokens")[0].revoked_at,
        Some(T0 + 20)
    );
}

async fn query_limits(kind: StoreKind) {
    let Some(env) = Env::new(kind).await else {
        return;
    };
    let store = &env.store;
    let [t] = tenants(store, &[("a", "", false)]).await[..] else {
        unreachable!()
    };
    let r = report();
    scan(store, t, "app", "sha256:aa", &r, T0).await;
    scan(store, t, "app", "sha256:bb", &r, T0).await;
    let counting = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) ";

    // A statement with endless rows stops at the cap.
    let limits = QueryLimits {
        max_rows: 100,
        timeout: Duration::from_secs(20),
        ..QueryLimits::default()
    };
    let rows = store
        .query(&format!("{counting}SELECT x FROM c"), &[], limits)
        .await
        .expect("capped");
    assert!(rows.truncated);
    assert_eq!(rows.rows.len(), 100);
    assert_eq!(rows.rows[99], vec![Value::Int(100)]);
    assert_eq!(rows.columns, ["x"]);

    // One that never returns a row is interrupted at its deadline.
    let limits = QueryLimits {
        max_rows: 100,
        timeout: Duration::from_millis(300),
        ..QueryLimits::default()
    };
    let start = Instant::now();
    let endless = store
        .query(&format!("{counting}SELECT COUNT(*) FROM c"), &[], limits)
        .await;
    assert!(
        matches!(endless, Err(Error::Timeout(d)) if d == limits.timeout),
        "{endless:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    let msg = endless.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.contains("300ms"), "{msg}");
    // The connection is fine afterwards.
    assert_eq!(
        count(store, "SELECT COUNT(*) FROM query_images", &[]).await,
        2
    );

    // Waiting for a connection counts against the deadline. Every query connection is
    // taken by an endless statement (stopped after 3 s); a query with half a second
    // waits that long and is a timeout, where counting from its start would have run
    // it once a connection came free.
    let busy: Vec<_> = (0..bulkhead_store::QUERY_CONNECTIONS)
        .map(|_| {
            let s = store.clone();
            let sql = format!("{counting}SELECT COUNT(*) FROM c");
            tokio::spawn(async move {
                let limits = QueryLimits {
                    timeout: Duration::from_secs(3),
                    ..QueryLimits::default()
                };
                s.query(&sql, &[], limits).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let limits = QueryLimits {
        timeout: Duration::from_millis(500),
        ..QueryLimits::default()
    };
    let waited = store.query("SELECT 1", &[], limits).await;
    assert!(matches!(waited, Err(Error::Timeout(_))), "{waited:?}");
    for b in busy {
        let stopped = b.await.expect("task");
        assert!(matches!(stopped, Err(Error::Timeout(_))), "{stopped:?}");
    }
    // The deadline may have started before the call: time already spent elsewhere (the
    // request's wait in the service) is not given again.
    let late = QueryLimits {
        timeout: Duration::from_millis(200),
        since: Instant::now().checked_sub(Duration::from_secs(1)),
        ..QueryLimits::default()
    };
    let too_late = store.query("SELECT 1", &[], late).await;
    assert!(matches!(too_late, Err(Error::Timeout(_))), "{too_late:?}");

    // Parameters, aggregates (PostgreSQL's sum is NUMERIC), reals, nulls, text.
    let q = store
        .query(
            "SELECT SUM(\"Critical\") AS crit, MAX(\"ScannedAt\") AS at, COUNT(*) AS n \
             FROM query_images WHERE tenant_id = $1 AND \"Health\" = $2",
            &[Value::Int(t.0), Value::Text("unhealthy".into())],
            QueryLimits::default(),
        )
        .await
        .expect("aggregate");
    assert_eq!(q.columns, ["crit", "at", "n"]);
    assert_eq!(
        q.rows,
        vec![vec![
            Value::Int(2 * count_severity(&r, "critical")),
            Value::Int(T0),
            Value::Int(2)
        ]]
    );
    let q = store
        .query(
            "SELECT $1 + 1 AS n, 2.5 * $2 AS f, NULL AS z",
            &[Value::Int(41), Value::Real(2.0)],
            QueryLimits::default(),
        )
        .await
        .expect("params");
    assert_eq!(
        q.rows,
        vec![vec![Value::Int(42), Value::Real(5.0), Value::Null]]
    );
    // Writes are refused, and nothing was written.
    let del = store
        .query("DELETE FROM tenants", &[], QueryLimits::default())
        .await;
    assert!(matches!(del, Err(Error::Query(_))), "{del:?}");
    assert_eq!(store.tenants().await.expect("tenants").len(), 1);
    let attach = store
        .query("ATTACH DATABASE 'x.db' AS x", &[], QueryLimits::default())
        .await;
    assert!(matches!(attach, Err(Error::Query(_))), "{attach:?}");
    let pragma = store
        .query("PRAGMA table_info(tokens)", &[], QueryLimits::default())
        .await;
    assert!(matches!(pragma, Err(Error::Query(_))), "{pragma:?}");
    // A broken statement is the database's message.
    let bad = store
        .query("SELECT nope FROM query_images", &[], QueryLimits::default())
        .await;
    assert!(
        matches!(&bad, Err(Error::Query(m)) if m.contains("nope")),
        "{bad:?}"
    );
}

/// The service spawns store calls on tokio: every method's future must be `Send`, and the
/// store itself shareable. A compile-time check.
#[allow(dead_code)]
fn futures_are_send(store: Store, t: TenantId) {
    fn send<T: Send + 'static>(_: T) {}
    fn shared<T: Send + Sync + Clone + 'static>() {}
    shared::<Store>();
    let page = Page::default();
    let s = store.clone();
    send(async move { s.authenticate("x", 0).await });
    let s = store.clone();
    send(async move { s.query("SELECT 1", &[], QueryLimits::default()).await });
    let s = store.clone();
    let p = page.clone();
    send(async move { s.images(t, &ImageFilter::default(), &p).await });
    let s = store.clone();
    let p = page.clone();
    send(async move { s.findings(t, &FindingFilter::default(), &p).await });
    let s = store.clone();
    let p = page.clone();
    send(async move { s.recommendations(t, &p).await });
    let s = store.clone();
    let r = typed(&report());
    send(async move { s.update_assessment(1, &r, 0).await });
    let s = store.clone();
    send(async move { s.claim_delivery(0, LEASE).await });
    let s = store.clone();
    send(async move { s.fail(1, "t", "e", false, 0).await });
    let s = store.clone();
    send(async move { s.sync_tenants(&[], 0).await });
    send(async move { store.stats(0).await });
}

//! Hostile registries (issue 22; issue 12, items 5-7): a registry on loopback that
//! misbehaves on purpose (`bulkhead_test_artifacts::hostile_registry`, the attacker) against
//! the registry client every path uses (`bulkhead_scan::source::distribution`), the CLI and
//! a real `bulkhead serve`. Each attack must end in a clear error with bounded memory,
//! time and work, and credentials must never go where they do not belong.
//!
//! The time bounds asserted here are generous ("fails within 15 s, not hangs"); the limits
//! configured are a second or two, so that the tests are quick.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulkhead_scan::source::auth::{self, Credential};
use bulkhead_scan::source::{
    self, BlobSource, Image, RegistryLimits, ResolveOptions, Source, SourceError,
};
use bulkhead_test_artifacts::hostile_registry::{Behaviour, HostileRegistry, Recorded};
use bulkhead_test_artifacts::registry::{self, Auth, Options, Registry};
use bulkhead_test_artifacts::service::{ServiceHarness, ServiceOptions, free_port};
use bulkhead_test_artifacts::{http, require, require_tools};
use serde_json::json;
use tokio::io::AsyncReadExt;

use crate::harness::{bin, bulkhead, demo_archive, demo_db, push_archive, stderr};

/// 1.5 GB: the manifest of the original report.
const HUGE: u64 = 1_500_000_000;

fn opts(reg: &HostileRegistry) -> ResolveOptions {
    ResolveOptions {
        insecure_registries: vec![reg.addr().to_string()],
        // The indexes it serves list linux/amd64, whatever this machine is.
        platform: "linux/amd64".parse().expect("a platform"),
        ..Default::default()
    }
}

/// Short limits, so that the time attacks end quickly.
fn quick(reg: &HostileRegistry, limits: RegistryLimits) -> ResolveOptions {
    ResolveOptions {
        registry: limits,
        ..opts(reg)
    }
}

async fn resolve(
    reference: &str,
    opts: &ResolveOptions,
) -> Result<(Image, Arc<dyn BlobSource>), SourceError> {
    source::resolve(&Source::Registry(reference.to_string()), opts).await
}

async fn resolve_err(reference: &str, opts: &ResolveOptions) -> SourceError {
    match resolve(reference, opts).await {
        Ok((image, _)) => panic!("{reference} resolved: {image:?}"),
        Err(e) => e,
    }
}

/// The layer's bytes, or the error that ended the stream.
async fn read_layer(image: &Image, blobs: &Arc<dyn BlobSource>) -> std::io::Result<Vec<u8>> {
    let mut stream = blobs
        .open(&image.layers[0])
        .await
        .map_err(std::io::Error::other)?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await?;
    Ok(out)
}

fn count(requests: &[Recorded], path_part: &str) -> usize {
    requests
        .iter()
        .filter(|r| r.path.contains(path_part))
        .count()
}

/// Maximum RSS of a finished child, from `/usr/bin/time -v`'s report, in KiB.
fn max_rss_kib(time_report: &str) -> Option<u64> {
    time_report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .and_then(|v| v.trim().parse().ok())
}

// ---- (1) sizes, enforced as the bytes arrive ------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_manifest_fails_at_once_whether_announced_or_not() {
    let announced = HostileRegistry::start(Behaviour::HugeManifest {
        bytes: HUGE,
        announce: true,
    });
    let started = Instant::now();
    let e = resolve_err(&announced.reference(), &opts(&announced)).await;
    let took = started.elapsed();
    println!("1.5 GB manifest with Content-Length: failed after {took:?}: {e}");
    assert!(
        matches!(&e, SourceError::TooLarge { limit_name, limit, .. }
            if limit_name == "max_manifest_bytes" && *limit == 4 << 20),
        "{e}"
    );
    assert!(e.to_string().contains("max_manifest_bytes"), "{e}");
    assert!(took < Duration::from_secs(1), "took {took:?}");

    // Without a Content-Length the body is cut off at the limit.
    let unannounced = HostileRegistry::start(Behaviour::HugeManifest {
        bytes: HUGE,
        announce: false,
    });
    let started = Instant::now();
    let e = resolve_err(&unannounced.reference(), &opts(&unannounced)).await;
    let took = started.elapsed();
    println!("1.5 GB manifest without Content-Length: failed after {took:?}: {e}");
    assert!(
        matches!(&e, SourceError::TooLarge { limit_name, .. } if limit_name == "max_manifest_bytes"),
        "{e}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");

    // The limit is configurable, and the error names it.
    let e = resolve_err(
        &unannounced.reference(),
        &quick(
            &unannounced,
            RegistryLimits {
                max_manifest_bytes: 1000,
                ..Default::default()
            },
        ),
    )
    .await;
    assert!(
        matches!(&e, SourceError::TooLarge { limit: 1000, .. }),
        "{e}"
    );
}

/// The report's attack, on the real binary: `bulkhead scan` of a registry that answers
/// with a 1.5 GB manifest reached 3.2 GB RSS. Now it fails quickly in little memory.
#[test]
fn bulkhead_scan_of_a_huge_manifest_stays_small() {
    if !require(
        std::path::Path::new("/usr/bin/time").exists(),
        "/usr/bin/time (apt package time) measures the maximum RSS",
    ) {
        return;
    }
    let reg = HostileRegistry::start(Behaviour::HugeManifest {
        bytes: HUGE,
        announce: false,
    });
    let home = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new("/usr/bin/time");
    cmd.arg("-v").arg(bin());
    bulkhead_test_artifacts::hermetic(&mut cmd, home.path());
    let started = Instant::now();
    let out = cmd
        .args([
            "scan",
            &reg.reference(),
            "--insecure-registry",
            reg.addr(),
            "--no-cache",
        ])
        .output()
        .expect("run bulkhead under /usr/bin/time");
    let took = started.elapsed();
    let err = stderr(&out);
    let rss = max_rss_kib(&err).expect("/usr/bin/time -v reports the maximum RSS");
    println!(
        "bulkhead scan of a 1.5 GB manifest: exit {:?} after {took:?}, max RSS {} MiB",
        out.status.code(),
        rss / 1024
    );
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("max_manifest_bytes"), "{err}");
    assert!(rss < 150 * 1024, "max RSS {rss} KiB");
    let manifests = count(&reg.requests(), "/manifests/");
    assert_eq!(manifests, 1, "a size limit is not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_with_a_million_entries_is_refused_by_size_or_by_count() {
    let million = HostileRegistry::start(Behaviour::HugeIndex { entries: 1_000_000 });
    let e = resolve_err(&million.reference(), &opts(&million)).await;
    assert!(
        matches!(&e, SourceError::TooLarge { limit_name, .. } if limit_name == "max_manifest_bytes"),
        "{e}"
    );
    // Within the size limit, the number of entries is bounded too.
    let many = HostileRegistry::start(Behaviour::HugeIndex { entries: 5000 });
    let e = resolve_err(&many.reference(), &opts(&many)).await;
    assert!(
        matches!(&e, SourceError::TooLarge { .. }) && e.to_string().contains("5000 entries"),
        "{e}"
    );
    assert_eq!(count(&many.requests(), "/manifests/"), 1);
}

// ---- (2) time --------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_drips_fails_within_the_document_timeout() {
    let reg = HostileRegistry::start(Behaviour::DripManifest {
        every: Duration::from_millis(500),
    });
    let limits = RegistryLimits {
        document_timeout_ms: 2000,
        attempts: 2,
        ..Default::default()
    };
    let started = Instant::now();
    let e = resolve_err(&reg.reference(), &quick(&reg, limits)).await;
    let took = started.elapsed();
    println!("dripping manifest: failed after {took:?}: {e}");
    assert!(matches!(e, SourceError::Network { .. }), "{e}");
    assert!(e.to_string().contains("document_timeout_ms"), "{e}");
    assert!(e.to_string().contains("after 2 tries"), "{e}");
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert_eq!(count(&reg.requests(), "/manifests/"), 2, "bounded retries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_that_stalls_halfway_fails_within_the_idle_timeout() {
    let reg = HostileRegistry::start(Behaviour::StallBlob);
    let limits = RegistryLimits {
        idle_timeout_ms: 1000,
        ..Default::default()
    };
    let (image, blobs) = resolve(&reg.reference(), &quick(&reg, limits))
        .await
        .expect("the manifest and config are honest");
    let started = Instant::now();
    let e = read_layer(&image, &blobs).await.expect_err("stalls");
    let took = started.elapsed();
    println!("stalled blob: failed after {took:?}: {e}");
    assert!(e.to_string().contains("idle_timeout_ms"), "{e}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_bounded_in_number_and_in_time() {
    let reg = HostileRegistry::start(Behaviour::Unavailable);
    let limits = RegistryLimits {
        attempts: 3,
        ..Default::default()
    };
    let e = resolve_err(&reg.reference(), &quick(&reg, limits)).await;
    assert!(
        matches!(e, SourceError::Network { .. }) && e.to_string().contains("503"),
        "{e}"
    );
    assert_eq!(count(&reg.requests(), "/manifests/"), 3);

    let reg = HostileRegistry::start(Behaviour::Unavailable);
    let limits = RegistryLimits {
        attempts: 50,
        retry_budget_ms: 1000,
        ..Default::default()
    };
    let started = Instant::now();
    let e = resolve_err(&reg.reference(), &quick(&reg, limits)).await;
    let took = started.elapsed();
    let tries = count(&reg.requests(), "/manifests/");
    println!("503 forever with a 1 s budget: {tries} tries in {took:?}: {e}");
    assert!((2..50).contains(&tries), "{tries} tries");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

// ---- (3) lies --------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_content_length_that_disagrees_with_the_body_is_an_error() {
    let reg = HostileRegistry::start(Behaviour::ShortManifest);
    let e = resolve_err(
        &reg.reference(),
        &quick(
            &reg,
            RegistryLimits {
                attempts: 2,
                ..Default::default()
            },
        ),
    )
    .await;
    assert!(e.to_string().contains("Content-Length"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_announced_with_another_size_than_the_manifest_is_refused() {
    let reg = HostileRegistry::start(Behaviour::BlobSizeLie);
    let (image, blobs) = resolve(&reg.reference(), &opts(&reg))
        .await
        .expect("the manifest is honest");
    let e = read_layer(&image, &blobs).await.expect_err("refused");
    assert!(
        e.to_string().contains("announces") && e.to_string().contains("the manifest says"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_loop_is_an_error_after_bounded_work() {
    let reg = HostileRegistry::start(Behaviour::RedirectLoop);
    let e = resolve_err(&reg.reference(), &opts(&reg)).await;
    assert!(e.to_string().contains("redirect loop"), "{e}");
    let n = count(&reg.requests(), "/manifests/");
    assert!(n <= 3, "{n} manifest requests");
}

/// Registries redirect blobs to object storage: followed, but the registry's credentials
/// stay with the registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_another_host_carries_no_credentials() {
    let storage = HostileRegistry::start(Behaviour::Honest);
    let reg = HostileRegistry::start(Behaviour::RedirectBlobsTo {
        to: storage.addr().to_string(),
    });
    let options = ResolveOptions {
        credentials: Some(Credential::Basic {
            username: "scanner".into(),
            password: "s3cret".into(),
        }),
        ..opts(&reg)
    };
    let (image, blobs) = resolve(&reg.reference(), &options).await.expect("resolves");
    let layer = read_layer(&image, &blobs).await.expect("the layer arrives");
    assert_eq!(layer, reg.image().layer);
    let to_registry = reg.requests();
    assert!(
        to_registry
            .iter()
            .any(|r| r.authorization.as_deref() == Some(&http::basic_auth("scanner", "s3cret"))),
        "the registry itself got the credentials: {to_registry:?}"
    );
    let to_storage = storage.requests();
    assert_eq!(count(&to_storage, "/blobs/"), 1, "{to_storage:?}");
    assert!(
        to_storage.iter().all(|r| r.authorization.is_none()),
        "credentials followed the redirect: {to_storage:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_loop_between_registry_and_token_service_ends() {
    let reg = HostileRegistry::start(Behaviour::UnauthorizedLoop);
    let e = resolve_err(&reg.reference(), &opts(&reg)).await;
    assert!(
        matches!(e, SourceError::Unauthorized { .. }) && e.to_string().contains("401 loop"),
        "{e}"
    );
    let requests = reg.requests();
    assert_eq!(count(&requests, "/token"), 1, "{requests:?}");
    assert_eq!(count(&requests, "/manifests/"), 2, "{requests:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_that_references_itself_is_refused() {
    let reg = HostileRegistry::start(Behaviour::SelfReference);
    let e = resolve_err(&reg.reference(), &opts(&reg)).await;
    assert!(
        matches!(
            e,
            SourceError::DigestMismatch { .. } | SourceError::Invalid { .. }
        ),
        "{e}"
    );
    let n = count(&reg.requests(), "/manifests/");
    assert!(n <= 2, "{n} manifest requests");
}

// ---- (4) credentials: realms, token_hosts, anonymous means anonymous -------------------

/// Issue 12, item 5: a registry that names a token realm on another host (here another
/// port of the same address) does not get the credentials sent there, on the library path
/// and on the CLI's; listing the host in `token_hosts` allows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_go_only_to_an_allowed_token_realm() {
    let thief = HostileRegistry::start(Behaviour::Honest);
    let reg = HostileRegistry::start(Behaviour::RealmElsewhere {
        realm: format!("http://{}/token", thief.addr()),
    });
    let credential = Credential::Basic {
        username: "scanner".into(),
        password: "s3cret".into(),
    };
    let options = ResolveOptions {
        credentials: Some(credential.clone()),
        ..opts(&reg)
    };
    let e = resolve_err(&reg.reference(), &options).await;
    assert!(
        matches!(e, SourceError::Unauthorized { .. })
            && e.to_string().contains("refusing the token realm")
            && e.to_string().contains("token_hosts"),
        "{e}"
    );
    assert!(thief.requests().is_empty(), "{:?}", thief.requests());

    // The CLI, with the password on the command line.
    let home = tempfile::tempdir().expect("tempdir");
    let out = bulkhead(home.path())
        .args([
            "scan",
            &reg.reference(),
            "--insecure-registry",
            reg.addr(),
            "--username",
            "scanner",
            "--password",
            "s3cret",
            "--no-cache",
        ])
        .output()
        .expect("run bulkhead");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("refusing the token realm"),
        "{}",
        stderr(&out)
    );
    assert!(thief.requests().is_empty(), "{:?}", thief.requests());

    // Listed: the realm is asked (and it is the positive control that the test can see it).
    let mut listed = options.clone();
    listed
        .token_hosts
        .insert(reg.addr().to_string(), vec![thief.addr().to_string()]);
    let _ = resolve(&reg.reference(), &listed).await;
    let asked = thief.requests();
    assert_eq!(count(&asked, "/token"), 1, "{asked:?}");
    assert_eq!(
        asked[0].authorization.as_deref(),
        Some(http::basic_auth("scanner", "s3cret").as_str())
    );
}

/// Issue 22, item 5: an identity token from `~/.docker/config.json` goes through the
/// OAuth2 refresh-token exchange (a form POST to the realm, no Basic credentials).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_tokens_use_the_oauth2_refresh_token_exchange() {
    let reg = HostileRegistry::start(Behaviour::IdentityToken {
        refresh_token: "refresh-xyz".into(),
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        json!({"auths": {reg.addr(): {"identitytoken": "refresh-xyz"}}}).to_string(),
    )
    .expect("config.json");
    let credential = auth::lookup_in_file(
        &config,
        reg.addr(),
        &auth::Helpers {
            search_path: Vec::new(),
            timeout: auth::HELPER_TIMEOUT,
        },
    )
    .expect("reads")
    .expect("a credential");
    assert!(credential.is_identity_token());
    let options = ResolveOptions {
        credentials: Some(credential),
        ..opts(&reg)
    };
    let (image, blobs) = resolve(&reg.reference(), &options)
        .await
        .expect("the exchanged token is accepted");
    assert_eq!(
        read_layer(&image, &blobs).await.expect("layer"),
        reg.image().layer
    );
    let requests = reg.requests();
    let token: Vec<&Recorded> = requests.iter().filter(|r| r.path == "/token").collect();
    assert_eq!(token.len(), 1, "{requests:?}");
    assert_eq!(token[0].method, "POST");
    assert!(token[0].authorization.is_none(), "{:?}", token[0]);
    assert!(
        token[0].body.contains("grant_type=refresh_token")
            && token[0].body.contains("refresh_token=refresh-xyz"),
        "{:?}",
        token[0]
    );
}

/// Issue 12, item 6: `https://harbor` is refused at start (references would read `harbor`
/// as a Docker Hub namespace and send the password there).
#[test]
fn a_dotless_registry_url_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = ServiceOptions::new(&dir.path().join("advisories.db"));
    options.registry("harbor", "http://harbor", "hook-secret");
    let e = ServiceHarness::try_start(bin(), options)
        .expect_err("refused at start")
        .to_string();
    assert!(
        e.contains("registries[0] (harbor).url") && e.contains("Docker Hub"),
        "{e}"
    );
}

// ---- (5) the service: one hostile registry does not stop the others --------------------

const HOOK_SECRET: &str = "security-webhook-secret";

/// A hostile registry that stalls every layer, and another that answers with 1.5 GB
/// manifests, behind the same `bulkhead serve` as an honest registry: the honest push is
/// scanned, the service stays up and small, and the hostile registries, configured without
/// credentials, get none, although the service user's Docker config has some for them
/// (issue 12, item 7).
#[test]
fn the_service_keeps_scanning_an_honest_registry_while_others_attack() {
    if !require_tools(registry::TOOLS) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let db = demo_db(dir.path());
    let port = free_port();
    let hook = ServiceHarness::notifications_for(port, HOOK_SECRET);
    let honest = Registry::start_with(Options {
        auth: Auth::None,
        notifications: Some(hook),
    });
    let stall = HostileRegistry::start(Behaviour::StallBlob);
    let huge = HostileRegistry::start(Behaviour::HugeManifest {
        bytes: HUGE,
        announce: false,
    });
    let mut options = ServiceOptions::new(&db);
    options.port = Some(port);
    options.reconcile_seconds = 0;
    options.max_attempts = 2;
    options
        .registry("honest", &honest.url(), HOOK_SECRET)
        .registry("stall", &stall.url(), "stall-secret")
        .registry("huge", &huge.url(), "huge-secret")
        .tenant(
            "a",
            &[("honest", "team-a"), ("stall", "app"), ("huge", "app")],
        );
    options.extra_toml = "[scan.registry_limits]\nidle_timeout_ms = 2000\n".into();
    let svc = ServiceHarness::start(bin(), options);

    // The service user's own Docker credentials, for every registry: never to be used.
    let docker = svc.home().join("no-docker-config");
    std::fs::create_dir_all(&docker).expect("mkdir");
    let basic = |user: &str| {
        http::basic_auth(user, "host-user-secret")
            .trim_start_matches("Basic ")
            .to_string()
    };
    std::fs::write(
        docker.join("config.json"),
        json!({"auths": {
            stall.addr(): {"auth": basic("stall-user")},
            huge.addr(): {"auth": basic("huge-user")},
            honest.addr(): {"auth": basic("honest-user")},
        }})
        .to_string(),
    )
    .expect("config.json");

    let operator = svc.create_token("a", "operator");
    let reader = svc.create_token("a", "reader");

    // Both workers busy with the stalling registry...
    for _ in 0..2 {
        let r = svc.post_json(
            "/v1/scans",
            Some(&operator),
            &json!({"registry": "stall", "repository": "app", "digest": stall.image().manifest_digest}),
        );
        assert!(
            r.status == 201 || r.status == 200 || r.status == 202,
            "{} {}",
            r.status,
            r.text()
        );
    }
    // ...and a manual scan of a 1.5 GB manifest: a clear error, not a dead service.
    let started = Instant::now();
    let r = svc.post_json(
        "/v1/scans",
        Some(&operator),
        &json!({"registry": "huge", "repository": "app", "tag": "v1"}),
    );
    println!(
        "POST /v1/scans of a 1.5 GB manifest: {} after {:?}: {}",
        r.status,
        started.elapsed(),
        r.text()
    );
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("max_manifest_bytes"), "{}", r.text());

    // The honest push is scanned meanwhile.
    let archive = demo_archive(dir.path());
    push_archive(&honest, &archive, "team-a/demo:v1");
    let demo = svc.wait_for("the honest image scanned", Duration::from_secs(180), || {
        let items = svc.get_all("/v1/images?repository=team-a/demo", &reader);
        items
            .into_iter()
            .find(|i| !matches!(i["health"].as_str(), Some("pending" | "scanning")))
    });
    assert_eq!(demo["packages"], 30, "{demo}");
    assert_eq!(svc.get("/healthz", None).status, 200);

    // The stalled scans end as errors that say why, not as hung workers.
    let failed = svc.wait_for(
        "the stalled scans given up",
        Duration::from_secs(120),
        || {
            let items = svc.get_all("/v1/scans?state=failed", &reader);
            (!items.is_empty()).then_some(items)
        },
    );
    assert!(
        failed[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("idle_timeout_ms")),
        "{failed:?}"
    );

    if let Some(pid) = svc.pid()
        && let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
    {
        let hwm = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .unwrap_or("VmHWM: ?");
        println!("bulkhead serve after the attacks: {hwm}");
    }

    // Anonymous means anonymous: the Docker config's credentials were never sent.
    for (name, reg) in [("stall", &stall), ("huge", &huge)] {
        let requests = reg.requests();
        assert!(!requests.is_empty(), "{name} was asked");
        assert!(
            requests.iter().all(|r| r.authorization.is_none()),
            "{name} got credentials: {requests:?}"
        );
    }
}

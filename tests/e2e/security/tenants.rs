//! Hostile tenants: a tenant's admin attacks another tenant through the API and the
//! service's configuration (docs/security.md, "Hostile tenants"). A real registry notifies
//! a real `bulkhead serve`; the attacker holds tokens of tenant `alpha`, the victim is
//! tenant `bravo`.

use std::time::Duration;

use bulkhead_test_artifacts::registry::{self, Auth, Options, Registry};
use bulkhead_test_artifacts::service::{ServiceHarness, ServiceOptions, free_port};
use bulkhead_test_artifacts::{StoreKind, both, require_tools};
use serde_json::{Value, json};

use crate::harness::{bin, demo_archive, demo_db, push_archive};

const HOOK_SECRET: &str = "security-webhook-secret";
const SCAN_TIMEOUT: Duration = Duration::from_secs(180);

/// A registry notifying a service on `kind`'s store whose tenants are `alpha` (owns
/// `team-a`) and `bravo` (owns `team-b`), with `configure` applied to its options.
/// `None` when a tool or the store is missing (the test skips).
fn service(
    kind: StoreKind,
    dir: &std::path::Path,
    configure: impl FnOnce(&mut ServiceOptions),
) -> Option<(Registry, ServiceHarness)> {
    if !require_tools(registry::TOOLS) {
        return None;
    }
    let store = kind.store()?;
    let port = free_port();
    let hook = ServiceHarness::notifications_for(port, HOOK_SECRET);
    let reg = Registry::start_with(Options {
        auth: Auth::None,
        notifications: Some(hook),
    });
    let mut opts = ServiceOptions::new(&demo_db(dir));
    opts.port = Some(port);
    opts.store = store;
    opts.registry("local", &reg.url(), HOOK_SECRET)
        .tenant("alpha", &[("local", "team-a")])
        .tenant("bravo", &[("local", "team-b")]);
    configure(&mut opts);
    let svc = ServiceHarness::start(bin(), opts);
    Some((reg, svc))
}

fn claim(
    svc: &ServiceHarness,
    token: &str,
    prefix: &str,
) -> bulkhead_test_artifacts::http::Response {
    svc.post_json(
        "/v1/ownership",
        Some(token),
        &json!({"registry": "local", "prefix": prefix}),
    )
}

fn prefixes(svc: &ServiceHarness, token: &str) -> Vec<String> {
    svc.get_json("/v1/ownership", token)["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|o| o["prefix"].as_str().unwrap_or_default().to_string())
        .collect()
}

both!(ownership_cannot_be_taken_over);

/// Issue 12, item 1: an admin of `alpha` claims `bravo`'s repositories (the same prefix,
/// one inside it, one holding it, the whole registry). Every claim is refused with a
/// message that names neither `bravo` nor its prefix; `bravo`'s pushes stay `bravo`'s;
/// operators cannot change ownership; changes are recorded (who, when) and capped; an
/// overlap in the configuration, with another tenant's prefix or with another tenant's
/// API entry, stops the service at start.
fn ownership_cannot_be_taken_over(kind: StoreKind) {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((reg, mut svc)) = service(kind, dir.path(), |o| {
        o.server_toml = "max_ownership_entries = 2".into();
    }) else {
        return;
    };
    let admin_a = svc.create_token("alpha", "admin");
    let operator_a = svc.create_token("alpha", "operator");
    let admin_b = svc.create_token("bravo", "admin");
    let reader_b = svc.create_token("bravo", "reader");

    // Operators no longer change ownership: admins do.
    let r = claim(&svc, &operator_a, "team-a/x");
    assert_eq!(r.status, 403, "{}", r.text());

    for prefix in ["team-b", "/team-b/", "team-b/app", "team-b/app/deep", ""] {
        let r = claim(&svc, &admin_a, prefix);
        assert_eq!(r.status, 409, "claiming {prefix:?}: {}", r.text());
        let body = r.json().expect("error body");
        assert_eq!(body["error"]["code"], "conflict", "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.contains("bravo"), "names the owner: {message}");
        if prefix.is_empty() {
            assert!(
                !message.contains("team-b"),
                "names the owner's prefix: {message}"
            );
        }
    }
    assert_eq!(prefixes(&svc, &admin_a), ["team-a"], "nothing was added");

    // bravo's pushes stay bravo's: alpha neither sees nor scans them.
    let archive = demo_archive(dir.path());
    push_archive(&reg, &archive, "team-b/app:v1");
    svc.wait_for("bravo's push", SCAN_TIMEOUT, || {
        (!svc
            .get_all("/v1/images?repository=team-b/app", &reader_b)
            .is_empty())
        .then_some(())
    });
    assert!(svc.get_all("/v1/images", &admin_a).is_empty());
    let r = svc.post_json(
        "/v1/scans",
        Some(&operator_a),
        &json!({"registry": "local", "repository": "team-b/app", "tag": "v1"}),
    );
    assert_eq!(r.status, 404, "{}", r.text());

    // A claim of its own is recorded with the token that made it; the cap holds.
    let me = svc.get_json("/v1/whoami", &admin_a)["token_id"].clone();
    let r = claim(&svc, &admin_a, "team-a2");
    assert_eq!(r.status, 201, "{}", r.text());
    let added: Value = r.json().expect("entry");
    assert_eq!(added["created_by_token"], me, "{added}");
    assert_eq!(added["origin"], "api", "{added}");
    assert!(added["created_at"].is_string(), "{added}");
    let r = claim(&svc, &admin_a, "team-a3");
    assert_eq!(r.status, 201, "{}", r.text());
    let r = claim(&svc, &admin_a, "team-a4");
    assert_eq!(r.status, 409, "beyond max_ownership_entries: {}", r.text());
    assert!(r.text().contains("(2)"), "{}", r.text());
    let id = added["id"].as_i64().expect("id");
    let path = format!("/v1/ownership/{id}");
    assert_eq!(
        svc.request("DELETE", &path, Some(&operator_a), None).status,
        403
    );
    assert_eq!(
        svc.request("DELETE", &path, Some(&admin_b), None).status,
        404
    );
    assert_eq!(
        svc.request("DELETE", &path, Some(&admin_a), None).status,
        204
    );
    let changes = svc.get_all("/v1/ownership/changes", &admin_a);
    let seen: Vec<(String, String, Value)> = changes
        .iter()
        .map(|c| {
            (
                c["action"].as_str().unwrap_or_default().to_string(),
                c["prefix"].as_str().unwrap_or_default().to_string(),
                c["token_id"].clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("remove".to_string(), "team-a2".to_string(), me.clone()),
            ("add".to_string(), "team-a3".to_string(), me.clone()),
            ("add".to_string(), "team-a2".to_string(), me.clone()),
        ],
        "newest first"
    );
    assert!(svc.get_all("/v1/ownership/changes", &admin_b).is_empty());

    // bravo's API entry cannot be taken by the configuration either: the service refuses
    // to start, naming the entry, and starts again once the overlap is gone.
    let r = claim(&svc, &admin_b, "shared/bravo");
    assert_eq!(r.status, 201, "{}", r.text());
    svc.stop();
    svc.options_mut().tenants[0]
        .owns
        .push(("local".into(), "shared".into()));
    let e = svc
        .try_start_again()
        .expect_err("a configuration overlapping another tenant's entry must not start");
    let e = e.to_string();
    assert!(e.contains("overlaps") && e.contains("shared/bravo"), "{e}");
    // Two tenants' prefixes nested in the configuration: refused too.
    svc.options_mut().tenants[0].owns = vec![("local".into(), "team-a".into())];
    svc.options_mut().tenants[1]
        .owns
        .push(("local".into(), "team-a/app".into()));
    let e = svc
        .try_start_again()
        .expect_err("nested prefixes of two tenants must not start");
    assert!(e.to_string().contains("overlaps"), "{e}");
    svc.options_mut().tenants[1].owns = vec![("local".into(), "team-b".into())];
    svc.start_again();
    assert_eq!(prefixes(&svc, &admin_b), ["shared/bravo", "team-b"]);
    assert_eq!(prefixes(&svc, &admin_a), ["team-a", "team-a3"]);
}

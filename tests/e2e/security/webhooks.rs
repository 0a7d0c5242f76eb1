//! Scoped webhook secrets (issue 12, item 9): a tenant's (or a prefix's) webhook secret,
//! like a Harbor project's webhook, announces that tenant's pushes only. The attacker is a
//! project admin of tenant `alpha` who knows alpha's secret and forges notifications of
//! tenant `bravo`'s repository, in both envelope formats, to a real `bulkhead serve`.

use bulkhead_test_artifacts::registry::{self, Auth, Registry};
use bulkhead_test_artifacts::service::{ServiceHarness, ServiceOptions};
use bulkhead_test_artifacts::{StoreKind, both, http, require_tools};
use serde_json::{Value, json};

use crate::harness::bin;

const REGISTRY_SECRET: &str = "registry-wide-webhook-secret";
const ALPHA_SECRET: &str = "alpha-project-webhook-secret";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn digest(n: u8) -> String {
    format!("sha256:{}", format!("{n:02x}").repeat(32))
}

fn distribution(repository: &str, digest: &str) -> Value {
    json!({"events": [{"action": "push", "target": {
        "mediaType": OCI_MANIFEST, "digest": digest, "repository": repository, "tag": "v1"}}]})
}

fn harbor(repository: &str, digest: &str) -> Value {
    json!({"type": "PUSH_ARTIFACT", "occur_at": 1730000000, "operator": "alpha-admin",
           "event_data": {"resources": [{"digest": digest, "tag": "v1"}],
                          "repository": {"repo_full_name": repository}}})
}

/// A registry's notification, signed with `secret` (the webhook takes it as a bearer token).
fn notify(svc: &ServiceHarness, secret: &str, body: &Value) -> http::Response {
    svc.post_json("/v1/webhooks/registry", Some(secret), body)
}

fn repositories(svc: &ServiceHarness, token: &str) -> Vec<String> {
    svc.get_all("/v1/scans", token)
        .iter()
        .map(|j| j["repository"].as_str().unwrap_or_default().to_string())
        .collect()
}

both!(a_scoped_secret_announces_its_tenants_pushes_only);

fn a_scoped_secret_announces_its_tenants_pushes_only(kind: StoreKind) {
    if !require_tools(registry::TOOLS) {
        return;
    }
    let Some(store) = kind.store() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    // No advisory database: jobs wait in the queue, nothing is pulled.
    let reg = Registry::start(Auth::None);
    let mut opts = ServiceOptions::new(&dir.path().join("advisories.db"));
    opts.store = store;
    opts.registry("local", &reg.url(), REGISTRY_SECRET)
        .tenant("alpha", &[("local", "team-a")])
        .tenant("bravo", &[("local", "team-b")]);
    opts.tenants[0].toml = "webhook_secret_env = \"ALPHA_PROJECT_HOOK\"".into();
    opts.env
        .push(("ALPHA_PROJECT_HOOK".into(), ALPHA_SECRET.into()));
    let svc = ServiceHarness::start(bin(), opts);
    let reader_a = svc.create_token("alpha", "reader");
    let reader_b = svc.create_token("bravo", "reader");

    // The attack: alpha's secret announces bravo's pushes. Acknowledged (a registry must
    // not retry it forever), counted, and nothing is enqueued or looked up.
    for body in [
        distribution("team-b/app", &digest(1)),
        harbor("team-b/app", &digest(2)),
    ] {
        let r = notify(&svc, ALPHA_SECRET, &body);
        assert_eq!(r.status, 200, "{}", r.text());
        let summary = r.json().expect("summary");
        assert_eq!(summary["out_of_scope"], 1, "{summary}");
        assert_eq!(summary["enqueued"], 0, "{summary}");
    }
    assert!(repositories(&svc, &reader_b).is_empty(), "bravo got no job");
    assert!(svc.get_all("/v1/images", &reader_b).is_empty());
    for kind in ["manifest_push", "harbor_push"] {
        let series =
            format!("bulkhead_webhook_events_total{{kind=\"{kind}\",result=\"out_of_scope\"}}");
        assert_eq!(svc.metric(&series), 1.0, "{series}");
    }

    // alpha's secret announces alpha's pushes.
    let r = notify(&svc, ALPHA_SECRET, &distribution("team-a/app", &digest(3)));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json().expect("summary")["enqueued"], 1, "{}", r.text());
    assert_eq!(repositories(&svc, &reader_a), ["team-a/app"]);

    // The registry's own secret still speaks for the whole registry; an unknown one for
    // nobody.
    let r = notify(
        &svc,
        REGISTRY_SECRET,
        &distribution("team-b/app", &digest(1)),
    );
    assert_eq!(r.json().expect("summary")["enqueued"], 1, "{}", r.text());
    assert_eq!(repositories(&svc, &reader_b), ["team-b/app"]);
    let r = notify(
        &svc,
        "alpha-project-webhook-secreT",
        &distribution("team-a/app", &digest(4)),
    );
    assert_eq!(r.status, 401, "{}", r.text());
}

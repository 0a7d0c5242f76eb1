//! `POST /v1/webhooks/registry`: registry notifications in, durable scan jobs out.
//!
//! Two envelope formats arrive on the same path:
//! * Docker Distribution (CNCF Distribution, and everything built on it):
//!   `{"events": [{"action", "target": {"mediaType", "digest", "repository", "tag",
//!   "references"}}]}`. Only `push` events of an image manifest (OCI, Docker v2) or an index
//!   enqueue. Blob events carry `application/octet-stream` and are ignored, as are pulls
//!   (skopeo's HEAD probes fire them too), mounts and deletes. An index's `references` are
//!   its platform manifests (with `notifications.events.includereferences: true`); each is
//!   enqueued with the index's tag. Without references the index is fetched from the
//!   registry to list them.
//! * Harbor (`{"type": "PUSH_ARTIFACT", "event_data": {"resources": [{"digest", "tag"}],
//!   "repository": {"repo_full_name"}}}`). Harbor does not say what the artifact is, so it
//!   is fetched from the registry like an index without references.
//!
//! The registry is recognised by its secret: the `Authorization` header (the registry's
//! `notifications.endpoints[].headers`, Harbor's "Auth Header") compared in constant time
//! with every configured registry's webhook secret, `Bearer ` optional. The tenant is the
//! owner of the repository (longest prefix, in the store); a push nobody owns is
//! acknowledged and ignored, so the registry does not retry it forever.
//!
//! A push of a manifest that already has a result (a re-push, another tag, the index of
//! platform manifests pushed just before it) records the tag and creates no job.
//!
//! The answer is 2xx only once every job is committed to the store; a store error is a 503,
//! and the registry sends the envelope again (Distribution retries forever, in order).

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bulkhead_store::{Enqueued, NewJob, Pushed, Reason, now_ms};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::api::AppState;
use super::config::{RegistryConfig, Secret, TenantConfig};
use bulkhead_scan::source::SourceError;
use bulkhead_scan::source::manifest::{
    DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST,
};

/// The media type of Distribution's notification envelopes.
pub const ENVELOPE_MEDIA_TYPE: &str = "application/vnd.docker.distribution.events.v1+json";

/// Largest envelope accepted. Distribution sends one event per envelope in practice (a few
/// KB); an index with hundreds of references is still far below this.
pub const MAX_BODY_BYTES: usize = 4 << 20;

/// Most events handled from one envelope, and most manifests enqueued for one index.
const MAX_EVENTS: usize = 1000;
const MAX_REFERENCES: usize = 256;

/// The annotation with which BuildKit marks the attestation manifests it adds to an index:
/// they are not platforms and have nothing to scan.
const REFERENCE_TYPE: &str = "vnd.docker.reference.type";

/// What an event was, for metrics and answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    ManifestPush,
    IndexPush,
    HarborPush,
    BlobPush,
    Pull,
    Mount,
    Delete,
    Other,
}

impl EventKind {
    pub fn label(self) -> &'static str {
        match self {
            EventKind::ManifestPush => "manifest_push",
            EventKind::IndexPush => "index_push",
            EventKind::HarborPush => "harbor_push",
            EventKind::BlobPush => "blob_push",
            EventKind::Pull => "pull",
            EventKind::Mount => "mount",
            EventKind::Delete => "delete",
            EventKind::Other => "other",
        }
    }
}

/// One manifest to scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub repository: String,
    /// `sha256:<64 hex>`, checked.
    pub digest: String,
    /// The tag it was pushed under (an index's tag for its platform manifests).
    pub tag: Option<String>,
    /// The manifest's media type, when the event said.
    pub media_type: Option<String>,
}

/// What one event asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Scan these manifests.
    Scan {
        kind: EventKind,
        targets: Vec<Target>,
    },
    /// Fetch this manifest from the registry first: it may be an index (Harbor artifacts,
    /// indexes pushed without `includereferences`).
    Inspect { kind: EventKind, target: Target },
    /// Nothing to do.
    Ignore {
        kind: EventKind,
        reason: &'static str,
    },
}

impl Action {
    pub fn kind(&self) -> EventKind {
        match self {
            Action::Scan { kind, .. }
            | Action::Inspect { kind, .. }
            | Action::Ignore { kind, .. } => *kind,
        }
    }
}

/// Why an envelope could not be read at all.
#[derive(Debug, thiserror::Error)]
#[error("not a registry notification: {0}")]
pub struct EnvelopeError(String);

#[derive(Deserialize)]
struct DistributionEnvelope {
    events: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct DistributionEvent {
    #[serde(default)]
    action: String,
    #[serde(default)]
    target: DistributionTarget,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DistributionTarget {
    media_type: Option<String>,
    digest: Option<String>,
    repository: Option<String>,
    tag: Option<String>,
    references: Option<Vec<Reference>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Reference {
    media_type: Option<String>,
    digest: Option<String>,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct HarborPayload {
    #[serde(rename = "type")]
    kind: String,
    event_data: Option<HarborEventData>,
}

#[derive(Deserialize)]
struct HarborEventData {
    #[serde(default)]
    resources: Vec<HarborResource>,
    repository: Option<HarborRepository>,
}

#[derive(Deserialize)]
struct HarborResource {
    digest: Option<String>,
    tag: Option<String>,
}

#[derive(Deserialize)]
struct HarborRepository {
    repo_full_name: Option<String>,
}

/// Read an envelope (either format) into one action per event (per resource for Harbor).
pub fn parse(body: &[u8]) -> Result<Vec<Action>, EnvelopeError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| EnvelopeError(format!("invalid JSON: {e}")))?;
    if value.get("events").is_some() {
        let env: DistributionEnvelope =
            serde_json::from_value(value).map_err(|e| EnvelopeError(format!("events: {e}")))?;
        if env.events.len() > MAX_EVENTS {
            return Err(EnvelopeError(format!(
                "{} events in one envelope (at most {MAX_EVENTS})",
                env.events.len()
            )));
        }
        return Ok(env.events.into_iter().map(distribution_action).collect());
    }
    if value.get("type").is_some() {
        let payload: HarborPayload = serde_json::from_value(value)
            .map_err(|e| EnvelopeError(format!("Harbor payload: {e}")))?;
        return harbor_actions(payload);
    }
    Err(EnvelopeError(
        "neither a Distribution envelope ({\"events\": [...]}) nor a Harbor payload ({\"type\": ...})"
            .into(),
    ))
}

fn distribution_action(value: serde_json::Value) -> Action {
    let Ok(event) = serde_json::from_value::<DistributionEvent>(value) else {
        return Action::Ignore {
            kind: EventKind::Other,
            reason: "malformed event",
        };
    };
    let t = event.target;
    let media_type = t.media_type.as_deref().unwrap_or("");
    let kind = match (event.action.as_str(), media_type) {
        ("push", OCI_MANIFEST | DOCKER_MANIFEST) => EventKind::ManifestPush,
        ("push", OCI_INDEX | DOCKER_MANIFEST_LIST) => EventKind::IndexPush,
        ("push", "application/octet-stream") => EventKind::BlobPush,
        ("push", _) => {
            return Action::Ignore {
                kind: EventKind::Other,
                reason: "not an image manifest or index",
            };
        }
        ("pull", _) => EventKind::Pull,
        ("mount", _) => EventKind::Mount,
        ("delete", _) => EventKind::Delete,
        _ => EventKind::Other,
    };
    if !matches!(kind, EventKind::ManifestPush | EventKind::IndexPush) {
        return Action::Ignore {
            kind,
            reason: "not a manifest push",
        };
    }
    let (Some(repository), Some(digest)) = (
        t.repository.filter(|r| valid_repository(r)),
        t.digest.filter(|d| valid_digest(d)),
    ) else {
        return Action::Ignore {
            kind,
            reason: "malformed event: no valid repository or digest",
        };
    };
    let tag = t.tag.filter(|t| valid_tag(t));
    if kind == EventKind::ManifestPush {
        return Action::Scan {
            kind,
            targets: vec![Target {
                repository,
                digest,
                tag,
                media_type: Some(media_type.to_string()),
            }],
        };
    }
    let references = t.references.unwrap_or_default();
    if references.is_empty() {
        return Action::Inspect {
            kind,
            target: Target {
                repository,
                digest,
                tag,
                media_type: Some(media_type.to_string()),
            },
        };
    }
    let mut targets: Vec<Target> = Vec::new();
    for r in references.into_iter().take(MAX_REFERENCES) {
        let is_manifest = matches!(
            r.media_type.as_deref(),
            Some(OCI_MANIFEST | DOCKER_MANIFEST)
        );
        let attestation = r
            .annotations
            .get(REFERENCE_TYPE)
            .is_some_and(|v| v == "attestation-manifest");
        let Some(d) = r.digest.filter(|d| valid_digest(d)) else {
            continue;
        };
        if is_manifest && !attestation && !targets.iter().any(|x| x.digest == d) {
            targets.push(Target {
                repository: repository.clone(),
                digest: d,
                tag: tag.clone(),
                media_type: r.media_type,
            });
        }
    }
    if targets.is_empty() {
        return Action::Ignore {
            kind,
            reason: "an index without image manifests",
        };
    }
    Action::Scan { kind, targets }
}

fn harbor_actions(payload: HarborPayload) -> Result<Vec<Action>, EnvelopeError> {
    let kind = match payload.kind.as_str() {
        "PUSH_ARTIFACT" => EventKind::HarborPush,
        "PULL_ARTIFACT" => EventKind::Pull,
        "DELETE_ARTIFACT" => EventKind::Delete,
        _ => EventKind::Other,
    };
    if kind != EventKind::HarborPush {
        return Ok(vec![Action::Ignore {
            kind,
            reason: "not a push",
        }]);
    }
    let data = payload
        .event_data
        .ok_or_else(|| EnvelopeError("PUSH_ARTIFACT without event_data".into()))?;
    let Some(repository) = data
        .repository
        .and_then(|r| r.repo_full_name)
        .filter(|r| valid_repository(r))
    else {
        return Ok(vec![Action::Ignore {
            kind,
            reason: "malformed event: no valid repository",
        }]);
    };
    if data.resources.len() > MAX_EVENTS {
        return Err(EnvelopeError(format!(
            "{} resources in one payload (at most {MAX_EVENTS})",
            data.resources.len()
        )));
    }
    Ok(data
        .resources
        .into_iter()
        .map(|r| match r.digest.filter(|d| valid_digest(d)) {
            // Harbor fills `tag` with the digest when an artifact was pushed by digest.
            Some(digest) => Action::Inspect {
                kind,
                target: Target {
                    repository: repository.clone(),
                    digest,
                    tag: r.tag.filter(|t| valid_tag(t)),
                    media_type: None,
                },
            },
            None => Action::Ignore {
                kind,
                reason: "malformed event: no valid digest",
            },
        })
        .collect())
}

/// `sha256:` and 64 lowercase hex digits: digests become URLs and SQL values, nothing else
/// may pass.
pub fn valid_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// A repository name as the distribution spec allows it: lowercase path components of
/// `[a-z0-9]` separated by `.`, `_`, `__` or `-` runs, joined by `/`.
pub fn valid_repository(r: &str) -> bool {
    if r.is_empty() || r.len() > 255 {
        return false;
    }
    r.split('/').all(|c| {
        !c.is_empty()
            && c.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
            && c.as_bytes()[0].is_ascii_alphanumeric()
            && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
    })
}

/// A tag as the distribution spec allows it: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// Whom a webhook request speaks for: a registry and, with a scoped secret, only some of
/// its repositories.
#[derive(Debug)]
pub struct Caller<'a> {
    pub registry: &'a RegistryConfig,
    /// `None`: the registry's own secret, which announces any repository on it.
    pub scope: Option<Scope<'a>>,
}

/// What a scoped webhook secret (a tenant's, or one of its `owns` entries') may announce:
/// pushes of repositories under these prefixes, which that tenant owns.
#[derive(Debug, PartialEq, Eq)]
pub struct Scope<'a> {
    pub tenant: &'a str,
    pub prefixes: Vec<&'a str>,
}

impl Scope<'_> {
    /// Whether a push of `repository` is this secret's to announce.
    pub fn covers(&self, repository: &str) -> bool {
        self.prefixes
            .iter()
            .any(|p| bulkhead_store::prefix_matches(p, repository))
    }
}

/// Whom the webhook secret the request presents speaks for, if anyone. `authorization` is
/// the header's value; the secret may be given bare or after `Bearer `. `only` (the
/// `?registry=` parameter) limits the candidates to one registry. Candidates are the
/// registries' secrets and the tenants' scoped ones (`webhook_secret` of a tenant or of
/// an `owns` entry; the configuration makes every secret distinct). Every candidate is
/// compared, in constant time, so the answer's timing says nothing about how much of a
/// secret matched or whose it is.
pub fn identify<'a>(
    registries: &'a [RegistryConfig],
    tenants: &'a [TenantConfig],
    authorization: Option<&[u8]>,
    only: Option<&str>,
) -> Option<Caller<'a>> {
    let presented = authorization?;
    let bearer = presented
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case(b"bearer "))
        .map(|_| &presented[7..]);
    let matches = |secret: &Secret| {
        let secret = secret.expose().as_bytes();
        bool::from(presented.ct_eq(secret) | bearer.unwrap_or(b"").ct_eq(secret))
    };
    let registry = |name: &str| {
        registries
            .iter()
            .find(|r| r.name == name && only.is_none_or(|o| o == r.name))
    };
    let mut found = None;
    for r in registries {
        let Some(secret) = &r.webhook_secret else {
            continue;
        };
        if only.is_some_and(|o| o != r.name) {
            continue;
        }
        if matches(secret) && found.is_none() {
            found = Some(Caller {
                registry: r,
                scope: None,
            });
        }
    }
    for t in tenants {
        // A tenant's own secret: its entries, all on one registry (the configuration
        // checks).
        if let (Some(secret), Some(r)) = (
            &t.webhook_secret,
            t.owns.first().and_then(|o| registry(&o.registry)),
        ) && matches(secret)
            && found.is_none()
        {
            found = Some(Caller {
                registry: r,
                scope: Some(Scope {
                    tenant: &t.name,
                    prefixes: t.owns.iter().map(|o| o.prefix.as_str()).collect(),
                }),
            });
        }
        for o in &t.owns {
            if let (Some(secret), Some(r)) = (&o.webhook_secret, registry(&o.registry))
                && matches(secret)
                && found.is_none()
            {
                found = Some(Caller {
                    registry: r,
                    scope: Some(Scope {
                        tenant: &t.name,
                        prefixes: vec![o.prefix.as_str()],
                    }),
                });
            }
        }
    }
    found
}

/// `?registry=NAME`: only that registry's secret is tried.
#[derive(Deserialize, schemars::JsonSchema)]
#[schemars(inline)]
pub struct WebhookQuery {
    /// Try only this configured registry's secret.
    registry: Option<String>,
}

/// What the webhook did with an envelope (the 2xx body; the registry ignores it, people
/// debugging a setup do not).
#[derive(Default, serde::Serialize, schemars::JsonSchema)]
#[schemars(rename = "WebhookSummary")]
pub struct Summary {
    enqueued: usize,
    coalesced: usize,
    /// Manifests that already have a result: their tag was recorded, nothing enqueued.
    already_scanned: usize,
    ignored: usize,
    unowned: usize,
    /// Events of repositories that the presented (scoped) secret may not announce.
    out_of_scope: usize,
    jobs: Vec<i64>,
}

fn answer(status: StatusCode, code: &'static str, message: String) -> Response {
    super::api::ApiError::new(status, code, message).into_response()
}

/// The handler of `POST /v1/webhooks/registry`.
pub async fn receive(
    State(state): State<AppState>,
    query: Result<Query<WebhookQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let metrics = &state.metrics;
    let only = query.ok().and_then(|Query(q)| q.registry);
    let authorization = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    let Some(Caller { registry, scope }) = identify(
        &state.config.registries,
        &state.config.tenants,
        authorization,
        only.as_deref(),
    ) else {
        metrics.webhook_event("envelope", "unauthorized");
        return answer(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "no configured registry or tenant has this webhook secret (the Authorization header)"
                .into(),
        );
    };
    // Only now, the sender known, is the body read: a client without the secret cannot
    // make the service wait for (or hold) a body.
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(e) => {
            metrics.webhook_event("envelope", "malformed");
            return answer(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("cannot read the envelope (at most {MAX_BODY_BYTES} bytes): {e}"),
            );
        }
    };
    // A scoped secret announces its tenant's pushes only: the tenant it names must be the
    // owner the store finds.
    let scope_tenant = match &scope {
        Some(s) => match state.store.tenant_by_name(s.tenant).await {
            Ok(t) => t.map(|t| t.id),
            Err(e) => return store_failed(&state, "envelope", e),
        },
        None => None,
    };
    let in_scope = |repository: &str| scope.as_ref().is_none_or(|s| s.covers(repository));
    let actions = match parse(&body) {
        Ok(a) => a,
        Err(e) => {
            metrics.webhook_event("envelope", "malformed");
            tracing::warn!(registry = %registry.name, "webhook: {e}");
            return answer(StatusCode::BAD_REQUEST, "bad_request", e.to_string());
        }
    };
    let mut summary = Summary::default();
    for action in actions {
        let kind = action.kind().label();
        let (targets, platforms): (Vec<Target>, Vec<Option<String>>) = match action {
            Action::Ignore { reason, .. } => {
                tracing::debug!(registry = %registry.name, kind, "webhook event ignored: {reason}");
                metrics.webhook_event(kind, "ignored");
                summary.ignored += 1;
                continue;
            }
            Action::Scan { targets, .. } => {
                let n = targets.len();
                (targets, vec![None; n])
            }
            Action::Inspect { target, .. } if !in_scope(&target.repository) => {
                // Not even a look at the registry for a repository the secret may not
                // announce: that would pull with the service's credentials.
                tracing::warn!(registry = %registry.name, "webhook: a scoped secret announced {}, outside its scope", target.repository);
                metrics.webhook_event(kind, "out_of_scope");
                summary.out_of_scope += 1;
                continue;
            }
            Action::Inspect { target, .. } => {
                // Ask the registry only about repositories somebody owns.
                match state
                    .store
                    .owner_of(&registry.name, &target.repository)
                    .await
                {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        metrics.webhook_event(kind, "unowned");
                        summary.unowned += 1;
                        continue;
                    }
                    Err(e) => return store_failed(&state, kind, e),
                }
                match super::registry::inspect(
                    registry,
                    &state.config.scan.registry_limits,
                    &target.repository,
                    &target.digest,
                )
                .await
                {
                    Ok(found) => found
                        .manifests
                        .into_iter()
                        .map(|m| {
                            (
                                Target {
                                    repository: target.repository.clone(),
                                    digest: m.digest,
                                    tag: target.tag.clone(),
                                    media_type: Some(m.media_type),
                                },
                                m.platform,
                            )
                        })
                        .unzip(),
                    // Not an image (a Helm chart, a signature): still recorded, so that
                    // its owner sees it as `unsupported` rather than not at all.
                    Err(SourceError::Unsupported { .. }) => (vec![target], vec![None]),
                    Err(e) if super::registry::transient(&e) => {
                        metrics.webhook_event(kind, "inspect_failed");
                        tracing::warn!(registry = %registry.name, "webhook: {e}; asking the registry to send it again");
                        return answer(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "registry_unavailable",
                            format!("cannot look the pushed artifact up: {e}"),
                        );
                    }
                    Err(e) => {
                        // It will not get better by retrying; a non-2xx would block the
                        // registry's queue forever.
                        metrics.webhook_event(kind, "inspect_failed");
                        tracing::warn!(registry = %registry.name, "webhook: ignored: {e}");
                        summary.ignored += 1;
                        continue;
                    }
                }
            }
        };
        let Some(first) = targets.first() else {
            metrics.webhook_event(kind, "ignored");
            summary.ignored += 1;
            continue;
        };
        let tenant = match state
            .store
            .owner_of(&registry.name, &first.repository)
            .await
        {
            Ok(Some(t))
                if scope.is_some() && (!in_scope(&first.repository) || scope_tenant != Some(t)) =>
            {
                tracing::warn!(registry = %registry.name, "webhook: a scoped secret announced {}, outside its scope", first.repository);
                metrics.webhook_event(kind, "out_of_scope");
                summary.out_of_scope += 1;
                continue;
            }
            Ok(Some(t)) => t,
            Ok(None) => {
                metrics.webhook_event(kind, "unowned");
                summary.unowned += 1;
                continue;
            }
            Err(e) => return store_failed(&state, kind, e),
        };
        let now = now_ms();
        let (mut any_new, mut any_coalesced) = (false, false);
        for (t, platform) in targets.into_iter().zip(platforms) {
            let job = NewJob {
                tenant_id: tenant,
                registry: registry.name.clone(),
                repository: t.repository,
                digest: t.digest,
                tag: t.tag,
                media_type: t.media_type,
                platform,
                reason: Reason::Push,
                run_at: now,
                now,
            };
            // A push of a digest that already has a result only adds the tag: no pull, no
            // scan, no job (a manual scan is the way to scan it again).
            match state.store.enqueue_if_unscanned(job).await {
                Ok(Pushed::Job(Enqueued::New(id))) => {
                    any_new = true;
                    summary.enqueued += 1;
                    summary.jobs.push(id);
                }
                Ok(Pushed::Job(Enqueued::Coalesced(id))) => {
                    any_coalesced = true;
                    summary.coalesced += 1;
                    summary.jobs.push(id);
                }
                Ok(Pushed::AlreadyScanned { .. }) => summary.already_scanned += 1,
                Err(e) => return store_failed(&state, kind, e),
            }
        }
        metrics.webhook_event(
            kind,
            if any_new {
                "enqueued"
            } else if any_coalesced {
                "coalesced"
            } else {
                "already_scanned"
            },
        );
    }
    if summary.enqueued > 0 {
        state.wake.notify_waiters();
    }
    (StatusCode::OK, Json(summary)).into_response()
}

/// The store failed: 503, so that the registry sends the envelope again.
fn store_failed(state: &AppState, kind: &'static str, e: bulkhead_store::Error) -> Response {
    state.metrics.webhook_event(kind, "store_error");
    tracing::warn!("webhook: {e}; asking the registry to send it again");
    answer(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        "the job could not be stored; send it again".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Ownership;

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/registry-events")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn actions(name: &str) -> Vec<Action> {
        parse(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn a_tagged_manifest_push_is_one_scan() {
        let got = actions("sample-push-manifest-oci.json");
        assert_eq!(
            got,
            vec![Action::Scan {
                kind: EventKind::ManifestPush,
                targets: vec![Target {
                    repository: "tiny".into(),
                    digest:
                        "sha256:443c69184e77827678ccbd4281fdb98d3f866dbe050cc4b02229efee3c18b1df"
                            .into(),
                    tag: Some("latest".into()),
                    media_type: Some(OCI_MANIFEST.into()),
                }],
            }]
        );
        // Docker v2 schema 2 and a push with auth (actor set) are image manifests too.
        let docker = actions("sample-push-manifest-docker.json");
        assert!(
            matches!(&docker[..], [Action::Scan { kind: EventKind::ManifestPush, targets }]
                if targets[0].repository == "tiny-docker"
                    && targets[0].media_type.as_deref() == Some(DOCKER_MANIFEST)
                    && targets[0].tag.as_deref() == Some("latest")),
            "{docker:?}"
        );
        assert!(matches!(
            &actions("sample-push-manifest-htpasswd.json")[..],
            [Action::Scan {
                kind: EventKind::ManifestPush,
                ..
            }]
        ));
    }

    #[test]
    fn an_index_push_scans_each_platform_manifest_with_the_index_tag() {
        let got = actions("sample-push-index.json");
        let [Action::Scan { kind, targets }] = &got[..] else {
            panic!("{got:?}");
        };
        assert_eq!(*kind, EventKind::IndexPush);
        let digests: Vec<&str> = targets.iter().map(|t| t.digest.as_str()).collect();
        // The two references of the envelope, in its order; never the index itself.
        assert_eq!(
            digests,
            [
                "sha256:d1c12ef0abaab982a6d78effd81a80e566925766b5e3dacd632d9f0e7c166f7a",
                "sha256:f2c62fcb989df984ef0a7ff8c251b05e012a66779d6bdb6121a22dc1555d55ef"
            ]
        );
        assert!(
            targets
                .iter()
                .all(|t| t.tag.as_deref() == Some("latest") && t.repository == "multi")
        );
        // The untagged child pushed before the index is the first of them: enqueuing both
        // coalesces in the store (same tenant, registry, repository and digest).
        let child = actions("sample-push-manifest-untagged.json");
        let [Action::Scan { targets: c, .. }] = &child[..] else {
            panic!("{child:?}");
        };
        assert_eq!(c[0].digest, targets[0].digest);
        assert_eq!(c[0].tag, None);
    }

    #[test]
    fn blobs_pulls_mounts_and_deletes_are_ignored() {
        for (file, kind) in [
            ("sample-push-blob.json", EventKind::BlobPush),
            ("sample-pull-manifest-get.json", EventKind::Pull),
            ("sample-pull-blob-head.json", EventKind::Pull),
            ("sample-mount-blob.json", EventKind::Mount),
            ("sample-delete-manifest.json", EventKind::Delete),
            ("sample-delete-tag.json", EventKind::Delete),
            ("harbor-pull-artifact.json", EventKind::Pull),
        ] {
            let got = actions(file);
            assert!(
                matches!(&got[..], [Action::Ignore { kind: k, .. }] if *k == kind),
                "{file}: {got:?}"
            );
        }
    }

    #[test]
    fn a_harbor_push_is_inspected_in_the_registry() {
        let got = actions("harbor-push-artifact.json");
        assert_eq!(
            got,
            vec![Action::Inspect {
                kind: EventKind::HarborPush,
                target: Target {
                    repository: "library/busybox".into(),
                    digest:
                        "sha256:dde8e930c7b6a490f728e66292bc9bce42efc9bbb5278bae40e4f30f6e00fe8c"
                            .into(),
                    tag: Some("latest".into()),
                    media_type: None,
                },
            }]
        );
    }

    #[test]
    fn an_index_without_references_is_inspected_and_attestations_are_skipped() {
        let mut v: serde_json::Value =
            serde_json::from_slice(&fixture("sample-push-index.json")).expect("json");
        let refs = v["events"][0]["target"]["references"].take();
        let got = parse(v.to_string().as_bytes()).expect("parses");
        assert!(
            matches!(&got[..], [Action::Inspect { kind: EventKind::IndexPush, target }]
                if target.tag.as_deref() == Some("latest")),
            "{got:?}"
        );
        let mut refs = refs;
        refs[1]["annotations"] =
            serde_json::json!({"vnd.docker.reference.type": "attestation-manifest"});
        v["events"][0]["target"]["references"] = refs;
        let got = parse(v.to_string().as_bytes()).expect("parses");
        let [Action::Scan { targets, .. }] = &got[..] else {
            panic!("{got:?}");
        };
        assert_eq!(targets.len(), 1, "{targets:?}");
    }

    #[test]
    fn hostile_fields_are_refused_without_failing_the_envelope() {
        let mut v: serde_json::Value =
            serde_json::from_slice(&fixture("sample-push-manifest-oci.json")).expect("json");
        for (field, value) in [
            ("digest", serde_json::json!("sha256:../../etc/passwd")),
            ("digest", serde_json::json!(42)),
            ("repository", serde_json::json!("Upper/Case")),
            ("repository", serde_json::json!("a//b")),
            ("repository", serde_json::json!("../x")),
        ] {
            let mut e = v.clone();
            e["events"][0]["target"][field] = value.clone();
            let got = parse(e.to_string().as_bytes()).expect("the envelope parses");
            assert!(
                matches!(&got[..], [Action::Ignore { .. }]),
                "{field}={value}: {got:?}"
            );
        }
        // A bad tag drops the tag, not the scan.
        v["events"][0]["target"]["tag"] = serde_json::json!("bad tag\n");
        let got = parse(v.to_string().as_bytes()).expect("parses");
        assert!(
            matches!(&got[..], [Action::Scan { targets, .. }] if targets[0].tag.is_none()),
            "{got:?}"
        );
        for body in [&b"not json"[..], b"[]", b"{}", b"{\"events\": 3}"] {
            assert!(parse(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn names_follow_the_distribution_grammar() {
        assert!(valid_repository("team-a/app"));
        assert!(valid_repository("a/b.c/d__e"));
        assert!(!valid_repository(""));
        assert!(!valid_repository("-a"));
        assert!(!valid_repository("a/"));
        assert!(valid_tag("v1.2.3_rc-1"));
        assert!(!valid_tag(".hidden"));
        assert!(!valid_tag(&"x".repeat(129)));
        assert!(!valid_digest("sha256:ABC"));
        assert!(!valid_digest("sha512:00"));
    }

    fn registry(name: &str, secret: Option<&str>) -> RegistryConfig {
        RegistryConfig {
            name: name.into(),
            url: "http://127.0.0.1:5000".into(),
            host: "127.0.0.1:5000".into(),
            insecure: true,
            webhook_secret: secret.map(Secret::new),
            credentials: None,
            token_hosts: Vec::new(),
        }
    }

    #[test]
    fn the_registry_is_identified_by_its_secret() {
        let regs = vec![
            registry("a", Some("secret-a")),
            registry("b", Some("secret-b")),
            registry("none", None),
        ];
        let name = |h: Option<&str>, only: Option<&str>| {
            identify(&regs, &[], h.map(str::as_bytes), only).map(|c| c.registry.name.clone())
        };
        assert_eq!(name(Some("Bearer secret-a"), None).as_deref(), Some("a"));
        assert_eq!(name(Some("bearer secret-b"), None).as_deref(), Some("b"));
        assert_eq!(name(Some("secret-b"), None).as_deref(), Some("b"));
        assert_eq!(name(Some("Bearer secret-a"), Some("b")), None);
        assert_eq!(
            name(Some("Bearer secret-a"), Some("a")).as_deref(),
            Some("a")
        );
        assert_eq!(name(Some("Bearer secret-"), None), None);
        assert_eq!(name(Some("Bearer secret-ab"), None), None);
        assert_eq!(name(Some(""), None), None);
        assert_eq!(name(Some("Bearer "), None), None);
        assert_eq!(name(None, None), None);
    }

    #[test]
    fn a_scoped_secret_speaks_for_its_prefixes_only() {
        let regs = vec![registry("a", Some("secret-a")), registry("b", None)];
        let own = |registry: &str, prefix: &str, secret: Option<&str>| Ownership {
            registry: registry.into(),
            prefix: prefix.into(),
            webhook_secret: secret.map(Secret::new),
        };
        let tenants = vec![
            TenantConfig {
                name: "alpha".into(),
                owns: vec![own("a", "team-a", None), own("a", "shared/a", None)],
                notify: None,
                webhook_secret: Some(Secret::new("alpha-hook")),
            },
            TenantConfig {
                name: "bravo".into(),
                owns: vec![own("b", "team-b", Some("bravo-hook"))],
                notify: None,
                webhook_secret: None,
            },
        ];
        let who = |h: &str, only: Option<&str>| {
            identify(&regs, &tenants, Some(h.as_bytes()), only)
                .map(|c| (c.registry.name.clone(), c.scope))
        };
        let (r, scope) = who("Bearer alpha-hook", None).expect("alpha's secret");
        let scope = scope.expect("scoped");
        assert_eq!((r.as_str(), scope.tenant), ("a", "alpha"));
        assert!(scope.covers("team-a/app") && scope.covers("shared/a"));
        assert!(!scope.covers("team-b/app") && !scope.covers("team-ab"));
        let (r, scope) = who("bravo-hook", None).expect("bravo's entry secret");
        assert_eq!(
            (r.as_str(), scope),
            (
                "b",
                Some(Scope {
                    tenant: "bravo",
                    prefixes: vec!["team-b"]
                })
            )
        );
        assert!(
            who("Bearer alpha-hook", Some("b")).is_none(),
            "not alpha's registry"
        );
        let (_, scope) = who("secret-a", None).expect("the registry's secret");
        assert!(scope.is_none(), "a registry secret is not scoped");
    }
}

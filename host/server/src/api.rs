//! The REST API (JSON; described by `GET /v1/openapi.json`, the hand-written
//! `openapi.json` next to this file).
//!
//! * Every `/v1` route but the webhook and the OpenAPI document needs
//!   `Authorization: Bearer <token>`: a missing, unknown or revoked token is a 401, a role
//!   below the route's minimum ([`ROUTES`]) a 403. The token decides the tenant; no request
//!   names one, and every read passes the caller's tenant to the store, which filters in
//!   SQL.
//! * Another tenant's image or scan is a 404 with exactly the body of an id that does not
//!   exist ([`ApiError::not_found`]), also for malformed ids.
//! * Errors are `{"error": {"code", "message"}}`; lists are `{"items", "next_cursor"}`
//!   with `limit` and `cursor`; times are RFC 3339.
//! * [`ROUTES`] is the one list of routes: the router is built from it, the auth middleware
//!   reads each route's minimum role from it, and a test checks it against the OpenAPI
//!   document both ways.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Extension, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use bulkhead_store::{
    Enqueued, FindingFilter, ImageFilter, ImageHealth, JobState, NewJob, Page, PageOf, Principal,
    Reason, Role, ScanFilter, Severity, Store, now_ms, rfc3339,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Notify;

use super::config::ServeConfig;
use super::metrics::Metrics;
use super::webhook;

/// The OpenAPI 3.1 document, served as is.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token (probes, metrics, the OpenAPI document; the webhook has its own secret).
    Public,
    /// A token with at least this role.
    Token(Role),
}

/// Every route: method, path (axum syntax, which is also OpenAPI's), who may call it.
pub const ROUTES: &[(&str, &str, Access)] = &[
    ("GET", "/healthz", Access::Public),
    ("GET", "/readyz", Access::Public),
    ("GET", "/metrics", Access::Public),
    ("GET", "/v1/openapi.json", Access::Public),
    ("POST", "/v1/webhooks/registry", Access::Public),
    ("GET", "/v1/whoami", Access::Token(Role::Reader)),
    ("GET", "/v1/summary", Access::Token(Role::Reader)),
    ("GET", "/v1/images", Access::Token(Role::Reader)),
    ("GET", "/v1/images/{id}", Access::Token(Role::Reader)),
    (
        "GET",
        "/v1/images/{id}/findings",
        Access::Token(Role::Reader),
    ),
    (
        "GET",
        "/v1/images/{id}/packages",
        Access::Token(Role::Reader),
    ),
    ("GET", "/v1/recommendations", Access::Token(Role::Reader)),
    ("GET", "/v1/scans", Access::Token(Role::Reader)),
    ("POST", "/v1/scans", Access::Token(Role::Operator)),
    ("GET", "/v1/scans/{id}", Access::Token(Role::Reader)),
    ("GET", "/v1/ownership", Access::Token(Role::Reader)),
    ("POST", "/v1/ownership", Access::Token(Role::Operator)),
    (
        "DELETE",
        "/v1/ownership/{id}",
        Access::Token(Role::Operator),
    ),
    ("GET", "/v1/tokens", Access::Token(Role::Admin)),
    ("POST", "/v1/tokens", Access::Token(Role::Admin)),
    ("DELETE", "/v1/tokens/{id}", Access::Token(Role::Admin)),
    ("GET", "/v1/deliveries", Access::Token(Role::Operator)),
    ("POST", "/v1/query", Access::Token(Role::Reader)),
];

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<ServeConfig>,
    pub metrics: Arc<Metrics>,
    /// Wakes idle workers after an enqueue.
    pub wake: Arc<Notify>,
    /// The advisory database the workers match against (for `/readyz`).
    pub db_path: PathBuf,
}

/// The router of every route in [`ROUTES`].
pub fn router(state: AppState) -> Router {
    let mut r: Router<AppState> = Router::new();
    for (method, path, _) in ROUTES {
        if let Some(h) = handler(method, path) {
            r = r.route(path, h);
        }
    }
    r.route_layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .with_state(state)
}

/// The handler of one route of [`ROUTES`].
fn handler(method: &str, path: &str) -> Option<MethodRouter<AppState>> {
    Some(match (method, path) {
        ("GET", "/healthz") => get(healthz),
        ("GET", "/readyz") => get(readyz),
        ("GET", "/metrics") => get(metrics),
        ("GET", "/v1/openapi.json") => get(openapi),
        ("POST", "/v1/webhooks/registry") => post(webhook::receive).layer(
            axum::extract::DefaultBodyLimit::max(webhook::MAX_BODY_BYTES),
        ),
        ("GET", "/v1/whoami") => get(whoami),
        ("GET", "/v1/summary") => get(summary),
        ("GET", "/v1/images") => get(images),
        ("GET", "/v1/images/{id}") => get(image),
        ("GET", "/v1/images/{id}/findings") => get(findings),
        ("GET", "/v1/images/{id}/packages") => get(packages),
        ("GET", "/v1/recommendations") => get(recommendations),
        ("GET", "/v1/scans") => get(scans),
        ("POST", "/v1/scans") => post(create_scan),
        ("GET", "/v1/scans/{id}") => get(scan),
        ("GET", "/v1/ownership") => get(ownership),
        ("POST", "/v1/ownership") => post(add_ownership),
        ("DELETE", "/v1/ownership/{id}") => delete(remove_ownership),
        ("GET", "/v1/tokens") => get(tokens),
        ("POST", "/v1/tokens") => post(create_token),
        ("DELETE", "/v1/tokens/{id}") => delete(revoke_token),
        ("GET", "/v1/deliveries") => get(deliveries),
        ("POST", "/v1/query") => post(query),
        _ => return None,
    })
}

// ---- errors ------------------------------------------------------------------------------

/// An error answer: `{"error": {"code", "message"}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// The one answer for "not yours" and "does not exist": same status, same body.
    pub fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "not found")
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    fn unauthorized(message: &str) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": {"code": self.code, "message": self.message}}));
        let mut resp = (self.status, body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

impl From<bulkhead_store::Error> for ApiError {
    fn from(e: bulkhead_store::Error) -> ApiError {
        use bulkhead_store::Error as E;
        match e {
            E::Db(m) => {
                tracing::warn!("store: {m}");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the store is unavailable; try again",
                )
            }
            E::BadCursor => ApiError::bad_request("invalid cursor"),
            E::Invalid(m) => ApiError::bad_request(m),
            E::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            E::NotFound(_) => ApiError::not_found(),
            other => {
                tracing::error!("store: {other}");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

fn query_of<T>(q: Result<Query<T>, QueryRejection>) -> ApiResult<T> {
    q.map(|Query(t)| t)
        .map_err(|e| ApiError::bad_request(format!("query string: {}", e.body_text())))
}

fn json_of<T>(b: Result<Json<T>, JsonRejection>) -> ApiResult<T> {
    b.map(|Json(t)| t)
        .map_err(|e| ApiError::bad_request(format!("body: {}", e.body_text())))
}

/// An id from the path; a malformed one is as unknown as any other.
fn id_of(p: Result<Path<i64>, PathRejection>) -> ApiResult<i64> {
    p.map(|Path(id)| id).map_err(|_| ApiError::not_found())
}

fn parse_word<T>(name: &str, v: Option<String>) -> ApiResult<Option<T>>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    v.map(|s| s.parse::<T>())
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("{name}: {e}")))
}

// ---- authentication ----------------------------------------------------------------------

/// The access rule of the route that matched.
fn access_of(method: &Method, path: &str) -> Option<Access> {
    ROUTES
        .iter()
        .find(|(m, p, _)| *m == method.as_str() && *p == path)
        .map(|(_, _, a)| *a)
}

/// The bearer token of a request, if it has one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let access = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|p| access_of(req.method(), p.as_str()));
    let min = match access {
        Some(Access::Token(role)) => role,
        Some(Access::Public) => return next.run(req).await,
        // Not in ROUTES (cannot happen: the router is built from it): refuse rather than
        // serve something unauthenticated.
        None => return ApiError::not_found().into_response(),
    };
    let Some(token) = bearer(req.headers()) else {
        return ApiError::unauthorized("an Authorization: Bearer <token> header is required")
            .into_response();
    };
    let principal = match state.store.authenticate(token, now_ms()).await {
        Ok(Some(p)) => p,
        Ok(None) => return ApiError::unauthorized("unknown or revoked token").into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    if principal.role < min {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this needs the {min} role; the token is {}", principal.role),
        )
        .into_response();
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

// ---- views -------------------------------------------------------------------------------

fn time(ms: i64) -> String {
    rfc3339(ms)
}

fn time_opt(ms: Option<i64>) -> Option<String> {
    ms.map(rfc3339)
}

#[derive(Serialize)]
struct Items<T> {
    items: Vec<T>,
    next_cursor: Option<String>,
}

fn page_of<A, B>(p: PageOf<A>, f: impl Fn(A) -> B) -> Items<B> {
    Items {
        items: p.items.into_iter().map(f).collect(),
        next_cursor: p.next_cursor,
    }
}

#[derive(Serialize)]
struct OsView {
    id: Option<String>,
    version: Option<String>,
    name: Option<String>,
    /// End of security support (RFC 3339).
    eol: Option<String>,
}

#[derive(Serialize)]
struct ImageView {
    id: i64,
    registry: String,
    repository: String,
    digest: String,
    tags: Vec<String>,
    platform: Option<String>,
    os: Option<OsView>,
    health: ImageHealth,
    counts: bulkhead_model::Summary,
    packages: i64,
    first_seen_at: String,
    scanned_at: Option<String>,
    updated_at: String,
    last_error: Option<String>,
}

fn image_view(i: bulkhead_store::Image) -> ImageView {
    let os = (i.os_id.is_some() || i.os_name.is_some()).then(|| OsView {
        id: i.os_id,
        version: i.os_version,
        name: i.os_name,
        eol: time_opt(i.os_eol),
    });
    ImageView {
        id: i.id,
        registry: i.registry,
        repository: i.repository,
        digest: i.digest,
        tags: i.tags,
        platform: i.platform,
        os,
        health: i.health,
        counts: i.counts,
        packages: i.packages,
        first_seen_at: time(i.first_seen_at),
        scanned_at: time_opt(i.scanned_at),
        updated_at: time(i.updated_at),
        last_error: i.last_error,
    }
}

#[derive(Serialize)]
struct Cvss {
    score: Option<f64>,
    vector: Option<String>,
}

#[derive(Serialize)]
struct FindingView {
    /// The vulnerability: the CVE when there is one, else the advisory id.
    id: String,
    aliases: Vec<String>,
    package: String,
    installed_version: String,
    fixed_version: Option<String>,
    fix_state: String,
    severity: Severity,
    cvss: Option<Cvss>,
    description: String,
    /// What to do about it, in words.
    remediation: String,
    ecosystem: String,
    package_type: String,
    layer_digest: Option<String>,
    first_seen_at: String,
}

fn finding_view(f: bulkhead_store::Finding) -> FindingView {
    let remediation = match &f.fixed_version {
        Some(v) => format!("upgrade {} to {v} or later", f.package),
        None => format!(
            "no fixed version of {} yet ({}); mitigate or accept the risk",
            f.package, f.fix_state
        ),
    };
    FindingView {
        cvss: (f.cvss_score.is_some() || f.cvss_vector.is_some()).then_some(Cvss {
            score: f.cvss_score,
            vector: f.cvss_vector,
        }),
        id: f.vuln_id,
        aliases: f.aliases,
        package: f.package,
        installed_version: f.installed_version,
        fixed_version: f.fixed_version,
        fix_state: f.fix_state,
        severity: f.severity,
        description: f.title,
        remediation,
        ecosystem: f.ecosystem,
        package_type: f.package_type,
        layer_digest: f.layer_digest,
        first_seen_at: time(f.first_seen_at),
    }
}

#[derive(Serialize)]
struct ScanView {
    id: i64,
    image_id: Option<i64>,
    registry: String,
    repository: String,
    digest: String,
    tag: Option<String>,
    platform: Option<String>,
    reason: Reason,
    state: JobState,
    attempts: i64,
    error: Option<String>,
    created_at: String,
    run_at: String,
    started_at: Option<String>,
    finished_at: Option<String>,
}

fn scan_view(j: bulkhead_store::Job) -> ScanView {
    ScanView {
        id: j.id,
        image_id: j.image_id,
        registry: j.registry,
        repository: j.repository,
        digest: j.digest,
        tag: j.tag,
        platform: j.platform,
        reason: j.reason,
        state: j.state,
        attempts: j.attempts,
        error: j.error,
        created_at: time(j.created_at),
        run_at: time(j.run_at),
        started_at: time_opt(j.started_at),
        finished_at: time_opt(j.finished_at),
    }
}

#[derive(Serialize)]
struct TokenView {
    id: i64,
    name: String,
    role: Role,
    created_at: String,
    last_used_at: Option<String>,
    revoked_at: Option<String>,
}

fn token_view(t: bulkhead_store::TokenInfo) -> TokenView {
    TokenView {
        id: t.id,
        name: t.name,
        role: t.role,
        created_at: time(t.created_at),
        last_used_at: time_opt(t.last_used_at),
        revoked_at: time_opt(t.revoked_at),
    }
}

// ---- probes and metrics ------------------------------------------------------------------

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> Response {
    let store = match state.store.schema_version().await {
        Ok(v) => json!({"ok": true, "schema_version": v}),
        Err(e) => json!({"ok": false, "error": e.to_string()}),
    };
    let db = state.db_path.is_file();
    let advisory_db = json!({"ok": db, "path": state.db_path.display().to_string()});
    let ready = store["ok"] == json!(true) && db;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": {"store": store, "advisory_db": advisory_db},
    });
    (status, Json(body)).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    match state.store.stats(now_ms()).await {
        Ok(stats) => state.metrics.set_store_stats(&stats),
        Err(e) => tracing::warn!("metrics: cannot read the store's counts: {e}"),
    }
    match state.metrics.render() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "cannot render the metrics",
        )
        .into_response(),
    }
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

// ---- reads -------------------------------------------------------------------------------

async fn whoami(Extension(p): Extension<Principal>) -> Json<serde_json::Value> {
    Json(json!({"tenant": p.tenant_name, "role": p.role, "token_id": p.token_id}))
}

/// The tenant's counts: images by health, jobs by state, findings by severity.
async fn summary(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<bulkhead_store::TenantSummary>> {
    Ok(Json(state.store.tenant_summary(p.tenant_id).await?))
}

fn page(limit: Option<u32>, cursor: Option<String>) -> Page {
    Page { limit, cursor }
}

/// A notification delivery (see docs/service.md, Notifications).
#[derive(Serialize)]
struct DeliveryView {
    id: i64,
    url: String,
    /// The body POSTed (the event), as JSON.
    event: serde_json::Value,
    state: bulkhead_store::DeliveryState,
    attempts: i64,
    next_at: Option<String>,
    last_status: Option<i64>,
    last_error: Option<String>,
    created_at: String,
    delivered_at: Option<String>,
}

fn delivery_view(d: bulkhead_store::DeliveryInfo) -> DeliveryView {
    DeliveryView {
        id: d.id,
        url: d.url,
        // The store wrote it from JSON; a body that does not parse is shown as a string.
        event: serde_json::from_str(&d.event).unwrap_or(serde_json::Value::String(d.event)),
        state: d.state,
        attempts: d.attempts,
        next_at: time_opt(d.next_at),
        last_status: d.last_status,
        last_error: d.last_error,
        created_at: time(d.created_at),
        delivered_at: time_opt(d.delivered_at),
    }
}

/// The tenant's notification deliveries, newest first.
async fn deliveries(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> ApiResult<Json<Items<DeliveryView>>> {
    let q = query_of(q)?;
    let result = state
        .store
        .deliveries(p.tenant_id, &page(q.limit, q.cursor))
        .await?;
    Ok(Json(page_of(result, delivery_view)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImagesQuery {
    registry: Option<String>,
    repository: Option<String>,
    repository_prefix: Option<String>,
    health: Option<String>,
    min_severity: Option<String>,
    tag: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

async fn images(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    q: Result<Query<ImagesQuery>, QueryRejection>,
) -> ApiResult<Json<Items<ImageView>>> {
    let q = query_of(q)?;
    let filter = ImageFilter {
        registry: q.registry,
        repository: q.repository,
        repository_prefix: q.repository_prefix,
        health: parse_word("health", q.health)?,
        min_severity: parse_word("min_severity", q.min_severity)?,
        tag: q.tag,
    };
    let result = state
        .store
        .images(p.tenant_id, &filter, &page(q.limit, q.cursor))
        .await?;
    Ok(Json(page_of(result, image_view)))
}

async fn image(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    id: Result<Path<i64>, PathRejection>,
) -> ApiResult<Json<ImageView>> {
    let id = id_of(id)?;
    let image = state
        .store
        .image(p.tenant_id, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(image_view(image)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FindingsQuery {
    min_severity: Option<String>,
    fixable: Option<bool>,
    package: Option<String>,
    vuln_id: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

async fn findings(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    id: Result<Path<i64>, PathRejection>,
    q: Result<Query<FindingsQuery>, QueryRejection>,
) -> ApiResult<Json<Items<FindingView>>> {
    let id = id_of(id)?;
    let q = query_of(q)?;
    // An image the caller cannot see has no findings to list, and says so like any
    // unknown id (the store would give an empty page, which looks like "no findings").
    state
        .store
        .image(p.tenant_id, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let filter = FindingFilter {
        image_id: Some(id),
        min_severity: parse_word("min_severity", q.min_severity)?,
        fixable: q.fixable,
        package: q.package,
        vuln_id: q.vuln_id,
    };
    let result = state
        .store
        .findings(p.tenant_id, &filter, &page(q.limit, q.cursor))
        .await?;
    Ok(Json(page_of(result, finding_view)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

async fn packages(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    id: Result<Path<i64>, PathRejection>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> ApiResult<Json<Items<bulkhead_store::Package>>> {
    let id = id_of(id)?;
    let q = query_of(q)?;
    state
        .store
        .image(p.tenant_id, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let result = state
        .store
        .packages(p.tenant_id, id, &page(q.limit, q.cursor))
        .await?;
    Ok(Json(page_of(result, |x| x)))
}

async fn recommendations(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> ApiResult<Json<Items<bulkhead_store::RecommendationGroup>>> {
    let q = query_of(q)?;
    let result = state
        .store
        .recommendations(p.tenant_id, &page(q.limit, q.cursor))
        .await?;
    Ok(Json(page_of(result, |x| x)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScansQuery {
    state: Option<String>,
    image_id: Option<i64>,
    repository: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

async fn scans(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    q: Result<Query<ScansQuery>, QueryRejection>,
) -> ApiResult<Json<Items<ScanView>>> {
    let q = query_of(q)?;
    let filter = ScanFilter {
        state: parse_word("state", q.state)?,
        image_id: q.image_id,
        repository: q.repository,
    };
    let result = state
        .store
        .scans(p.tenant_id, &filter, &page(q.limit, q.cursor))
        .await?;
    Ok(Json(page_of(result, scan_view)))
}

async fn scan(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    id: Result<Path<i64>, PathRejection>,
) -> ApiResult<Json<ScanView>> {
    let id = id_of(id)?;
    let job = state
        .store
        .scan(p.tenant_id, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(scan_view(job)))
}

// ---- manual scans ------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScanRequest {
    registry: String,
    repository: String,
    digest: Option<String>,
    tag: Option<String>,
}

async fn create_scan(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    body: Result<Json<ScanRequest>, JsonRejection>,
) -> ApiResult<Response> {
    let req = json_of(body)?;
    let reference = match (&req.digest, &req.tag) {
        (Some(d), None) if webhook::valid_digest(d) => d.clone(),
        (None, Some(t)) if webhook::valid_tag(t) => t.clone(),
        (Some(_), None) => return Err(ApiError::bad_request("digest: expected sha256:<64 hex>")),
        (None, Some(_)) => return Err(ApiError::bad_request("tag: not a valid tag")),
        _ => return Err(ApiError::bad_request("give exactly one of digest and tag")),
    };
    if !webhook::valid_repository(&req.repository) {
        return Err(ApiError::bad_request(
            "repository: not a valid repository name",
        ));
    }
    // An unknown registry, a repository of another tenant and one nobody owns all look
    // alike: the caller learns nothing about what it does not own.
    let Some(registry) = state.config.registry(&req.registry) else {
        return Err(ApiError::not_found());
    };
    if state
        .store
        .owner_of(&registry.name, &req.repository)
        .await?
        != Some(p.tenant_id)
    {
        return Err(ApiError::not_found());
    }
    let found = super::registry::inspect(registry, &req.repository, &reference)
        .await
        .map_err(|e| match e {
            bulkhead_scan::source::SourceError::NotFound { .. } => ApiError::not_found(),
            e if super::registry::transient(&e) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "registry_unavailable",
                format!("the registry did not answer: {e}"),
            ),
            e => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "registry_error",
                format!("the registry refused: {e}"),
            ),
        })?;
    if found.manifests.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unsupported",
            format!("{} is an index without image manifests", found.digest),
        ));
    }
    let now = now_ms();
    let mut items = Vec::new();
    for m in found.manifests {
        let enqueued = state
            .store
            .enqueue(NewJob {
                tenant_id: p.tenant_id,
                registry: registry.name.clone(),
                repository: req.repository.clone(),
                digest: m.digest,
                tag: req.tag.clone(),
                media_type: Some(m.media_type),
                platform: m.platform,
                reason: Reason::Manual,
                run_at: now,
                now,
            })
            .await?;
        if let Some(job) = state.store.scan(p.tenant_id, enqueued.job_id()).await? {
            items.push(json!({
                "coalesced": matches!(enqueued, Enqueued::Coalesced(_)),
                "scan": scan_view(job),
            }));
        }
    }
    state.wake.notify_waiters();
    Ok((StatusCode::ACCEPTED, Json(json!({"items": items}))).into_response())
}

// ---- ownership and tokens ----------------------------------------------------------------

async fn ownership(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<serde_json::Value>> {
    let items = state.store.ownership(p.tenant_id).await?;
    Ok(Json(json!({"items": items, "next_cursor": null})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OwnershipRequest {
    registry: String,
    #[serde(default)]
    prefix: String,
}

async fn add_ownership(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    body: Result<Json<OwnershipRequest>, JsonRejection>,
) -> ApiResult<Response> {
    let req = json_of(body)?;
    if state.config.registry(&req.registry).is_none() {
        return Err(ApiError::bad_request(format!(
            "registry: {:?} is not a configured registry",
            req.registry
        )));
    }
    let prefix = req.prefix.trim_matches('/').to_string();
    if !prefix.is_empty() && !webhook::valid_repository(&prefix) {
        return Err(ApiError::bad_request(
            "prefix: not a repository path (lowercase components joined by '/')",
        ));
    }
    let created = state
        .store
        .add_ownership(p.tenant_id, &req.registry, &prefix)
        .await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

async fn remove_ownership(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    id: Result<Path<i64>, PathRejection>,
) -> ApiResult<StatusCode> {
    let id = id_of(id)?;
    if state.store.remove_ownership(p.tenant_id, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found())
    }
}

async fn tokens(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<Items<TokenView>>> {
    let items = state.store.tokens(p.tenant_id).await?;
    Ok(Json(Items {
        items: items.into_iter().map(token_view).collect(),
        next_cursor: None,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    name: String,
    role: String,
}

async fn create_token(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    body: Result<Json<TokenRequest>, JsonRejection>,
) -> ApiResult<Response> {
    let req = json_of(body)?;
    let role: Role = req
        .role
        .parse()
        .map_err(|e| ApiError::bad_request(format!("role: {e}")))?;
    if req.name.is_empty() || req.name.len() > 200 || req.name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "name: 1 to 200 characters, no control characters",
        ));
    }
    let created = state
        .store
        .create_token(&p.tenant_name, role, &req.name, now_ms())
        .await?;
    let body = json!({"id": created.id, "name": req.name, "role": role, "token": created.secret});
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn revoke_token(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    id: Result<Path<i64>, PathRejection>,
) -> ApiResult<StatusCode> {
    let id = id_of(id)?;
    if state
        .store
        .revoke_token(Some(p.tenant_id), id, now_ms())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found())
    }
}

// ---- the query language ------------------------------------------------------------------

/// How a query result is written: `format` of `POST /v1/query`, `--format` of
/// `bulkhead query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueryFormat {
    /// `{"columns": [{"name", "type"}], "rows": [[…]], "truncated": false}`.
    #[default]
    Json,
    /// Aligned columns for a terminal.
    Table,
    /// RFC 4180, with a header line.
    Csv,
}

impl bulkhead_model::Named for QueryFormat {
    const ALL: &'static [Self] = &[QueryFormat::Json, QueryFormat::Table, QueryFormat::Csv];
    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl QueryFormat {
    /// The word of `format` in a request.
    pub fn as_str(self) -> &'static str {
        match self {
            QueryFormat::Json => "json",
            QueryFormat::Table => "table",
            QueryFormat::Csv => "csv",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            QueryFormat::Json => "application/json",
            QueryFormat::Table => "text/plain; charset=utf-8",
            QueryFormat::Csv => "text/csv; charset=utf-8; header=present",
        }
    }
}

/// Why a query has no result.
#[derive(Debug)]
pub enum QueryFailure {
    /// It does not compile (syntax, names, types, the language's limits).
    Compile(bulkhead_query::Error),
    /// It returns more rows than the cap (the value).
    RowCap(u64),
    /// It ran longer than the limit, in seconds, and was stopped.
    Timeout(u64),
    /// The store failed. Its message may be the database's own text: for the log only.
    Store(bulkhead_store::Error),
}

impl QueryFailure {
    /// The `outcome` label of `bulkhead_queries_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            QueryFailure::Compile(e) => match e.kind {
                bulkhead_query::ErrorKind::Syntax => "syntax",
                bulkhead_query::ErrorKind::Semantic => "semantic",
                bulkhead_query::ErrorKind::Limit => "limit",
            },
            QueryFailure::RowCap(_) => "row_cap",
            QueryFailure::Timeout(_) => "timeout",
            QueryFailure::Store(_) => "error",
        }
    }

    /// What to tell a person: a compile error with its line, column, caret and hint; the
    /// cost guards with what to change. Never the database's text.
    pub fn render(&self, text: &str) -> String {
        match self {
            QueryFailure::Compile(e) => e.render(text),
            QueryFailure::RowCap(cap) => {
                format!("error: {}\n", bulkhead_query::row_cap_message(*cap))
            }
            QueryFailure::Timeout(s) => format!("error: {}\n", bulkhead_query::timeout_message(*s)),
            QueryFailure::Store(_) => {
                "error: the query failed in the store (the service's log has the details)\n"
                    .to_string()
            }
        }
    }
}

/// Compiles `text` for `tenant` and the store's dialect, with `now` for `ago()`/`now()`,
/// and runs it within `limits`: what `POST /v1/query` and `bulkhead query --store-config`
/// both do. The tenant is the compiler's `$1`, which scopes every table of the query, and
/// the store refuses to run a query bound to another tenant.
pub async fn run_query(
    store: &Store,
    tenant: bulkhead_store::TenantId,
    text: &str,
    limits: &super::config::QueryConfig,
    now: i64,
) -> Result<bulkhead_store::QueryRows, QueryFailure> {
    let opts = bulkhead_query::Options {
        dialect: store.query_dialect(),
        tenant_id: tenant.0,
        now_ms: now,
        row_cap: limits.row_cap,
    };
    let compiled = bulkhead_query::compile(text, &bulkhead_query::Catalog::bulkhead_v1(), &opts)
        .map_err(QueryFailure::Compile)?;
    let rows = store
        .run_query(tenant, &compiled, limits.timeout())
        .await
        .map_err(|e| match e {
            bulkhead_store::Error::Timeout(_) => QueryFailure::Timeout(limits.timeout_seconds),
            e => QueryFailure::Store(e),
        })?;
    // The cap is an error, not a silently cut result: a partial answer to "which images
    // have X" reads as a complete one.
    if rows.truncated {
        return Err(QueryFailure::RowCap(limits.row_cap));
    }
    Ok(rows)
}

/// A result in `format`: the body of `POST /v1/query` and the output of `bulkhead query`.
pub fn format_query_result(rows: &bulkhead_store::QueryRows, format: QueryFormat) -> String {
    match format {
        QueryFormat::Json => {
            let columns: Vec<serde_json::Value> = rows
                .columns
                .iter()
                .map(|c| json!({"name": c.name, "type": c.ty.name()}))
                .collect();
            json!({"columns": columns, "rows": rows.rows, "truncated": rows.truncated}).to_string()
        }
        QueryFormat::Table => bulkhead_query::format_table(&rows.columns, &rows.rows),
        QueryFormat::Csv => bulkhead_query::format_csv(&rows.columns, &rows.rows),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryRequest {
    query: String,
    #[serde(default)]
    format: QueryFormat,
}

/// `POST /v1/query`: runs a query over the caller's tenant's results. The tenant is the
/// token's; the body cannot name one (unknown fields are refused).
async fn query(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    body: Result<Json<QueryRequest>, JsonRejection>,
) -> Response {
    let req = match json_of(body) {
        Ok(r) => r,
        Err(e) => {
            state.metrics.query_outcome("bad_request");
            return e.into_response();
        }
    };
    let result = run_query(
        &state.store,
        p.tenant_id,
        &req.query,
        &state.config.query,
        now_ms(),
    )
    .await;
    let failure = match result {
        Ok(rows) => {
            state.metrics.query_outcome("ok");
            let body = format_query_result(&rows, req.format);
            return ([(header::CONTENT_TYPE, req.format.content_type())], body).into_response();
        }
        Err(f) => f,
    };
    state.metrics.query_outcome(failure.outcome());
    query_failure_response(failure, &req.query)
}

/// 400 for a query that does not compile (with line, column, the caret rendering and a
/// hint), 422 for the cost guards, 500 (503 when the store is down) for the store, whose
/// own message goes to the log only: it may quote SQL or PostgreSQL internals.
fn query_failure_response(failure: QueryFailure, text: &str) -> Response {
    let rendered = failure.render(text);
    let outcome = failure.outcome();
    let (status, error) = match failure {
        QueryFailure::Compile(e) => {
            let (line, column) = e.line_col(text);
            (
                StatusCode::BAD_REQUEST,
                json!({
                    "code": format!("query_{outcome}"),
                    "message": e.message,
                    "hint": e.hint,
                    "line": line,
                    "column": column,
                    "rendered": rendered,
                }),
            )
        }
        // 422, not 408: clients and proxies retry a 408 by themselves, which would run the
        // same expensive query again.
        QueryFailure::RowCap(cap) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({
                "code": "query_row_cap",
                "message": bulkhead_query::row_cap_message(cap),
                "row_cap": cap,
                "rendered": rendered,
            }),
        ),
        QueryFailure::Timeout(s) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({
                "code": "query_timeout",
                "message": bulkhead_query::timeout_message(s),
                "timeout_seconds": s,
                "rendered": rendered,
            }),
        ),
        // The store being down answers as everywhere else (503, try again).
        QueryFailure::Store(e @ bulkhead_store::Error::Db(_)) => {
            return ApiError::from(e).into_response();
        }
        QueryFailure::Store(e) => {
            tracing::error!("query failed in the store: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({
                    "code": "internal",
                    "message": "the query failed in the store; the service's log has the details",
                }),
            )
        }
    };
    (status, Json(json!({ "error": error }))).into_response()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use axum::body::Body;
    use tower::ServiceExt;

    use super::*;
    use crate::config::Secret;

    #[test]
    fn every_route_has_a_handler_and_is_documented_and_vice_versa() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        assert!(
            doc["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3.1")),
            "{}",
            doc["openapi"]
        );
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                    continue;
                }
                // Public: an operation-level `security` without the bearer scheme (the
                // document's default is bearer).
                let public = op["security"]
                    .as_array()
                    .is_some_and(|s| s.iter().all(|req| req.get("bearer").is_none()));
                documented.insert((method.to_uppercase(), path.clone(), public));
            }
        }
        let mut routed = BTreeSet::new();
        for (method, path, access) in ROUTES {
            assert!(
                handler(method, path).is_some(),
                "{method} {path} has no handler"
            );
            routed.insert((
                method.to_string(),
                path.to_string(),
                *access == Access::Public,
            ));
        }
        let missing: Vec<_> = routed.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&routed).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "routes not in openapi.json (or with other security): {missing:?}; documented but not routed: {extra:?}"
        );
        // Every role-restricted route says which role in its description.
        for (method, path, access) in ROUTES {
            if let Access::Token(role) = access {
                let op = &doc["paths"][path][method.to_lowercase()];
                assert_eq!(
                    op["x-min-role"],
                    role.as_str(),
                    "{method} {path}: x-min-role"
                );
            }
        }
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "bearer abc".parse().expect("header"));
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().expect("header"));
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer ".parse().expect("header"));
        assert_eq!(bearer(&h), None);
    }

    /// A store in a temp dir with two tenants, and the router over it.
    async fn app() -> (tempfile::TempDir, AppState, Router) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(bulkhead_store::StoreConfig::Sqlite {
            path: dir.path().join("s.db"),
        })
        .await
        .expect("store");
        let text = r#"
[store]
kind = "sqlite"
path = "s.db"
[[registries]]
name = "local"
url = "http://127.0.0.1:9"
insecure = true
webhook_secret_env = "HOOK"
[[tenants]]
name = "a"
owns = [{ registry = "local", prefix = "team-a" }]
[[tenants]]
name = "b"
owns = [{ registry = "local", prefix = "team-b" }]
"#;
        let env = |k: &str| (k == "HOOK").then(|| "hook".to_string());
        let config =
            ServeConfig::parse(&dir.path().join("serve.toml"), text, &env).expect("config");
        crate::sync_tenants(&store, &config).await.expect("sync");
        let state = AppState {
            store,
            config: Arc::new(config),
            metrics: Arc::new(Metrics::new()),
            wake: Arc::new(Notify::new()),
            db_path: dir.path().join("advisories.db"),
        };
        let router = router(state.clone());
        (dir, state, router)
    }

    async fn call(
        router: &Router,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (StatusCode, serde_json::Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let body = match body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        let resp = router
            .clone()
            .oneshot(req.body(body).expect("request"))
            .await
            .expect("infallible");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, json)
    }

    async fn token(state: &AppState, tenant: &str, role: Role) -> String {
        state
            .store
            .create_token(tenant, role, "test", now_ms())
            .await
            .expect("token")
            .secret
    }

    #[tokio::test]
    async fn tokens_decide_the_tenant_and_roles_gate_the_routes() {
        let (_dir, state, router) = app().await;
        let reader = token(&state, "a", Role::Reader).await;
        let operator = token(&state, "a", Role::Operator).await;
        let admin_b = token(&state, "b", Role::Admin).await;

        let (s, body) = call(&router, "GET", "/v1/images", None, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"]["code"], "unauthorized");
        let (s, _) = call(&router, "GET", "/v1/images", Some("bh_nope"), None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);

        let (s, body) = call(&router, "GET", "/v1/whoami", Some(&reader), None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(body["tenant"], "a");
        assert_eq!(body["role"], "reader");

        let scan = json!({"registry": "local", "repository": "team-a/app", "tag": "v1"});
        let (s, body) = call(
            &router,
            "POST",
            "/v1/scans",
            Some(&reader),
            Some(scan.clone()),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["error"]["code"], "forbidden");
        let (s, _) = call(&router, "GET", "/v1/tokens", Some(&operator), None).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, body) = call(&router, "GET", "/v1/tokens", Some(&admin_b), None).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        // Tenant b's admin sees b's one token, not a's two.
        assert_eq!(body["items"].as_array().map(Vec::len), Some(1), "{body}");

        // Another tenant's repository is a 404 exactly like an unknown registry, before
        // the registry is ever asked.
        let theirs = json!({"registry": "local", "repository": "team-b/app", "tag": "v1"});
        let unknown = json!({"registry": "nope", "repository": "team-a/app", "tag": "v1"});
        let (s1, b1) = call(&router, "POST", "/v1/scans", Some(&operator), Some(theirs)).await;
        let (s2, b2) = call(&router, "POST", "/v1/scans", Some(&operator), Some(unknown)).await;
        assert_eq!((s1, &b1), (StatusCode::NOT_FOUND, &b2));
        assert_eq!(s2, StatusCode::NOT_FOUND);

        // A query needs a reader token and a query; the body cannot name a tenant.
        let q = json!({"query": "Images | count"});
        let (s, _) = call(&router, "POST", "/v1/query", None, Some(q.clone())).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, body) = call(&router, "POST", "/v1/query", Some(&reader), Some(q)).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let (s, body) = call(&router, "POST", "/v1/query", Some(&reader), Some(json!({}))).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        let tenant = json!({"query": "Images | count", "tenant": "b"});
        let (s, body) = call(&router, "POST", "/v1/query", Some(&reader), Some(tenant)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");

        let revoke = format!("/v1/tokens/{}", 1);
        let (s, _) = call(&router, "DELETE", &revoke, Some(&admin_b), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "token 1 is tenant a's");
    }

    #[tokio::test]
    async fn queries_see_the_callers_tenant_only_and_errors_point_at_the_text() {
        let (_dir, state, router) = app().await;
        let now = now_ms();
        let tenant_a = state
            .store
            .tenant_by_name("a")
            .await
            .expect("store")
            .expect("tenant a")
            .id;
        for (repo, digest) in [("team-a/app", "a"), ("team-a/web", "b")] {
            state
                .store
                .enqueue(NewJob {
                    tenant_id: tenant_a,
                    registry: "local".into(),
                    repository: repo.into(),
                    digest: format!("sha256:{}", digest.repeat(64)),
                    tag: Some("v1".into()),
                    media_type: None,
                    platform: None,
                    reason: Reason::Push,
                    run_at: now,
                    now,
                })
                .await
                .expect("enqueue");
        }
        let a = token(&state, "a", Role::Reader).await;
        let b = token(&state, "b", Role::Reader).await;
        let text = "Images | project Repository, Health, Tags | sort by Repository asc";
        let (s, body) = call(
            &router,
            "POST",
            "/v1/query",
            Some(&a),
            Some(json!({"query": text})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert_eq!(
            body,
            json!({
                "columns": [
                    {"name": "Repository", "type": "string"},
                    {"name": "Health", "type": "string"},
                    {"name": "Tags", "type": "dynamic"},
                ],
                "rows": [
                    ["team-a/app", "pending", ["v1"]],
                    ["team-a/web", "pending", ["v1"]],
                ],
                "truncated": false,
            })
        );
        let (s, body) = call(
            &router,
            "POST",
            "/v1/query",
            Some(&b),
            Some(json!({"query": text})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert_eq!(body["rows"], json!([]), "tenant b has no images");

        // A misspelt column: 400 with where, what and a suggestion.
        let bad = "Images\n| where Helth == 'pending'";
        let (s, body) = call(
            &router,
            "POST",
            "/v1/query",
            Some(&a),
            Some(json!({"query": bad})),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        let e = &body["error"];
        assert_eq!(e["code"], "query_semantic", "{body}");
        assert_eq!(
            (e["line"].clone(), e["column"].clone()),
            (json!(2), json!(9)),
            "{body}"
        );
        assert_eq!(e["hint"], "did you mean 'Health'?", "{body}");
        assert!(
            e["rendered"].as_str().is_some_and(
                |r| r.contains("2 | | where Helth") && r.contains("\n  |         ^^^^^\n")
            ),
            "{body}"
        );
        let (s, body) = call(
            &router,
            "POST",
            "/v1/query",
            Some(&a),
            Some(json!({"query": "Images |"})),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"]["code"], "query_syntax", "{body}");

        // CSV and the table, on request.
        let req = Request::builder()
            .method("POST")
            .uri("/v1/query")
            .header(header::AUTHORIZATION, format!("Bearer {a}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                json!({"query": "Images | project Repository | sort by Repository asc", "format": "csv"})
                    .to_string(),
            ))
            .expect("request");
        let resp = router.clone().oneshot(req).await.expect("infallible");
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(
            resp.headers()[header::CONTENT_TYPE]
                .to_str()
                .is_ok_and(|t| t.starts_with("text/csv"))
        );
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        assert_eq!(&bytes[..], b"Repository\r\nteam-a/app\r\nteam-a/web\r\n");

        // The row cap is an error that says how to narrow the query, not a cut result.
        let mut config = (*state.config).clone();
        config.query.row_cap = 1;
        let capped = super::router(AppState {
            config: Arc::new(config),
            ..state.clone()
        });
        let (s, body) = call(
            &capped,
            "POST",
            "/v1/query",
            Some(&a),
            Some(json!({"query": "Images"})),
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["code"], "query_row_cap", "{body}");
        assert_eq!(
            body["error"]["message"],
            bulkhead_query::row_cap_message(1),
            "{body}"
        );
        let (s, body) = call(
            &capped,
            "POST",
            "/v1/query",
            Some(&a),
            Some(json!({"query": "Images | take 1"})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "exactly the cap is fine: {body}");

        let text = state.metrics.render().expect("metrics");
        for line in [
            "bulkhead_queries_total{outcome=\"ok\"} 4",
            "bulkhead_queries_total{outcome=\"semantic\"} 1",
            "bulkhead_queries_total{outcome=\"syntax\"} 1",
            "bulkhead_queries_total{outcome=\"row_cap\"} 1",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }

    #[tokio::test]
    async fn another_tenants_image_is_indistinguishable_from_none() {
        let (_dir, state, router) = app().await;
        let now = now_ms();
        let tenant_a = state
            .store
            .tenant_by_name("a")
            .await
            .expect("store")
            .expect("tenant a")
            .id;
        state
            .store
            .enqueue(NewJob {
                tenant_id: tenant_a,
                registry: "local".into(),
                repository: "team-a/app".into(),
                digest: format!("sha256:{}", "a".repeat(64)),
                tag: Some("v1".into()),
                media_type: None,
                platform: None,
                reason: Reason::Push,
                run_at: now,
                now,
            })
            .await
            .expect("enqueue");
        let a = token(&state, "a", Role::Reader).await;
        let b = token(&state, "b", Role::Reader).await;
        let (s, body) = call(&router, "GET", "/v1/images", Some(&a), None).await;
        assert_eq!(s, StatusCode::OK);
        let items = body["items"].as_array().expect("items");
        assert_eq!(items.len(), 1, "{body}");
        assert_eq!(items[0]["health"], "pending");
        assert_eq!(items[0]["tags"], json!(["v1"]));
        let id = items[0]["id"].as_i64().expect("id");

        let (s, body) = call(&router, "GET", "/v1/images", Some(&b), None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(body, json!({"items": [], "next_cursor": null}));
        let (s, body) = call(&router, "GET", "/v1/scans", Some(&b), None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(body["items"], json!([]));

        for suffix in ["", "/findings", "/packages"] {
            let theirs = call(
                &router,
                "GET",
                &format!("/v1/images/{id}{suffix}"),
                Some(&b),
                None,
            )
            .await;
            let none = call(
                &router,
                "GET",
                &format!("/v1/images/999999{suffix}"),
                Some(&b),
                None,
            )
            .await;
            let junk = call(
                &router,
                "GET",
                &format!("/v1/images/x{suffix}"),
                Some(&b),
                None,
            )
            .await;
            assert_eq!(theirs.0, StatusCode::NOT_FOUND, "{suffix}");
            assert_eq!(theirs, none, "{suffix}");
            assert_eq!(theirs, junk, "{suffix}");
            let mine = call(
                &router,
                "GET",
                &format!("/v1/images/{id}{suffix}"),
                Some(&a),
                None,
            )
            .await;
            assert_eq!(mine.0, StatusCode::OK, "{suffix}: {}", mine.1);
        }
        let (s, body) = call(&router, "GET", "/v1/images?health=bogus", Some(&a), None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        let (s, body) = call(&router, "GET", "/v1/images?helth=pending", Some(&a), None).await;
        assert_eq!(
            s,
            StatusCode::BAD_REQUEST,
            "unknown parameters are refused: {body}"
        );
    }

    #[tokio::test]
    async fn the_webhook_enqueues_only_with_the_secret_and_only_for_owners() {
        let (_dir, state, router) = app().await;
        let body = |repo: &str| {
            let mut v: serde_json::Value = serde_json::from_slice(
                &std::fs::read(
                    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                        .join("../../tests/fixtures/registry-events/sample-push-manifest-oci.json"),
                )
                .expect("fixture"),
            )
            .expect("json");
            v["events"][0]["target"]["repository"] = json!(repo);
            v
        };
        let post = |auth: Option<&'static str>, v: serde_json::Value| {
            let router = router.clone();
            async move {
                let mut req = Request::builder()
                    .method("POST")
                    .uri("/v1/webhooks/registry")
                    .header(header::CONTENT_TYPE, webhook::ENVELOPE_MEDIA_TYPE);
                if let Some(a) = auth {
                    req = req.header(header::AUTHORIZATION, a);
                }
                let resp = router
                    .oneshot(req.body(Body::from(v.to_string())).expect("request"))
                    .await
                    .expect("infallible");
                let status = resp.status();
                let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
                    .await
                    .expect("body");
                (
                    status,
                    serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_default(),
                )
            }
        };
        let (s, _) = post(None, body("team-a/app")).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, _) = post(Some("Bearer wrong"), body("team-a/app")).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, b) = post(Some("Bearer hook"), body("team-a/app")).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["enqueued"], 1, "{b}");
        let (s, b) = post(Some("Bearer hook"), body("team-a/app")).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["coalesced"], 1, "the same digest again: {b}");
        let (s, b) = post(Some("Bearer hook"), body("nobody/app")).await;
        assert_eq!(s, StatusCode::OK, "unowned pushes are acknowledged: {b}");
        assert_eq!(b["unowned"], 1, "{b}");
        let text = state.metrics.render().expect("metrics");
        assert!(
            text.contains(
                "bulkhead_webhook_events_total{kind=\"manifest_push\",result=\"unowned\"} 1"
            ),
            "{text}"
        );
        let a = token(&state, "a", Role::Reader).await;
        let (_, imgs) = call(&router, "GET", "/v1/images", Some(&a), None).await;
        assert_eq!(imgs["items"].as_array().map(Vec::len), Some(1), "{imgs}");
        let (_, scans) = call(&router, "GET", "/v1/scans", Some(&a), None).await;
        assert_eq!(scans["items"].as_array().map(Vec::len), Some(1), "{scans}");
        let _ = Secret::new("unused");
    }

    #[tokio::test]
    async fn probes_and_metrics_answer_without_a_token() {
        let (_dir, _state, router) = app().await;
        let (s, _) = call(&router, "GET", "/healthz", None, None).await;
        assert_eq!(s, StatusCode::OK);
        let (s, body) = call(&router, "GET", "/readyz", None, None).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "no advisory db: {body}");
        assert_eq!(body["checks"]["store"]["ok"], true, "{body}");
        let (s, body) = call(&router, "GET", "/v1/openapi.json", None, None).await;
        assert_eq!(s, StatusCode::OK);
        assert!(body["paths"].is_object());
        let (s, body) = call(&router, "GET", "/nope", None, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], "not_found");
    }
}

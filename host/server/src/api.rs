//! The REST API (JSON; described by `GET /v1/openapi.json`, which [`crate::openapi`]
//! generates from [`ROUTES`] and the types of the answers).
//!
//! * Every `/v1` route but the webhook and the OpenAPI document needs
//!   `Authorization: Bearer <token>`: a missing, unknown or revoked token is a 401, a role
//!   below the route's minimum ([`Route::access`]) a 403. The token decides the tenant; no
//!   request names one, and every read passes the caller's tenant to the store, which
//!   filters in SQL.
//! * Another tenant's image or scan is a 404 with exactly the body of an id that does not
//!   exist ([`ApiError::not_found`]), also for malformed ids.
//! * Errors are `{"error": {"code", "message"}}`; lists are `{"items", "next_cursor"}`
//!   with `limit` and `cursor` ([`Listed`]); times are RFC 3339.
//! * [`ROUTES`] is the one definition of each route: method, path, minimum role, handler
//!   and documentation. The router, the authentication layer and the OpenAPI document are
//!   all made from it, so they cannot disagree.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Extension, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use bulkhead_store::{
    Enqueued, FindingFilter, ImageFilter, ImageHealth, JobState, NewJob, Page, PageOf, Principal,
    Reason, Role, ScanFilter, Severity, Store, now_ms, rfc3339,
};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Notify;

use super::config::ServeConfig;
use super::metrics::Metrics;
use super::openapi::{Answer, Doc, Extra, schema};
use super::webhook;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token (probes, metrics, the OpenAPI document; the webhook has its own secret).
    Public,
    /// A token with at least this role.
    Token(Role),
}

/// An HTTP method a route answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
    Delete,
}

impl Verb {
    /// The method's name in OpenAPI's spelling (`get`).
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Post => "post",
            Verb::Delete => "delete",
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
            Verb::Delete => MethodFilter::DELETE,
        }
    }
}

/// One route: everything about it in one place.
pub struct Route {
    pub verb: Verb,
    /// axum's path syntax, which is also OpenAPI's (`/v1/images/{id}`).
    pub path: &'static str,
    pub access: Access,
    /// The handler for `verb` (with its own layers, e.g. a body limit).
    pub handler: fn(MethodFilter) -> MethodRouter<AppState>,
    pub doc: Doc,
}

const READER: Access = Access::Token(Role::Reader);
const OPERATOR: Access = Access::Token(Role::Operator);
const ADMIN: Access = Access::Token(Role::Admin);

/// Every route of the service.
pub static ROUTES: &[Route] = &[
    Route {
        verb: Verb::Get,
        path: "/healthz",
        access: Access::Public,
        handler: |m| on(m, healthz),
        doc: Doc {
            tag: "probes",
            summary: "Liveness: the process answers.",
            ok: Answer::Json(200, "Alive.", schema::<serde_json::Value>),
            ..Doc::DEFAULT
        },
    },
    Route {
        verb: Verb::Get,
        path: "/readyz",
        access: Access::Public,
        handler: |m| on(m, readyz),
        doc: Doc {
            tag: "probes",
            summary: "Readiness: the store answers and the advisory database exists.",
            description: "Without authentication, so it says no more than ready or not and \
                which check failed: no path, no error text (those are in the log).",
            ok: Answer::Json(200, "Ready, with each check.", schema::<Readiness>),
            extra: &[Extra::json(
                503,
                "Not ready, with each check.",
                schema::<Readiness>,
            )],
            ..Doc::DEFAULT
        },
    },
    Route {
        verb: Verb::Get,
        path: "/metrics",
        access: Access::Public,
        handler: |m| on(m, metrics),
        doc: Doc {
            tag: "probes",
            summary: "Prometheus metrics (OpenMetrics text): queue depth by state, scan \
                durations, scans by outcome, webhook events by kind and result.",
            description: "Open unless the service has a metrics token \
                (`server.metrics_token_env`/`_file`): then `Authorization: Bearer <metrics \
                token>` (401 without it). With `server.metrics_listen` it is served on that \
                address only, and this one answers 404.",
            ok: Answer::Text(
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                "The metrics.",
            ),
            extra: &[Extra::error(
                401,
                "A metrics token is configured and the request does not present it.",
            )],
            ..Doc::DEFAULT
        },
    },
    Route {
        verb: Verb::Get,
        path: "/v1/openapi.json",
        access: Access::Public,
        handler: |m| on(m, openapi),
        doc: Doc {
            tag: "meta",
            summary: "This document.",
            ok: Answer::Json(
                200,
                "The OpenAPI 3.1 document.",
                schema::<serde_json::Value>,
            ),
            ..Doc::DEFAULT
        },
    },
    Route {
        verb: Verb::Post,
        path: "/v1/webhooks/registry",
        access: Access::Public,
        handler: |m| {
            on(m, webhook::receive).layer(axum::extract::DefaultBodyLimit::max(
                webhook::MAX_BODY_BYTES,
            ))
        },
        doc: Doc {
            tag: "webhooks",
            summary: "Registry notifications (Docker Distribution envelopes, Harbor webhooks).",
            description: "Authenticated by the registry's webhook secret in the \
                `Authorization` header (bare or `Bearer <secret>`), not by a token; \
                `?registry=NAME` tries only that registry's secret. Pushes of repositories \
                a tenant owns are enqueued; everything else is counted and ignored. The \
                body is limited to 4 MiB and read only once the secret matched.",
            query: Some(schema::<webhook::WebhookQuery>),
            secret: true,
            body: Some(schema::<serde_json::Value>),
            ok: Answer::Json(
                200,
                "What was done with the envelope's events.",
                schema::<webhook::Summary>,
            ),
            extra: &[
                Extra::error(401, "No configured registry has this secret."),
                Extra::error(503, "The store is unavailable; the registry retries."),
            ],
        },
    },
    Route {
        verb: Verb::Get,
        path: "/v1/whoami",
        access: READER,
        handler: |m| on(m, whoami),
        doc: Doc {
            tag: "auth",
            summary: "The caller's tenant and role.",
            ok: Answer::Json(200, "The principal.", schema::<WhoAmI>),
            ..Doc::DEFAULT
        },
    },
    Route {
        verb: Verb::Get,
        path: "/v1/summary",
        access: READER,
        handler: |m| on(m, summary),
        doc: Doc {
            tag: "images",
            summary: "The tenant's counts: images by health, scan jobs by state, findings by \
                severity.",
            ok: Answer::Json(
                200,
                "Counts (every key present, 0 when none).",
                schema::<bulkhead_store::TenantSummary>,
            ),
            ..Doc::DEFAULT
        },
    },
    Route {
        verb: Verb::Get,
        path: "/v1/images",
        access: READER,
        handler: |m| on(m, images),
        doc: Doc {
            tag: "images",
            summary: "The tenant's images, newest first.",
            query: Some(schema::<ImagesQuery>),
            ok: Answer::List(schema::<ImageView>),
            ..Doc::DEFAULT
        },
    },
    Route {
        verb: Verb::Get,
        path: "/v1/images/{id}",
        access: READER,
        handler: |m| on(m, image),
        doc: Doc {
            tag: "images",
            summary: "One image with its health and severity counts.",
            ok: Answer::Json(200, "The image.", schema::<ImageView>),
            ..Doc::DEFAULT
        },
    },
    Route {
        verb: Verb::Get,
        path: "/v1/images/{id}/findings",
        access: READER,
        handler: |m| on(m, findings),
        doc: Doc {
            tag: "images",
            summary: "An image's findings, worst first.",
            query: Some(schema::<FindingsQuery>),
            ok: Answer::List(schema::<FindingView>),
            ..Doc::DEFAULT
        },
    },
    Route {
        verb: Verb::Get,
        path: "/v1/images/{id}/packages",
        access: READER,
        handler: |m| on(m, packages),
        doc: Doc {
            tag: "images",
            summary: "An image's packages, in the order they were recorded.",
            query: Some(schema::<NoFilter>),
            ok: Answer::List(schema::<bulkhead_store::Package>),
            ..Doc::DEFAULT
        },
    },
    Route {
        verb: Verb::Get,
        path: "/v1/recommendations",
        access: READER,
        handler: |m| on(m, recommendations),
        doc: Doc {
            tag: "images",
            summary: "Upgrades across the tenant's unhealthy images, grouped by package and \
                fixed version, worst first.",
            query: Some(schema::<NoFilter>),
            ok: Answer::List(schema::<bulkhead_store::RecommendationGroup>),
            ..Doc::DEFAULT
        },
    },
    Route {
        verb: Verb::Get,
        path: "/v1/scans",
        access: READER,
        handler: |m| on(m, scans),
        doc: Doc {
            tag: "scans",
            summary: "The tenant's scan jobs, newest first.",
            query: Some(schema::<ScansQuery>),
            ok: Answer::List(schema::<ScanView>),
            ..Doc::DEFAULT
        },
    },
    Route {
        verb: Verb::Post,
        path: "/v1/scans",
        access: OPERATOR,
        handler: |m| on(m, create_scan),
        doc: Doc {
            tag: "scans",
            summary: "Scan an image of the tenant now (a tag is resolved in the registry).",
            description: "An index enqueues one scan per platform. A scan of a digest that \
                is already queued is coalesced with it. An unknown registry and a \
                repository the tenant does not own answer 404 alike.",
            body: Some(schema::<ScanRequest>),
            ok: Answer::Json(202, "The enqueued scans.", schema::<ScansCreated>),
            extra: &[
                Extra::error(404, "No such image, or not the tenant's."),
                Extra::error(422, "An index without image manifests."),
                Extra::error(
                    429,
                    "The tenant asked for its `[server] scans_per_minute` this minute \
                     (`rate_limited`); `Retry-After` says when to ask again.",
                ),
                Extra::error(502, "The registry refused or did not answer."),
            ],
            ..Doc::DEFAULT
        },
    },
    Route {
        verb: Verb::Get,
        path: "/v1/scans/{id}",
        access: READER,
        handler: |m| on(m, scan),
        doc: Doc {
            tag: "scans",
            summary: "One scan job.",
            ok: Answer::Json(200, "The scan.", schema::<ScanView>),
            ..Doc::DEFAULT
        },
    },
    Route {
        verb: Verb::Get,
        path: "/v1/ownership",
        access: READER,
        handler: |m| on(m, ownership),
        doc: Doc {
            tag: "ownership",
            summary: "The tenant's ownership entries (registry + repository prefix).",
            ok: Answer::Json(
                200,
                "Every entry, in one page.",
                schema::<Items<OwnershipView>>,
            ),
            ..Doc::DEFAULT
        },
    },
    Route {
        verb: Verb::Post,
        path: "/v1/ownership",
        access: ADMIN,
        handler: |m| on(m, add_ownership),
        doc: Doc {
            tag: "ownership",
            summary: "Claim a repository prefix on a configured registry.",
            description: "A prefix that equals, holds or lies inside a prefix another \
                tenant owns on that registry is refused (409, naming neither); so is one \
                beyond the tenant's `server.max_ownership_entries`. The change is recorded \
                with the token that made it (`GET /v1/ownership/changes`).",
            body: Some(schema::<OwnershipRequest>),
            ok: Answer::Json(201, "The new entry.", schema::<OwnershipView>),
            extra: &[Extra::error(
                409,
                "The prefix overlaps one that is owned, or the tenant has the most entries \
                 allowed.",
            )],
            ..Doc::DEFAULT
        },
    },
    Route {
        verb: Verb::Get,
        path: "/v1/ownership/changes",
        access: ADMIN,
        handler: |m| on(m, ownership_changes),
        doc: Doc {
            tag: "ownership",
            summary: "The tenant's ownership changes made through the API (who, when), \
                newest first.",
            query: Some(schema::<NoFilter>),
            ok: Answer::List(schema::<OwnershipChangeView>),
            ..Doc::DEFAULT
        },
    },
    Route {
        verb: Verb::Delete,
        path: "/v1/ownership/{id}",
        access: ADMIN,
        handler: |m| on(m, remove_ownership),
        doc: Doc {
            tag: "ownership",
            summary: "Remove one of the tenant's ownership entries (recorded).",
            ok: Answer::Empty(204, "Removed."),
            ..Doc::DEFAULT
        },
    },
    Route {
        verb: Verb::Get,
        path: "/v1/tokens",
        access: ADMIN,
        handler: |m| on(m, tokens),
        doc: Doc {
            tag: "auth",
            summary: "The tenant's tokens (never their secrets).",
            ok: Answer::Json(200, "Every token, in one page.", schema::<Items<TokenView>>),
            ..Doc::DEFAULT
        },
    },
    Route {
        verb: Verb::Post,
        path: "/v1/tokens",
        access: ADMIN,
        handler: |m| on(m, create_token),
        doc: Doc {
            tag: "auth",
            summary: "Create a token for the caller's tenant; the secret is in this answer \
                only.",
            body: Some(schema::<TokenRequest>),
            ok: Answer::Json(201, "The token, with its secret.", schema::<TokenCreated>),
            ..Doc::DEFAULT
        },
    },
    Route {
        verb: Verb::Delete,
        path: "/v1/tokens/{id}",
        access: ADMIN,
        handler: |m| on(m, revoke_token),
        doc: Doc {
            tag: "auth",
            summary: "Revoke one of the tenant's tokens.",
            ok: Answer::Empty(204, "Revoked."),
            ..Doc::DEFAULT
        },
    },
    Route {
        verb: Verb::Get,
        path: "/v1/deliveries",
        access: OPERATOR,
        handler: |m| on(m, deliveries),
        doc: Doc {
            tag: "notifications",
            summary: "The tenant's notification deliveries, newest first.",
            description: "Each delivery is one event POSTed (or to be POSTed) to the \
                tenant's notification URL, signed with its secret (`X-Bulkhead-Signature`), \
                retried with backoff until delivered or given up.",
            query: Some(schema::<NoFilter>),
            ok: Answer::List(schema::<DeliveryView>),
            ..Doc::DEFAULT
        },
    },
    Route {
        verb: Verb::Post,
        path: "/v1/query",
        access: READER,
        handler: |m| on(m, query),
        doc: Doc {
            tag: "query",
            summary: "Run a query over the tenant's scan results.",
            description: "The query language (a subset of Kusto's KQL; docs/query.md): a \
                table (Images, Findings, Packages, Recommendations, Scans, HealthEvents), \
                then operators. Every table holds the caller's tenant's rows only: the \
                tenant is the token's, bound by the server around the query, and the body \
                cannot name one. A query that does not compile answers 400 with the line, \
                column, a caret rendering and a hint; one returning more rows than the \
                service's `[query] row_cap` (default 10000), running longer than \
                `[query] timeout_seconds` (default 10, counted from the request's arrival), \
                returning more than `[query] max_result_bytes` (default 4 MiB) or building a \
                value longer than `[query] max_value_bytes` (default 1 MiB) answers 422 with \
                what to change. A tenant with `[query] max_concurrent_per_tenant` (default 2) \
                queries running, or past `[query] queries_per_minute` (default 120), gets \
                429 with `Retry-After`.",
            body: Some(schema::<QueryRequest>),
            ok: Answer::Query,
            extra: &[
                Extra::json(
                    400,
                    "The body is not a query request, or the query does not compile \
                     (`code` query_syntax, query_semantic or query_limit).",
                    schema::<QueryErrorBody>,
                ),
                Extra::json(
                    422,
                    "A cost guard stopped the query: `query_row_cap` (more rows than the \
                     cap), `query_timeout` (it ran too long), `query_result_bytes` (the \
                     result is too large) or `query_value_bytes` (a value is too long).",
                    schema::<QueryErrorBody>,
                ),
                Extra::json(
                    429,
                    "The tenant has as many queries running as it may (`query_busy`), or \
                     sent as many this minute as it may (`query_rate`); `Retry-After` says \
                     when to try again.",
                    schema::<QueryErrorBody>,
                ),
                Extra::error(
                    500,
                    "The query failed in the store (the log has the details).",
                ),
                Extra::error(503, "The store is unavailable; try again."),
            ],
            ..Doc::DEFAULT
        },
    },
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
    pub db_path: std::path::PathBuf,
    /// Per-tenant limits (queries at once).
    pub limits: Arc<super::limits::Limits>,
}

/// The router of every route in [`ROUTES`], each behind the authentication its
/// [`Route::access`] asks for.
pub fn router(state: AppState) -> Router {
    let mut r: Router<AppState> = Router::new();
    // Metrics on an address of their own are not on this one.
    let separate_metrics = state.config.server.metrics_listen.is_some();
    for route in ROUTES {
        if separate_metrics && route.path == METRICS_PATH {
            continue;
        }
        let mut h = (route.handler)(route.verb.filter());
        if let Access::Token(min) = route.access {
            h = h.route_layer(middleware::from_fn_with_state(
                Guard {
                    store: state.store.clone(),
                    min,
                },
                authenticate,
            ));
        }
        r = r.route(route.path, h);
    }
    r.fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .with_state(state)
}

const METRICS_PATH: &str = "/metrics";

/// The router of `server.metrics_listen`: `/metrics` only.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route(METRICS_PATH, axum::routing::get(metrics))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .with_state(state)
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

/// The body of every error answer but the query's ([`QueryErrorBody`]).
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Error")]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, JsonSchema)]
pub struct ErrorDetail {
    /// bad_request, unauthorized, forbidden, not_found, conflict, method_not_allowed,
    /// unsupported, registry_unavailable, registry_error, store_unavailable, internal,
    /// rate_limited, overloaded.
    pub code: String,
    /// What failed and what to do, for a person.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        });
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

/// The query string of a listing: its filters `Q` and the page (`limit`, `cursor`), which
/// every listing takes. Unknown parameters are refused (400), like unknown body fields.
pub struct Listed<Q> {
    pub filter: Q,
    pub page: Page,
}

/// `limit` and `cursor`, described once for the OpenAPI document.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    /// Page size, 1–500 (default 50).
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A listing without filters.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(inline)]
pub struct NoFilter {}

impl<Q: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Listed<Q> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // Two passes over the pairs: serde's `flatten` cannot read numbers out of a query
        // string, so the page's parameters are taken out first and the rest must be `Q`'s.
        let bad =
            |e: serde_urlencoded::de::Error| ApiError::bad_request(format!("query string: {e}"));
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(parts.uri.query().unwrap_or("")).map_err(bad)?;
        let (page, rest): (Vec<_>, Vec<_>) = pairs
            .into_iter()
            .partition(|(k, _)| k == "limit" || k == "cursor");
        let encode = |pairs: &[(String, String)]| {
            serde_urlencoded::to_string(pairs)
                .map_err(|e| ApiError::bad_request(format!("query string: {e}")))
        };
        let page: PageParams = serde_urlencoded::from_str(&encode(&page)?).map_err(bad)?;
        let filter: Q = serde_urlencoded::from_str(&encode(&rest)?).map_err(bad)?;
        Ok(Listed {
            filter,
            page: Page {
                limit: page.limit,
                cursor: page.cursor,
            },
        })
    }
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

/// What the authentication layer of a route needs: the store and the route's minimum role.
#[derive(Clone)]
struct Guard {
    store: Store,
    min: Role,
}

/// The bearer token of a request, if it has one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

async fn authenticate(State(guard): State<Guard>, mut req: Request, next: Next) -> Response {
    let Guard { store, min } = guard;
    let Some(token) = bearer(req.headers()) else {
        return ApiError::unauthorized("an Authorization: Bearer <token> header is required")
            .into_response();
    };
    let principal = match store.authenticate(token, now_ms()).await {
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

/// A page of a listing.
#[derive(Serialize, JsonSchema)]
#[schemars(inline)]
pub struct Items<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

fn page_of<A, B>(p: PageOf<A>, f: impl Fn(A) -> B) -> Items<B> {
    Items {
        items: p.items.into_iter().map(f).collect(),
        next_cursor: p.next_cursor,
    }
}

#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Os")]
struct OsView {
    id: Option<String>,
    version: Option<String>,
    name: Option<String>,
    /// End of security support (RFC 3339).
    eol: Option<String>,
}

#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Image")]
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

#[derive(Serialize, JsonSchema)]
struct Cvss {
    score: Option<f64>,
    vector: Option<String>,
}

#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Finding")]
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

#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Scan")]
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

#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Token")]
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

/// `/readyz`'s answer. It needs no token, so it tells a prober what it needs and nothing
/// an attacker could use: no path, no error text.
#[derive(Serialize, JsonSchema)]
struct Readiness {
    /// `ready` or `not_ready`.
    status: &'static str,
    checks: ReadinessChecks,
}

#[derive(Serialize, JsonSchema)]
struct ReadinessChecks {
    /// `ok`, or `failing`: the store does not answer (the log says why).
    store: &'static str,
    /// `ok`, or `missing`: no advisory database yet (`bulkhead db update` / `db import`).
    advisory_db: &'static str,
}

async fn readyz(State(state): State<AppState>) -> Response {
    let store = match state.store.schema_version().await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!("readyz: the store does not answer: {e}");
            false
        }
    };
    let db = state.db_path.is_file();
    if !db {
        tracing::debug!(
            "readyz: no advisory database at {}",
            state.db_path.display()
        );
    }
    let ready = store && db;
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        checks: ReadinessChecks {
            store: if store { "ok" } else { "failing" },
            advisory_db: if db { "ok" } else { "missing" },
        },
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.config.server.metrics_token {
        // Constant time, like every secret comparison of the service.
        use subtle::ConstantTimeEq;
        let presented = bearer(&headers).unwrap_or("").as_bytes();
        if !bool::from(presented.ct_eq(token.expose().as_bytes())) {
            return ApiError::unauthorized(
                "the metrics need Authorization: Bearer <the metrics token>",
            )
            .into_response();
        }
    }
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
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::openapi::OPENAPI.as_str(),
    )
        .into_response()
}

// ---- reads -------------------------------------------------------------------------------

/// Who the caller is.
#[derive(Serialize, JsonSchema)]
struct WhoAmI {
    /// The token's tenant.
    tenant: String,
    role: Role,
    token_id: i64,
}

async fn whoami(Extension(p): Extension<Principal>) -> Json<WhoAmI> {
    Json(WhoAmI {
        tenant: p.tenant_name,
        role: p.role,
        token_id: p.token_id,
    })
}

/// The tenant's counts: images by health, jobs by state, findings by severity.
async fn summary(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<bulkhead_store::TenantSummary>> {
    Ok(Json(state.store.tenant_summary(p.tenant_id).await?))
}

/// A notification delivery (see docs/service.md, Notifications).
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Delivery")]
struct DeliveryView {
    id: i64,
    url: String,
    /// The body POSTed (the event), as JSON.
    #[schemars(with = "bulkhead_store::NotificationEvent")]
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
    Listed { page, .. }: Listed<NoFilter>,
) -> ApiResult<Json<Items<DeliveryView>>> {
    let result = state.store.deliveries(p.tenant_id, &page).await?;
    Ok(Json(page_of(result, delivery_view)))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(inline)]
struct ImagesQuery {
    /// Exact registry name.
    registry: Option<String>,
    /// Exact repository.
    repository: Option<String>,
    /// Repositories under this prefix.
    repository_prefix: Option<String>,
    /// Exact health.
    #[schemars(with = "Option<ImageHealth>")]
    health: Option<String>,
    /// Images with a finding at or above.
    #[schemars(with = "Option<Severity>")]
    min_severity: Option<String>,
    /// Images pushed with this tag.
    tag: Option<String>,
}

async fn images(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Listed { filter: q, page }: Listed<ImagesQuery>,
) -> ApiResult<Json<Items<ImageView>>> {
    let filter = ImageFilter {
        registry: q.registry,
        repository: q.repository,
        repository_prefix: q.repository_prefix,
        health: parse_word("health", q.health)?,
        min_severity: parse_word("min_severity", q.min_severity)?,
        tag: q.tag,
    };
    let result = state.store.images(p.tenant_id, &filter, &page).await?;
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

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(inline)]
struct FindingsQuery {
    /// Findings at or above.
    #[schemars(with = "Option<Severity>")]
    min_severity: Option<String>,
    /// true: only findings with a fixed version; false: only those without.
    fixable: Option<bool>,
    /// Exact package name.
    package: Option<String>,
    /// The vulnerability id or one of its aliases (CVE-… finds an ALSA-… finding).
    vuln_id: Option<String>,
}

async fn findings(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    id: Result<Path<i64>, PathRejection>,
    Listed { filter: q, page }: Listed<FindingsQuery>,
) -> ApiResult<Json<Items<FindingView>>> {
    let id = id_of(id)?;
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
    let result = state.store.findings(p.tenant_id, &filter, &page).await?;
    Ok(Json(page_of(result, finding_view)))
}

async fn packages(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    id: Result<Path<i64>, PathRejection>,
    Listed { page, .. }: Listed<NoFilter>,
) -> ApiResult<Json<Items<bulkhead_store::Package>>> {
    let id = id_of(id)?;
    state
        .store
        .image(p.tenant_id, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let result = state.store.packages(p.tenant_id, id, &page).await?;
    Ok(Json(page_of(result, |x| x)))
}

async fn recommendations(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Listed { page, .. }: Listed<NoFilter>,
) -> ApiResult<Json<Items<bulkhead_store::RecommendationGroup>>> {
    let result = state.store.recommendations(p.tenant_id, &page).await?;
    Ok(Json(page_of(result, |x| x)))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(inline)]
struct ScansQuery {
    /// Exact state.
    #[schemars(with = "Option<JobState>")]
    state: Option<String>,
    /// Scans of this image.
    image_id: Option<i64>,
    /// Exact repository.
    repository: Option<String>,
}

async fn scans(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Listed { filter: q, page }: Listed<ScansQuery>,
) -> ApiResult<Json<Items<ScanView>>> {
    let filter = ScanFilter {
        state: parse_word("state", q.state)?,
        image_id: q.image_id,
        repository: q.repository,
    };
    let result = state.store.scans(p.tenant_id, &filter, &page).await?;
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

/// A manual scan: exactly one of `digest` and `tag`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ScanRequest {
    /// A configured registry's name.
    registry: String,
    /// A repository the tenant owns.
    repository: String,
    /// `sha256:<64 hex>`.
    digest: Option<String>,
    /// A tag, resolved in the registry.
    tag: Option<String>,
}

/// The scans a manual scan enqueued (one per platform of an index).
#[derive(Serialize, JsonSchema)]
struct ScansCreated {
    items: Vec<ScanCreated>,
}

#[derive(Serialize, JsonSchema)]
struct ScanCreated {
    /// The digest was already queued: this is that scan.
    coalesced: bool,
    scan: ScanView,
}

async fn create_scan(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    body: Result<Json<ScanRequest>, JsonRejection>,
) -> ApiResult<Response> {
    // Each manual scan pulls an image with the service's credentials and takes a worker:
    // a tenant gets its rate, the queue stays everyone's.
    if let Err(wait) = state
        .limits
        .scan_rate
        .take(p.tenant_id, std::time::Instant::now())
    {
        let mut resp = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "this tenant asked for its {} manual scans this minute (the service's \
                 [server] scans_per_minute): ask again after Retry-After seconds",
                state.limits.scan_rate.per_minute()
            ),
        )
        .into_response();
        let retry = crate::limits::retry_after_seconds(wait).to_string();
        if let Ok(v) = header::HeaderValue::from_str(&retry) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Ok(resp);
    }
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
    let found = super::registry::inspect(
        registry,
        &state.config.scan.registry_limits,
        &req.repository,
        &reference,
    )
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
            items.push(ScanCreated {
                coalesced: matches!(enqueued, Enqueued::Coalesced(_)),
                scan: scan_view(job),
            });
        }
    }
    state.wake.notify_waiters();
    Ok((StatusCode::ACCEPTED, Json(ScansCreated { items })).into_response())
}

// ---- ownership and tokens ----------------------------------------------------------------

/// An ownership entry.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Ownership")]
struct OwnershipView {
    id: i64,
    registry: String,
    /// Repository prefix matching whole path segments; empty = the whole registry.
    prefix: String,
    /// `config` (the service's configuration) or `api`.
    origin: String,
    /// When it was added through the API; null for `config`.
    created_at: Option<String>,
    /// The id of the token that added it; null for `config`.
    created_by_token: Option<i64>,
}

fn ownership_view(o: bulkhead_store::Ownership) -> OwnershipView {
    OwnershipView {
        id: o.id,
        registry: o.registry,
        prefix: o.prefix,
        origin: o.origin,
        created_at: time_opt(o.created_at),
        created_by_token: o.created_by_token,
    }
}

/// A recorded ownership change.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "OwnershipChange")]
struct OwnershipChangeView {
    id: i64,
    at: String,
    /// The id of the token that made it.
    token_id: Option<i64>,
    /// `add` or `remove`.
    action: String,
    registry: String,
    prefix: String,
}

async fn ownership(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<Items<OwnershipView>>> {
    let items = state.store.ownership(p.tenant_id).await?;
    Ok(Json(Items {
        items: items.into_iter().map(ownership_view).collect(),
        next_cursor: None,
    }))
}

async fn ownership_changes(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Listed { page, .. }: Listed<NoFilter>,
) -> ApiResult<Json<Items<OwnershipChangeView>>> {
    let result = state.store.ownership_changes(p.tenant_id, &page).await?;
    Ok(Json(page_of(result, |c| OwnershipChangeView {
        id: c.id,
        at: time(c.at),
        token_id: c.token_id,
        action: c.action,
        registry: c.registry,
        prefix: c.prefix,
    })))
}

/// An ownership claim.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct OwnershipRequest {
    /// A configured registry's name.
    registry: String,
    /// Repository prefix matching whole path segments; empty = the whole registry.
    #[serde(default)]
    prefix: String,
}

/// Who makes an ownership change: the request's token, now.
fn actor(p: &Principal) -> bulkhead_store::OwnershipActor {
    bulkhead_store::OwnershipActor {
        token_id: p.token_id,
        at: now_ms(),
    }
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
        .add_ownership(
            p.tenant_id,
            &req.registry,
            &prefix,
            actor(&p),
            state.config.server.max_ownership_entries,
        )
        .await?;
    tracing::info!(
        tenant = %p.tenant_name,
        token = p.token_id,
        "ownership: added {}/{} (entry {})",
        created.registry,
        created.prefix,
        created.id
    );
    Ok((StatusCode::CREATED, Json(ownership_view(created))).into_response())
}

async fn remove_ownership(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    id: Result<Path<i64>, PathRejection>,
) -> ApiResult<StatusCode> {
    let id = id_of(id)?;
    if state
        .store
        .remove_ownership(p.tenant_id, id, actor(&p))
        .await?
    {
        tracing::info!(tenant = %p.tenant_name, token = p.token_id, "ownership: removed entry {id}");
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

/// A new token.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    /// 1 to 200 characters, no control characters.
    name: String,
    #[schemars(with = "Role")]
    role: String,
}

/// A created token: the secret is shown here only.
#[derive(Serialize, JsonSchema)]
struct TokenCreated {
    id: i64,
    name: String,
    role: Role,
    /// The bearer token.
    token: String,
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
    let body = TokenCreated {
        id: created.id,
        name: req.name,
        role,
        token: created.secret,
    };
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
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
    /// Its result grew past `[query] max_result_bytes` (the value).
    ResultBytes(u64),
    /// It built a value longer than `[query] max_value_bytes` (the value).
    ValueBytes(u64),
    /// The tenant already has `[query] max_concurrent_per_tenant` (the value) running.
    Busy(usize),
    /// The tenant sent its `[query] queries_per_minute` (the value) this minute; it may
    /// send the next after the duration.
    Rate(u32, std::time::Duration),
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
            QueryFailure::ResultBytes(_) => "result_bytes",
            QueryFailure::ValueBytes(_) => "value_bytes",
            QueryFailure::Busy(_) => "busy",
            QueryFailure::Rate(..) => "rate",
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
            QueryFailure::ResultBytes(n) => {
                format!("error: {}\n", bulkhead_query::result_bytes_message(*n))
            }
            QueryFailure::ValueBytes(n) => {
                format!("error: {}\n", bulkhead_query::value_bytes_message(*n))
            }
            QueryFailure::Busy(n) => format!("error: {}\n", busy_message(*n)),
            QueryFailure::Rate(n, _) => format!("error: {}\n", query_rate_message(*n)),
            QueryFailure::Store(_) => {
                "error: the query failed in the store (the service's log has the details)\n"
                    .to_string()
            }
        }
    }
}

/// What a tenant with too many queries running is told.
fn busy_message(max: usize) -> String {
    format!(
        "this tenant already has {max} queries running (the service's [query] \
         max_concurrent_per_tenant): wait for one to finish and send it again"
    )
}

/// What a tenant past its query rate is told.
fn query_rate_message(per_minute: u32) -> String {
    format!(
        "this tenant sent its {per_minute} queries this minute (the service's [query] \
         queries_per_minute): send it again after Retry-After seconds"
    )
}

/// Compiles `text` for `tenant` and the store's dialect, with `now` for `ago()`/`now()`,
/// and runs it within `limits`, its time counted from `since` (when the request came):
/// what `POST /v1/query` and `bulkhead query --store-config` both do. The tenant is the
/// compiler's `$1`, which scopes every table of the query, and the store refuses to run a
/// query bound to another tenant.
pub async fn run_query(
    store: &Store,
    tenant: bulkhead_store::TenantId,
    text: &str,
    limits: &super::config::QueryConfig,
    now: i64,
    since: std::time::Instant,
) -> Result<bulkhead_store::QueryRows, QueryFailure> {
    let opts = bulkhead_query::Options {
        dialect: store.query_dialect(),
        tenant_id: tenant.0,
        now_ms: now,
        row_cap: limits.row_cap,
        max_value_bytes: Some(limits.max_value_bytes),
    };
    let compiled = bulkhead_query::compile(text, &bulkhead_query::Catalog::bulkhead_v1(), &opts)
        .map_err(QueryFailure::Compile)?;
    let rows = store
        .run_query(tenant, &compiled, limits.limits(since))
        .await
        .map_err(|e| match e {
            bulkhead_store::Error::Timeout(_) => QueryFailure::Timeout(limits.timeout_seconds),
            bulkhead_store::Error::ResultTooLarge(_) => {
                QueryFailure::ResultBytes(limits.max_result_bytes)
            }
            bulkhead_store::Error::ValueTooLarge(_) => {
                QueryFailure::ValueBytes(limits.max_value_bytes)
            }
            e => QueryFailure::Store(e),
        })?;
    // The cap is an error, not a silently cut result: a partial answer to "which images
    // have X" reads as a complete one.
    if rows.truncated {
        return Err(QueryFailure::RowCap(limits.row_cap));
    }
    Ok(rows)
}

/// A query's result as JSON (`format` json).
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "QueryResult")]
pub struct QueryResultBody<'a> {
    pub columns: Vec<QueryColumn>,
    /// One array per row, one value per column: datetimes as RFC 3339 strings, timespans
    /// as `[d.]hh:mm:ss[.fff]`, dynamic values as JSON, null as null.
    pub rows: &'a [Vec<serde_json::Value>],
    /// Always false: a result over the row cap is a 422, never a cut list.
    pub truncated: bool,
}

/// A result column.
#[derive(Serialize, JsonSchema)]
pub struct QueryColumn {
    pub name: String,
    /// string, long, real, bool, datetime, timespan or dynamic.
    #[serde(rename = "type")]
    pub ty: String,
}

/// A result in `format`: the body of `POST /v1/query` and the output of `bulkhead query`.
pub fn format_query_result(rows: &bulkhead_store::QueryRows, format: QueryFormat) -> String {
    match format {
        QueryFormat::Json => {
            let body = QueryResultBody {
                columns: rows
                    .columns
                    .iter()
                    .map(|c| QueryColumn {
                        name: c.name.clone(),
                        ty: c.ty.name().to_string(),
                    })
                    .collect(),
                rows: &rows.rows,
                truncated: rows.truncated,
            };
            serde_json::to_string(&body).unwrap_or_default()
        }
        QueryFormat::Table => bulkhead_query::format_table(&rows.columns, &rows.rows),
        QueryFormat::Csv => bulkhead_query::format_csv(&rows.columns, &rows.rows),
    }
}

/// A query.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct QueryRequest {
    /// The query text, e.g. `Findings | where Severity == 'critical' | summarize count()
    /// by Repository`.
    #[schemars(length(max = 65536))]
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
    // The query's time starts now, before it waits for anything.
    let since = std::time::Instant::now();
    let req = match json_of(body) {
        Ok(r) => r,
        Err(e) => {
            state.metrics.query_outcome("bad_request");
            return e.into_response();
        }
    };
    let limits = &state.config.query;
    if let Err(wait) = state.limits.query_rate.take(p.tenant_id, since) {
        let failure = QueryFailure::Rate(state.limits.query_rate.per_minute(), wait);
        state.metrics.query_outcome(failure.outcome());
        return query_failure_response(failure, &req.query);
    }
    // Past this many queries of the tenant at once, 429: one tenant's slow queries take
    // neither the store's query connections nor the others' turns.
    let Some(_running) = state.limits.queries.try_enter(p.tenant_id) else {
        let failure = QueryFailure::Busy(state.limits.queries.max());
        state.metrics.query_outcome(failure.outcome());
        return query_failure_response(failure, &req.query);
    };
    let result = run_query(
        &state.store,
        p.tenant_id,
        &req.query,
        limits,
        now_ms(),
        since,
    )
    .await;
    let failure = match result {
        Ok(rows) => {
            let body = format_query_result(&rows, req.format);
            // Writing the answer counts against the deadline too.
            if since.elapsed() <= limits.timeout() {
                state.metrics.query_outcome("ok");
                return ([(header::CONTENT_TYPE, req.format.content_type())], body).into_response();
            }
            QueryFailure::Timeout(limits.timeout_seconds)
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
    let rendered = Some(failure.render(text));
    let outcome = failure.outcome();
    let (status, error) = match failure {
        QueryFailure::Compile(e) => {
            let (line, column) = e.line_col(text);
            (
                StatusCode::BAD_REQUEST,
                QueryErrorDetail {
                    code: format!("query_{outcome}"),
                    message: e.message,
                    hint: e.hint,
                    line: Some(line),
                    column: Some(column),
                    rendered,
                    ..QueryErrorDetail::default()
                },
            )
        }
        // 422, not 408: clients and proxies retry a 408 by themselves, which would run the
        // same expensive query again.
        QueryFailure::RowCap(cap) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            QueryErrorDetail {
                code: "query_row_cap".into(),
                message: bulkhead_query::row_cap_message(cap),
                row_cap: Some(cap),
                rendered,
                ..QueryErrorDetail::default()
            },
        ),
        QueryFailure::Timeout(s) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            QueryErrorDetail {
                code: "query_timeout".into(),
                message: bulkhead_query::timeout_message(s),
                timeout_seconds: Some(s),
                rendered,
                ..QueryErrorDetail::default()
            },
        ),
        QueryFailure::ResultBytes(n) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            QueryErrorDetail {
                code: "query_result_bytes".into(),
                message: bulkhead_query::result_bytes_message(n),
                max_result_bytes: Some(n),
                rendered,
                ..QueryErrorDetail::default()
            },
        ),
        QueryFailure::ValueBytes(n) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            QueryErrorDetail {
                code: "query_value_bytes".into(),
                message: bulkhead_query::value_bytes_message(n),
                max_value_bytes: Some(n),
                rendered,
                ..QueryErrorDetail::default()
            },
        ),
        QueryFailure::Busy(n) => {
            let body = QueryErrorDetail {
                code: "query_busy".into(),
                message: busy_message(n),
                max_concurrent: Some(n),
                rendered,
                ..QueryErrorDetail::default()
            };
            let retry = crate::limits::BUSY_RETRY_AFTER.as_secs().to_string();
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, retry)],
                Json(QueryErrorBody { error: body }),
            )
                .into_response();
        }
        QueryFailure::Rate(n, wait) => {
            let body = QueryErrorDetail {
                code: "query_rate".into(),
                message: query_rate_message(n),
                per_minute: Some(n),
                rendered,
                ..QueryErrorDetail::default()
            };
            let retry = crate::limits::retry_after_seconds(wait).to_string();
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, retry)],
                Json(QueryErrorBody { error: body }),
            )
                .into_response();
        }
        // The store being down answers as everywhere else (503, try again).
        QueryFailure::Store(e @ bulkhead_store::Error::Db(_)) => {
            return ApiError::from(e).into_response();
        }
        QueryFailure::Store(e) => {
            tracing::error!("query failed in the store: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                QueryErrorDetail {
                    code: "internal".into(),
                    message: "the query failed in the store; the service's log has the details"
                        .into(),
                    ..QueryErrorDetail::default()
                },
            )
        }
    };
    (status, Json(QueryErrorBody { error })).into_response()
}

/// Why a query has no result: a compile error points at the text, a cost guard names its
/// limit.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "QueryError")]
pub struct QueryErrorBody {
    pub error: QueryErrorDetail,
}

#[derive(Default, Serialize, JsonSchema)]
pub struct QueryErrorDetail {
    /// query_syntax, query_semantic, query_limit, query_row_cap, query_timeout,
    /// query_result_bytes, query_value_bytes, query_busy, query_rate, internal.
    pub code: String,
    pub message: String,
    /// A suggestion (a compile error may have one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Where a compile error is: line and column, 1-based.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// The error as `bulkhead query` prints it (with the caret under the text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rendered: Option<String>,
    /// The row cap that stopped the query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row_cap: Option<u64>,
    /// The time limit that stopped the query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// The result size limit that stopped the query, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_result_bytes: Option<u64>,
    /// The value size limit that stopped the query, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_value_bytes: Option<u64>,
    /// How many queries the tenant may run at once (a 429).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<usize>,
    /// How many queries the tenant may send a minute (a 429).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_minute: Option<u32>,
}

#[cfg(test)]
mod tests {

    use axum::body::Body;
    use tower::ServiceExt;

    use super::*;
    use crate::config::Secret;

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
        let limits = Arc::new(crate::limits::Limits::new(&config));
        let state = AppState {
            store,
            config: Arc::new(config),
            metrics: Arc::new(Metrics::new()),
            wake: Arc::new(Notify::new()),
            db_path: dir.path().join("advisories.db"),
            limits,
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
        assert_eq!(body["checks"]["store"], "ok", "{body}");
        assert_eq!(body["checks"]["advisory_db"], "missing", "{body}");
        let (s, body) = call(&router, "GET", "/v1/openapi.json", None, None).await;
        assert_eq!(s, StatusCode::OK);
        assert!(body["paths"].is_object());
        let (s, body) = call(&router, "GET", "/nope", None, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], "not_found");
    }
}

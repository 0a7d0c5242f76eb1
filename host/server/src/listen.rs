//! The HTTP server: the router on HTTP/1.1 connections, with the limits a service facing
//! untrusted clients needs and `axum::serve` does not set (docs/security.md, "Tenant
//! resource limits"):
//!
//! * a connection has `[server] header_timeout_seconds` to send a request's headers, also
//!   between the requests of a keep-alive connection: idle and slow-header connections are
//!   closed (hyper's `header_read_timeout`);
//! * a request body may pause at most `body_timeout_seconds` between chunks
//!   (tower-http's `RequestBodyTimeout`), and a whole request (body and handler) takes at
//!   most `request_timeout_seconds`, or is answered 408 (tower-http's `Timeout`), which
//!   bounds a body dripped slowly byte by byte too;
//! * at most `max_connections` connections are open: past that no more are accepted (they
//!   wait in the kernel's backlog) until one closes;
//! * at most `max_in_flight` requests are handled at once; more are answered 503 with
//!   `Retry-After` at once instead of queueing (tower's `ConcurrencyLimit` queues them,
//!   which under a flood is the wait without end this prevents).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt as _;

use super::api::ApiError;
use super::config::ServerConfig;

/// How long a closing service lets open connections finish their requests.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// The limits of [`serve`], from `[server]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HttpLimits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
    pub max_in_flight: usize,
}

impl HttpLimits {
    pub fn of(server: &ServerConfig) -> HttpLimits {
        HttpLimits {
            header_timeout: Duration::from_secs_f64(server.header_timeout_seconds),
            body_timeout: Duration::from_secs_f64(server.body_timeout_seconds),
            request_timeout: Duration::from_secs_f64(server.request_timeout_seconds),
            max_connections: server.max_connections,
            max_in_flight: server.max_in_flight,
        }
    }
}

/// `router` with the per-request limits: body and request timeouts, the in-flight cap.
pub fn limited(router: Router, limits: HttpLimits) -> Router {
    let in_flight = Arc::new(Semaphore::new(limits.max_in_flight));
    router
        // Innermost first: the body timeout wraps the body the handler reads, the request
        // timeout the whole handler, and the in-flight cap answers before either starts.
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            limits.body_timeout,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(middleware::from_fn_with_state(in_flight, admit))
}

/// Takes one of the in-flight places for the request, or answers 503.
async fn admit(State(places): State<Arc<Semaphore>>, req: Request, next: Next) -> Response {
    let Ok(_place) = places.try_acquire_owned() else {
        let mut resp = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "the service is handling as many requests as it may ([server] max_in_flight); \
             try again",
        )
        .into_response();
        resp.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        return resp;
    };
    next.run(req).await
}

/// Serves `router` (already [`limited`]) on `listener` until `shutdown` completes; then
/// stops accepting, lets open connections finish their requests for a while, and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        // A place first, then the connection: at the cap, connections wait unaccepted.
        let place = tokio::select! {
            p = connections.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin;
                    // a failed handshake of one client is nothing to stop for.
                    tracing::debug!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = router
            .clone()
            .map_request(|req: Request<hyper::body::Incoming>| req.map(Body::new));
        let service = TowerToHyperService::new(service);
        let builder = builder.clone();
        let mut closing = closing_rx.clone();
        tokio::spawn(async move {
            let _place = place;
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!("connection: {e}");
                    }
                }
                _ = closing.changed() => {
                    // Finish the request in progress, take no more.
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(CLOSE_GRACE, conn).await;
                }
            }
        });
    }
    let _ = closing_tx.send(true);
    // Every place back means every connection is done (or was given up after the grace).
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(
        CLOSE_GRACE + Duration::from_secs(1),
        connections.acquire_many(all),
    )
    .await;
}

import re
R='/work/h12b/'
def sub(p, old, new, count=1):
    s=open(R+p).read()
    assert old in s, (p, old[:80])
    s=s.replace(old,new,count)
    open(R+p,'w').write(s)

# schema: migration 3
sub('host/store/src/schema.rs','''            Dialect::Sqlite => String::new(),
        }),
        _ => None,''','''            Dialect::Sqlite => String::new(),
        }),
        // Fair claiming (queue.rs `claim`): per tenant, its jobs running and its last claim.
        3 => Some(
            "CREATE INDEX jobs_tenant_state ON jobs (tenant_id, state, lease_until);\\n\\
             CREATE INDEX jobs_tenant_started ON jobs (tenant_id, started_at);"
                .to_string(),
        ),
        _ => None,''')
sub('host/store/src/schema.rs',"pub const SCHEMA_VERSION: i64 = 2;","pub const SCHEMA_VERSION: i64 = 3;")

# limits.rs: rates
sub('host/server/src/limits.rs','''//! What one tenant may use of the service at once (docs/security.md, "Tenant resource
//! limits"): queries running at the same time, per tenant.''','''//! What one tenant may use of the service (docs/security.md, "Tenant resource limits"):
//! queries running at the same time, and how many queries and manual scans a minute.''')
sub('host/server/src/limits.rs','''use std::time::Duration;''','''use std::time::{Duration, Instant};''')
sub('host/server/src/limits.rs','''    /// `[query] max_concurrent_per_tenant`.
    pub queries: Arc<TenantGate>,
}

impl Limits {
    pub fn new(config: &ServeConfig) -> Limits {
        Limits {
            queries: Arc::new(TenantGate::new(config.query.max_concurrent_per_tenant)),
        }
    }
}''','''    /// `[query] max_concurrent_per_tenant`.
    pub queries: Arc<TenantGate>,
    /// `[query] queries_per_minute`.
    pub query_rate: TenantRate,
    /// `[server] scans_per_minute`: `POST /v1/scans`.
    pub scan_rate: TenantRate,
}

impl Limits {
    pub fn new(config: &ServeConfig) -> Limits {
        Limits {
            queries: Arc::new(TenantGate::new(config.query.max_concurrent_per_tenant)),
            query_rate: TenantRate::new(config.query.queries_per_minute),
            scan_rate: TenantRate::new(config.server.scans_per_minute),
        }
    }
}

/// At most `per_minute` requests a minute per tenant: a token bucket per tenant holding up
/// to a minute's worth, refilled continuously. A bucket in a map rather than the governor
/// crate: these few lines are all of it, keyed by the tenant as [`TenantGate`] is.
#[derive(Debug)]
pub struct TenantRate {
    per_minute: u32,
    buckets: Mutex<HashMap<TenantId, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl TenantRate {
    pub fn new(per_minute: u32) -> TenantRate {
        TenantRate {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The limit, a minute.
    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    /// Takes one request of `tenant`'s at `now`; `Err(wait)` when it has none left, `wait`
    /// being how long until it has one (the `Retry-After`).
    pub fn take(&self, tenant: TenantId, now: Instant) -> Result<(), Duration> {
        let full = f64::from(self.per_minute.max(1));
        let per_second = full / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        // Full buckets hold nothing worth keeping: forget them now and then, so that the
        // map does not grow with every tenant ever seen.
        if buckets.len() > 1024 {
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * per_second < full
            });
        }
        let b = buckets.entry(tenant).or_insert(Bucket {
            tokens: full,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * per_second).min(full);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / per_second))
        }
    }
}

/// `Retry-After` in whole seconds (at least 1) for a wait.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}''')
sub('host/server/src/limits.rs','''#[cfg(test)]
mod tests {
    use super::*;
''','''#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_gets_its_rate_and_others_theirs() {
        let rate = TenantRate::new(3);
        let (a, b) = (TenantId(1), TenantId(2));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(rate.take(a, t0), Ok(()));
        }
        let wait = rate.take(a, t0).expect_err("a fourth in the same instant");
        // 3 a minute: one more every 20 s.
        assert!(
            (19.0..=20.0).contains(&wait.as_secs_f64()),
            "{wait:?}"
        );
        assert_eq!(retry_after_seconds(wait), 20);
        assert_eq!(rate.take(b, t0), Ok(()), "another tenant has its own");
        let later = t0 + Duration::from_secs(20);
        assert_eq!(rate.take(a, later), Ok(()), "refilled after 20 s");
        assert!(rate.take(a, later).is_err());
    }
''')

# config
sub('host/server/src/config.rs','''    /// Requests handled at once; more are answered 503 with `Retry-After`.
    pub max_in_flight: usize,
}''','''    /// Requests handled at once; more are answered 503 with `Retry-After`.
    pub max_in_flight: usize,
    /// Manual scans (`POST /v1/scans`) a tenant may ask for a minute; more get 429.
    pub scans_per_minute: u32,
}''')
sub('host/server/src/config.rs','''            max_connections: 1024,
            max_in_flight: 256,
        }''','''            max_connections: 1024,
            max_in_flight: 256,
            scans_per_minute: 60,
        }''')
sub('host/server/src/config.rs','''    pub max_concurrent_per_tenant: usize,
}''','''    pub max_concurrent_per_tenant: usize,
    /// Queries a tenant may send a minute; more are answered 429 with `Retry-After`.
    pub queries_per_minute: u32,
}''')
sub('host/server/src/config.rs','''            max_concurrent_per_tenant: 2,
        }''','''            max_concurrent_per_tenant: 2,
            queries_per_minute: 120,
        }''')
sub('host/server/src/config.rs','''        if server.max_in_flight == 0 || server.max_in_flight > 100_000 {''','''        if server.scans_per_minute == 0 || server.scans_per_minute > 100_000 {
            return Err(err(format!(
                "server.scans_per_minute = {}: must be between 1 and 100000",
                server.scans_per_minute
            )));
        }
        if server.max_in_flight == 0 || server.max_in_flight > 100_000 {''')
sub('host/server/src/config.rs','''        if query.max_concurrent_per_tenant == 0 || query.max_concurrent_per_tenant > 64 {''','''        if query.queries_per_minute == 0 || query.queries_per_minute > 100_000 {
            return Err(err(format!(
                "query.queries_per_minute = {}: must be between 1 and 100000",
                query.queries_per_minute
            )));
        }
        if query.max_concurrent_per_tenant == 0 || query.max_concurrent_per_tenant > 64 {''')
sub('host/server/src/config.rs','''//! max_in_flight = 256         # requests handled at once; more get 503 + Retry-After
''','''//! max_in_flight = 256         # requests handled at once; more get 503 + Retry-After
//! scans_per_minute = 60       # manual scans (POST /v1/scans) per tenant; more get 429
''')
sub('host/server/src/config.rs','''//! max_concurrent_per_tenant = 2             # more at once answer 429
''','''//! max_concurrent_per_tenant = 2             # more at once answer 429
//! queries_per_minute = 120                  # per tenant; more answer 429
''')

# api: query rate + scan rate
sub('host/server/src/api.rs','''    /// The tenant already has `[query] max_concurrent_per_tenant` (the value) running.
    Busy(usize),''','''    /// The tenant already has `[query] max_concurrent_per_tenant` (the value) running.
    Busy(usize),
    /// The tenant sent its `[query] queries_per_minute` (the value) this minute; it may
    /// send the next after the duration.
    Rate(u32, std::time::Duration),''')
sub('host/server/src/api.rs','''            QueryFailure::Busy(_) => "busy",''','''            QueryFailure::Busy(_) => "busy",
            QueryFailure::Rate(..) => "rate",''')
sub('host/server/src/api.rs','''            QueryFailure::Busy(n) => format!("error: {}\\n", busy_message(*n)),''','''            QueryFailure::Busy(n) => format!("error: {}\\n", busy_message(*n)),
            QueryFailure::Rate(n, _) => format!("error: {}\\n", query_rate_message(*n)),''')
sub('host/server/src/api.rs','''/// Compiles `text` for `tenant` and the store's dialect, with `now` for `ago()`/`now()`,''','''/// What a tenant past its query rate is told.
fn query_rate_message(per_minute: u32) -> String {
    format!(
        "this tenant sent its {per_minute} queries this minute (the service's [query] \\
         queries_per_minute): send it again after Retry-After seconds"
    )
}

/// Compiles `text` for `tenant` and the store's dialect, with `now` for `ago()`/`now()`,''')
sub('host/server/src/api.rs','''    let limits = &state.config.query;
    // Past this many queries''','''    let limits = &state.config.query;
    if let Err(wait) = state.limits.query_rate.take(p.tenant_id, since) {
        let failure = QueryFailure::Rate(state.limits.query_rate.per_minute(), wait);
        state.metrics.query_outcome(failure.outcome());
        return query_failure_response(failure, &req.query);
    }
    // Past this many queries''')
sub('host/server/src/api.rs','''        // The store being down answers as everywhere else (503, try again).''','''        QueryFailure::Rate(n, wait) => {
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
        // The store being down answers as everywhere else (503, try again).''')
sub('host/server/src/api.rs','''    /// How many queries the tenant may run at once (a 429).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<usize>,''','''    /// How many queries the tenant may run at once (a 429).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<usize>,
    /// How many queries the tenant may send a minute (a 429).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_minute: Option<u32>,''')
sub('host/server/src/api.rs','''    /// query_result_bytes, query_value_bytes, query_busy, internal.''','''    /// query_result_bytes, query_value_bytes, query_busy, query_rate, internal.''')
sub('host/server/src/api.rs','''                    "The tenant has as many queries running as it may (`query_busy`); \\
                     `Retry-After` says when to try again.",''','''                    "The tenant has as many queries running as it may (`query_busy`), or \\
                     sent as many this minute as it may (`query_rate`); `Retry-After` says \\
                     when to try again.",''')
sub('host/server/src/api.rs','''                queries running gets 429 with `Retry-After`.",''','''                queries running, or past `[query] queries_per_minute` (default 120), gets \\
                429 with `Retry-After`.",''')
sub('host/server/src/api.rs','''    body: Result<Json<ScanRequest>, JsonRejection>,
) -> ApiResult<Response> {
    let req = json_of(body)?;''','''    body: Result<Json<ScanRequest>, JsonRejection>,
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
                "this tenant asked for its {} manual scans this minute (the service's \\
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
    let req = json_of(body)?;''')
print("ok")
sub('host/server/src/api.rs','''                Extra::error(422, "An index without image manifests."),
                Extra::error(502, "The registry refused or did not answer."),''','''                Extra::error(422, "An index without image manifests."),
                Extra::error(
                    429,
                    "The tenant asked for its `[server] scans_per_minute` this minute \\
                     (`rate_limited`); `Retry-After` says when to ask again.",
                ),
                Extra::error(502, "The registry refused or did not answer."),''')
sub('host/server/src/api.rs','''    /// bad_request, unauthorized, forbidden, not_found, conflict, method_not_allowed,
    /// unsupported, registry_unavailable, registry_error, store_unavailable, internal.''','''    /// bad_request, unauthorized, forbidden, not_found, conflict, method_not_allowed,
    /// unsupported, registry_unavailable, registry_error, store_unavailable, internal,
    /// rate_limited, overloaded.''')
print("ok2")
sub('host/store/tests/store.rs','''    claim_race,
''','''    claim_race,
    fair_claims,
''')
sub('host/store/tests/store.rs','''async fn lease_expiry(kind: StoreKind) {''','''/// Jobs are claimed round-robin across tenants: the tenant with the fewest jobs running,
/// then the one served longest ago, then the oldest job. One tenant's burst does not hold
/// back another's single push.
async fn fair_claims(kind: StoreKind) {
    let Some(env) = Env::new(kind).await else {
        return;
    };
    let store = &env.store;
    let [a, b, c] = tenants(store, &[("a", "a", false), ("b", "b", false), ("c", "c", false)])
        .await[..]
    else {
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
                .enqueue(new_job(t, &format!("{}/app", name(t)), &format!("sha256:{}{i}", name(t)), None, T0))
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
            .fail(job.id, job.lease_token.as_deref().expect("token"), "done", false, now)
            .await
            .expect("fail");
    }
    assert_eq!(order, ["a", "b", "c", "a", "b", "a", "a", "a"]);
    assert!(a_jobs.windows(2).all(|w| w[0] < w[1]), "a tenant's own jobs oldest first: {a_jobs:?}");
    assert!(store.claim("w", LEASE, T0 + 9).await.expect("claim").is_none());

    // Two workers: while a job of A runs, B's push made after A's burst goes first.
    for i in 0..3 {
        store
            .enqueue(new_job(a, "a/app", &format!("sha256:a-again{i}"), None, T0 + 10))
            .await
            .expect("enqueue");
    }
    let first = store.claim("w1", LEASE, T0 + 11).await.expect("claim").expect("job");
    assert_eq!(name(first.tenant_id), "a");
    store
        .enqueue(new_job(b, "b/app", "sha256:b-late", None, T0 + 12))
        .await
        .expect("enqueue");
    let second = store.claim("w2", LEASE, T0 + 13).await.expect("claim").expect("job");
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

async fn lease_expiry(kind: StoreKind) {''')
print("ok3")

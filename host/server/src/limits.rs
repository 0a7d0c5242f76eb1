//! What one tenant may use of the service (docs/security.md, "Tenant resource limits"):
//! queries running at the same time, and how many queries and manual scans a minute.
//!
//! The counters live in the process: they bound what one service instance does for a
//! tenant, which is what protects that instance (several instances each bound their own).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bulkhead_store::TenantId;

use super::config::ServeConfig;

/// The `Retry-After` of a 429 for a tenant with too many queries running: one second, about
/// what a typical query takes (the client is not told to wait for the slowest).
pub const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The service's per-tenant limits, shared by the handlers.
#[derive(Debug)]
pub struct Limits {
    /// `[query] max_concurrent_per_tenant`.
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
}

/// At most `max` of something running at once per tenant. A counter per tenant under a
/// mutex: tower's `ConcurrencyLimit` bounds a whole service, not one key of it, and makes
/// the excess wait rather than refusing it.
#[derive(Debug)]
pub struct TenantGate {
    max: usize,
    running: Mutex<HashMap<TenantId, usize>>,
}

impl TenantGate {
    pub fn new(max: usize) -> TenantGate {
        TenantGate {
            max,
            running: Mutex::new(HashMap::new()),
        }
    }

    /// The most a tenant may run at once.
    pub fn max(&self) -> usize {
        self.max
    }

    /// One more for `tenant`, held until the guard is dropped; `None` when it already has
    /// `max` running.
    pub fn try_enter(self: &Arc<Self>, tenant: TenantId) -> Option<GateGuard> {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let n = running.entry(tenant).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(GateGuard {
            gate: self.clone(),
            tenant,
        })
    }
}

/// A place taken in a [`TenantGate`]; given back on drop (also when the request is
/// cancelled: the client went away).
#[derive(Debug)]
pub struct GateGuard {
    gate: Arc<TenantGate>,
    tenant: TenantId,
}

impl Drop for GateGuard {
    fn drop(&mut self) {
        let mut running = self
            .gate
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = running.get_mut(&self.tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                running.remove(&self.tenant);
            }
        }
    }
}

#[cfg(test)]
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
        assert!((19.0..=20.0).contains(&wait.as_secs_f64()), "{wait:?}");
        assert_eq!(retry_after_seconds(wait), 20);
        assert_eq!(rate.take(b, t0), Ok(()), "another tenant has its own");
        let later = t0 + Duration::from_secs(20);
        assert_eq!(rate.take(a, later), Ok(()), "refilled after 20 s");
        assert!(rate.take(a, later).is_err());
    }

    #[test]
    fn a_tenant_gets_at_most_max_and_others_are_not_counted() {
        let gate = Arc::new(TenantGate::new(2));
        let (a, b) = (TenantId(1), TenantId(2));
        let first = gate.try_enter(a).expect("first");
        let second = gate.try_enter(a).expect("second");
        assert!(gate.try_enter(a).is_none(), "a third for the same tenant");
        let other = gate.try_enter(b).expect("another tenant is not affected");
        drop(first);
        let again = gate.try_enter(a).expect("a place came free");
        drop((second, again, other));
        assert!(
            gate.running
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_empty(),
            "tenants with nothing running are forgotten"
        );
    }
}

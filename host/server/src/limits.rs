//! What one tenant may use of the service at once (docs/security.md, "Tenant resource
//! limits"): queries running at the same time, per tenant.
//!
//! The counters live in the process: they bound what one service instance does for a
//! tenant, which is what protects that instance (several instances each bound their own).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

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
}

impl Limits {
    pub fn new(config: &ServeConfig) -> Limits {
        Limits {
            queries: Arc::new(TenantGate::new(config.query.max_concurrent_per_tenant)),
        }
    }
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

//! The live state that enforces a policy while calls come and go: one token bucket for
//! each rate-limited scope, and the permits for invocations in flight.
//!
//! The compiled policy says what the limits are and never changes; [`Limits`] counts
//! against them. On a reload, buckets and permits whose limits did not change are
//! carried over, so a reload neither refills a bucket nor forgets invocations in flight.

mod rate_limit;

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;

pub use rate_limit::{TokenBucket, retry_after_seconds};

use super::decide::CompiledPolicy;

#[derive(Debug)]
pub struct Limits {
    /// One entry for each scope of the policy, at the scope's index.
    buckets: Vec<Option<Arc<TokenBucket>>>,
    max_in_flight: u32,
    in_flight: Arc<Semaphore>,
}

impl Limits {
    /// The limits of `policy`; those of `previous` (the policy in force until now and
    /// its limits) are kept where they did not change.
    pub fn new(policy: &CompiledPolicy, previous: Option<(&CompiledPolicy, &Limits)>) -> Self {
        let now = Instant::now();
        let buckets = policy
            .scopes()
            .iter()
            .map(|scope| {
                let limit = scope.rate_limit?;
                let carried_over = previous
                    .and_then(|(policy, limits)| {
                        let index = policy.scopes().iter().position(|s| s.name == scope.name)?;
                        limits.buckets[index].clone()
                    })
                    .filter(|bucket| bucket.has_limits(limit.per_minute, limit.burst));
                Some(carried_over.unwrap_or_else(|| {
                    Arc::new(TokenBucket::new(limit.per_minute, limit.burst, now))
                }))
            })
            .collect();
        let max_in_flight = policy.inbound().max_in_flight;
        let in_flight = previous
            .map(|(_, limits)| limits)
            .filter(|limits| limits.max_in_flight == max_in_flight)
            .map(|limits| limits.in_flight.clone())
            .unwrap_or_else(|| Arc::new(Semaphore::new(max_in_flight as usize)));
        Self {
            buckets,
            max_in_flight,
            in_flight,
        }
    }

    /// The token bucket of the scope at `scope` (its index in the policy), if it is
    /// rate-limited.
    pub fn bucket(&self, scope: usize) -> Option<&TokenBucket> {
        self.buckets.get(scope)?.as_deref()
    }

    /// Permits for invocations in flight; one is held for each until its response ends.
    pub fn in_flight(&self) -> &Arc<Semaphore> {
        &self.in_flight
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::decide::fixture::limited as policy;

    /// A policy compiled, and its limits as a reload from `previous` leaves them.
    fn load(
        policy: &crate::policy::BrokerPolicy,
        previous: Option<&(CompiledPolicy, Limits)>,
    ) -> (CompiledPolicy, Limits) {
        let compiled = CompiledPolicy::compile(policy).unwrap();
        let limits = Limits::new(&compiled, previous.map(|(p, l)| (p, l)));
        (compiled, limits)
    }

    #[test]
    fn reload_keeps_buckets_whose_limits_did_not_change() {
        let first = load(&policy(), None);
        let same = load(&policy(), Some(&first));
        let bucket = |(c, limits): &(CompiledPolicy, Limits)| {
            let index = c
                .scopes()
                .iter()
                .position(|s| s.name.as_str() == "messages:write")
                .unwrap();
            limits.buckets[index].clone().unwrap()
        };
        let in_flight = |(_, limits): &(CompiledPolicy, Limits)| limits.in_flight().clone();
        assert!(Arc::ptr_eq(&bucket(&first), &bucket(&same)));
        assert!(Arc::ptr_eq(&in_flight(&first), &in_flight(&same)));

        let mut changed = policy();
        changed.rate_limits[0].burst = 11;
        changed.inbound.max_in_flight = 3;
        let changed = load(&changed, Some(&first));
        assert!(!Arc::ptr_eq(&bucket(&first), &bucket(&changed)));
        assert!(!Arc::ptr_eq(&in_flight(&first), &in_flight(&changed)));
    }
}

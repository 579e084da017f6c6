//! Leader election over a coordination.k8s.io Lease, so two operator replicas can run
//! with one active. The leader renews the Lease every `renew_every`; a replica takes
//! over once the Lease record has not changed for `lease_duration`.
//!
//! Expiry is judged on each replica's own monotonic clock, never by comparing the
//! `renewTime` written by another machine with the local wall clock: a standby notes
//! when it saw the record change and waits a whole `lease_duration` from then (the
//! approach of client-go). Clocks that disagree by any amount therefore cannot make a
//! standby take a live Lease. The leader, in turn, gives up once it has not renewed
//! for `renew_deadline` (two thirds of the lease), counted from before the write it
//! last got through, so it stops before any standby may take over; the caller ends
//! the process at once rather than let in-flight work write after that.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::time::Instant;
use tracing::{info, warn};

#[derive(Clone, Debug)]
pub struct LeaderElection {
    pub lease_name: String,
    /// Where the Lease lives; None: the namespace the operator runs in.
    pub namespace: Option<String>,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_every: Duration,
}

/// The decision for one look at the Lease; pure, so it is tested without a cluster.
#[derive(Debug, PartialEq, Eq)]
pub enum LeaseDecision {
    /// We hold it (or may take it): write ourselves as holder.
    Claim,
    /// Someone else holds a live lease.
    Wait,
}

/// The Lease record as this replica last saw it change, and when (local monotonic time).
#[derive(Clone, Debug, Default)]
pub struct Observed(Option<(LeaseSpec, Instant)>);

impl Observed {
    /// Notes `spec` as seen at `now`; the time moves only when the record changed.
    fn see(&mut self, spec: &LeaseSpec, now: Instant) -> Instant {
        match &self.0 {
            Some((seen, at)) if seen == spec => *at,
            _ => {
                self.0 = Some((spec.clone(), now));
                now
            }
        }
    }
}

/// Whether `identity` may write itself into the Lease `spec` at `now`. Another holder's
/// Lease is live until `leaseDurationSeconds` after this replica saw the record change.
pub fn decide(
    spec: Option<&LeaseSpec>,
    identity: &str,
    observed: &mut Observed,
    now: Instant,
) -> LeaseDecision {
    let Some(spec) = spec else {
        return LeaseDecision::Claim;
    };
    let changed_at = observed.see(spec, now);
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder.is_empty() || holder == identity {
        return LeaseDecision::Claim;
    }
    let seconds = spec.lease_duration_seconds.unwrap_or(15).max(1);
    let duration = Duration::from_secs(seconds.unsigned_abs().into());
    if now < changed_at + duration {
        LeaseDecision::Wait
    } else {
        LeaseDecision::Claim
    }
}

impl LeaderElection {
    /// Waits until this replica holds the Lease; returns when the winning write was sent.
    pub async fn acquire(&self, api: &Api<Lease>) -> Instant {
        let mut logged_wait = false;
        let mut observed = Observed::default();
        loop {
            let attempt = Instant::now();
            match self.try_claim(api, &mut observed).await {
                Ok(true) => {
                    info!(lease = %self.lease_name, identity = %self.identity, "became the leader");
                    return attempt;
                }
                Ok(false) if !logged_wait => {
                    info!(lease = %self.lease_name, "another replica leads; standing by");
                    logged_wait = true;
                }
                Ok(false) => {}
                Err(error) => warn!(%error, "leader election: could not read or write the Lease"),
            }
            tokio::time::sleep(self.renew_every).await;
        }
    }

    /// How long the leader goes on without a successful renewal: two thirds of the lease,
    /// so it stops well before a standby, which waits the whole lease, may take over.
    pub fn renew_deadline(&self) -> Duration {
        self.lease_duration * 2 / 3
    }

    /// Renews the Lease (held since the write sent at `renewed`) until it is lost or not
    /// renewed within [`renew_deadline`](Self::renew_deadline); then returns.
    pub async fn hold(&self, api: &Api<Lease>, mut renewed: Instant) {
        let mut observed = Observed::default();
        loop {
            let deadline = renewed + self.renew_deadline();
            let renewal = async {
                tokio::time::sleep(self.renew_every).await;
                let attempt = Instant::now();
                (attempt, self.try_claim(api, &mut observed).await)
            };
            match tokio::time::timeout_at(deadline, renewal).await {
                Ok((attempt, Ok(true))) => renewed = attempt,
                Ok((_, Ok(false))) => {
                    warn!("another replica took the Lease");
                    return;
                }
                Ok((_, Err(error))) => warn!(%error, "leader election: renewal failed"),
                Err(_) => {
                    warn!(
                        deadline = ?self.renew_deadline(),
                        "could not renew the Lease in time"
                    );
                    return;
                }
            }
        }
    }

    /// Gives the Lease up on shutdown so a standby takes over at once.
    pub async fn release(&self, api: &Api<Lease>) {
        let Ok(mut lease) = api.get(&self.lease_name).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        if let Err(error) = api
            .replace(&self.lease_name, &PostParams::default(), &lease)
            .await
        {
            warn!(%error, "could not release the Lease");
        }
    }

    /// One attempt to hold the Lease. Optimistic concurrency (resourceVersion) makes
    /// two replicas racing for an expired Lease end with one holder.
    async fn try_claim(
        &self,
        api: &Api<Lease>,
        observed: &mut Observed,
    ) -> Result<bool, kube::Error> {
        let existing = api.get_opt(&self.lease_name).await?;
        let now = Timestamp::now();
        if decide(
            existing.as_ref().and_then(|l| l.spec.as_ref()),
            &self.identity,
            observed,
            Instant::now(),
        ) == LeaseDecision::Wait
        {
            return Ok(false);
        }
        let previous = existing
            .as_ref()
            .and_then(|l| l.spec.clone())
            .unwrap_or_default();
        let taking_over = previous.holder_identity.as_deref() != Some(self.identity.as_str());
        let spec = LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.lease_duration.as_secs() as i32),
            renew_time: Some(MicroTime(now)),
            acquire_time: if taking_over {
                Some(MicroTime(now))
            } else {
                previous.acquire_time
            },
            lease_transitions: Some(
                previous.lease_transitions.unwrap_or(0) + i32::from(taking_over),
            ),
            ..Default::default()
        };
        let result = match existing {
            Some(mut lease) => {
                lease.spec = Some(spec);
                api.replace(&self.lease_name, &PostParams::default(), &lease)
                    .await
            }
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.lease_name.clone()),
                        ..Default::default()
                    },
                    spec: Some(spec),
                };
                api.create(&PostParams::default(), &lease).await
            }
        };
        match result {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::SignedDuration;

    const LEASE: Duration = Duration::from_secs(10);

    /// A Lease held by `holder`, renewed at `renewed` by the holder's clock, which may be
    /// anything: the decision must not depend on it.
    fn lease(holder: &str, renewed: Timestamp) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(LEASE.as_secs() as i32),
            renew_time: Some(MicroTime(renewed)),
            ..Default::default()
        }
    }

    fn skewed(seconds: i64) -> Timestamp {
        Timestamp::now() + SignedDuration::from_secs(seconds)
    }

    #[test]
    fn missing_lease_is_claimed() {
        let mut observed = Observed::default();
        assert_eq!(
            decide(None, "a", &mut observed, Instant::now()),
            LeaseDecision::Claim
        );
    }

    #[test]
    fn another_replicas_lease_is_live_for_a_whole_lease_after_it_was_seen() {
        let start = Instant::now();
        let mut observed = Observed::default();
        let held = lease("b", skewed(0));
        assert_eq!(
            decide(Some(&held), "a", &mut observed, start),
            LeaseDecision::Wait
        );
        let almost = start + LEASE - Duration::from_millis(1);
        assert_eq!(
            decide(Some(&held), "a", &mut observed, almost),
            LeaseDecision::Wait
        );
        assert_eq!(
            decide(Some(&held), "a", &mut observed, start + LEASE),
            LeaseDecision::Claim
        );
    }

    #[test]
    fn a_renewal_seen_restarts_the_wait() {
        let start = Instant::now();
        let mut observed = Observed::default();
        decide(Some(&lease("b", skewed(0))), "a", &mut observed, start);
        let later = start + Duration::from_secs(8);
        let renewed = lease("b", skewed(8));
        assert_eq!(
            decide(Some(&renewed), "a", &mut observed, later),
            LeaseDecision::Wait
        );
        let after_first_expiry = start + LEASE + Duration::from_secs(1);
        assert_eq!(
            decide(Some(&renewed), "a", &mut observed, after_first_expiry),
            LeaseDecision::Wait
        );
        assert_eq!(
            decide(Some(&renewed), "a", &mut observed, later + LEASE),
            LeaseDecision::Claim
        );
    }

    #[test]
    fn the_holders_clock_does_not_matter_either_way() {
        for skew in [-3600, -5, 5, 3600] {
            let start = Instant::now();
            let mut observed = Observed::default();
            let held = lease("b", skewed(skew));
            assert_eq!(
                decide(Some(&held), "a", &mut observed, start),
                LeaseDecision::Wait,
                "renewTime skewed by {skew} s"
            );
            assert_eq!(
                decide(Some(&held), "a", &mut observed, start + LEASE / 2),
                LeaseDecision::Wait,
                "renewTime skewed by {skew} s"
            );
        }
    }

    #[test]
    fn own_lease_is_renewed_and_a_released_one_is_free() {
        let mut observed = Observed::default();
        let now = Instant::now();
        assert_eq!(
            decide(Some(&lease("a", skewed(-3600))), "a", &mut observed, now),
            LeaseDecision::Claim
        );
        assert_eq!(
            decide(Some(&lease("", skewed(0))), "a", &mut observed, now),
            LeaseDecision::Claim
        );
    }

    #[test]
    fn the_leader_gives_up_before_a_standby_may_take_over() {
        let election = LeaderElection {
            lease_name: "l".into(),
            namespace: None,
            identity: "a".into(),
            lease_duration: LEASE,
            renew_every: LEASE / 5,
        };
        assert!(election.renew_deadline() < election.lease_duration);
        assert!(election.renew_deadline() > election.renew_every * 2);
    }
}

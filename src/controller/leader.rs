//! Leader election over a coordination.k8s.io Lease, so two operator replicas can run
//! with one active. The leader renews the Lease every `renew_every`; a replica takes
//! over once the Lease has not been renewed for `lease_duration`. A leader that cannot
//! renew in time stops, rather than risk two active reconcilers.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
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

pub fn decide(spec: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> LeaseDecision {
    let Some(spec) = spec else {
        return LeaseDecision::Claim;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder.is_empty() || holder == identity {
        return LeaseDecision::Claim;
    }
    let duration = SignedDuration::from_secs(spec.lease_duration_seconds.unwrap_or(15).into());
    match &spec.renew_time {
        Some(renewed) if renewed.0 + duration > now => LeaseDecision::Wait,
        _ => LeaseDecision::Claim,
    }
}

impl LeaderElection {
    /// Waits until this replica holds the Lease.
    pub async fn acquire(&self, api: &Api<Lease>) {
        let mut logged_wait = false;
        loop {
            match self.try_claim(api).await {
                Ok(true) => {
                    info!(lease = %self.lease_name, identity = %self.identity, "became the leader");
                    return;
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

    /// Renews the Lease until a renewal fails for longer than the lease lasts; returns
    /// when leadership is lost.
    pub async fn hold(&self, api: &Api<Lease>) {
        let mut last_renewal = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.renew_every).await;
            match self.try_claim(api).await {
                Ok(true) => last_renewal = tokio::time::Instant::now(),
                Ok(false) => {
                    warn!("another replica took the Lease");
                    return;
                }
                Err(error) => warn!(%error, "leader election: renewal failed"),
            }
            if last_renewal.elapsed() >= self.lease_duration {
                warn!("could not renew the Lease in time");
                return;
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
    async fn try_claim(&self, api: &Api<Lease>) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let existing = api.get_opt(&self.lease_name).await?;
        if decide(
            existing.as_ref().and_then(|l| l.spec.as_ref()),
            &self.identity,
            now,
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

    fn lease(holder: &str, renewed_secs_ago: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(10),
            renew_time: Some(MicroTime(
                Timestamp::now() - SignedDuration::from_secs(renewed_secs_ago),
            )),
            ..Default::default()
        }
    }

    #[test]
    fn missing_lease_is_claimed() {
        assert_eq!(decide(None, "a", Timestamp::now()), LeaseDecision::Claim);
    }

    #[test]
    fn live_lease_of_another_replica_is_respected() {
        assert_eq!(
            decide(Some(&lease("b", 3)), "a", Timestamp::now()),
            LeaseDecision::Wait
        );
    }

    #[test]
    fn expired_lease_of_another_replica_is_taken_over() {
        assert_eq!(
            decide(Some(&lease("b", 11)), "a", Timestamp::now()),
            LeaseDecision::Claim
        );
    }

    #[test]
    fn own_lease_is_renewed_and_a_released_one_is_free() {
        assert_eq!(
            decide(Some(&lease("a", 3)), "a", Timestamp::now()),
            LeaseDecision::Claim
        );
        assert_eq!(
            decide(Some(&lease("", 1)), "a", Timestamp::now()),
            LeaseDecision::Claim
        );
    }
}

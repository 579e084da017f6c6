//! Pacing of pod rollouts. A change that reaches every Plugin's pods at once (a new
//! broker image after an operator upgrade, a new default) would otherwise replace every
//! plugin pod at the same moment. A Deployment whose pod template changes is applied
//! only while fewer than `--max-concurrent-rollouts` Deployments are rolling; the
//! others wait (their Plugin is looked at again in a few seconds) and keep their old,
//! working pods meanwhile. New Deployments and paused ones (no pods to replace) are
//! never held back.
//!
//! The live template is not cached (the Deployment cache drops it to keep memory flat),
//! so the desired Deployment carries the hash of its template in an annotation, which
//! the cache keeps ([`Cached`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::FutureExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use super::apply::applied_hash;
use super::cached::Cached;

/// Annotation on the Deployment: the hash of its pod template.
pub const TEMPLATE_HASH_ANNOTATION: &str = "plugins.chat.dev/template-hash";

/// Rollouts at once when the flag is not given.
pub const DEFAULT_MAX_CONCURRENT_ROLLOUTS: u16 = 4;

/// How long a rollout this replica started counts as rolling when the cache does not
/// show it finished (a write that failed, a Deployment deleted meanwhile).
const STARTED_MEMORY: Duration = Duration::from_secs(120);

/// The hash written into [`TEMPLATE_HASH_ANNOTATION`].
pub fn template_hash(template: &PodTemplateSpec) -> String {
    applied_hash(template)
}

/// The template hash the desired Deployment carries.
fn desired_hash(desired: &Deployment) -> Option<&str> {
    desired
        .annotations()
        .get(TEMPLATE_HASH_ANNOTATION)
        .map(String::as_str)
}

fn desired_replicas(desired: &Deployment) -> i32 {
    desired.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn replicas(live: &Cached<Deployment>) -> i32 {
    live.kept.replicas.unwrap_or(1)
}

/// Whether applying `desired` over `live` replaces running pods.
pub fn starts_rollout(live: Option<&Cached<Deployment>>, desired: &Deployment) -> bool {
    let Some(live) = live else {
        return false;
    };
    desired_replicas(desired) > 0
        && replicas(live) > 0
        && live.kept.template_hash.as_deref() != desired_hash(desired)
}

/// Whether the Deployment's pods are still being replaced: the test of
/// `kubectl rollout status`. A rollout past its progress deadline no longer counts; it
/// shows on the Plugin's status instead.
pub fn rolling(deployment: &Cached<Deployment>) -> bool {
    let Some(status) = &deployment.kept.status else {
        return replicas(deployment) > 0;
    };
    let gave_up = status.conditions.iter().flatten().any(|c| {
        c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });
    if gave_up {
        return false;
    }
    let want = replicas(deployment);
    let updated = status.updated_replicas.unwrap_or(0);
    status.observed_generation < deployment.metadata.generation
        || updated < want
        || status.replicas.unwrap_or(0) > updated
        || status.available_replicas.unwrap_or(0) < updated
}

/// What to do with a Deployment's write now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Now,
    Later,
}

/// The rollouts in progress, shared by the reconciles of one controller.
#[derive(Debug)]
pub struct Rollouts {
    max: usize,
    /// Rollouts started here that the cache may not show yet: key -> (template hash, when).
    started: Mutex<HashMap<String, (String, Instant)>>,
}

impl Rollouts {
    pub fn new(max: u16) -> Self {
        Self {
            max: usize::from(max.max(1)),
            started: Mutex::default(),
        }
    }

    /// Whether `desired` may be applied now, given the Deployments in `cache`. Until the
    /// cache has its first full list every Deployment waits: a Deployment missing from
    /// it may only not be listed yet (right after an operator upgrade, the case this
    /// module is for, every reconcile would otherwise start its rollout at once).
    pub fn admit(&self, cache: &Store<Cached<Deployment>>, desired: &Deployment) -> Admission {
        let synced = cache
            .wait_until_ready()
            .now_or_never()
            .is_some_and(|ready| ready.is_ok());
        if !synced {
            return Admission::Later;
        }
        let namespace = desired.namespace().unwrap_or_default();
        let live = cache.get(&ObjectRef::new(&desired.name_any()).within(&namespace));
        if !starts_rollout(live.as_deref(), desired) {
            return Admission::Now;
        }
        let all = cache.state();
        self.admit_among(desired, all.iter().map(|d| d.as_ref()), Instant::now())
    }

    /// The decision, given every cached Deployment (`others` may include `desired`'s own).
    fn admit_among<'a>(
        &self,
        desired: &Deployment,
        cached: impl Iterator<Item = &'a Cached<Deployment>>,
        now: Instant,
    ) -> Admission {
        let own = key(desired);
        let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        let mut busy = BTreeSet::new();
        let mut finished = BTreeSet::new();
        for deployment in cached {
            let this = key(deployment);
            if rolling(deployment) {
                busy.insert(this);
            } else if let Some((hash, _)) = started.get(&this)
                && deployment.kept.template_hash.as_deref() == Some(hash.as_str())
            {
                finished.insert(this);
            }
        }
        started.retain(|k, (_, at)| !finished.contains(k) && now - *at < STARTED_MEMORY);
        busy.extend(started.keys().cloned());
        busy.remove(&own);
        if busy.len() >= self.max {
            return Admission::Later;
        }
        let hash = desired_hash(desired).unwrap_or_default().to_string();
        started.insert(own, (hash, now));
        Admission::Now
    }
}

fn key(deployment: &impl ResourceExt) -> String {
    format!(
        "{}/{}",
        deployment.namespace().unwrap_or_default(),
        deployment.name_any()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::collections::BTreeMap;

    fn deployment(name: &str, hash: &str, replicas: i32) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("team-a".into()),
                generation: Some(2),
                annotations: Some(BTreeMap::from([(
                    TEMPLATE_HASH_ANNOTATION.to_string(),
                    hash.to_string(),
                )])),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                ..Default::default()
            }),
            status: None,
        }
    }

    /// A Deployment as the cache shows it once the deployment controller is done.
    fn settled(name: &str, hash: &str) -> Cached<Deployment> {
        Cached::new(settled_deployment(name, hash))
    }

    fn settled_deployment(name: &str, hash: &str) -> Deployment {
        let mut d = deployment(name, hash, 1);
        d.status = Some(DeploymentStatus {
            observed_generation: Some(2),
            replicas: Some(1),
            updated_replicas: Some(1),
            available_replicas: Some(1),
            ready_replicas: Some(1),
            ..Default::default()
        });
        d
    }

    /// Halfway: one new pod, the old one still there.
    fn halfway(name: &str, hash: &str) -> Cached<Deployment> {
        let mut d = settled_deployment(name, hash);
        d.status.as_mut().unwrap().replicas = Some(2);
        Cached::new(d)
    }

    #[test]
    fn only_a_changed_template_of_running_pods_starts_a_rollout() {
        let live = settled("plugin-a", "old");
        assert!(starts_rollout(
            Some(&live),
            &deployment("plugin-a", "new", 1)
        ));
        assert!(!starts_rollout(
            Some(&live),
            &deployment("plugin-a", "old", 3)
        ));
        assert!(!starts_rollout(None, &deployment("plugin-a", "new", 1)));
        assert!(!starts_rollout(
            Some(&live),
            &deployment("plugin-a", "new", 0)
        ));
        let paused = Cached::new(deployment("plugin-a", "old", 0));
        assert!(!starts_rollout(
            Some(&paused),
            &deployment("plugin-a", "new", 1)
        ));
    }

    #[test]
    fn a_deployment_rolls_until_every_pod_is_new_and_available() {
        assert!(!rolling(&settled("a", "h")));
        assert!(rolling(&halfway("a", "h")));
        let mut unobserved = settled("a", "h");
        unobserved.metadata.generation = Some(3);
        assert!(rolling(&unobserved));
        let mut unavailable = settled_deployment("a", "h");
        unavailable.status.as_mut().unwrap().available_replicas = Some(0);
        assert!(rolling(&Cached::new(unavailable.clone())));
        let mut stuck = unavailable;
        stuck.status.as_mut().unwrap().conditions =
            Some(vec![k8s_openapi::api::apps::v1::DeploymentCondition {
                type_: "Progressing".into(),
                status: "False".into(),
                reason: Some("ProgressDeadlineExceeded".into()),
                ..Default::default()
            }]);
        assert!(
            !rolling(&Cached::new(stuck)),
            "a stuck rollout does not hold a slot"
        );
    }

    #[test]
    fn no_more_than_max_rollouts_start_while_others_roll() {
        let rollouts = Rollouts::new(2);
        let now = Instant::now();
        let cache = [
            halfway("plugin-a", "h1"),
            settled("plugin-b", "h0"),
            settled("plugin-c", "h0"),
        ];
        let b = deployment("plugin-b", "h1", 1);
        let c = deployment("plugin-c", "h1", 1);
        assert_eq!(rollouts.admit_among(&b, cache.iter(), now), Admission::Now);
        assert_eq!(
            rollouts.admit_among(&c, cache.iter(), now),
            Admission::Later,
            "a rolls and b was just started, though the cache does not show it yet"
        );
        assert_eq!(
            rollouts.admit_among(&b, cache.iter(), now),
            Admission::Now,
            "its own slot"
        );
    }

    #[test]
    fn a_slot_frees_when_the_cache_shows_the_rollout_finished_or_after_a_while() {
        let rollouts = Rollouts::new(1);
        let now = Instant::now();
        let a = deployment("plugin-a", "h1", 1);
        let b = deployment("plugin-b", "h1", 1);
        let before = [settled("plugin-a", "h0"), settled("plugin-b", "h0")];
        assert_eq!(rollouts.admit_among(&a, before.iter(), now), Admission::Now);
        assert_eq!(
            rollouts.admit_among(&b, before.iter(), now),
            Admission::Later
        );
        let rolling_a = [halfway("plugin-a", "h1"), settled("plugin-b", "h0")];
        assert_eq!(
            rollouts.admit_among(&b, rolling_a.iter(), now),
            Admission::Later
        );
        let done = [settled("plugin-a", "h1"), settled("plugin-b", "h0")];
        assert_eq!(rollouts.admit_among(&b, done.iter(), now), Admission::Now);

        let forgotten = Rollouts::new(1);
        assert_eq!(
            forgotten.admit_among(&a, before.iter(), now),
            Admission::Now
        );
        let later = now + STARTED_MEMORY;
        assert_eq!(
            forgotten.admit_among(&b, before.iter(), later),
            Admission::Now
        );
    }
}

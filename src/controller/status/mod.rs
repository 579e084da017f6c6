//! The status step. This file is its pure half: from the Plugin, its Deployment and its
//! pods (or a failed reconcile) to the Plugin's status, with the real reason when
//! something is wrong. [`report`] writes the status and its Events; [`written`]
//! remembers what was written until the cache shows it.

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, ContainerState, ContainerStatus, Pod},
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub mod report;
pub mod written;

use crate::api::PluginStatus;
use crate::api::status::{condition, reason};
use crate::controller::config::ChatApiCa;

/// What is wrong with a Plugin's pods, in the words a user needs to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub reason: &'static str,
    pub message: String,
}

/// What the Plugin asks for, as far as its status is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    pub generation: i64,
    pub paused: bool,
    pub replicas: i32,
    pub endpoint: String,
}

/// The status the Plugin should have now. `setup` is what keeps new pods from starting
/// that the pods themselves do not show ([`chat_api_ca_problem`]): the Ready reason
/// while pods are not ready, and Degraded while it lasts. `previous` keeps each
/// condition's `lastTransitionTime` while its status does not change; `now` stamps the
/// ones that do.
pub fn plugin_status(
    desired: &Desired,
    deployment: Option<&Deployment>,
    pods: &[Pod],
    setup: Option<&Problem>,
    previous: Option<&PluginStatus>,
    now: &Time,
) -> PluginStatus {
    let Desired {
        generation,
        paused,
        replicas: desired_replicas,
        endpoint,
    } = desired.clone();
    let observed = deployment
        .and_then(|d| d.status.clone())
        .unwrap_or_default();
    let deployment_current = deployment.is_some_and(|d| {
        d.status.as_ref().and_then(|s| s.observed_generation) >= d.metadata.generation
    });
    let replicas = observed.replicas.unwrap_or(0);
    let ready = observed.ready_replicas.unwrap_or(0);
    let updated = observed.updated_replicas.unwrap_or(0);
    let rolled_out = deployment_current
        && updated == desired_replicas
        && ready == desired_replicas
        && replicas == desired_replicas;
    // What keeps pods from starting explains a stalled rollout better than the stall.
    let problem = pod_problem(pods)
        .or_else(|| setup.filter(|_| !rolled_out).cloned())
        .or_else(|| deployment.and_then(deployment_problem));
    // An eviction is Degraded, and Ready's reason until a replacement is ready; a setup
    // problem under pods that run is Degraded too (the next pod will not start).
    let eviction = eviction_problem(pods).or_else(|| setup.cloned());

    let (ready_status, ready_reason, ready_message) = match (&problem, rolled_out) {
        (Some(problem), _) => ("False", problem.reason, problem.message.clone()),
        (None, true) if paused => (
            "True",
            reason::PAUSED,
            "the plugin is paused and scaled to zero".to_string(),
        ),
        (None, true) => (
            "True",
            reason::AVAILABLE,
            format!("{ready} of {desired_replicas} pods are ready"),
        ),
        (None, false) => match &eviction {
            Some(eviction) => ("False", eviction.reason, eviction.message.clone()),
            None => (
                "False",
                reason::ROLLING_OUT,
                format!("{ready} of {desired_replicas} pods are ready, {updated} up to date"),
            ),
        },
    };
    let progressing = problem.is_none() && !rolled_out;
    let conditions = conditions(
        generation,
        (ready_status, ready_reason, ready_message),
        progressing,
        problem.as_ref().or(eviction.as_ref()),
    );
    PluginStatus {
        observed_generation: Some(generation),
        conditions: keep_transition_times(conditions, previous, now),
        replicas: Some(replicas),
        ready_replicas: Some(ready),
        endpoint: Some(endpoint),
        permissions: previous.and_then(|p| p.permissions.clone()),
    }
}

/// The chat API's CA bundle (`--chat-api-ca-config-map`) as the Plugin's namespace has
/// it (`found`, keys enough): a problem when the ConfigMap or its key is missing. The
/// kubelet then leaves the pods in ContainerCreating and says why only in an Event on
/// each pod; it mounts the bundle as soon as it appears.
pub fn chat_api_ca_problem(
    ca: &ChatApiCa,
    namespace: &str,
    found: Option<&ConfigMap>,
) -> Option<Problem> {
    let ChatApiCa { config_map, key } = ca;
    let Some(found) = found else {
        return Some(problem(
            reason::CHAT_API_CA_MISSING,
            format!(
                "the ConfigMap {config_map} with the chat API's CA certificates (the operator's --chat-api-ca-config-map) is not in namespace {namespace}; the plugin's pods cannot start until it is: create it with the PEM certificates under the key {key}, or have the trust-manager Bundle that writes it target this namespace"
            ),
        ));
    };
    let has_key = found.data.as_ref().is_some_and(|d| d.contains_key(key))
        || found
            .binary_data
            .as_ref()
            .is_some_and(|d| d.contains_key(key));
    (!has_key).then(|| {
        problem(
            reason::CHAT_API_CA_MISSING,
            format!(
                "the ConfigMap {namespace}/{config_map} has no key {key} (the operator's --chat-api-ca-key); the plugin's pods cannot start until it has: put the chat API's CA certificates (PEM) under it"
            ),
        )
    })
}

/// The status of a Plugin whose reconcile failed: Ready False and Degraded (Stalled)
/// True with the failure's reason and message, at the Plugin's generation, so
/// `kubectl get plugins` and kstatus show it. What the previous status said of the pods
/// and the endpoint is kept: the failure did not change them.
pub fn failed_status(
    generation: i64,
    failure: &Problem,
    previous: Option<&PluginStatus>,
    now: &Time,
) -> PluginStatus {
    let ready = ("False", failure.reason, failure.message.clone());
    let conditions = conditions(generation, ready, false, Some(failure));
    let before = previous.cloned().unwrap_or_default();
    PluginStatus {
        observed_generation: Some(generation),
        conditions: keep_transition_times(conditions, previous, now),
        ..before
    }
}

/// Ready as given; Progressing (Reconciling) and Degraded (Stalled) from whether a
/// rollout is under way and what is wrong.
fn conditions(
    generation: i64,
    (ready_status, ready_reason, ready_message): (&str, &str, String),
    progressing: bool,
    problem: Option<&Problem>,
) -> Vec<Condition> {
    let (progressing_reason, progressing_message) = if progressing {
        (
            reason::ROLLING_OUT,
            "the plugin's pods are being rolled out",
        )
    } else {
        (reason::AS_EXPECTED, "no rollout is under way")
    };
    let progressing_status = if progressing { "True" } else { "False" };
    let (degraded_status, degraded_reason, degraded_message) = match problem {
        Some(problem) => ("True", problem.reason, problem.message.clone()),
        None => ("False", reason::AS_EXPECTED, "no problem found".to_string()),
    };
    vec![
        condition(
            condition::READY,
            ready_status,
            ready_reason,
            ready_message,
            generation,
        ),
        condition(
            condition::PROGRESSING,
            progressing_status,
            progressing_reason,
            progressing_message.into(),
            generation,
        ),
        condition(
            condition::DEGRADED,
            degraded_status,
            degraded_reason,
            degraded_message.clone(),
            generation,
        ),
        // The same two facts under the names kstatus (Flux, kpt, cli-utils) reads.
        condition(
            condition::RECONCILING,
            progressing_status,
            progressing_reason,
            progressing_message.into(),
            generation,
        ),
        condition(
            condition::STALLED,
            degraded_status,
            degraded_reason,
            degraded_message,
            generation,
        ),
    ]
}

fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    generation: i64,
) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: Some(generation),
        last_transition_time: Time(Default::default()),
    }
}

fn keep_transition_times(
    mut conditions: Vec<Condition>,
    previous: Option<&PluginStatus>,
    now: &Time,
) -> Vec<Condition> {
    for condition in &mut conditions {
        let before =
            previous.and_then(|p| p.conditions.iter().find(|c| c.type_ == condition.type_));
        condition.last_transition_time = match before {
            Some(before) if before.status == condition.status => {
                before.last_transition_time.clone()
            }
            _ => now.clone(),
        };
    }
    conditions
}

/// The most telling problem among the pods' containers and scheduling. Messages avoid
/// what flaps (restart counts, the kubelet's back-off wording) so that an unchanging
/// problem gives an unchanging status.
pub fn pod_problem(pods: &[Pod]) -> Option<Problem> {
    let mut found: Option<Problem> = None;
    for pod in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(status) = &pod.status else { continue };
        let containers = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten());
        for container in containers {
            found = worse(found, container_problem(&name, container));
        }
        let unschedulable = status.conditions.iter().flatten().find(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
        });
        if let Some(unschedulable) = unschedulable {
            let message = unschedulable.message.clone().unwrap_or_default();
            found = worse(
                found,
                Some(problem(
                    reason::UNSCHEDULABLE,
                    format!("pod {name} cannot be scheduled: {message}"),
                )),
            );
        }
    }
    found
}

/// A pod the kubelet evicted (a full /scratch, too much disk or memory), while it still
/// tells about the pods of now: it comes from the pod template of a pod that is live,
/// or no pod is live. Evicted pods stay until someone deletes them; a rollout of a new
/// template leaves them behind, so a changed spec clears this. Of several, the first
/// by name, so that an unchanging set gives an unchanging status.
pub fn eviction_problem(pods: &[Pod]) -> Option<Problem> {
    const TEMPLATE: &str = "pod-template-hash";
    let phase = |pod: &Pod| pod.status.as_ref()?.phase.clone();
    let template = |pod: &Pod| pod.metadata.labels.as_ref()?.get(TEMPLATE).cloned();
    let current = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none());
    let live: Vec<_> = current
        .clone()
        .filter(|p| !matches!(phase(p).as_deref(), Some("Failed" | "Succeeded")))
        .map(template)
        .collect();
    let evicted = current
        .filter(|p| {
            let status = p.status.as_ref();
            phase(p).as_deref() == Some("Failed")
                && status.and_then(|s| s.reason.as_deref()) == Some("Evicted")
        })
        .filter(|p| live.is_empty() || live.contains(&template(p)))
        .min_by_key(|p| p.metadata.name.clone())?;
    let name = evicted.metadata.name.clone().unwrap_or_default();
    let why = evicted
        .status
        .as_ref()
        .and_then(|s| s.message.clone())
        .unwrap_or_default();
    let why = why.trim().trim_end_matches('.');
    let advice = if why.contains("EmptyDir volume \"scratch\"") {
        "the plugin wrote more to /scratch than permissions.filesystem.scratch.sizeLimit; raise it or have the plugin write less"
    } else if why.contains("ephemeral") {
        "the pod's logs and files outgrew its ephemeral storage; raise resources.limits.ephemeralStorage or have the plugin log less"
    } else {
        "`kubectl describe pod` tells more"
    };
    Some(problem(
        reason::EVICTED,
        format!(
            "pod {name} was evicted by the kubelet: {why}. {advice}; delete the evicted pod to clear this"
        ),
    ))
}

fn container_problem(pod: &str, container: &ContainerStatus) -> Option<Problem> {
    let name = &container.name;
    let oom_killed = problem(
        reason::OOM_KILLED,
        format!(
            "pod {pod}: container {name} was killed for exceeding its memory limit; raise resources.limits.memory"
        ),
    );
    if terminated_reason(container.state.as_ref()) == Some("OOMKilled") {
        return Some(oom_killed);
    }
    let waiting = container.state.as_ref()?.waiting.as_ref()?;
    let waiting_reason = waiting.reason.as_deref().unwrap_or_default();
    match waiting_reason {
        "ImagePullBackOff" | "ErrImagePull" | "InvalidImageName" | "ErrImageNeverPull" => {
            Some(problem(
                reason::IMAGE_PULL_BACK_OFF,
                format!(
                    "pod {pod}: container {name} cannot pull image {:?}; `kubectl describe pod {pod}` shows the registry's answer",
                    container.image
                ),
            ))
        }
        "CrashLoopBackOff"
            if terminated_reason(container.last_state.as_ref()) == Some("OOMKilled") =>
        {
            Some(oom_killed)
        }
        "CrashLoopBackOff" => {
            let last = container
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref());
            let exit = last
                .map(|t| {
                    format!(
                        ", last exit code {} ({})",
                        t.exit_code,
                        t.reason.clone().unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            Some(problem(
                reason::CRASH_LOOP_BACK_OFF,
                format!("pod {pod}: container {name} keeps exiting{exit}"),
            ))
        }
        "CreateContainerConfigError" | "CreateContainerError" | "RunContainerError" => {
            let detail = waiting.message.clone().unwrap_or_default();
            Some(problem(
                reason::POD_CREATE_FAILED,
                format!("pod {pod}: container {name} cannot start ({waiting_reason}): {detail}"),
            ))
        }
        _ => None,
    }
}

fn terminated_reason(state: Option<&ContainerState>) -> Option<&str> {
    state?.terminated.as_ref()?.reason.as_deref()
}

fn problem(reason: &'static str, message: String) -> Problem {
    Problem { reason, message }
}

/// Problems the Deployment reports: pods refused at creation, or a stalled rollout.
pub fn deployment_problem(deployment: &Deployment) -> Option<Problem> {
    let conditions = deployment.status.as_ref()?.conditions.as_ref()?;
    if let Some(failure) = conditions
        .iter()
        .find(|c| c.type_ == "ReplicaFailure" && c.status == "True")
    {
        let message = failure.message.clone().unwrap_or_default();
        let reason = if message.contains("violates PodSecurity") {
            reason::POD_SECURITY_REJECTED
        } else if message.contains("exceeded quota") || message.contains("must specify limits") {
            reason::QUOTA_EXCEEDED
        } else {
            reason::POD_CREATE_FAILED
        };
        return Some(Problem {
            reason,
            message: format!("pods cannot be created: {message}"),
        });
    }
    let stalled = conditions.iter().find(|c| {
        c.type_ == "Progressing"
            && c.status == "False"
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    })?;
    Some(Problem {
        reason: reason::ROLLOUT_STALLED,
        message: stalled
            .message
            .clone()
            .unwrap_or_else(|| "the rollout made no progress".into()),
    })
}

/// Keeps the more serious of two problems: the order is how a user should fix things.
fn worse(a: Option<Problem>, b: Option<Problem>) -> Option<Problem> {
    let rank = |p: &Problem| match p.reason {
        reason::UNSCHEDULABLE => 1,
        reason::POD_CREATE_FAILED => 2,
        reason::CRASH_LOOP_BACK_OFF => 3,
        reason::OOM_KILLED => 4,
        reason::IMAGE_PULL_BACK_OFF => 5,
        _ => 0,
    };
    match (a, b) {
        (Some(a), Some(b)) => Some(if rank(&b) > rank(&a) { b } else { a }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests;

use super::*;
use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus};
use k8s_openapi::api::core::v1::{
    ConfigMap, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, PodCondition, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn desired() -> Desired {
    Desired {
        generation: 3,
        paused: false,
        replicas: 1,
        endpoint: "http://plugin-weather.team-a.svc:80".into(),
    }
}

fn now() -> Time {
    Time("2026-01-02T03:04:05Z".parse().unwrap())
}

fn deployment(replicas: i32, ready: i32, updated: i32, current: bool) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            generation: Some(2),
            ..Default::default()
        },
        status: Some(DeploymentStatus {
            observed_generation: Some(if current { 2 } else { 1 }),
            replicas: Some(replicas),
            ready_replicas: Some(ready),
            updated_replicas: Some(updated),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod_with(container: ContainerStatus) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("plugin-weather-abc".into()),
            ..Default::default()
        },
        status: Some(PodStatus {
            container_statuses: Some(vec![container]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn waiting(reason: &str, last_reason: Option<&str>) -> ContainerStatus {
    ContainerStatus {
        name: "plugin".into(),
        restart_count: 4,
        state: Some(ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.into()),
                message: Some("detail".into()),
            }),
            ..Default::default()
        }),
        last_state: last_reason.map(|r| ContainerState {
            terminated: Some(ContainerStateTerminated {
                reason: Some(r.into()),
                exit_code: 137,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The status for the default desired state, with no previous status, at `now()`.
fn status_of(deployment: Option<&Deployment>, pods: &[Pod]) -> PluginStatus {
    plugin_status(&desired(), deployment, pods, None, None, &now())
}

fn find<'a>(status: &'a PluginStatus, type_: &str) -> &'a Condition {
    status.conditions.iter().find(|c| c.type_ == type_).unwrap()
}

/// A condition's status and reason.
fn state<'a>(status: &'a PluginStatus, type_: &str) -> (&'a str, &'a str) {
    let condition = find(status, type_);
    (&condition.status, &condition.reason)
}

#[test]
fn plugin_with_all_pods_ready_and_current_is_ready() {
    let status = status_of(Some(&deployment(1, 1, 1, true)), &[]);
    assert_eq!(state(&status, "Ready"), ("True", "Available"));
    assert_eq!(find(&status, "Progressing").status, "False");
    assert_eq!(find(&status, "Degraded").status, "False");
    assert_eq!(status.observed_generation, Some(3));
    assert!(
        status
            .conditions
            .iter()
            .all(|c| c.observed_generation == Some(3))
    );
    assert_eq!(
        status.endpoint.as_deref(),
        Some("http://plugin-weather.team-a.svc:80")
    );
    assert_eq!((status.replicas, status.ready_replicas), (Some(1), Some(1)));
}

#[test]
fn plugin_whose_deployment_has_not_caught_up_is_progressing() {
    let status = status_of(Some(&deployment(1, 1, 1, false)), &[]);
    assert_eq!(state(&status, "Ready"), ("False", "RollingOut"));
    assert_eq!(find(&status, "Progressing").status, "True");
}

#[test]
fn plugin_without_a_deployment_yet_is_progressing() {
    let status = status_of(None, &[]);
    assert_eq!(find(&status, "Progressing").status, "True");
    assert_eq!(status.ready_replicas, Some(0));
}

#[test]
fn paused_plugin_scaled_to_zero_is_ready_with_reason_paused() {
    let paused = Desired {
        paused: true,
        replicas: 0,
        ..desired()
    };
    let status = plugin_status(
        &paused,
        Some(&deployment(0, 0, 0, true)),
        &[],
        None,
        None,
        &now(),
    );
    assert_eq!(state(&status, "Ready"), ("True", "Paused"));
}

#[test]
fn image_pull_failure_is_degraded_with_the_pull_reason() {
    let pods = [pod_with(waiting("ImagePullBackOff", None))];
    let status = status_of(Some(&deployment(1, 0, 1, true)), &pods);
    let degraded = find(&status, "Degraded");
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "ImagePullBackOff")
    );
    assert!(
        degraded.message.contains("plugin-weather-abc"),
        "{}",
        degraded.message
    );
    let flapped = [pod_with(waiting("ErrImagePull", None))];
    let again = plugin_status(
        &desired(),
        Some(&deployment(1, 0, 1, true)),
        &flapped,
        None,
        Some(&status),
        &now(),
    );
    assert_eq!(
        again, status,
        "ErrImagePull and ImagePullBackOff alternate; the status must not"
    );
    assert_eq!(find(&status, "Ready").reason, "ImagePullBackOff");
    assert_eq!(find(&status, "Progressing").status, "False");
}

#[test]
fn crash_looping_plugin_is_degraded_with_crash_loop_back_off() {
    let pods = [pod_with(waiting("CrashLoopBackOff", Some("Error")))];
    let status = status_of(Some(&deployment(1, 0, 1, true)), &pods);
    assert_eq!(find(&status, "Degraded").reason, "CrashLoopBackOff");
    let message = &find(&status, "Degraded").message;
    assert!(message.contains("last exit code 137"), "{message}");
}

#[test]
fn crash_loop_after_an_oom_kill_is_reported_as_oom_killed() {
    let pods = [pod_with(waiting("CrashLoopBackOff", Some("OOMKilled")))];
    let status = status_of(Some(&deployment(1, 0, 1, true)), &pods);
    assert_eq!(find(&status, "Degraded").reason, "OOMKilled");
    assert!(find(&status, "Degraded").message.contains("memory limit"));
}

#[test]
fn running_container_that_recovered_from_an_old_oom_kill_is_not_degraded() {
    let mut container = waiting("CrashLoopBackOff", Some("OOMKilled"));
    container.state = Some(ContainerState {
        running: Some(ContainerStateRunning::default()),
        ..Default::default()
    });
    let status = status_of(Some(&deployment(1, 1, 1, true)), &[pod_with(container)]);
    assert_eq!(find(&status, "Degraded").status, "False");
    assert_eq!(find(&status, "Ready").status, "True");
}

#[test]
fn unschedulable_pod_is_reported_with_the_schedulers_message() {
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some("p".into()),
            ..Default::default()
        },
        status: Some(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "PodScheduled".into(),
                status: "False".into(),
                reason: Some("Unschedulable".into()),
                message: Some("0/1 nodes are available: 1 Insufficient memory.".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let status = status_of(Some(&deployment(1, 0, 1, true)), &[pod]);
    assert_eq!(find(&status, "Degraded").reason, "Unschedulable");
    assert!(
        find(&status, "Degraded")
            .message
            .contains("Insufficient memory")
    );
}

fn replica_failure(message: &str) -> Deployment {
    let mut d = deployment(0, 0, 0, true);
    d.status.as_mut().unwrap().conditions = Some(vec![DeploymentCondition {
        type_: "ReplicaFailure".into(),
        status: "True".into(),
        reason: Some("FailedCreate".into()),
        message: Some(message.into()),
        ..Default::default()
    }]);
    d
}

/// The Degraded condition of a Plugin whose Deployment cannot create pods.
fn degraded_by_replica_failure(message: &str) -> Condition {
    let d = replica_failure(message);
    find(&status_of(Some(&d), &[]), "Degraded").clone()
}

#[test]
fn pod_refused_by_pod_security_admission_is_reported_as_such() {
    let degraded = degraded_by_replica_failure(
        "pods \"plugin-weather-x\" is forbidden: violates PodSecurity \"restricted:latest\": runAsNonRoot != true",
    );
    assert_eq!(degraded.reason, "PodSecurityRejected");
    assert!(degraded.message.contains("runAsNonRoot"));
}

#[test]
fn pod_refused_by_a_quota_is_reported_as_quota_exceeded() {
    let degraded = degraded_by_replica_failure(
        "pods \"x\" is forbidden: exceeded quota: small, requested: memory=128Mi, used: memory=0, limited: memory=64Mi",
    );
    assert_eq!(degraded.reason, "QuotaExceeded");
}

#[test]
fn unchanged_condition_keeps_its_transition_time_and_a_changed_one_gets_now() {
    let earlier = Time("2025-01-01T00:00:00Z".parse().unwrap());
    let mut previous = plugin_status(
        &desired(),
        Some(&deployment(1, 1, 1, true)),
        &[],
        None,
        None,
        &earlier,
    );
    previous
        .conditions
        .iter_mut()
        .for_each(|c| c.last_transition_time = earlier.clone());
    let same = plugin_status(
        &desired(),
        Some(&deployment(1, 1, 1, true)),
        &[],
        None,
        Some(&previous),
        &now(),
    );
    assert!(
        same.conditions
            .iter()
            .all(|c| c.last_transition_time == earlier)
    );
    let pods = [pod_with(waiting("CrashLoopBackOff", Some("Error")))];
    let changed = plugin_status(
        &desired(),
        Some(&deployment(1, 0, 1, true)),
        &pods,
        None,
        Some(&previous),
        &now(),
    );
    assert_eq!(find(&changed, "Ready").last_transition_time, now());
    assert_eq!(find(&changed, "Degraded").last_transition_time, now());
}

#[test]
fn same_inputs_give_an_identical_status_so_nothing_is_rewritten() {
    let first = status_of(Some(&deployment(1, 1, 1, true)), &[]);
    let later = Time("2027-01-01T00:00:00Z".parse().unwrap());
    let second = plugin_status(
        &desired(),
        Some(&deployment(1, 1, 1, true)),
        &[],
        None,
        Some(&first),
        &later,
    );
    assert_eq!(first, second);
}

#[test]
fn kstatus_conditions_mirror_progressing_and_degraded() {
    let rolling = status_of(Some(&deployment(1, 0, 0, false)), &[]);
    assert_eq!(find(&rolling, "Reconciling").status, "True");
    assert_eq!(find(&rolling, "Stalled").status, "False");
    let pods = [pod_with(waiting("CrashLoopBackOff", Some("Error")))];
    let broken = status_of(Some(&deployment(1, 0, 1, true)), &pods);
    assert_eq!(find(&broken, "Stalled").status, "True");
    assert_eq!(find(&broken, "Stalled").reason, "CrashLoopBackOff");
    assert_eq!(find(&broken, "Reconciling").status, "False");
    let ready = status_of(Some(&deployment(1, 1, 1, true)), &[]);
    assert_eq!(find(&ready, "Reconciling").status, "False");
    assert_eq!(find(&ready, "Stalled").status, "False");
}

/// A pod of the template `hash` in `phase`, evicted with `message` when one is given.
fn pod_in(name: &str, hash: &str, phase: &str, evicted: Option<&str>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some([("pod-template-hash".to_string(), hash.to_string())].into()),
            ..Default::default()
        },
        status: Some(PodStatus {
            phase: Some(phase.into()),
            reason: evicted.map(|_| "Evicted".into()),
            message: evicted.map(String::from),
            ..Default::default()
        }),
        ..Default::default()
    }
}

const SCRATCH_FULL: &str = "Usage of EmptyDir volume \"scratch\" exceeds the limit \"2Mi\". ";

#[test]
fn pod_evicted_for_a_full_scratch_is_degraded_and_says_what_to_change() {
    let evicted = pod_in("plugin-weather-a", "h1", "Failed", Some(SCRATCH_FULL));
    let replacement = pod_in("plugin-weather-b", "h1", "Running", None);
    let pods = [evicted, replacement];

    let status = status_of(Some(&deployment(1, 1, 1, true)), &pods);
    assert_eq!(state(&status, "Ready"), ("True", "Available"));
    assert_eq!(state(&status, "Degraded"), ("True", "Evicted"));
    assert_eq!(state(&status, "Stalled"), ("True", "Evicted"));
    let message = &find(&status, "Degraded").message;
    assert!(message.starts_with("pod plugin-weather-a was evicted by the kubelet: Usage of EmptyDir volume \"scratch\" exceeds the limit \"2Mi\". "), "{message}");
    assert!(
        message.contains("permissions.filesystem.scratch.sizeLimit"),
        "{message}"
    );

    // Until the replacement is ready, the eviction is also Ready's reason.
    let status = status_of(Some(&deployment(1, 0, 1, true)), &pods);
    assert_eq!(state(&status, "Ready"), ("False", "Evicted"));
}

#[test]
fn eviction_of_an_older_template_or_a_deleted_pod_is_forgotten() {
    let old = pod_in("plugin-weather-a", "h1", "Failed", Some(SCRATCH_FULL));
    let new = pod_in("plugin-weather-b", "h2", "Running", None);
    let status = status_of(Some(&deployment(1, 1, 1, true)), &[old.clone(), new]);
    assert_eq!(state(&status, "Degraded"), ("False", "AsExpected"));

    let mut deleted = old;
    deleted.metadata.deletion_timestamp = Some(now());
    let status = status_of(Some(&deployment(1, 1, 1, true)), &[deleted]);
    assert_eq!(state(&status, "Degraded"), ("False", "AsExpected"));
}

#[test]
fn pod_evicted_for_its_containers_disk_points_at_the_ephemeral_storage_limit() {
    let evicted = pod_in(
        "plugin-weather-a",
        "h1",
        "Failed",
        Some("Pod ephemeral local storage usage exceeds the total limit of containers 192Mi. "),
    );
    let problem = eviction_problem(&[evicted]).unwrap();
    assert!(
        problem
            .message
            .contains("resources.limits.ephemeralStorage"),
        "{}",
        problem.message
    );
}

fn ca_bundle(data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    }
}

#[test]
fn a_chat_api_ca_bundle_missing_from_the_namespace_or_its_key_is_a_problem_that_says_so() {
    let ca = ChatApiCa::new("trust-bundle", "trust-bundle.pem").unwrap();
    let missing = chat_api_ca_problem(&ca, "team-a", None).unwrap();
    assert_eq!(missing.reason, "ChatApiCaMissing");
    assert!(
        missing.message.contains("ConfigMap trust-bundle")
            && missing.message.contains("namespace team-a")
            && missing.message.contains("trust-bundle.pem"),
        "{}",
        missing.message
    );
    let other_key = ca_bundle(&[("ca.crt", "PEM")]);
    let no_key = chat_api_ca_problem(&ca, "team-a", Some(&other_key)).unwrap();
    assert_eq!(no_key.reason, "ChatApiCaMissing");
    assert!(
        no_key
            .message
            .contains("team-a/trust-bundle has no key trust-bundle.pem"),
        "{}",
        no_key.message
    );
    let present = ca_bundle(&[("trust-bundle.pem", "")]);
    assert_eq!(chat_api_ca_problem(&ca, "team-a", Some(&present)), None);
}

#[test]
fn pods_waiting_for_a_missing_chat_api_ca_make_it_the_ready_reason_even_after_the_rollout_stalls() {
    let ca = ChatApiCa::new("chat-api-ca", "ca.crt").unwrap();
    let missing = chat_api_ca_problem(&ca, "team-a", None);
    let mut stalled = deployment(1, 0, 1, true);
    stalled.status.as_mut().unwrap().conditions = Some(vec![DeploymentCondition {
        type_: "Progressing".into(),
        status: "False".into(),
        reason: Some("ProgressDeadlineExceeded".into()),
        message: Some("ReplicaSet has timed out progressing".into()),
        ..Default::default()
    }]);
    for deployment in [deployment(1, 0, 1, true), stalled] {
        let status = plugin_status(
            &desired(),
            Some(&deployment),
            &[],
            missing.as_ref(),
            None,
            &now(),
        );
        assert_eq!(state(&status, "Ready"), ("False", "ChatApiCaMissing"));
        assert_eq!(state(&status, "Degraded"), ("True", "ChatApiCaMissing"));
        assert_eq!(state(&status, "Stalled"), ("True", "ChatApiCaMissing"));
        assert_eq!(find(&status, "Progressing").status, "False");
    }

    // Pods that started before the bundle went keep running: still Ready, but Degraded.
    let running = plugin_status(
        &desired(),
        Some(&deployment(1, 1, 1, true)),
        &[],
        missing.as_ref(),
        None,
        &now(),
    );
    assert_eq!(state(&running, "Ready"), ("True", "Available"));
    assert_eq!(state(&running, "Degraded"), ("True", "ChatApiCaMissing"));
}

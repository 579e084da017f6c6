use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentSpec, DeploymentStatus,
};
use k8s_openapi::api::core::v1::{ConfigMap, PodTemplateSpec, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::ResourceExt;

use super::*;
use crate::controller::status::deployment_problem;

fn metadata(annotations: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        name: Some("plugin-a".into()),
        namespace: Some("team-a".into()),
        uid: Some("uid-1".into()),
        resource_version: Some("42".into()),
        generation: Some(3),
        labels: Some(BTreeMap::from([("app".into(), "a".into())])),
        annotations: Some(
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        owner_references: Some(vec![OwnerReference {
            api_version: "plugins.chat.dev/v1alpha1".into(),
            kind: "Plugin".into(),
            name: "a".into(),
            uid: "plugin-uid".into(),
            controller: Some(true),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

fn owner_names<K: Keeps>(cached: &Cached<K>) -> Vec<&str> {
    cached.owners.iter().map(AsRef::as_ref).collect()
}

fn condition(type_: &str, status: &str, reason: &str) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(format!("{type_} {reason}")),
        ..Default::default()
    }
}

#[test]
fn a_cached_child_keeps_its_identity_owners_hash_and_the_digest_of_what_it_drops() {
    let service = Service {
        metadata: metadata(&[(APPLIED_HASH_ANNOTATION, "h1"), ("note", "x")]),
        ..Default::default()
    };
    let digest = content_digest(&service);
    let cached = Cached::new(service.clone());
    assert_eq!(&*cached.digest, digest.as_str());
    assert_eq!(cached.applied_hash.as_deref(), Some("h1"));
    assert_eq!(cached.name_any(), "plugin-a");
    assert_eq!(cached.namespace().as_deref(), Some("team-a"));
    assert_eq!(cached.uid().as_deref(), Some("uid-1"));
    assert_eq!(cached.resource_version().as_deref(), Some("42"));
    assert_eq!(owner_names(&cached), ["a"]);
    assert!(cached.owner_references().is_empty());
    assert!(cached.labels().is_empty());
    assert!(cached.annotations().is_empty());
    assert_eq!(Cached::<Service>::kind(&()), "Service");

    let mut unannotated = service;
    unannotated.metadata.annotations = None;
    assert_eq!(Cached::new(unannotated).applied_hash, None);
}

#[test]
fn only_plugins_among_the_owners_are_kept_by_name() {
    let owner = |api_version: &str, kind: &str, name: &str| OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        ..Default::default()
    };
    let mut service = Service {
        metadata: metadata(&[]),
        ..Default::default()
    };
    service.metadata.owner_references = Some(vec![
        owner("apps/v1", "ReplicaSet", "rs"),
        owner("plugins.chat.dev/v1alpha1", "Plugin", "a"),
        owner("other.example/v1", "Plugin", "lookalike"),
        owner("plugins.chat.dev/v1alpha1", "Plugin", "added-by-hand"),
    ]);
    let cached = Cached::new(service);
    assert_eq!(owner_names(&cached), ["a", "added-by-hand"]);

    service = Service {
        metadata: metadata(&[]),
        ..Default::default()
    };
    service.metadata.owner_references = None;
    assert!(Cached::new(service).owners.is_empty());
}

#[test]
fn only_an_immutable_config_map_is_kept_immutable() {
    let config_map = |immutable| ConfigMap {
        metadata: metadata(&[]),
        data: Some(BTreeMap::from([("policy.json".into(), "{}".into())])),
        immutable,
        ..Default::default()
    };
    assert!(Cached::new(config_map(Some(true))).immutable());
    assert!(!Cached::new(config_map(Some(false))).immutable());
    assert!(!Cached::new(config_map(None)).immutable());
    assert!(!Cached::new(Service::default()).immutable());
}

#[test]
fn a_deployment_keeps_replicas_template_hash_and_the_conditions_that_report_a_problem() {
    let deployment = Deployment {
        metadata: metadata(&[
            (APPLIED_HASH_ANNOTATION, "h1"),
            (TEMPLATE_HASH_ANNOTATION, "t1"),
        ]),
        spec: Some(DeploymentSpec {
            replicas: Some(2),
            template: PodTemplateSpec {
                metadata: Some(metadata(&[])),
                ..Default::default()
            },
            ..Default::default()
        }),
        status: Some(DeploymentStatus {
            observed_generation: Some(3),
            replicas: Some(2),
            conditions: Some(vec![
                condition("Available", "True", "MinimumReplicasAvailable"),
                condition("Progressing", "True", "NewReplicaSetAvailable"),
                condition("ReplicaFailure", "True", "FailedCreate"),
                condition("Progressing", "False", "ProgressDeadlineExceeded"),
            ]),
            ..Default::default()
        }),
    };
    let cached = Cached::new(deployment.clone());
    assert_eq!(cached.kept.replicas, Some(2));
    assert_eq!(cached.kept.template_hash.as_deref(), Some("t1"));
    let kept: Vec<_> = cached
        .kept
        .status
        .as_ref()
        .unwrap()
        .conditions
        .clone()
        .unwrap();
    assert_eq!(
        kept.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(),
        ["ReplicaFailure", "Progressing"]
    );

    // What the status step reads comes back the same.
    let lean = cached.to_deployment();
    assert_eq!(deployment_problem(&lean), deployment_problem(&deployment));
    assert!(deployment_problem(&lean).is_some());
    assert_eq!(lean.metadata.generation, Some(3));
    assert_eq!(lean.spec.unwrap().replicas, Some(2));
    assert_eq!(
        lean.metadata.annotations.unwrap()[TEMPLATE_HASH_ANNOTATION],
        "t1"
    );

    let mut healthy = deployment;
    healthy.status.as_mut().unwrap().conditions = Some(vec![condition(
        "Available",
        "True",
        "MinimumReplicasAvailable",
    )]);
    let cached = Cached::new(healthy);
    assert_eq!(cached.kept.status.unwrap().conditions, None);
}

#[test]
fn a_watch_event_carries_cached_objects() {
    let event = cached_event(watcher::Event::Apply(Service {
        metadata: metadata(&[(APPLIED_HASH_ANNOTATION, "h1")]),
        ..Default::default()
    }));
    let watcher::Event::Apply(cached) = event else {
        panic!("an Apply stays an Apply");
    };
    assert_eq!(cached.applied_hash.as_deref(), Some("h1"));
    assert!(matches!(
        cached_event::<Service>(watcher::Event::InitDone),
        watcher::Event::InitDone
    ));
}

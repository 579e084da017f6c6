//! The operator's Event recorder against a real API server: the same event again is one
//! more in the first Event's series, another reason or another related object is an
//! Event of its own.

use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::Resource;
use kube::api::{Api, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use plugin_operator::controller::events::{Recorder, reconcile_event};
use plugin_operator_test_support::cluster::{TestNamespace, client, together};

fn event(reason: &str, note: &str, secondary: Option<ObjectReference>) -> Event {
    let warning = reconcile_event(EventType::Warning, reason, note.into());
    Event {
        secondary,
        ..warning
    }
}

#[tokio::test]
async fn a_repeated_event_is_one_event_with_a_series() {
    let _cluster = together().await;
    let client = client().await;
    let ns = TestNamespace::new(&client, "op-events", &[]).await;
    let regarding = Api::<ConfigMap>::namespaced(client.clone(), &ns.name)
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: kube::api::ObjectMeta {
                    name: Some("regarding".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let reference = regarding.object_ref(&());
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "plugin-operator-test".into(),
            instance: None,
        },
    );
    for note in ["first", "second", "third"] {
        recorder
            .publish(&event("ApplyFailed", note, None), &reference)
            .await
            .unwrap();
    }
    recorder
        .publish(&event("Other", "other", None), &reference)
        .await
        .unwrap();
    let found = |version: &str| ObjectReference {
        kind: Some("NetworkPolicy".into()),
        name: Some("plugin-a".into()),
        resource_version: Some(version.into()),
        ..Default::default()
    };
    for version in ["1", "2"] {
        recorder
            .publish(
                &event("DriftCorrected", "put back", Some(found(version))),
                &reference,
            )
            .await
            .unwrap();
    }
    assert_eq!(recorder.remembered(), 4);

    let events = Api::<K8sEvent>::namespaced(client.clone(), &ns.name)
        .list(&Default::default())
        .await
        .unwrap()
        .items;
    let with_reason = |reason: &str| -> Vec<&K8sEvent> {
        events
            .iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .collect()
    };
    let failed = with_reason("ApplyFailed");
    assert_eq!(failed.len(), 1, "one Event for the repeats: {failed:?}");
    let failed = failed[0];
    assert_eq!(failed.series.as_ref().map(|s| s.count), Some(3));
    assert_eq!(
        failed.note.as_deref(),
        Some("first"),
        "a series keeps its first note"
    );
    assert_eq!(failed.type_.as_deref(), Some("Warning"));
    assert_eq!(
        failed.regarding.as_ref().and_then(|r| r.uid.as_deref()),
        regarding.metadata.uid.as_deref()
    );
    assert_eq!(
        failed.reporting_controller.as_deref(),
        Some("plugin-operator-test")
    );
    let other = with_reason("Other");
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].series, None, "seen once");
    assert_eq!(
        with_reason("DriftCorrected").len(),
        2,
        "each drift found is an Event of its own"
    );
}

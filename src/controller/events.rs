//! Events on Plugins (events.k8s.io/v1). The same event again within six minutes (same
//! type, action, reason, object and related object) does not create another Event: the
//! first one's `series` counts it, as client-go's and kube-runtime's recorders do.
//!
//! kube-runtime's recorder keeps each Event it wrote, whole, for those six minutes:
//! about 4 KB an Event, 40 MB when 10,000 Plugins become Ready. This one keeps what a
//! series needs: the Event's name, its count and when it was last seen.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::desired::FIELD_MANAGER;
use super::status::report::truncate;

/// How long an Event takes the same event again into its series.
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// An Event from a reconcile of a Plugin, its note cut to 1,000 bytes.
pub fn reconcile_event(type_: EventType, reason: impl Into<String>, note: String) -> Event {
    Event {
        type_,
        reason: reason.into(),
        note: Some(truncate(note)),
        action: "Reconcile".into(),
        secondary: None,
    }
}

/// Publishes Events, folding repeats into series.
pub struct Recorder {
    client: Client,
    reporter: Reporter,
    series: Mutex<Series>,
}

#[derive(Default)]
struct Series {
    /// By the hash of what makes two events the same ([`same_event`]).
    recent: HashMap<u64, Recent>,
    swept: Option<Instant>,
}

/// The last Event written for one series.
struct Recent {
    name: Box<str>,
    count: i32,
    seen: Instant,
}

impl Recorder {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self {
            client,
            reporter,
            series: Mutex::default(),
        }
    }

    /// Writes `event` about `regarding`: a new Event, or one more in the series of the
    /// same event seen within six minutes.
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let key = same_event(event, regarding);
        let repeat = self.series_of(key);
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        if let Some((name, count)) = repeat {
            let patch = json!({"series": EventSeries {
                count,
                last_observed_time: MicroTime(jiff::Timestamp::now()),
            }});
            match api
                .patch(
                    &name,
                    &PatchParams {
                        field_manager: Some(FIELD_MANAGER.into()),
                        ..Default::default()
                    },
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(_) => {
                    self.remember(key, name.into(), count);
                    return Ok(());
                }
                // Gone (the API server keeps Events an hour): start a new one.
                Err(kube::Error::Api(status)) if status.is_not_found() => {}
                Err(error) => return Err(error),
            }
        }
        let created = api
            .create(
                &PostParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..Default::default()
                },
                &self.new_event(event, regarding),
            )
            .await?;
        self.remember(key, created.name_any().into(), 1);
        Ok(())
    }

    /// The Event to update and its next count, if the same event was written within
    /// the window.
    fn series_of(&self, key: u64) -> Option<(String, i32)> {
        let mut series = self.lock();
        let now = Instant::now();
        if series
            .swept
            .is_none_or(|at| now.duration_since(at) > Duration::from_secs(1))
        {
            series
                .recent
                .retain(|_, recent| now.duration_since(recent.seen) < SERIES_WINDOW);
            series.swept = Some(now);
        }
        let recent = series
            .recent
            .get(&key)
            .filter(|recent| now.duration_since(recent.seen) < SERIES_WINDOW)?;
        Some((recent.name.to_string(), recent.count + 1))
    }

    fn remember(&self, key: u64, name: Box<str>, count: i32) {
        self.lock().recent.insert(
            key,
            Recent {
                name,
                count,
                seen: Instant::now(),
            },
        );
    }

    fn new_event(&self, event: &Event, regarding: &ObjectReference) -> K8sEvent {
        let now = jiff::Timestamp::now();
        let controller = &self.reporter.controller;
        K8sEvent {
            metadata: ObjectMeta {
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_deref().unwrap_or(controller),
                    now.as_nanosecond()
                )),
                namespace: regarding.namespace.clone(),
                ..Default::default()
            },
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            note: event.note.clone(),
            type_: Some(
                match event.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .into(),
            ),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: event.secondary.clone(),
            reporting_controller: Some(controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| controller.clone()),
            ),
            ..Default::default()
        }
    }

    /// How many series are remembered.
    pub fn remembered(&self) -> usize {
        self.lock().recent.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Series> {
        self.series
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What makes two events one series: type, action, reason, the object and the related
/// object (a drift's names the child at the version found, so each drift is its own).
/// The note is not part of it; a series keeps its first note.
fn same_event(event: &Event, regarding: &ObjectReference) -> u64 {
    let mut hasher = DefaultHasher::new();
    (event.type_ == EventType::Warning).hash(&mut hasher);
    (&event.action, &event.reason).hash(&mut hasher);
    for reference in std::iter::once(Some(regarding)).chain([event.secondary.as_ref()]) {
        reference
            .map(|r| {
                (
                    &r.api_version,
                    &r.kind,
                    &r.namespace,
                    &r.name,
                    &r.uid,
                    &r.resource_version,
                    &r.field_path,
                )
            })
            .hash(&mut hasher);
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(name: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("plugins.chat.dev/v1alpha1".into()),
            kind: Some("Plugin".into()),
            name: Some(name.into()),
            namespace: Some("team-a".into()),
            uid: Some(format!("uid-{name}")),
            ..Default::default()
        }
    }

    fn event(reason: &str, note: &str, secondary: Option<ObjectReference>) -> Event {
        let warning = reconcile_event(EventType::Warning, reason, note.into());
        Event {
            secondary,
            ..warning
        }
    }

    #[test]
    fn one_series_per_type_action_reason_object_and_related_object_whatever_the_note() {
        let a = plugin("a");
        let base = same_event(&event("ApplyFailed", "x", None), &a);
        assert_eq!(base, same_event(&event("ApplyFailed", "y", None), &a));
        assert_ne!(base, same_event(&event("Other", "x", None), &a));
        assert_ne!(
            base,
            same_event(&event("ApplyFailed", "x", None), &plugin("b"))
        );
        let mut normal = event("ApplyFailed", "x", None);
        normal.type_ = EventType::Normal;
        assert_ne!(base, same_event(&normal, &a));
        let found = |version: &str| ObjectReference {
            kind: Some("NetworkPolicy".into()),
            name: Some("plugin-a".into()),
            resource_version: Some(version.into()),
            ..Default::default()
        };
        let drift = same_event(&event("DriftCorrected", "x", Some(found("1"))), &a);
        assert_ne!(base, drift);
        assert_ne!(
            drift,
            same_event(&event("DriftCorrected", "x", Some(found("2"))), &a),
            "each drift found is an Event of its own"
        );
    }
}

//! The status step's writing half: the status is written by server-side apply only when
//! it differs from what the Plugin already shows, and the transitions a user cares
//! about (became ready, became degraded, a reconcile failed) become Events.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::warn;

use super::written::previous_status;
use super::{Problem, failed_status};
use crate::api::status::condition;
use crate::api::{Plugin, PluginStatus};
use crate::controller::context::Context;
use crate::controller::desired::FIELD_MANAGER;
use crate::controller::error::Error;
use crate::controller::events::reconcile_event;

/// Computes the status from the one the Plugin shows (or the one written last, while the
/// cache is behind it) and writes it unless it is the same; then publishes the
/// transitions.
pub async fn report(
    plugin: &Plugin,
    ctx: &Context,
    status_from: impl FnOnce(Option<&PluginStatus>) -> PluginStatus,
) -> Result<(), Error> {
    if let Some((previous, status)) = write_if_changed(plugin, ctx, status_from).await? {
        publish_transitions(plugin, previous.as_ref(), &status, ctx).await;
    }
    Ok(())
}

/// The status written, with the one before it, or None when nothing changed.
async fn write_if_changed(
    plugin: &Plugin,
    ctx: &Context,
    status_from: impl FnOnce(Option<&PluginStatus>) -> PluginStatus,
) -> Result<Option<(Option<PluginStatus>, PluginStatus)>, Error> {
    let written = ctx.written_statuses.get(&ObjectRef::from_obj(plugin));
    let previous = previous_status(plugin, written.as_ref());
    let status = status_from(previous);
    if previous == Some(&status) {
        ctx.written_statuses.forget_unless_behind(plugin);
        return Ok(None);
    }
    write_status(plugin, &status, ctx).await?;
    ctx.written_statuses.remember(plugin, &status);
    Ok(Some((previous.cloned(), status)))
}

/// Puts a failed reconcile on the Plugin's status; its Event is the error policy's, so
/// no transition Event is published here. A failure to write it is logged: the reconcile's own error is what counts.
pub async fn report_failure(plugin: &Plugin, error: &Error, ctx: &Context) {
    let failure = Problem {
        reason: error.reason(),
        message: truncate(error.to_string()),
    };
    let generation = plugin.metadata.generation.unwrap_or_default();
    let now = now_to_the_second();
    let written = write_if_changed(plugin, ctx, |previous| {
        failed_status(generation, &failure, previous, &now)
    });
    if let Err(error) = written.await {
        warn!(%error, "could not put the failure on the Plugin's status");
    }
}

/// Now, to the second: the API server keeps no finer time, so a finer one would always
/// look changed.
pub fn now_to_the_second() -> Time {
    let now = k8s_openapi::jiff::Timestamp::now();
    Time(k8s_openapi::jiff::Timestamp::from_second(now.as_second()).unwrap_or(now))
}

async fn write_status(plugin: &Plugin, status: &PluginStatus, ctx: &Context) -> Result<(), Error> {
    let api: Api<Plugin> =
        Api::namespaced(ctx.client.clone(), &plugin.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": "plugins.chat.dev/v1alpha1",
        "kind": "Plugin",
        "status": status,
    });
    ctx.metrics.count_write("Plugin/status");
    api.patch_status(
        &plugin.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::StatusUpdateFailed)?;
    Ok(())
}

/// Events for the transitions a user cares about: became ready, became degraded.
async fn publish_transitions(
    plugin: &Plugin,
    before: Option<&PluginStatus>,
    after: &PluginStatus,
    ctx: &Context,
) {
    let find = |status: Option<&PluginStatus>, type_: &str| {
        status.and_then(|s| s.conditions.iter().find(|c| c.type_ == type_).cloned())
    };
    let mut events = vec![];
    let (ready_before, ready_after) = (
        find(before, condition::READY),
        find(Some(after), condition::READY),
    );
    if let Some(ready) = &ready_after
        && ready.status == "True"
        && ready_before.as_ref().map(|c| c.status.as_str()) != Some("True")
    {
        events.push((
            EventType::Normal,
            ready.reason.clone(),
            ready.message.clone(),
        ));
    }
    let (degraded_before, degraded_after) = (
        find(before, condition::DEGRADED),
        find(Some(after), condition::DEGRADED),
    );
    if let Some(degraded) = &degraded_after
        && degraded.status == "True"
        && degraded_before
            .as_ref()
            .map(|c| (c.status.as_str(), c.reason.as_str()))
            != Some(("True", degraded.reason.as_str()))
    {
        events.push((
            EventType::Warning,
            degraded.reason.clone(),
            degraded.message.clone(),
        ));
    }
    for (type_, reason, note) in events {
        publish(plugin, ctx, type_, reason, note).await;
    }
}

/// Publishes one Event on the Plugin; a failure to publish is logged, never fatal.
pub async fn publish(
    plugin: &Plugin,
    ctx: &Context,
    type_: EventType,
    reason: String,
    note: String,
) {
    let event = reconcile_event(type_, reason, note);
    ctx.metrics.count_write("Event");
    if let Err(error) = ctx.recorder.publish(&event, &plugin.object_ref(&())).await {
        warn!(%error, "could not publish an Event");
    }
}

/// At most 1,000 bytes, cut at a character boundary: Event notes and condition
/// messages stay readable and within the API server's limits.
pub fn truncate(mut note: String) -> String {
    if note.len() > 1000 {
        let mut end = 1000;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
    }
    note
}

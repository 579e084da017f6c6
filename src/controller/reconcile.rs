//! One reconcile: validate -> build -> apply -> status, and the error policy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::build::{ChildNames, FIELD_MANAGER, PLUGIN_LABEL, build_children};
use super::context::Context;
use super::error::{Error, backoff_delay};
use super::status::{Desired, plugin_status};
use super::written::previous_status;
use crate::api::status::condition;
use crate::api::{Plugin, PluginStatus};

/// How often an unchanged Plugin is looked at again, in case a watch event was missed.
/// Nothing is written unless something differs.
const RESYNC: Duration = Duration::from_secs(300);

pub async fn reconcile(
    guarded: Arc<DeserializeGuard<Plugin>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let plugin = match &guarded.0 {
        Ok(plugin) => plugin,
        Err(invalid) => return Err(Error::MalformedPlugin(invalid.error.clone())),
    };
    if plugin.metadata.deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove the children.
        ctx.written_statuses.forget_unless_behind(plugin);
        return Ok(Action::await_change());
    }
    let started = Instant::now();
    ctx.metrics.reconciles.inc();
    let outcome = reconcile_plugin(plugin, &ctx).await;
    ctx.metrics
        .duration
        .observe(started.elapsed().as_secs_f64());
    if outcome.is_ok() {
        ctx.record_success(&ObjectRef::from_obj(plugin));
    }
    outcome
}

async fn reconcile_plugin(plugin: &Plugin, ctx: &Context) -> Result<Action, Error> {
    let names = ChildNames::of(plugin).map_err(|e| Error::InvalidSpec(e.to_string()))?;
    let children =
        build_children(plugin, &ctx.config).map_err(|e| Error::InvalidSpec(e.to_string()))?;
    let desired_replicas = children.desired_replicas();
    let written = super::apply::apply_children(ctx, &names.namespace, children).await?;
    if written > 0 {
        info!(plugin = %names.plugin_id(), written, "applied children");
    }

    let deployment = ctx
        .stores
        .deployments
        .get(&ObjectRef::new(&names.workload()).within(&names.namespace));
    let pods: Vec<_> = ctx
        .stores
        .pods
        .state()
        .into_iter()
        .filter(|pod| {
            pod.metadata.namespace.as_deref() == Some(names.namespace.as_str())
                && pod.labels().get(PLUGIN_LABEL) == Some(&names.plugin)
        })
        .map(|pod| (*pod).clone())
        .collect();
    let desired = Desired {
        generation: plugin.metadata.generation.unwrap_or_default(),
        paused: plugin.spec.paused.unwrap_or(false),
        replicas: desired_replicas,
        endpoint: names.endpoint(),
    };
    let now = Time(now_to_the_second());
    let written = ctx.written_statuses.get(&ObjectRef::from_obj(plugin));
    let previous = previous_status(plugin, written.as_ref());
    let status = plugin_status(&desired, deployment.as_deref(), &pods, previous, &now);
    if previous != Some(&status) {
        write_status(plugin, &status, ctx).await?;
        ctx.written_statuses.remember(plugin, &status);
        publish_transitions(plugin, previous, &status, ctx).await;
    } else {
        ctx.written_statuses.forget_unless_behind(plugin);
    }
    Ok(Action::requeue(RESYNC))
}

/// Now, to the second: the API server keeps no finer time, so a finer one would always
/// look changed.
fn now_to_the_second() -> k8s_openapi::jiff::Timestamp {
    let now = k8s_openapi::jiff::Timestamp::now();
    k8s_openapi::jiff::Timestamp::from_second(now.as_second()).unwrap_or(now)
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

async fn publish(plugin: &Plugin, ctx: &Context, type_: EventType, reason: String, note: String) {
    let event = Event {
        type_,
        reason,
        note: Some(truncate(note)),
        action: "Reconcile".into(),
        secondary: None,
    };
    ctx.metrics.count_write("Event");
    if let Err(error) = ctx.recorder.publish(&event, &plugin.object_ref(&())).await {
        warn!(%error, "could not publish an Event");
    }
}

fn truncate(mut note: String) -> String {
    if note.len() > 1000 {
        let mut end = 1000;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
    }
    note
}

/// Permanent errors wait for a change; others back off per Plugin.
pub fn error_policy(
    guarded: Arc<DeserializeGuard<Plugin>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    ctx.metrics.count_error(error.reason());
    let reference = ObjectRef::from_obj(guarded.as_ref());
    warn!(plugin = %reference, reason = error.reason(), %error, "reconcile failed");
    let object_ref = guarded.object_ref(&());
    let event = Event {
        type_: EventType::Warning,
        reason: error.reason().into(),
        note: Some(truncate(error.to_string())),
        action: "Reconcile".into(),
        secondary: None,
    };
    let recorder = ctx.recorder.clone();
    tokio::spawn(async move {
        if let Err(error) = recorder.publish(&event, &object_ref).await {
            warn!(%error, "could not publish an Event");
        }
    });
    if error.is_permanent() {
        return Action::await_change();
    }
    let failures = ctx.record_failure(
        ObjectRef::new(&reference.name).within(reference.namespace.as_deref().unwrap_or_default()),
    );
    Action::requeue(backoff_delay(failures))
}

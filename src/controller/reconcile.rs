//! One reconcile, step by step: validate -> desired -> apply -> status; and the error
//! policy. Every failure the user can act on is put on the Plugin's status as well as
//! published as an Event.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use super::apply::{TRUSTED_FOR, apply_children};
use super::context::Context;
use super::desired::{PLUGIN_LABEL, desired_children};
use super::error::{Error, backoff_delay};
use super::status::report::{now_to_the_second, report, report_failure, truncate};
use super::status::{Desired, plugin_status};
use super::validate::validate;
use crate::api::Plugin;

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
    match &outcome {
        Ok(_) => ctx.record_success(&ObjectRef::from_obj(plugin)),
        Err(error) if error.shows_on_status() => report_failure(plugin, error, &ctx).await,
        Err(_) => {}
    }
    outcome
}

async fn reconcile_plugin(plugin: &Plugin, ctx: &Context) -> Result<Action, Error> {
    let valid = validate(plugin, &ctx.config)?;
    let children = desired_children(&valid, &ctx.config);
    let desired = Desired {
        generation: plugin.metadata.generation.unwrap_or_default(),
        paused: plugin.spec.paused.unwrap_or(false),
        replicas: children.desired_replicas(),
        endpoint: valid.names.endpoint(),
    };
    let names = valid.names;
    let applied = apply_children(ctx, &names.namespace, children).await?;
    if applied.written > 0 {
        info!(plugin = %names.plugin_id(), written = applied.written, "applied children");
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
    let now = now_to_the_second();
    report(plugin, ctx, |previous| {
        plugin_status(&desired, deployment.as_deref(), &pods, previous, &now)
    })
    .await?;
    if applied.relied_on_recent_writes || applied.rollout_held_back {
        return Ok(Action::requeue(TRUSTED_FOR));
    }
    Ok(Action::requeue(RESYNC))
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

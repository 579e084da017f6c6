//! One reconcile, step by step: validate -> bounds (the ScopeCatalog and the
//! PluginPolicies) -> desired ->
//! apply -> status; and the error policy. Every failure the user can act on is put on the Plugin's status as well as
//! published as an Event.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use super::apply::{TRUSTED_FOR, Workload, apply_children};
use super::bounds::{Catalog, EnvObjects, Review, permissions_status, review, selecting};
use super::context::Context;
use super::desired::{PLUGIN_LABEL, desired_children};
use super::error::{Error, backoff_delay};
use super::events::reconcile_event;
use super::status::report::{now_to_the_second, report, report_failure, truncate};
use super::status::{Desired, Problem, chat_api_ca_problem, failed_status, plugin_status};
use super::validate::validate;
use crate::api::{Plugin, PluginPolicy, ScopeCatalog};
use crate::policy::validate_catalog;

/// How often an unchanged Plugin is looked at again, in case a watch event was missed.
/// Nothing is written unless something differs.
const RESYNC: Duration = Duration::from_secs(300);

/// How long a reconcile waits for the child caches' first lists before it is queued again.
const LISTING_WAIT: Duration = Duration::from_secs(10);

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
    // Right after a start the child caches may still be listing; nothing is written
    // meanwhile. The few reconciles running wait here rather than the whole queue
    // coming round every second.
    let listing_since = Instant::now();
    while !ctx.stores.children_listed() {
        if listing_since.elapsed() > LISTING_WAIT {
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let Some(catalog) = scope_catalog(ctx) else {
        // The catalog's watch has not listed yet; nothing is written meanwhile.
        return Ok(Action::requeue(Duration::from_secs(1)));
    };
    let routes = catalog
        .as_ref()
        .map(|c| c.spec.routes())
        .unwrap_or_default();
    validate_catalog(&routes).map_err(|source| Error::InvalidScopeCatalog {
        name: ctx.config.scope_catalog.clone(),
        source,
    })?;
    let catalog = Catalog {
        name: &ctx.config.scope_catalog,
        spec: catalog.as_ref().map(|c| &c.spec),
    };
    // The spec as written must be buildable before it is checked against its policies.
    let names = validate(plugin, &routes)?.names;
    let Some(review) = review_against_policies(plugin, &names.namespace, catalog, ctx).await?
    else {
        // The caches cannot tell yet which policies apply; nothing is written meanwhile.
        return Ok(Action::requeue(Duration::from_secs(1)));
    };
    let granted = Plugin {
        spec: review.granted.clone(),
        ..plugin.clone()
    };
    let mut valid = validate(&granted, &routes)?;
    valid.runtime_class_name = review.runtime_class_name.clone();
    let children = desired_children(&valid, &ctx.config);
    let desired = Desired {
        generation: plugin.metadata.generation.unwrap_or_default(),
        paused: plugin.spec.paused.unwrap_or(false),
        replicas: children.desired_replicas(),
        endpoint: valid.names.endpoint(),
    };
    let workload = if review.permitted() {
        Workload::Apply
    } else {
        Workload::Hold
    };
    let applied = apply_children(ctx, plugin, children, workload).await?;
    if applied.written > 0 {
        info!(plugin = %names.plugin_id(), written = applied.written, "applied children");
    }
    let permissions = permissions_status(&review);
    let now = now_to_the_second();
    if !review.permitted() {
        let held = Problem {
            reason: review.reason(),
            message: truncate(review.message()),
        };
        report(plugin, ctx, |previous| {
            let mut status = failed_status(desired.generation, &held, previous, &now);
            status.permissions = Some(permissions);
            status
        })
        .await?;
        return Ok(requeue_after(
            applied.relied_on_recent_writes || applied.rollout_held_back,
        ));
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
    let chat_api_ca = chat_api_ca_in(&names.namespace, ctx);
    report(plugin, ctx, |previous| {
        let setup = chat_api_ca.as_ref().and_then(Option::as_ref);
        let mut status = plugin_status(
            &desired,
            deployment.as_ref().map(|d| d.to_deployment()).as_ref(),
            &pods,
            setup,
            previous,
            &now,
        );
        status.permissions = Some(permissions);
        status
    })
    .await?;
    Ok(requeue_after(
        applied.relied_on_recent_writes || applied.rollout_held_back || chat_api_ca.is_none(),
    ))
}

/// Whether the chat API's CA bundle is missing from `namespace` (Some(None) when it is
/// there or none is configured); None while its cache has not been listed yet.
fn chat_api_ca_in(namespace: &str, ctx: &Context) -> Option<Option<Problem>> {
    use futures::FutureExt;
    let (Some(ca), Some(store)) = (&ctx.config.chat_api_ca, &ctx.stores.chat_api_ca) else {
        return Some(None);
    };
    if !matches!(store.wait_until_ready().now_or_never(), Some(Ok(()))) {
        return None;
    }
    let found = store.get(&ObjectRef::new(&ca.config_map).within(namespace));
    Some(chat_api_ca_problem(ca, namespace, found.as_deref()))
}

/// Soon again when a write is not yet in the cache or a rollout waits its turn.
fn requeue_after(look_again_soon: bool) -> Action {
    if look_again_soon {
        return Action::requeue(TRUSTED_FOR);
    }
    Action::requeue(RESYNC)
}

/// The operator's ScopeCatalog: `Some(None)` when it does not exist (no scope is then
/// defined), None while its watch has not listed yet.
fn scope_catalog(ctx: &Context) -> Option<Option<Arc<ScopeCatalog>>> {
    use futures::FutureExt;
    let listed = ctx.stores.catalogs.wait_until_ready().now_or_never();
    if !matches!(listed, Some(Ok(()))) {
        return None;
    }
    Some(
        ctx.stores
            .catalogs
            .get(&ObjectRef::new(&ctx.config.scope_catalog)),
    )
}

/// The Plugin against the catalog and the PluginPolicies that select its namespace;
/// None while the policies have not been listed yet or the namespace is not in the
/// cache.
async fn review_against_policies(
    plugin: &Plugin,
    namespace: &str,
    catalog: Catalog<'_>,
    ctx: &Context,
) -> Result<Option<Review>, Error> {
    use futures::FutureExt;
    let policies_listed = ctx.stores.policies.wait_until_ready().now_or_never();
    if !matches!(policies_listed, Some(Ok(()))) {
        return Ok(None);
    }
    let Some(labels) = ctx.stores.namespace_labels(namespace) else {
        return Ok(None);
    };
    let all = ctx.stores.policies.state();
    let policies = selecting(all.iter().map(|p| p.as_ref()), &labels);
    let env = env_objects(plugin, namespace, &policies, ctx).await?;
    Ok(Some(review(&plugin.spec, catalog, &policies, &env)))
}

/// The labels of the ConfigMaps the Plugin's env names, read only when a policy allows
/// ConfigMaps by label (admission sees names only).
async fn env_objects(
    plugin: &Plugin,
    namespace: &str,
    policies: &[&PluginPolicy],
    ctx: &Context,
) -> Result<EnvObjects, Error> {
    use k8s_openapi::api::core::v1::ConfigMap;
    let mut objects = EnvObjects::default();
    let by_label = policies.iter().any(|p| {
        p.spec
            .env_sources
            .as_ref()
            .and_then(|s| s.config_maps.as_ref())
            .is_some_and(|o| o.selector.is_some())
    });
    if !by_label {
        return Ok(objects);
    }
    let api = kube::Api::<ConfigMap>::namespaced(ctx.client.clone(), namespace);
    for source in plugin.spec.env.iter().filter_map(|v| v.value_from.as_ref()) {
        if let Some(key) = &source.config_map_key_ref
            && let Some(labels) = labels_of(&api, "ConfigMap", &key.name).await?
        {
            objects.config_maps.insert(key.name.clone(), labels);
        }
    }
    Ok(objects)
}

async fn labels_of<K>(
    api: &kube::Api<K>,
    kind: &'static str,
    name: &str,
) -> Result<Option<std::collections::BTreeMap<String, String>>, Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let meta = api
        .get_metadata_opt(name)
        .await
        .map_err(|source| Error::ReadFailed {
            kind,
            name: name.to_string(),
            source,
        })?;
    Ok(meta.map(|m| m.metadata.labels.unwrap_or_default()))
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
    let event = reconcile_event(EventType::Warning, error.reason(), error.to_string());
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

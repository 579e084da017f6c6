//! A new operator whose broker image differs (every plugin pod's template changes): the
//! pods roll a few Plugins at a time, never all at once. The new image is the same
//! image under a second name (`ctr images tag`), so only the template changes.
//! Measured from the pods every 200 ms: Plugins mid-rollout at once (a pod of the new
//! template not yet ready, or pods of both templates), Plugins with no ready pod, and
//! the time until every pod runs the new image.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use plugin_operator::api::Plugin;
use plugin_operator::controller::desired::PLUGIN_LABEL;
use plugin_operator::controller::rollout::DEFAULT_MAX_CONCURRENT_ROLLOUTS;
use plugin_operator_test_support::cluster::{client, install_crd, test_image};
use serde_json::json;

use crate::common::{
    Outcome, create_plugins, namespace, number, operator_flags, progress, running_spec,
    start_operator, wait_all_ready,
};

/// `image` also under the name `new`, in the node's containerd.
fn tag_image(image: &str, new: &str) {
    let kubeconfig = std::env::var("KUBECONFIG").expect("KUBECONFIG is set");
    let dir = std::path::Path::new(&kubeconfig)
        .parent()
        .expect("a directory");
    let socket = dir.join("node/containerd/run/containerd.sock");
    let status = Command::new("ctr")
        .arg("--address")
        .arg(&socket)
        .args(["-n", "k8s.io", "images", "tag", "--force", image, new])
        .output()
        .expect("ctr runs");
    assert!(
        status.status.success(),
        "ctr images tag {image} {new}: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

/// Per Plugin: (pods of the new broker image, of them ready, pods of another image).
async fn pods_by_plugin(
    pods: &Api<Pod>,
    new_image: &str,
) -> BTreeMap<String, (usize, usize, usize)> {
    let mut by_plugin: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    let Ok(list) = pods.list(&ListParams::default().labels(PLUGIN_LABEL)).await else {
        return by_plugin;
    };
    for pod in list.items {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let plugin = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(PLUGIN_LABEL))
            .cloned()
            .unwrap_or_default();
        let spec = pod.spec.as_ref();
        let broker_image = spec
            .into_iter()
            .flat_map(|s| s.init_containers.iter().flatten())
            .find(|c| c.name == "broker")
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let entry = by_plugin.entry(plugin).or_default();
        if broker_image == new_image {
            entry.0 += 1;
            entry.1 += usize::from(ready);
        } else {
            entry.2 += 1;
        }
    }
    by_plugin
}

pub async fn run(binary: &str) -> Outcome {
    let plugins = number("--plugins", 8);
    let limit = DEFAULT_MAX_CONCURRENT_ROLLOUTS as usize;
    let client = client().await;
    install_crd(&client).await;
    let ns = namespace(&client, "rollout").await;
    let api = ns.api::<Plugin>();
    let pods: Api<Pod> = ns.api();
    let old_image = test_image("plugin-operator");
    let new_image = format!("{}-chaos-next", old_image);
    tag_image(&old_image, &new_image);

    let flags = operator_flags(&[]);
    let mut operator = start_operator(binary, &ns.name, &flags, &[]).await;
    progress(&format!(
        "{plugins} Plugins of the sample plugin, broker {old_image}"
    ));
    create_plugins(&api, "roll", plugins, Duration::ZERO, |_| running_spec()).await;
    wait_all_ready(&api, plugins, Duration::from_secs(300))
        .await
        .expect("the Plugins become Ready before the upgrade");
    operator.kill();

    progress(&format!(
        "the operator again with --broker-image {new_image} (--max-concurrent-rollouts default {limit})"
    ));
    let mut new_flags = flags.clone();
    let at = new_flags
        .iter()
        .position(|f| f == "--broker-image")
        .unwrap()
        + 1;
    new_flags[at] = new_image.clone();
    let started = Instant::now();
    let _operator = start_operator(binary, &ns.name, &new_flags, &[]).await;
    let mut max_rolling = 0;
    let mut min_serving = plugins;
    let finished = loop {
        let by_plugin = pods_by_plugin(&pods, &new_image).await;
        let rolling = by_plugin
            .values()
            .filter(|(new, ready, old)| *new > 0 && (ready < new || *old > 0))
            .count();
        let done = by_plugin.len() == plugins
            && by_plugin
                .values()
                .all(|(new, ready, old)| *old == 0 && ready == new && *new > 0);
        let serving = plugins
            - by_plugin
                .values()
                .filter(|(_, ready, old)| *ready == 0 && *old == 0)
                .count();
        max_rolling = max_rolling.max(rolling);
        min_serving = min_serving.min(serving);
        if done {
            break Some(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(600) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let ready = wait_all_ready(&api, plugins, Duration::from_secs(60)).await;
    progress(&format!(
        "all {plugins} rolled in {:.1} s; at most {max_rolling} rolling at once (limit {limit}); \
         at least {min_serving} / {plugins} Plugins had a pod (old or new) all along",
        finished.map_or(f64::NAN, |d| d.as_secs_f64())
    ));
    let ok = finished.is_some() && ready.is_some() && max_rolling <= limit && max_rolling > 0;
    Outcome {
        fault: "new broker image for every Plugin".into(),
        injected: 1,
        survived: usize::from(ok),
        recovery_seconds: vec![finished.map_or(f64::NAN, |d| d.as_secs_f64())],
        lost: 0,
        details: json!({
            "plugins": plugins,
            "max_concurrent_rollouts": limit,
            "max_rolling_at_once": max_rolling,
            "min_plugins_with_a_pod": min_serving,
            "recovery": "seconds from the new operator's start until every pod runs the new broker",
        }),
    }
}

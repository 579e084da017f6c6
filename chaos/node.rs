//! SIGKILL containerd and the kubelet on the node and start them again: the plugin pods
//! and the Plugins' status come back (Ready), with children as the operator would write.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use plugin_operator::api::Plugin;
use plugin_operator::controller::desired::PLUGIN_LABEL;
use plugin_operator_test_support::cluster::{client, install_crd};
use serde_json::json;

use crate::common::{
    Outcome, check_children, count_ready, create_plugins, namespace, number, operator_config,
    operator_flags, progress, restart_components, running_spec, start_operator, wait_all_ready,
};

/// Pod name -> (uid, container restarts, ready) of the namespace's plugin pods.
async fn pods(api: &Api<Pod>) -> BTreeMap<String, (String, i32, bool)> {
    let list = api
        .list(&ListParams::default().labels(PLUGIN_LABEL))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    list.into_iter()
        .map(|pod| {
            let status = pod.status.unwrap_or_default();
            let restarts = status
                .container_statuses
                .iter()
                .flatten()
                .chain(status.init_container_statuses.iter().flatten())
                .map(|c| c.restart_count)
                .sum();
            let ready = status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            let name = pod.metadata.name.unwrap_or_default();
            (
                name,
                (pod.metadata.uid.unwrap_or_default(), restarts, ready),
            )
        })
        .collect()
}

pub async fn run(binary: &str) -> Outcome {
    let plugins = number("--plugins", 3);
    let rounds = number("--rounds", 2);
    let client = client().await;
    install_crd(&client).await;
    let ns = namespace(&client, "node").await;
    let api = ns.api::<Plugin>();
    let pod_api: Api<Pod> = ns.api();
    let flags = operator_flags(&[]);
    let _operator = start_operator(binary, &ns.name, &flags, &[]).await;
    create_plugins(&api, "node", plugins, Duration::ZERO, |_| running_spec()).await;
    wait_all_ready(&api, plugins, Duration::from_secs(300))
        .await
        .expect("the Plugins become Ready before the fault");

    let (mut survived, mut lost) = (0, 0);
    let mut recovery = Vec::new();
    let mut rows = Vec::new();
    for round in 1..=rounds {
        progress(&format!(
            "round {round}/{rounds}: SIGKILL containerd and the kubelet, start them again"
        ));
        let before = pods(&pod_api).await;
        let down = restart_components(&["containerd", "kubelet"], true).await;
        let back = Instant::now();
        // The pods, then the Plugins: all Ready again.
        let mut lowest_ready = plugins;
        let pods_back = loop {
            let now = pods(&pod_api).await;
            let (ready, _) = count_ready(&api).await.unwrap_or((0, 0));
            lowest_ready = lowest_ready.min(ready);
            if now.len() == plugins && now.values().all(|(_, _, ready)| *ready) && ready == plugins
            {
                break Some(back.elapsed());
            }
            if back.elapsed() > Duration::from_secs(300) {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let after = pods(&pod_api).await;
        let replaced = before
            .iter()
            .filter(|(name, (uid, _, _))| after.get(*name).map(|a| &a.0) != Some(uid))
            .count();
        let restarts: i32 = after.values().map(|(_, r, _)| r).sum::<i32>()
            - before.values().map(|(_, r, _)| r).sum::<i32>();
        let check = check_children(&client, &ns.name, &operator_config(&flags)).await;
        progress(&format!(
            "  down {down:.1} s; pods and Plugins Ready {:.1} s after both were back; pods replaced: \
             {replaced}, container restarts: {restarts}; fewest Plugins Ready meanwhile: {lowest_ready}",
            pods_back.map_or(f64::NAN, |d| d.as_secs_f64())
        ));
        progress(&format!("  {}", check.summary()));
        let ok = pods_back.is_some() && check.problems() == 0;
        survived += usize::from(ok);
        lost += check.problems();
        recovery.push(pods_back.map_or(f64::NAN, |d| d.as_secs_f64()));
        rows.push(json!({
            "down_seconds": down, "pods_replaced": replaced, "container_restarts": restarts,
            "fewest_plugins_ready": lowest_ready,
        }));
    }
    Outcome {
        fault: "SIGKILL containerd and the kubelet".into(),
        injected: rounds,
        survived,
        recovery_seconds: recovery,
        lost,
        details: json!({
            "plugins": plugins,
            "restarts": rows,
            "recovery": "seconds from containerd and the kubelet healthy again to every plugin pod and Plugin Ready",
        }),
    }
}

//! Restart kube-apiserver, then etcd, while Plugins are being changed: the operator
//! (one process, never restarted) says what it waits for in its log and on `/readyz`,
//! and once the component is back every Plugin is Ready at its newest generation with
//! exactly the children the operator would write.

use std::time::{Duration, Instant};

use kube::api::{Patch, PatchParams};
use plugin_operator::api::Plugin;
use plugin_operator_test_support::cluster::{Operator, client, http_get, install_crd};
use serde_json::json;

use crate::common::{
    Outcome, check_children, create_plugins, namespace, number, operator_config, operator_flags,
    paused_spec, progress, restart_components, start_operator, wait_all_ready,
};

/// What `/readyz` answered, sampled every 200 ms until `stop` is set.
async fn watch_readyz(
    operator_admin: String,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<String> {
    let mut said = Vec::new();
    while !*stop.borrow() {
        let body = raw_readyz(&operator_admin).await;
        if said.last() != Some(&body) {
            said.push(body);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    said
}

/// `/readyz`'s body whatever its status.
async fn raw_readyz(admin: &str) -> String {
    if let Some(ok) = http_get(admin, "/readyz").await {
        return ok.trim().to_string();
    }
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(admin).await else {
        return "admin port closed".into();
    };
    let request = format!("GET /readyz HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n");
    let _ = stream.write_all(request.as_bytes()).await;
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response).await;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    format!(
        "{} {}",
        head.lines().next().unwrap_or_default(),
        body.trim()
    )
}

pub async fn run(binary: &str) -> Outcome {
    let plugins = number("--plugins", 30);
    let rounds = number("--rounds", 1);
    let client = client().await;
    install_crd(&client).await;
    let ns = namespace(&client, "control-plane").await;
    let api = ns.api::<Plugin>();
    let flags = operator_flags(&[]);
    let operator = start_operator(binary, &ns.name, &flags, &[]).await;
    create_plugins(&api, "cp", plugins, Duration::ZERO, paused_spec).await;
    wait_all_ready(&api, plugins, Duration::from_secs(300))
        .await
        .expect("the Plugins become Ready before the faults");

    let mut injected = 0;
    let mut survived = 0;
    let mut recovery = Vec::new();
    let mut rows = Vec::new();
    let mut lost = 0;
    for round in 1..=rounds {
        for component in ["kube-apiserver", "etcd"] {
            injected += 1;
            progress(&format!(
                "round {round}/{rounds}: restart {component} while Plugins change"
            ));
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let readyz = tokio::spawn(watch_readyz(operator.admin.clone(), stop_rx.clone()));
            let churn = tokio::spawn(churn(api.clone(), plugins, stop_rx));
            tokio::time::sleep(Duration::from_secs(2)).await;
            let down = restart_components(&[component], false).await;
            let back = Instant::now();
            tokio::time::sleep(Duration::from_secs(2)).await;
            let _ = stop_tx.send(true);
            let patches = churn.await.unwrap_or(0);
            let converged = wait_all_ready(&api, plugins, Duration::from_secs(300)).await;
            let recovered = back.elapsed();
            let said = readyz.await.unwrap_or_default();
            let check = check_children(&client, &ns.name, &operator_config(&flags)).await;
            let same_process = alive(&operator);
            let logged = operator.log_contains("waiting for the API server");
            progress(&format!(
                "  {component} down {down:.1} s; {patches} spec changes sent around it; all Ready \
                 {:.1} s after it was back; same operator process: {same_process}; log says it \
                 waited: {logged}; /readyz said: {said:?}",
                recovered.as_secs_f64()
            ));
            progress(&format!("  {}", check.summary()));
            let ok = converged.is_some() && check.problems() == 0 && same_process;
            if !ok {
                let log = operator.log.lock().unwrap();
                for line in log.iter().rev().take(40).rev() {
                    progress(&format!("  operator: {line}"));
                }
            }
            survived += usize::from(ok);
            lost += check.problems();
            recovery.push(recovered.as_secs_f64());
            rows.push(json!({
                "component": component, "down_seconds": down, "spec_changes": patches,
                "readyz_said": said, "log_says_waiting": logged, "same_process": same_process,
            }));
        }
    }
    Outcome {
        fault: "restart kube-apiserver, then etcd".into(),
        injected,
        survived,
        recovery_seconds: recovery,
        lost,
        details: json!({
            "plugins": plugins,
            "restarts": rows,
            "recovery": "seconds from the component healthy again to every Plugin Ready at its newest generation",
        }),
    }
}

fn alive(operator: &Operator) -> bool {
    let stat =
        std::fs::read_to_string(format!("/proc/{}/stat", operator.pid())).unwrap_or_default();
    !stat.is_empty() && !stat.contains(") Z ")
}

/// Changes one Plugin's spec every 200 ms until `stop`; returns how many changes the API
/// server took.
async fn churn(
    api: kube::Api<Plugin>,
    plugins: usize,
    stop: tokio::sync::watch::Receiver<bool>,
) -> usize {
    let mut sent = 0;
    let mut change = 0usize;
    while !*stop.borrow() {
        change += 1;
        let name = format!("cp-{:04}", change % plugins);
        let patch =
            json!({"spec": {"env": [{"name": "INDEX", "value": format!("change-{change}")}]}});
        let (params, patch) = (PatchParams::default(), Patch::Merge(&patch));
        let call = api.patch(&name, &params, &patch);
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), call).await {
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    sent
}

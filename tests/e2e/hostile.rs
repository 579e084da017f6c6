//! A hostile plugin, and a hostile chat API, in real pods: the sample plugin's
//! misbehaviour subcommands (`flood`, `fetch`) against a broker whose chat API is a
//! stand-in that counts its connections, streams without end or stalls
//! (`sample-plugin chat-stand-in`).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use serde_json::{Value, json};

use crate::support::{
    Invoker, Scene, container_memory, exec_json, helper_pod_with_args, ip, kubectl, restarts,
    sample_plugin_image,
};

/// The broker container's memory limit (`src/controller/desired/pod.rs`).
const BROKER_MEMORY_LIMIT: u64 = 64 << 20;
/// `--max-outbound-connections`' default: the most the chat API sees from one pod.
const OUTBOUND_CAP: u64 = 256;
/// `--upstream-timeout`'s default.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(10);

/// A scene whose brokers call a stand-in chat API in the scene's namespace.
async fn scene_with_stand_in(prefix: &str) -> (Scene, Pod) {
    let bare = Scene::without_operator(prefix).await;
    let labels = [("app", "chat-stand-in")];
    let stand_in = helper_pod_with_args(
        &bare.client,
        &bare.ns.name,
        "chat",
        &labels,
        &["chat-stand-in"],
    )
    .await;
    let url = format!("http://{}:8080", ip(&stand_in));
    let namespace = bare.ns.name.clone();
    let scene = bare
        .with_operator(&[
            "--chat-api-url",
            &url,
            "--chat-api-namespace",
            &namespace,
            "--chat-api-selector",
            "app=chat-stand-in",
            "--no-dns-egress",
        ])
        .await;
    (scene, stand_in)
}

fn spec(scopes: &[&str]) -> Value {
    let grants: Vec<Value> = scopes.iter().map(|s| json!({"scope": s})).collect();
    json!({"image": sample_plugin_image(), "port": 8080, "permissions": {"chatApi": grants}})
}

/// What the stand-in counted: connections open, the most at once, requests, overrides.
fn stand_in_stats(stand_in: &Pod) -> Value {
    let (status, body) = exec_json(
        stand_in,
        "main",
        &["http", "GET", "http://127.0.0.1:8080/stats"],
    );
    assert_eq!(status, 200, "{body}");
    body
}

/// One counter of the broker's /metrics, read from inside the pod.
fn broker_metric(pod: &Pod, name: &str) -> f64 {
    let (status, body) = exec_json(
        pod,
        "plugin",
        &["http", "GET", "http://127.0.0.1:9090/metrics"],
    );
    assert_eq!(status, 200);
    let text = body.as_str().expect("metrics are text").to_owned();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

fn fetch(pod: &Pod, path: &str, headers: &[&str]) -> Value {
    let mut args = vec!["fetch", "GET", path];
    args.extend_from_slice(headers);
    let (_, out) = crate::support::exec(pod, "plugin", &args);
    let line = out.lines().find(|l| l.starts_with('{')).unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|_| panic!("no JSON from fetch {path}: {out}"))
}

#[tokio::test]
async fn ten_thousand_connections_keep_the_broker_under_its_limit_and_the_chat_api_under_the_cap() {
    let (scene, stand_in) = scene_with_stand_in("e2e-flood").await;
    scene
        .create_ready("flooder", spec(&["channels:read"]))
        .await;
    let pod = scene.pod("flooder").await;
    let invoker = Invoker::new(&scene).await;
    let invoke = format!("http://plugin-flooder.{}.svc/healthz", scene.ns.name);
    let before = container_memory(&pod, "broker");

    let hold = 45;
    let flood = {
        let (namespace, name) = (pod.namespace().unwrap(), pod.name_any());
        std::thread::spawn(move || {
            kubectl()
                .args(["exec", "-n", &namespace, &name, "-c", "plugin", "--"])
                .args(["/sample-plugin", "flood", "127.0.0.1:9081", "10000"])
                .args([&hold.to_string(), "/api/v1/channels"])
                .output()
                .expect("kubectl runs")
        })
    };
    let started = Instant::now();
    let (mut peak_memory, mut invocations, mut peak_open) = (0u64, 0, 0u64);
    while started.elapsed() < Duration::from_secs(hold - 5) {
        tokio::time::sleep(Duration::from_secs(3)).await;
        peak_memory = peak_memory.max(container_memory(&pod, "broker").unwrap_or(0));
        // The inbound listener still serves the chat system while the outbound one is full.
        let (status, body) = exec_json(&invoker.pod, "main", &["http", "GET", &invoke]);
        assert_eq!(status, 200, "an invocation during the flood: {body}");
        invocations += 1;
        let now = stand_in_stats(&stand_in)["established"].as_u64().unwrap();
        peak_open = peak_open.max(now);
    }
    let out = flood.join().unwrap();
    let report: Value = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("flood said: {}", String::from_utf8_lossy(&out.stderr)));
    let stats = stand_in_stats(&stand_in);
    let cap_reached = broker_metric(&pod, "broker_outbound_connection_cap_reached_total");
    eprintln!(
        "flood: {report}; broker memory {before:?} before, at most {peak_memory} during; \
         stand-in {stats} (at most {peak_open} established when sampled by the test); \
         {invocations} invocations during the flood; cap reached {cap_reached} times"
    );

    assert!(
        report["connected"].as_u64().unwrap() > OUTBOUND_CAP,
        "{report}"
    );
    assert!(report["answered"].as_u64().unwrap() > 0, "{report}");
    assert!(peak_memory > 0, "the kubelet reported the broker's memory");
    assert!(
        peak_memory < BROKER_MEMORY_LIMIT,
        "broker at {peak_memory} bytes"
    );
    // The kernel's count (a socket dump, as `ss` takes it, every 10 ms): the stand-in's
    // own count lags behind closes while it waits for CPU.
    assert!(
        stats["peakEstablished"].as_u64().unwrap() <= OUTBOUND_CAP,
        "the chat API held more than {OUTBOUND_CAP} connections from the pod at once: {stats}"
    );
    assert!(stats["peakEstablished"].as_u64().unwrap() > 0, "{stats}");
    assert!(cap_reached > 0.0, "the cap was met");
    assert_eq!(
        restarts(&scene.client, &pod, "broker").await,
        (0, None),
        "the broker was never restarted (nor OOM-killed)"
    );
    let (status, body) = exec_json(&invoker.pod, "main", &["http", "GET", &invoke]);
    assert_eq!(status, 200, "after the flood: {body}");
}

#[tokio::test]
async fn an_endless_or_stalled_body_is_cut_off_and_overrides_never_reach_the_chat_api() {
    let (scene, stand_in) = scene_with_stand_in("e2e-hostile-api").await;
    scene.create_ready("reader", spec(&["files:read"])).await;
    let pod = scene.pod("reader").await;

    for path in ["/api/v1/files/endless", "/api/v1/files/stalled"] {
        let answer = fetch(&pod, path, &[]);
        eprintln!("{path}: {answer}");
        assert_eq!(answer["status"], 200, "{answer}");
        assert_eq!(answer["complete"], false, "the body was cut off: {answer}");
        let elapsed = Duration::from_millis(answer["elapsed_ms"].as_u64().unwrap());
        assert!(
            elapsed >= UPSTREAM_TIMEOUT && elapsed < UPSTREAM_TIMEOUT + Duration::from_secs(3),
            "cut off after {elapsed:?}: {answer}"
        );
    }
    assert_eq!(broker_metric(&pod, "broker_responses_cut_off_total"), 2.0);
    let logs = kubectl()
        .args([
            "logs",
            "-n",
            &scene.ns.name,
            &pod.name_any(),
            "-c",
            "broker",
        ])
        .output()
        .unwrap();
    let logs = String::from_utf8_lossy(&logs.stdout);
    assert_eq!(
        logs.matches("\"UpstreamBodyTimedOut\"").count(),
        2,
        "two audit lines say so: {logs}"
    );

    let requests_before = stand_in_stats(&stand_in)["requests"].as_u64().unwrap();
    let overrides = [
        "X-HTTP-Method-Override:DELETE",
        "X-Method-Override:DELETE",
        "X-HTTP-Method:DELETE",
        "X-Original-URL:/api/v1/users",
        "X-Rewrite-URL:/api/v1/users",
    ];
    for header in overrides {
        let answer = fetch(&pod, "/api/v1/files/F1", &[header]);
        assert_eq!(answer["status"], 400, "{header}: {answer}");
        assert_eq!(answer["body"]["reason"], "MethodOrPathOverride", "{answer}");
    }
    let answer = fetch(&pod, "/api/v1/files/F1?_method=DELETE", &[]);
    assert_eq!(answer["status"], 400, "_method: {answer}");
    let answer = fetch(&pod, "/api/v1/files/F1", &[]);
    assert_eq!(answer["status"], 200, "the same call without one: {answer}");

    let stats = stand_in_stats(&stand_in);
    assert_eq!(stats["overrides"], 0, "{stats}");
    assert_eq!(
        stats["requests"].as_u64().unwrap(),
        requests_before + 1,
        "only the plain call reached the chat API: {stats}"
    );
}

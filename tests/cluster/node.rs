//! Node tier: needs `make cluster-up NODE=1` (a real kubelet + containerd + runc + CNI,
//! kube-proxy, CoreDNS, kube-network-policies) and KUBECONFIG pointing at it.
//! The test image localhost/po-echo:test is built and imported by
//! cluster/test-images.sh (run here once per test binary).

use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, LogParams, PostParams};
use plugin_operator_test_support::cluster::{
    TestNamespace, client, kubectl, restricted_container_security, wait_pod_finished,
    wait_pod_ready,
};

const IMAGE: &str = "localhost/po-echo:test";

/// Builds and imports the test image once per test binary.
fn ensure_test_image() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/cluster/test-images.sh");
        let out = std::process::Command::new(script)
            .output()
            .unwrap_or_else(|e| panic!("run {script}: {e}"));
        assert!(
            out.status.success(),
            "{script} failed (is the node up? `make cluster-up NODE=1`):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

fn pod_spec(name: &str, labels: serde_json::Value, args: &[&str], extra: serde_json::Value) -> Pod {
    let mut container = serde_json::json!({
        "name": "main",
        "image": IMAGE,
        "imagePullPolicy": "Never",
        "args": args,
        "securityContext": restricted_container_security(),
    });
    if let (Some(c), Some(e)) = (container.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 1,
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [container]
        }
    }))
    .unwrap()
}

/// Starts the echo server pod and its Service `echo` (port 80 -> 8080); waits until Ready.
async fn start_echo(ns: &TestNamespace) {
    let pods: Api<Pod> = ns.api();
    let server = pod_spec(
        "echo",
        serde_json::json!({"app": "echo"}),
        &["serve", "8080"],
        serde_json::json!({
            "ports": [{"containerPort": 8080}],
            "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
            "resources": {"limits": {"memory": "32Mi", "cpu": "200m"}}
        }),
    );
    pods.create(&PostParams::default(), &server)
        .await
        .expect("create echo pod");
    let svc: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "echo"},
        "spec": {"selector": {"app": "echo"}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .unwrap();
    ns.api::<Service>()
        .create(&PostParams::default(), &svc)
        .await
        .expect("create echo Service");
    wait_pod_ready(&pods, "echo", Duration::from_secs(60)).await;
}

/// A restricted namespace of its own with the echo server and its Service running.
async fn echo_namespace(prefix: &str) -> TestNamespace {
    ensure_test_image();
    let client = client().await;
    let ns = TestNamespace::restricted(&client, prefix).await;
    start_echo(&ns).await;
    ns
}

/// Runs a client pod doing one HTTP GET to the echo Service by DNS name; returns
/// (succeeded, logs).
async fn call_echo(ns: &TestNamespace, name: &str, tries: u32) -> (bool, String) {
    let pods: Api<Pod> = ns.api();
    let target = format!("echo.{}.svc.cluster.local:80", ns.name);
    let tries = tries.to_string();
    let client_pod = pod_spec(
        name,
        serde_json::json!({"app": "client"}),
        &["get", &target, &tries],
        serde_json::json!({"resources": {"limits": {"memory": "32Mi", "cpu": "200m"}}}),
    );
    pods.create(&PostParams::default(), &client_pod)
        .await
        .expect("create client pod");
    let done = wait_pod_finished(&pods, name, Duration::from_secs(90)).await;
    let phase = done.status.and_then(|s| s.phase).unwrap_or_default();
    let logs = pods
        .logs(name, &LogParams::default())
        .await
        .unwrap_or_default();
    (phase == "Succeeded", logs)
}

/// Runs the client pod `name` with ten tries and panics, naming the echo Service and what
/// `expected` says, unless it got through; returns the client's logs.
async fn reach_echo(ns: &TestNamespace, name: &str, expected: &str) -> String {
    let (ok, logs) = call_echo(ns, name, 10).await;
    assert!(
        ok,
        "expected: {expected} (echo.{}.svc.cluster.local); client logs: {logs}",
        ns.name
    );
    logs
}

#[tokio::test]
async fn local_image_runs_and_is_reachable_through_its_service_by_dns_name() {
    let ns = echo_namespace("node-svc").await;

    let logs = reach_echo(&ns, "client", "the client reaches echo by its DNS name").await;
    assert!(
        logs.contains("hello from echo"),
        "unexpected answer: {logs}"
    );

    // Container logs come from the kubelet (apiserver -> kubelet over TLS).
    let server_logs = ns
        .api::<Pod>()
        .logs("echo", &LogParams::default())
        .await
        .expect("echo logs");
    assert!(
        server_logs.contains("po-echo listening on 0.0.0.0:8080"),
        "server logs: {server_logs}"
    );
    assert!(
        server_logs.contains("request from"),
        "server logs show no request: {server_logs}"
    );
}

#[tokio::test]
async fn network_policy_denying_ingress_blocks_a_connection_that_works_without_it() {
    let ns = echo_namespace("node-netpol").await;

    reach_echo(
        &ns,
        "before",
        "without a policy the client reaches the server",
    )
    .await;

    let deny: NetworkPolicy = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "deny-ingress-to-echo"},
        "spec": {"podSelector": {"matchLabels": {"app": "echo"}}, "policyTypes": ["Ingress"]}
    }))
    .unwrap();
    ns.api::<NetworkPolicy>()
        .create(&PostParams::default(), &deny)
        .await
        .expect("create NetworkPolicy");
    // Give the agent a moment to see the policy.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (ok, logs) = call_echo(&ns, "after", 2).await;
    assert!(
        !ok,
        "the NetworkPolicy should block ingress to echo, but the client got through: {logs}"
    );
    assert!(logs.contains("FAILED"), "client logs: {logs}");
    // Name resolution still worked: it is the connection that was refused.
    assert!(
        !logs.contains("resolve"),
        "the failure should be the connection, not DNS: {logs}"
    );

    // Deleting the policy restores the connection.
    ns.api::<NetworkPolicy>()
        .delete("deny-ingress-to-echo", &Default::default())
        .await
        .expect("delete NetworkPolicy");
    tokio::time::sleep(Duration::from_secs(2)).await;
    reach_echo(
        &ns,
        "again",
        "after deleting the policy the client gets through again",
    )
    .await;
}

#[tokio::test]
async fn container_over_its_memory_limit_is_oom_killed() {
    ensure_test_image();
    let client = client().await;
    let ns = TestNamespace::restricted(&client, "node-oom").await;
    let pods: Api<Pod> = ns.api();
    let hog = pod_spec(
        "hog",
        serde_json::json!({"app": "hog"}),
        &["alloc", "256"],
        serde_json::json!({"resources": {"requests": {"memory": "16Mi"}, "limits": {"memory": "32Mi", "cpu": "500m"}}}),
    );
    pods.create(&PostParams::default(), &hog)
        .await
        .expect("create hog pod");
    let done = wait_pod_finished(&pods, "hog", Duration::from_secs(90)).await;
    let status = done.status.expect("pod status");
    assert_eq!(
        status.phase.as_deref(),
        Some("Failed"),
        "status: {status:#?}"
    );
    let terminated = status
        .container_statuses
        .as_ref()
        .and_then(|cs| cs.first())
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .unwrap_or_else(|| panic!("no terminated state: {status:#?}"));
    assert_eq!(
        terminated.reason.as_deref(),
        Some("OOMKilled"),
        "status: {status:#?}"
    );
    assert_eq!(terminated.exit_code, 137, "status: {status:#?}");
}

#[tokio::test]
async fn kubectl_exec_and_logs_reach_the_container() {
    ensure_test_image();
    let client = client().await;
    let ns = TestNamespace::restricted(&client, "node-exec").await;
    start_echo(&ns).await;

    // exec: apiserver -> kubelet (TLS, client certificate) -> containerd streaming.
    let out = kubectl()
        .args([
            "-n",
            &ns.name,
            "exec",
            "echo",
            "--",
            "/po-echo",
            "get",
            "127.0.0.1:8080",
        ])
        .output()
        .expect("run kubectl exec");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("hello from echo"),
        "kubectl exec failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = kubectl()
        .args(["-n", &ns.name, "logs", "echo"])
        .output()
        .expect("run kubectl logs");
    let logs = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && logs.contains("request from 127.0.0.1"),
        "kubectl logs: {logs}"
    );
}

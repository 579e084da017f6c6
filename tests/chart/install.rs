//! The chart on the local cluster (`make cluster-up NODE=1`, KUBECONFIG exported; `make
//! test` does both). With the node up, the operator image is built and imported when
//! missing (`make image`), the chart is installed with `--wait`, and its operator must
//! reconcile a Plugin with nothing but the chart's RBAC. Without a node, the install is
//! checked on the control plane alone (objects and the Deployment's spec).

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{ClusterRole, Role, RoleBinding};
use kube::api::{Api, ListParams, LogParams, PostParams};
use kube::{Client, ResourceExt};
use plugin_operator::api::Plugin;
use plugin_operator_test_support::cluster::{
    TestNamespace, admit_pod, api_server_endpoints, assert_pod_security_refuses, assert_success,
    client, dry_run, eventually, install_crd, pod_from_template, random_suffix, repo_path,
    wait_for_object,
};
use serde_json::json;

use crate::support::{self, default_image, only, render, run_helm, text};

const WAIT: Duration = Duration::from_secs(120);

/// The chart's operator Deployment, moved to `namespace`.
fn rendered_deployment(namespace: &str) -> Deployment {
    let docs = render(&[]);
    let mut deployment: Deployment =
        serde_json::from_value(only(&docs, "Deployment").clone()).unwrap();
    deployment.metadata.namespace = Some(namespace.into());
    deployment
}

#[tokio::test]
async fn operator_deployment_is_admitted_under_restricted_pod_security() {
    let client = client().await;
    let ns = TestNamespace::restricted(&client, "chart-restricted").await;
    let deployment = rendered_deployment(&ns.name);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    deployments
        .create(&dry_run(), &deployment)
        .await
        .expect("the API server accepts the operator Deployment");

    // PodSecurity only warns on Deployments; it enforces on pods. The pod the
    // Deployment would make is checked for real, with its ServiceAccount in place.
    let service_account: ServiceAccount = serde_json::from_value(json!({
        "metadata": {"name": "plugin-operator"}
    }))
    .unwrap();
    Api::<ServiceAccount>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &service_account)
        .await
        .expect("the operator's ServiceAccount is created");
    let mut pod = pod_from_template(deployment.spec.unwrap().template, "operator-dry-run");
    if let Err(refusal) = admit_pod(&client, &ns.name, &pod).await {
        panic!("restricted PodSecurity refused the operator pod: {refusal}");
    }

    // The check has teeth: the same pod running as root is refused.
    let container = &mut pod.spec.as_mut().unwrap().containers[0];
    let security = container.security_context.as_mut().unwrap();
    security.run_as_non_root = Some(false);
    security.run_as_user = Some(0);
    assert_pod_security_refuses(&client, &ns.name, &pod, "a root operator pod").await;
}

#[tokio::test]
async fn chart_installs_and_its_operator_reconciles_a_plugin_with_only_the_chart_rbac() {
    let client = client().await;
    install_crd(&client).await;
    let release_ns = TestNamespace::restricted(&client, "chart-release").await;
    let plugins_ns = TestNamespace::new(&client, "chart-plugins", &[]).await;
    let release = format!("po-{}", random_suffix());
    // Objects are named <release>-plugin-operator (the chart's full name).
    let fullname = format!("{release}-plugin-operator");
    let with_node = node_ready(&client).await;
    if with_node {
        ensure_operator_image();
    } else {
        eprintln!(
            "no Ready node: checking the install on the control plane only (make cluster-up NODE=1 runs the operator)"
        );
    }

    let watch = format!("watchNamespaces={{{}}}", plugins_ns.name);
    // The operator's own NetworkPolicy, with egress only to the API server's endpoints.
    let (api_server_cidrs, api_server_ports) = api_server_endpoints(&client).await;
    let api_server_cidrs = format!("networkPolicy.apiServer.cidrs={{{api_server_cidrs}}}");
    let api_server_ports = format!("networkPolicy.apiServer.ports={{{api_server_ports}}}");
    let mut args = vec![
        "install",
        &release,
        support::CHART,
        "--namespace",
        &release_ns.name,
        "--set",
        &watch,
        "--set",
        "leaderElection.enabled=true",
        "--set",
        "logFormat=json",
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        &api_server_cidrs,
        "--set",
        &api_server_ports,
        // All are cluster-wide: the default PluginPolicy and the admission policies would
        // bound every namespace of the shared cluster while this test runs, and the tests
        // keep the default ScopeCatalog (the sample's) themselves.
        "--set",
        "pluginPolicies.admission=false",
        "--set",
        "pluginPolicies.default.enabled=false",
        "--set",
        "scopeCatalog.create=false,scopeCatalog.admission=false,scopeCatalog.name=plugin-operator-tests",
    ];
    if with_node {
        args.extend(["--wait", "--timeout", "3m"]);
    }
    let _uninstall = Uninstall {
        release: release.clone(),
        namespace: release_ns.name.clone(),
    };
    let out = run_helm(&args);
    assert_success(&out, "helm install");
    assert!(
        text(&out.stdout).contains("kubectl get plugins"),
        "NOTES.txt is shown"
    );

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &release_ns.name);
    let deployment = deployments
        .get(&fullname)
        .await
        .expect("the operator Deployment exists");
    let pod_spec = deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .clone()
        .unwrap();
    assert_eq!(
        pod_spec.service_account_name.as_deref(),
        Some(fullname.as_str())
    );
    let container = &pod_spec.containers[0];
    assert_eq!(container.image.as_deref(), Some(default_image().as_str()));
    let args = container.args.clone().unwrap_or_default();
    assert!(args.contains(&"--leader-elect".to_string()), "{args:?}");
    assert!(
        args.contains(&format!("--namespace={}", plugins_ns.name)),
        "{args:?}"
    );
    Api::<ServiceAccount>::namespaced(client.clone(), &release_ns.name)
        .get(&fullname)
        .await
        .expect("the operator's ServiceAccount exists");
    Api::<Role>::namespaced(client.clone(), &plugins_ns.name)
        .get(&fullname)
        .await
        .expect("a Role in the watched namespace");
    Api::<RoleBinding>::namespaced(client.clone(), &release_ns.name)
        .get(&format!("{fullname}-leader-election"))
        .await
        .expect("the Lease RoleBinding in the release namespace");
    assert!(
        Api::<ClusterRole>::all(client.clone())
            .get_opt(&fullname)
            .await
            .unwrap()
            .is_none(),
        "with watchNamespaces the operator has no ClusterRole"
    );

    if with_node {
        operator_reconciles_with_chart_rbac(&client, &release, &release_ns.name, &plugins_ns.name)
            .await;
        let out = run_helm(&[
            "test",
            &release,
            "--namespace",
            &release_ns.name,
            "--logs",
            "--timeout",
            "2m",
        ]);
        assert_success(&out, "helm test");
        let logs = text(&out.stdout);
        assert!(
            logs.contains("the operator is ready") && logs.contains("serves plugins.chat.dev"),
            "the test pod checked both:\n{logs}"
        );
    }

    let out = run_helm(&[
        "uninstall",
        &release,
        "--namespace",
        &release_ns.name,
        "--wait",
    ]);
    assert!(
        out.status.success(),
        "helm uninstall failed:\n{}",
        text(&out.stderr)
    );
    assert!(deployments.get_opt(&fullname).await.unwrap().is_none());
    assert!(
        Api::<Role>::namespaced(client.clone(), &plugins_ns.name)
            .get_opt(&fullname)
            .await
            .unwrap()
            .is_none(),
        "helm uninstall removes the Roles"
    );
}

/// The operator pod, running as the chart's ServiceAccount, takes the Lease, writes a
/// Plugin's children, its status and an Event, and is never refused by RBAC.
async fn operator_reconciles_with_chart_rbac(
    client: &Client,
    release: &str,
    release_ns: &str,
    plugins_ns: &str,
) {
    let lease: Lease = wait_for_object(client, release_ns, "plugin-operator", WAIT).await;
    let holder = lease.spec.unwrap().holder_identity.unwrap_or_default();
    assert!(
        holder.starts_with(release),
        "the Lease is held by pod {holder}"
    );

    let plugin: Plugin = serde_json::from_value(json!({
        "apiVersion": "plugins.chat.dev/v1alpha1",
        "kind": "Plugin",
        "metadata": {"name": "hello"},
        "spec": {"image": "localhost/sample-plugin:dev", "port": 8080}
    }))
    .unwrap();
    let plugins: Api<Plugin> = Api::namespaced(client.clone(), plugins_ns);
    plugins
        .create(&PostParams::default(), &plugin)
        .await
        .expect("the Plugin is accepted");
    let _: Deployment = wait_for_object(client, plugins_ns, "plugin-hello", WAIT).await;
    eventually("the Plugin's status", WAIT, || async {
        let plugin = plugins.get("hello").await.ok()?;
        let status = plugin.status?;
        (status.observed_generation.is_some()
            && status.conditions.iter().any(|c| c.type_ == "Ready"))
        .then_some(())
    })
    .await;
    eventually("an Event about the Plugin", WAIT, || async {
        let events = Api::<Event>::namespaced(client.clone(), plugins_ns)
            .list(&ListParams::default())
            .await
            .ok()?;
        events
            .items
            .iter()
            .any(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("hello")
                    && e.reporting_controller.as_deref() == Some("plugin-operator")
            })
            .then_some(())
    })
    .await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), release_ns);
    let operator_pods = pods
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={release}")))
        .await
        .unwrap();
    let mut leader_logs = 0;
    for pod in operator_pods {
        let log = pods
            .logs(&pod.name_any(), &LogParams::default())
            .await
            .unwrap_or_else(|e| panic!("logs of operator pod {}: {e}", pod.name_any()));
        assert!(
            !log.contains("forbidden"),
            "operator pod {} was refused by RBAC:\n{log}",
            pod.name_any()
        );
        leader_logs += usize::from(log.contains("became the leader"));
    }
    assert_eq!(leader_logs, 1, "one operator pod logs that it leads");
}

async fn node_ready(client: &Client) -> bool {
    let Ok(nodes) = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
    else {
        return false;
    };
    nodes.items.iter().any(|node| {
        node.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    })
}

/// Builds the operator image and imports it into the node once, when it is missing.
fn ensure_operator_image() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let socket = repo_path("build/cluster/node/containerd/run/containerd.sock");
        let listed = Command::new("ctr")
            .arg("--address")
            .arg(&socket)
            .args(["-n", "k8s.io", "images", "ls", "-q"])
            .output()
            .expect("ctr runs");
        let image = default_image();
        if text(&listed.stdout).lines().any(|line| line == image) {
            return;
        }
        eprintln!("{image} is not on the node: running `make image`");
        let out = Command::new("make")
            .args(["--no-print-directory", "image"])
            .current_dir(repo_path(""))
            .output()
            .expect("make runs");
        assert_success(&out, "`make image`");
    });
}

/// Uninstalls the release if the test stops early.
struct Uninstall {
    release: String,
    namespace: String,
}

impl Drop for Uninstall {
    fn drop(&mut self) {
        let _ = run_helm(&["uninstall", &self.release, "--namespace", &self.namespace]);
    }
}

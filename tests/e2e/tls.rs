//! TLS to the chat API in real pods: an https chat API with a certificate from a test
//! CA, the CA in a trust-manager-like ConfigMap of the plugin's namespace, mounted into
//! the broker by the operator. The plugin waits for a missing bundle, calls through
//! with the right one, and is refused with a clear reason and log line with a wrong one.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use plugin_operator_test_support::tls::TestCa;
use serde_json::{Value, json};

use crate::support::{
    Scene, eventually, exec, exec_json, kubectl, sample_plugin_image, test_image,
};

/// The CA bundle as a trust-manager Bundle would write it: its own key name.
const BUNDLE: &str = "chat-api-ca";
const BUNDLE_KEY: &str = "trust-bundle.pem";

/// The sample chat API serving https in chat-system (where its ServiceAccount may ask
/// for TokenReviews) behind a Service of its own, with a certificate for that Service's
/// name from `ca`. Deleted on drop.
struct HttpsChatApi {
    name: String,
    url: String,
    selector: String,
}

impl HttpsChatApi {
    async fn start(client: &Client, test_namespace: &str, ca: &TestCa) -> Self {
        let name = format!("chat-tls-{test_namespace}");
        let host = format!("{name}.chat-system.svc");
        let selector =
            format!("app.kubernetes.io/name=chat-api-tls,plugins.chat.dev/test={test_namespace}");
        let labels = json!({"app.kubernetes.io/name": "chat-api-tls", "plugins.chat.dev/test": test_namespace});
        let cert = ca.server_cert(&[&host]);
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": name},
            "type": "kubernetes.io/tls",
            "stringData": {"tls.crt": cert.cert_pem, "tls.key": cert.key_pem}
        }))
        .unwrap();
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"selector": labels, "ports": [{"name": "https", "port": 443, "targetPort": 8443}]}
        }))
        .unwrap();
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "serviceAccountName": "chat-api",
                "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{
                    "name": "chat-api",
                    "image": test_image("sample-chat-api"),
                    "imagePullPolicy": "IfNotPresent",
                    "env": [
                        {"name": "LISTEN", "value": "0.0.0.0:8443"},
                        {"name": "CHAT_API_AUDIENCE", "value": "chat-api"},
                        {"name": "TLS_CERT_FILE", "value": "/etc/chat-api-tls/tls.crt"},
                        {"name": "TLS_KEY_FILE", "value": "/etc/chat-api-tls/tls.key"}
                    ],
                    "ports": [{"name": "https", "containerPort": 8443}],
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": "https", "scheme": "HTTPS"}, "periodSeconds": 1},
                    "volumeMounts": [{"name": "tls", "mountPath": "/etc/chat-api-tls", "readOnly": true}],
                    "resources": {"limits": {"cpu": "200m", "memory": "64Mi"}},
                    "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}}
                }],
                "volumes": [{"name": "tls", "secret": {"secretName": name}}]
            }
        }))
        .unwrap();
        let post = PostParams::default();
        Api::<Secret>::namespaced(client.clone(), "chat-system")
            .create(&post, &secret)
            .await
            .expect("the chat API's certificate is stored");
        Api::<Service>::namespaced(client.clone(), "chat-system")
            .create(&post, &service)
            .await
            .expect("the chat API's Service is created");
        let pods: Api<Pod> = Api::namespaced(client.clone(), "chat-system");
        pods.create(&post, &pod)
            .await
            .expect("the chat API's pod is created");
        eventually(
            "the https chat API to be ready (is localhost/sample-chat-api loaded under TEST_IMAGE_TAG?)",
            Duration::from_secs(60),
            || async {
                let pod = pods.get(&name).await.ok()?;
                let ready = pod.status?.conditions?.into_iter().any(|c| c.type_ == "Ready" && c.status == "True");
                ready.then_some(())
            },
        )
        .await;
        Self {
            url: format!("https://{host}"),
            name,
            selector,
        }
    }
}

impl Drop for HttpsChatApi {
    fn drop(&mut self) {
        for kind in ["pod", "service", "secret"] {
            let _ = kubectl()
                .args([
                    "delete",
                    kind,
                    "-n",
                    "chat-system",
                    &self.name,
                    "--wait=false",
                ])
                .output();
        }
    }
}

/// The CA bundle in the plugin's namespace, holding `ca`'s certificate (created or
/// replaced).
async fn put_bundle(client: &Client, namespace: &str, ca: &TestCa) {
    let bundle = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": BUNDLE},
        "data": {BUNDLE_KEY: ca.cert_pem}
    });
    Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .patch(
            BUNDLE,
            &PatchParams::apply("e2e-tls").force(),
            &Patch::Apply(&bundle),
        )
        .await
        .expect("the CA bundle is written");
}

/// A call the plugin makes through its broker: a granted read of the chat API.
fn read_messages(pod: &Pod) -> (u16, Value) {
    exec_json(
        pod,
        "plugin",
        &["call", "GET", "/api/v1/channels/C123/messages"],
    )
}

/// The broker container's log lines, as JSON.
fn broker_log(pod: &Pod) -> Vec<Value> {
    let out = kubectl()
        .args([
            "logs",
            "-n",
            &pod.namespace().unwrap(),
            &pod.name_any(),
            "-c",
            "broker",
        ])
        .output()
        .expect("kubectl runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

#[tokio::test]
async fn https_chat_api_is_reached_with_the_ca_bundle_and_refused_clearly_with_a_wrong_one() {
    let bare = Scene::without_operator("e2e-tls").await;
    let ca = TestCa::new("e2e chat API CA");
    let chat_api = HttpsChatApi::start(&bare.client, &bare.ns.name, &ca).await;
    let scene = bare
        .with_operator(&[
            "--chat-api-url",
            &chat_api.url,
            "--chat-api-namespace",
            "chat-system",
            "--chat-api-selector",
            &chat_api.selector,
            "--chat-api-ca-config-map",
            BUNDLE,
            "--chat-api-ca-key",
            BUNDLE_KEY,
        ])
        .await;
    let spec = json!({
        "image": sample_plugin_image(), "port": 8080,
        "permissions": {"chatApi": [{"scope": "messages:read"}]}
    });

    // No bundle in the namespace yet: the pod cannot start, and the Plugin says why.
    let started = std::time::Instant::now();
    scene.create("reader", spec).await;
    let message = scene.degraded("reader", "ChatApiCaMissing").await;
    eprintln!("ChatApiCaMissing after {:?}", started.elapsed());
    assert!(
        message.contains(BUNDLE) && message.contains(&scene.ns.name),
        "{message}"
    );

    // The bundle appears: the kubelet mounts it, and calls go through over https.
    let started = std::time::Instant::now();
    put_bundle(&scene.client, &scene.ns.name, &ca).await;
    scene.ready("reader").await;
    eprintln!("Ready {:?} after the bundle appeared", started.elapsed());
    let pod = scene.pod("reader").await;
    let (status, body) = read_messages(&pod);
    assert_eq!(
        status, 200,
        "a granted call reaches the https chat API: {body}"
    );
    assert!(body["messages"].is_array(), "{body}");
    let (read, output) = exec(&pod, "plugin", &["read-file", "/etc/chat-api-ca/ca.crt"]);
    assert!(!read, "the bundle is the broker's alone: {output}");

    // A wrong bundle (another CA), in force once the broker starts again: refused as a
    // TLS failure, in the answer, the audit line and a log line naming the cause.
    put_bundle(&scene.client, &scene.ns.name, &TestCa::new("another CA")).await;
    let pods: Api<Pod> = Api::namespaced(scene.client.clone(), &scene.ns.name);
    pods.delete(&pod.name_any(), &Default::default())
        .await
        .expect("the pod is deleted");
    let pod = eventually("a new pod", Duration::from_secs(60), || async {
        let new = scene.pod("reader").await;
        (new.name_any() != pod.name_any()).then_some(new)
    })
    .await;
    let (status, body) = read_messages(&pod);
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["reason"], "UpstreamTlsFailed", "{body}");
    let decision_id = body["decisionId"].clone();
    let (warning, audit) = eventually(
        "the broker's log lines",
        Duration::from_secs(10),
        || async {
            let log = broker_log(&pod);
            let find = |message: &str| {
                log.iter()
                    .find(|l| l["message"] == message && l["decision_id"] == decision_id)
                    .cloned()
            };
            Some((
                find("TLS handshake with the chat API failed")?,
                find("decision")?,
            ))
        },
    )
    .await;
    eprintln!("log line: {warning}\naudit line: {audit}");
    assert_eq!(warning["chat_api"], chat_api.url, "{warning}");
    assert_eq!(
        warning["error"], "invalid peer certificate: UnknownIssuer",
        "{warning}"
    );
    assert_eq!(
        warning["trusted"], "the CAs in /etc/chat-api-ca/ca.crt",
        "{warning}"
    );
    assert_eq!(audit["reason"], "UpstreamTlsFailed", "{audit}");
    assert_eq!(audit["outcome"], "failed", "{audit}");
}

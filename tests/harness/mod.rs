//! Shared by the operator's integration tests: a client for the real API server named
//! by KUBECONFIG, throwaway namespaces, the CRD, and operator processes.
#![allow(dead_code)]

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;

/// A client for the cluster in KUBECONFIG. These tests need a real API server.
pub async fn client() -> Client {
    if std::env::var_os("KUBECONFIG").is_none() {
        panic!(
            "KUBECONFIG is not set: start the local cluster with `make cluster-up` and export the KUBECONFIG it prints (or run `make test`)"
        );
    }
    Client::try_default()
        .await
        .expect("KUBECONFIG names a reachable cluster")
}

/// Polls `check` every 200 ms until it returns Some, or panics after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Installs (or updates) the Plugin CRD from the Rust types and waits until it serves.
pub async fn install_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = plugin_operator::api::crd();
    let name = crd.metadata.name.clone().unwrap();
    crds.patch(
        &name,
        &PatchParams::apply("plugin-operator-tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("the CRD applies");
    eventually(
        "the Plugin CRD to be established",
        Duration::from_secs(30),
        || {
            let crds = crds.clone();
            let name = name.clone();
            async move {
                let crd = crds.get(&name).await.ok()?;
                let conditions = crd.status?.conditions?;
                conditions
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
                    .then_some(())
            }
        },
    )
    .await;
}

/// A namespace of its own for one test, deleted when dropped.
pub struct TestNamespace {
    pub name: String,
}

impl TestNamespace {
    pub async fn new(client: &Client, prefix: &str, labels: &[(&str, &str)]) -> Self {
        let name = format!("{prefix}-{:08x}", rand_u32());
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .expect("a test namespace is created");
        Self { name }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop cannot await, and the test's client is tied to the test's runtime: delete
        // with a fresh client from a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let Ok(client) = Client::try_default().await else {
                    return;
                };
                let _ = Api::<Namespace>::all(client)
                    .delete(&name, &DeleteParams::background())
                    .await;
            });
        })
        .join();
    }
}

pub fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos() ^ std::process::id() as u128);
    hasher.finish() as u32
}

/// One `plugin-operator controller` process, stopped when dropped.
pub struct Operator {
    child: Child,
    pub admin: String,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Operator {
    /// Starts an operator watching only `namespace`, with `extra` flags.
    pub async fn start(namespace: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_plugin-operator"))
            .args([
                "controller",
                "--namespace",
                namespace,
                "--admin-address",
                "127.0.0.1:0",
                "--log-format",
                "json",
            ])
            .args(["--broker-image", "localhost/plugin-operator:dev"])
            .args(extra)
            .env("RUST_LOG", "info,kube=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the operator binary starts");
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let stdout = child.stdout.take().unwrap();
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line)
                    && let Some(address) = value.get("admin_address").and_then(|a| a.as_str())
                {
                    let _ = address_tx.send(address.to_string());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let admin =
            tokio::task::spawn_blocking(move || address_rx.recv_timeout(Duration::from_secs(20)))
                .await
                .unwrap()
                .expect("the operator logs its admin address");
        Self { child, admin, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no chance to release the Lease.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("the operator exits")
    }

    /// One metric's value from the admin port (summed over its label sets).
    pub async fn metric(&self, name: &str) -> f64 {
        let text = http_get(&self.admin, "/metrics").await.unwrap_or_default();
        text.lines()
            .filter(|line| line.starts_with(name) && !line.starts_with('#'))
            .filter(|line| line[name.len()..].starts_with([' ', '{']))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub fn log_contains(&self, needle: &str) -> bool {
        self.log
            .lock()
            .unwrap()
            .iter()
            .any(|line| line.contains(needle))
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A plain HTTP/1.1 GET over TCP; enough for the admin port.
pub async fn http_get(address: &str, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// The repository root, for reading committed files.
pub fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

//! `plugin-operator controller` as a child process, and its admin port.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::crd::TEST_SCOPE_CATALOG;

/// An image `make images` loaded into the node: `localhost/{repository}:{tag}`, where the
/// tag is `TEST_IMAGE_TAG` (default `dev`, what `make images` builds; `make images TAG=x`
/// loads another set beside it).
pub fn test_image(repository: &str) -> String {
    let tag = std::env::var("TEST_IMAGE_TAG").unwrap_or_else(|_| "dev".into());
    format!("localhost/{repository}:{tag}")
}

/// One `plugin-operator controller` process, killed when dropped.
pub struct Operator {
    child: Child,
    /// The admin address it logged (health, readiness, metrics).
    pub admin: String,
    /// Every line it wrote to stdout.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Operator {
    /// The command every test and benchmark starts: `binary controller`, watching only
    /// `namespace`, with the tests' ScopeCatalog, its admin port on a free port and JSON
    /// logs.
    pub fn command(binary: &str, namespace: &str) -> Command {
        let mut command = Command::new(binary);
        command
            .args(["controller", "--namespace", namespace])
            .args(["--scope-catalog", TEST_SCOPE_CATALOG])
            .args(["--admin-address", "127.0.0.1:0", "--log-format", "json"])
            .env("RUST_LOG", "info,kube=warn");
        command
    }

    /// For tests: `binary` (the test's `env!("CARGO_BIN_EXE_plugin-operator")`) watching
    /// only `namespace`, with the test broker image and `extra` flags.
    pub async fn start(binary: &str, namespace: &str, extra: &[&str]) -> Self {
        let mut command = Self::command(binary, namespace);
        command
            .args(["--broker-image", &test_image("plugin-operator")])
            .args(extra);
        Self::spawn(command, Duration::from_secs(20)).await
    }

    /// Starts `command` and waits up to `wait` for the admin address it logs.
    pub async fn spawn(mut command: Command, wait: Duration) -> Self {
        let mut child = command
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
        let admin = tokio::task::spawn_blocking(move || address_rx.recv_timeout(wait))
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

    /// SIGTERM, then wait (up to 20 s) for it to exit; an operator still running then
    /// fails the test instead of hanging it.
    pub fn terminate(&mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(exit) = self.child.try_wait().expect("the operator's status") {
                return exit;
            }
            if Instant::now() > deadline {
                self.kill();
                panic!("the operator still ran 20 s after SIGTERM (killed it)");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
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

/// A plain HTTP/1.1 GET over TCP; enough for the admin port. The body when the answer
/// is 200.
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

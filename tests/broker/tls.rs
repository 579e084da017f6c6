//! An https chat API: trusted through `--chat-api-ca-file`, refused when its
//! certificate comes from another CA, with a reason of its own in the answer, the audit
//! line and the log. The CAs and certificates are made by the test (tests/support's
//! `tls`).

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use plugin_operator_test_support::broker::{
    Answer, Fixture, StandIn, TOKEN, TempDir, fresh_connection_client, policy,
};
use plugin_operator_test_support::tls::{ServerCert, TestCa};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::process::{broker_command_to, mounted_files};

/// An https server on loopback, serving `cert`, that records each Authorization header
/// it receives.
async fn tls_stand_in(cert: &ServerCert) -> (u16, Arc<Mutex<Vec<String>>>) {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes())
            .map(Result::unwrap)
            .collect();
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorded = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, recorded) = (acceptor.clone(), recorded.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let recorded = recorded.clone();
                    async move {
                        let authorization = request
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        recorded.lock().unwrap().push(authorization);
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(
                            Bytes::from_static(b"tls ok"),
                        )))
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (port, seen)
}

/// Which CA the broker trusts for the https chat API.
enum Trust {
    TheServersCa,
    AnotherCa,
}

/// An https chat API on loopback with a certificate from its own CA, and a file holding
/// the CA the broker is to trust: that one or another.
struct TlsChatApi {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
    ca_dir: TempDir,
}

impl TlsChatApi {
    async fn start(trust: Trust) -> Self {
        let servers_ca = TestCa::new("chat-api-ca");
        let (port, seen) = tls_stand_in(&servers_ca.server_cert(&["127.0.0.1"])).await;
        let trusted = match trust {
            Trust::TheServersCa => servers_ca,
            Trust::AnotherCa => TestCa::new("other-ca"),
        };
        let ca_dir = TempDir::new("tls-ca");
        std::fs::write(ca_dir.0.join("ca.crt"), &trusted.cert_pem).unwrap();
        Self { port, seen, ca_dir }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    fn ca_file(&self) -> std::path::PathBuf {
        self.ca_dir.0.join("ca.crt")
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// One call through an in-process broker to the https chat API; the answer, the audit
/// lines and the authorizations the chat API saw.
async fn call_through_tls(trust: Trust) -> (Answer, Vec<serde_json::Value>, Vec<String>) {
    let chat_api = TlsChatApi::start(trust).await;
    let fixture = Fixture::start_with(&policy(&[("users:read", &[])]), |args| {
        args.chat_api_url = chat_api.url();
        args.chat_api_ca_file = Some(chat_api.ca_file());
    })
    .await;
    let answer = fixture.get("/api/v1/users").await;
    let audit = fixture.audit_lines().await;
    (answer, audit, chat_api.seen())
}

#[tokio::test]
async fn https_chat_api_is_trusted_through_the_ca_file() {
    let (answer, audit, seen) = call_through_tls(Trust::TheServersCa).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, "tls ok");
    assert_eq!(seen, [format!("Bearer {TOKEN}")]);
    assert_eq!(audit[0]["outcome"], "allowed", "{audit:?}");
}

#[tokio::test]
async fn https_chat_api_with_a_certificate_from_another_ca_is_refused_as_a_tls_failure() {
    let (answer, audit, seen) = call_through_tls(Trust::AnotherCa).await;
    answer.assert_refused(
        StatusCode::BAD_GATEWAY,
        "UpstreamTlsFailed",
        "a certificate from a CA the broker does not trust",
    );
    let message = answer.json()["message"].as_str().unwrap().to_owned();
    assert!(message.contains("TLS"), "{message}");
    assert_eq!(audit[0]["outcome"], "failed", "{audit:?}");
    assert_eq!(audit[0]["reason"], "UpstreamTlsFailed", "{audit:?}");
    assert_eq!(audit[0]["status"], 502, "{audit:?}");
    assert!(
        seen.is_empty(),
        "the token must not reach an untrusted server"
    );
}

/// The real broker process: its log line for the refused handshake names the chat
/// API's URL, what the broker trusts and the TLS error, next to the audit line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_https_chat_api_gets_a_log_line_naming_the_url_and_the_tls_error() {
    let chat_api = TlsChatApi::start(Trust::AnotherCa).await;
    let plugin = StandIn::start().await;
    let (policy_dir, token_dir) = mounted_files(&[("users:read", &[])]);
    let mut child = broker_command_to(&policy_dir, &token_dir, &chat_api.url(), plugin.addr)
        .arg("--chat-api-ca-file")
        .arg(chat_api.ca_file())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = async || -> serde_json::Value {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("the broker logs")
            .unwrap()
            .expect("the log goes on");
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"))
    };
    let listening = loop {
        let line = next().await;
        if line["message"] == "broker listening" {
            break line;
        }
    };
    let outbound = listening["outbound_addr"].as_str().unwrap();
    let request = http::Request::get(format!("http://{outbound}/api/v1/users"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = fresh_connection_client::<Full<Bytes>>()
        .request(request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();

    let (mut warning, mut decision) = (None, None);
    while warning.is_none() || decision.is_none() {
        let line = next().await;
        match line["message"].as_str() {
            Some("TLS handshake with the chat API failed") => warning = Some(line),
            Some("decision") => decision = Some(line),
            _ => {}
        }
    }
    let (warning, decision) = (warning.unwrap(), decision.unwrap());
    assert_eq!(warning["level"], "WARN", "{warning}");
    assert_eq!(warning["chat_api"], chat_api.url(), "{warning}");
    assert_eq!(
        warning["error"], "invalid peer certificate: UnknownIssuer",
        "{warning}"
    );
    let trusted = warning["trusted"].as_str().unwrap_or_default();
    assert!(
        trusted.contains(&chat_api.ca_file().display().to_string()),
        "{warning}"
    );
    assert_eq!(warning["decision_id"], decision["decision_id"], "{warning}");
    assert_eq!(decision["reason"], "UpstreamTlsFailed", "{decision}");
    assert_eq!(body["decisionId"], decision["decision_id"], "{body}");
}

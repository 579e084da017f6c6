//! An https chat API: trusted through `--chat-api-ca-file`, refused when its
//! certificate comes from another CA. Certificates are made with the openssl CLI.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use plugin_operator_test_support::broker::{Answer, Fixture, TOKEN, TempDir, policy};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("the openssl CLI runs");
    assert!(status.success(), "openssl {args:?}");
}

/// A CA named `name` in `dir`, and a server certificate for 127.0.0.1 signed by it.
fn make_ca_and_server_cert(dir: &Path, name: &str) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let ca_subject = format!("/CN={name}");
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem", "-days", "1"]);
    ca.extend(["-subj", &ca_subject]);
    openssl(dir, &ca);
    let mut request = vec!["req"];
    request.extend(ec);
    request.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=chat-api",
    ]);
    openssl(dir, &request);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "1",
            "-extfile",
            "server.ext",
        ],
    );
}

/// An https server on loopback that records each Authorization header it receives.
async fn tls_stand_in(dir: &Path) -> (u16, Arc<Mutex<Vec<String>>>) {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
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

/// One call through a broker whose https chat API has a certificate from its own CA,
/// the broker trusting that CA or another one (through `--chat-api-ca-file`); the
/// answer, and the authorizations the chat API saw.
async fn call_through_tls(trust: Trust) -> (Answer, Vec<String>) {
    let server_certs = TempDir::new("tls-server");
    make_ca_and_server_cert(&server_certs.0, "chat-api-ca");
    let (port, seen) = tls_stand_in(&server_certs.0).await;
    let other_certs = TempDir::new("tls-other");
    let trusted = match trust {
        Trust::TheServersCa => &server_certs,
        Trust::AnotherCa => {
            make_ca_and_server_cert(&other_certs.0, "other-ca");
            &other_certs
        }
    };
    let ca_file = trusted.0.join("ca.pem");
    let fixture = Fixture::start_with(&policy(&[("users:read", &[])]), |args| {
        args.chat_api_url = format!("https://127.0.0.1:{port}");
        args.chat_api_ca_file = Some(ca_file);
    })
    .await;
    let answer = fixture.get("/api/v1/users").await;
    let seen = seen.lock().unwrap().clone();
    (answer, seen)
}

#[tokio::test]
async fn https_chat_api_is_trusted_through_the_ca_file() {
    let (answer, seen) = call_through_tls(Trust::TheServersCa).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, "tls ok");
    assert_eq!(seen, [format!("Bearer {TOKEN}")]);
}

#[tokio::test]
async fn https_chat_api_with_a_certificate_from_another_ca_is_refused() {
    let (answer, seen) = call_through_tls(Trust::AnotherCa).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(answer.json()["reason"], "UpstreamUnavailable");
    assert!(
        seen.is_empty(),
        "the token must not reach an untrusted server"
    );
}

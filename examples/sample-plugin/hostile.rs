//! Misbehaviour on demand, for the hostile-plugin tests: subcommands run with
//! `kubectl exec`, each printing one JSON line.
//!
//! - `fetch METHOD PATH [NAME:VALUE]...`: one chat-API call through the broker with extra
//!   headers; reports the status, how many body bytes came, whether the body arrived
//!   whole and how long it all took (at most 60 s).
//! - `flood ADDR COUNT SECONDS PATH`: opens COUNT connections to ADDR at once, sends
//!   `GET PATH` on each and holds them for SECONDS; reports how many connected and how
//!   many were answered.
//! - `fill DIR MIB`: writes MIB MiB into DIR/fill.bin.

use std::io::Write;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest `fetch` waits for a body before it gives up on it.
const FETCH_LIMIT: Duration = Duration::from_secs(60);

pub async fn fetch(method: &str, path: &str, headers: &[String]) -> Value {
    let base = std::env::var("CHAT_API_URL").unwrap_or_else(|_| "http://127.0.0.1:9081".into());
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"));
    for header in headers {
        let Some((name, value)) = header.split_once(':') else {
            return json!({"error": format!("{header:?} is not NAME:VALUE")});
        };
        request = request.header(name.trim(), value.trim());
    }
    let Ok(request) = request.body(Full::new(Bytes::new())) else {
        return json!({"error": "bad request"});
    };
    let started = Instant::now();
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let response = match tokio::time::timeout(FETCH_LIMIT, client.request(request)).await {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => return json!({"status": 0, "error": error.to_string()}),
        Err(_) => return json!({"status": 0, "error": "no answer within 60 s"}),
    };
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let (mut bytes, mut kept) = (0usize, Vec::new());
    let outcome = tokio::time::timeout_at((started + FETCH_LIMIT).into(), async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| e.to_string())?;
            if let Some(data) = frame.data_ref() {
                bytes += data.len();
                if kept.len() < 4096 {
                    kept.extend_from_slice(data);
                }
            }
        }
        Ok::<(), String>(())
    })
    .await;
    let (complete, error) = match outcome {
        Ok(Ok(())) => (true, None),
        Ok(Err(error)) => (false, Some(error)),
        Err(_) => (false, Some("the body was still coming after 60 s".into())),
    };
    json!({
        "status": status,
        "bytes": bytes,
        "complete": complete,
        "error": error,
        "elapsed_ms": started.elapsed().as_millis() as u64,
        "body": serde_json::from_slice::<Value>(&kept).unwrap_or(Value::Null),
    })
}

pub async fn flood(address: &str, count: usize, hold: Duration, path: &str) -> Value {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + hold;
    let request = format!("GET {path} HTTP/1.1\r\nhost: broker\r\n\r\n");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..count {
        let (address, request) = (address.to_string(), request.clone());
        tasks.spawn(async move { hold_one(&address, &request, deadline).await });
    }
    let (mut connected, mut answered, mut errors) = (0, 0, std::collections::BTreeMap::new());
    while let Some(result) = tasks.join_next().await {
        match result {
            Ok(Ok(was_answered)) => {
                connected += 1;
                answered += usize::from(was_answered);
            }
            Ok(Err(error)) => *errors.entry(error).or_insert(0usize) += 1,
            Err(_) => *errors.entry("task failed".to_string()).or_insert(0) += 1,
        }
    }
    json!({
        "attempted": count,
        "connected": connected,
        "answered": answered,
        "not_connected": errors,
        "elapsed_ms": started.elapsed().as_millis() as u64,
    })
}

/// One connection held until `deadline`: Ok(whether an answer began) once connected.
async fn hold_one(
    address: &str,
    request: &str,
    deadline: tokio::time::Instant,
) -> Result<bool, String> {
    let mut stream = match tokio::time::timeout_at(deadline, TcpStream::connect(address)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => return Err(error.kind().to_string()),
        Err(_) => return Err("still connecting at the end".into()),
    };
    if stream.write_all(request.as_bytes()).await.is_err() {
        return Ok(false);
    }
    let mut answered = false;
    let mut buffer = [0u8; 1024];
    // Read (and discard) whatever comes until the end; the connection stays open.
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
        if n == 0 {
            break;
        }
        answered |= buffer[..n].starts_with(b"HTTP/1.1 ");
    }
    Ok(answered)
}

pub fn fill(dir: &str, mebibytes: usize) -> Value {
    let path = format!("{dir}/fill.bin");
    let chunk = vec![7u8; 1 << 20];
    let mut written = 0;
    let result = std::fs::File::create(&path).and_then(|mut file| {
        for _ in 0..mebibytes {
            file.write_all(&chunk)?;
            written += 1;
        }
        file.sync_all()
    });
    json!({"path": path, "written_mib": written, "error": result.err().map(|e| e.to_string())})
}

//! A sample chat plugin for the demo and the end-to-end tests; not a product. It serves
//! HTTP on PLUGIN_PORT and reaches the chat API only through CHAT_API_URL (its broker).
//!
//! Endpoints: POST /invoke (the demo: read channel C123, post a reply, remember a count),
//! /call?method=M&path=P (make one chat-API call, report the answer), /sleep?ms=N,
//! /connect?addr=IP:PORT (try a TCP connection), /healthz.
//! Subcommands, for `kubectl exec`: `read-file PATH`, `connect ADDR`, `call METHOD PATH
//! [BODY]` (a chat-API call through CHAT_API_URL), `http METHOD URL` (a plain request
//! with no credential), and the misbehaviour of [`hostile`] (`fetch`, `flood`, `fill`).
//! Each prints JSON and exits 0 when it could do what it was asked. `chat-stand-in`
//! serves a misbehaving chat API instead ([`stand_in`]).
//! Misbehaviour on demand, for tests: EXIT_AT_START=<code>, ALLOCATE_MB=<n> at start,
//! LISTEN_AFTER_SECONDS=<n> (running but not ready for n seconds).
//! CALL_AT_START="METHOD PATH": one chat-API call as the very first thing, before the
//! plugin listens; its answer is printed and served at /call-at-start.

mod chat;
mod hostile;
mod sockets;
mod stand_in;

use std::convert::Infallible;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("read-file") => {
            std::process::exit(read_file(args.get(2).map(String::as_str).unwrap_or("/")))
        }
        Some("connect") => {
            std::process::exit(connect_command(args.get(2).map(String::as_str).unwrap_or("")).await)
        }
        Some("call") => {
            let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
            let (status, body) = chat::call(&arg(2), &arg(3), arg(4).into_bytes()).await;
            println!("{}", json!({"status": status, "body": body}));
            std::process::exit(if status == 0 { 1 } else { 0 });
        }
        Some("http") => {
            let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
            let (status, body) = chat::plain(&arg(2), &arg(3)).await;
            println!("{}", json!({"status": status, "body": body}));
            std::process::exit(if status == 0 { 1 } else { 0 });
        }
        Some(command @ ("fetch" | "flood" | "fill")) => {
            let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
            let number = |i: usize| arg(i).parse::<usize>().unwrap_or(0);
            let answer = match command {
                "fetch" => {
                    hostile::fetch(&arg(2), &arg(3), args.get(4..).unwrap_or_default()).await
                }
                "flood" => {
                    let hold = Duration::from_secs(number(4) as u64);
                    hostile::flood(&arg(2), number(3), hold, &arg(5)).await
                }
                _ => hostile::fill(&arg(2), number(3)),
            };
            println!("{answer}");
            std::process::exit(0);
        }
        Some("chat-stand-in") => return stand_in::serve().await,
        _ => {}
    }
    if let Some(code) = std::env::var("EXIT_AT_START")
        .ok()
        .and_then(|c| c.parse::<i32>().ok())
    {
        eprintln!("exiting at start with code {code}, as asked");
        std::process::exit(code);
    }
    let _ballast = std::env::var("ALLOCATE_MB")
        .ok()
        .and_then(|m| m.parse::<usize>().ok())
        .map(allocate);
    if let Some(seconds) = std::env::var("LISTEN_AFTER_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        // A plugin that is slow to start: Running, not ready, for `seconds`.
        tokio::time::sleep(std::time::Duration::from_secs(seconds)).await;
    }
    if let Ok(call) = std::env::var("CALL_AT_START") {
        let (method, path) = call.split_once(' ').unwrap_or(("GET", call.as_str()));
        let (status, body) = chat::call(method, path, vec![]).await;
        let answer = json!({"status": status, "body": body});
        println!(
            "{}",
            json!({"msg": "call at start", "call": call, "answer": answer})
        );
        let _ = CALL_AT_START_ANSWER.set(answer);
    }
    let port = std::env::var("PLUGIN_PORT").unwrap_or_else(|_| "8080".into());
    let listener = TcpListener::bind(format!("0.0.0.0:{port}"))
        .await
        .expect("the plugin port is free");
    println!("{{\"msg\":\"sample plugin listening\",\"port\":{port}}}");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service =
                service_fn(|request| async { Ok::<_, Infallible>(handle(request).await) });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The answer to the call made at start (CALL_AT_START), if one was made.
static CALL_AT_START_ANSWER: OnceLock<Value> = OnceLock::new();

async fn handle(request: Request<Incoming>) -> Response<Full<Bytes>> {
    let query = request.uri().query().unwrap_or_default().to_string();
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
            .map(percent_decode)
    };
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let body = body_bytes(request.into_body()).await;
    match (method, path.as_str()) {
        (_, "/healthz") => reply(StatusCode::OK, json!({"status": "ok"})),
        (_, "/call-at-start") => match CALL_AT_START_ANSWER.get() {
            Some(answer) => reply(StatusCode::OK, answer.clone()),
            None => reply(StatusCode::NOT_FOUND, json!({"error": "no call at start"})),
        },
        (Method::POST, "/invoke") => reply(StatusCode::OK, invoke().await),
        (_, "/call") => {
            let method = param("method").unwrap_or_else(|| "GET".into());
            let path = param("path").unwrap_or_else(|| "/".into());
            let (status, answer) = chat::call(&method, &path, body.to_vec()).await;
            reply(StatusCode::OK, json!({"status": status, "body": answer}))
        }
        (_, "/sleep") => {
            let ms = param("ms").and_then(|m| m.parse().ok()).unwrap_or(1000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            reply(StatusCode::OK, json!({"slept_ms": ms}))
        }
        (_, "/connect") => {
            let address = param("addr").unwrap_or_default();
            reply(
                StatusCode::OK,
                match try_connect(&address).await {
                    Ok(()) => json!({"connected": true}),
                    Err(error) => json!({"connected": false, "error": error}),
                },
            )
        }
        _ => reply(StatusCode::NOT_FOUND, json!({"error": "not found"})),
    }
}

/// The demo: read the channel, post a reply, count invocations in the plugin's own store.
async fn invoke() -> Value {
    let plugin = std::env::var("PLUGIN_ID")
        .unwrap_or_default()
        .replace('/', ".");
    let (read_status, messages) = chat::call("GET", "/api/v1/channels/C123/messages", vec![]).await;
    let count = messages["messages"].as_array().map(Vec::len).unwrap_or(0);
    let reply_body = json!({"text": format!("I read {count} messages")})
        .to_string()
        .into_bytes();
    let (post_status, _) = chat::call("POST", "/api/v1/channels/C123/messages", reply_body).await;
    let (kv_status, _) = chat::call(
        "PUT",
        &format!("/api/v1/kv/{plugin}/invocations"),
        b"1".to_vec(),
    )
    .await;
    json!({"read": read_status, "posted": post_status, "remembered": kv_status, "messagesSeen": count})
}

async fn try_connect(address: &str) -> Result<(), String> {
    match tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(address)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("timed out after 3 s".into()),
    }
}

async fn connect_command(address: &str) -> i32 {
    match try_connect(address).await {
        Ok(()) => {
            println!("connected to {address}");
            0
        }
        Err(error) => {
            println!("cannot connect to {address}: {error}");
            1
        }
    }
}

fn read_file(path: &str) -> i32 {
    match std::fs::read(path) {
        Ok(bytes) => {
            println!("read {} bytes from {path}", bytes.len());
            0
        }
        Err(error) => {
            println!("cannot read {path}: {error}");
            1
        }
    }
}

/// Allocates and touches `megabytes`, so the memory is really used.
fn allocate(megabytes: usize) -> Vec<u8> {
    eprintln!("allocating {megabytes} MiB, as asked");
    vec![1u8; megabytes << 20]
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn reply(status: StatusCode, value: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(value.to_string())))
        .expect("a JSON response is valid")
}

/// The whole body of a request or response; empty when it cannot be read.
async fn body_bytes(body: Incoming) -> Bytes {
    body.collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default()
}

//! Calls to the chat API, through the broker at CHAT_API_URL. The plugin holds no
//! credential: the broker adds its own.

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

/// Makes one chat-API call through the broker; returns the status (0 when no answer
/// came) and the JSON answer (or the text, wrapped).
pub async fn call(method: &str, path: &str, body: Vec<u8>) -> (u16, Value) {
    let base = std::env::var("CHAT_API_URL").unwrap_or_else(|_| "http://127.0.0.1:9081".into());
    let request = hyper::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .header("content-type", "application/json")
        // A plugin trying its luck: the broker must strip this.
        .header("authorization", "Bearer plugin-forged-token")
        .body(Full::new(Bytes::from(body)));
    send(request).await
}

/// A plain request to any URL, with no credential.
pub async fn plain(method: &str, url: &str) -> (u16, Value) {
    send(
        hyper::Request::builder()
            .method(method)
            .uri(url)
            .body(Full::new(Bytes::new())),
    )
    .await
}

async fn send(request: Result<hyper::Request<Full<Bytes>>, hyper::http::Error>) -> (u16, Value) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let Ok(request) = request else {
        return (0, json!({"error": "bad request line"}));
    };
    let answer =
        tokio::time::timeout(std::time::Duration::from_secs(15), client.request(request)).await;
    let Ok(answer) = answer else {
        return (0, json!({"error": "no answer within 15 s"}));
    };
    match answer {
        Ok(response) => {
            let status = response.status().as_u16();
            let bytes = crate::body_bytes(response.into_body()).await;
            let value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)));
            (status, value)
        }
        Err(error) => (0, json!({"error": error.to_string()})),
    }
}

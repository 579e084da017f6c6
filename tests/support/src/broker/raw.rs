//! Raw bytes on a socket, for requests an HTTP client would refuse to send.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Writes `request` on a fresh connection and reads until the server closes it or
/// `wait` passes; returns what came back.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8], wait: Duration) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(wait, stream.read_to_end(&mut answer)).await;
    answer
}

/// The status code of a raw HTTP/1.1 answer.
pub fn raw_status(answer: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(answer.get(..12)?).ok()?;
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// Asserts that a raw HTTP/1.1 answer has one of the `expected` statuses; says
/// `context` and the whole answer when not.
#[track_caller]
pub fn assert_raw_status(answer: &[u8], expected: &[u16], context: &str) {
    let status = raw_status(answer);
    assert!(
        status.is_some_and(|status| expected.contains(&status)),
        "{context}: expected {expected:?}, got {:?}",
        String::from_utf8_lossy(answer)
    );
}

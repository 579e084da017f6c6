//! `plugin-operator wait-for-broker`: the broker container's postStart hook.
//!
//! The kubelet starts the plugin container only once the broker, a native sidecar, has
//! started, and a sidecar with a postStart hook has started when the hook returns. The
//! hook returns when the broker answers `/readyz` (policy and token loaded), so the
//! plugin's first call finds it serving. It asks every 20 ms: a startup probe asks at
//! most once a second, and the kubelet sees its success only at the next tick, about
//! half a second later on average in every pod start.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::args::parse_duration;
use crate::policy::ports;

/// How long to wait between two questions.
const ASK_EVERY: Duration = Duration::from_millis(20);

/// Longest one question may take (connect, send, answer).
const ASK_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(clap::Args, Clone, Debug)]
pub struct WaitArgs {
    /// The broker's admin listener, from inside its pod.
    #[arg(long, default_value_t = SocketAddr::from(([127, 0, 0, 1], ports::ADMIN)))]
    pub admin: SocketAddr,

    /// Longest wait (e.g. 30s). When it passes the hook fails, and the kubelet restarts
    /// the broker container.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// The broker did not say it was ready in time.
#[derive(Debug, thiserror::Error)]
#[error("the broker at {admin} was not ready after {waited:.1?}: {last}")]
pub struct NotReady {
    admin: SocketAddr,
    waited: Duration,
    /// What the last question got.
    last: String,
}

/// Asks the broker's `/readyz` until it answers 200 or the timeout passes.
pub fn wait_for_broker(args: &WaitArgs) -> Result<(), NotReady> {
    let started = Instant::now();
    loop {
        let last = match ask_ready(args.admin) {
            Ok(()) => return Ok(()),
            Err(why) => why,
        };
        let waited = started.elapsed();
        if waited >= args.timeout {
            return Err(NotReady {
                admin: args.admin,
                waited,
                last,
            });
        }
        std::thread::sleep(ASK_EVERY.min(args.timeout - waited));
    }
}

/// One `GET /readyz`: Ok on 200, else what came back instead.
fn ask_ready(admin: SocketAddr) -> Result<(), String> {
    let mut stream = TcpStream::connect_timeout(&admin, ASK_TIMEOUT)
        .map_err(|error| format!("connecting: {error}"))?;
    let answer = exchange(&mut stream).map_err(|error| format!("asking /readyz: {error}"))?;
    readiness_in(&String::from_utf8_lossy(&answer))
}

/// Sends the question and reads the answer, up to 4 KiB.
fn exchange(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    stream.set_read_timeout(Some(ASK_TIMEOUT))?;
    stream.set_write_timeout(Some(ASK_TIMEOUT))?;
    stream.write_all(b"GET /readyz HTTP/1.1\r\nHost: broker\r\nConnection: close\r\n\r\n")?;
    let mut answer = Vec::new();
    stream.take(4096).read_to_end(&mut answer)?;
    Ok(answer)
}

/// Whether an HTTP answer says ready (status 200); else its status and body.
fn readiness_in(answer: &str) -> Result<(), String> {
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer, ""));
    let status_line = head.lines().next().unwrap_or_default();
    match status_line.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        Some(status) => Err(format!("/readyz answered {status}: {}", body.trim())),
        None => Err(format!("/readyz answered {status_line:?}, not HTTP")),
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;

    use super::*;

    const NOT_READY: &str =
        "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 17\r\n\r\nno policy loaded\n";
    const READY: &str = "HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nready\n";

    /// A listener that gives each connection the next answer; counts the answers given.
    fn broker_answering(answers: &'static [&'static str]) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let given = Arc::new(AtomicUsize::new(0));
        let counted = given.clone();
        thread::spawn(move || {
            for answer in answers {
                let (mut connection, _) = listener.accept().unwrap();
                let mut request = [0u8; 1024];
                let read = connection.read(&mut request).unwrap();
                assert!(
                    request[..read].starts_with(b"GET /readyz HTTP/1.1\r\n"),
                    "{}",
                    String::from_utf8_lossy(&request[..read])
                );
                connection.write_all(answer.as_bytes()).unwrap();
                counted.fetch_add(1, Ordering::SeqCst);
            }
        });
        (address, given)
    }

    fn args(admin: SocketAddr, timeout: Duration) -> WaitArgs {
        WaitArgs { admin, timeout }
    }

    #[test]
    fn returns_once_the_broker_answers_ready() {
        let (admin, given) = broker_answering(&[NOT_READY, NOT_READY, READY]);
        wait_for_broker(&args(admin, Duration::from_secs(10))).unwrap();
        // The two refusals did not end the wait.
        assert_eq!(given.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_broker_never_ready_fails_the_hook_with_its_reason() {
        let (admin, _) = broker_answering(&[NOT_READY; 100]);
        let started = Instant::now();
        let error = wait_for_broker(&args(admin, Duration::from_millis(200))).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        let message = error.to_string();
        assert!(
            message.starts_with(&format!("the broker at {admin} was not ready after"))
                && message.ends_with("/readyz answered 503: no policy loaded"),
            "{message}"
        );
    }

    #[test]
    fn nothing_listening_yet_is_waited_for_then_named() {
        let admin = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let error = wait_for_broker(&args(admin, Duration::from_millis(100))).unwrap_err();
        assert!(error.to_string().contains("connecting: "), "{error}");
    }

    #[test]
    fn only_status_200_is_ready() {
        assert_eq!(readiness_in(READY), Ok(()));
        assert_eq!(
            readiness_in(NOT_READY),
            Err("/readyz answered 503: no policy loaded".into())
        );
        assert_eq!(
            readiness_in("SSH-2.0-OpenSSH\r\n"),
            Err("/readyz answered \"SSH-2.0-OpenSSH\", not HTTP".into())
        );
        assert_eq!(
            readiness_in(""),
            Err("/readyz answered \"\", not HTTP".into())
        );
    }
}

//! Per-scope token buckets hold through the real outbound listener.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::StatusCode;
use plugin_operator::policy::ScopeRateLimit;
use plugin_operator_test_support::broker::{Fixture, policy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_holds_to_within_ten_percent_under_load() {
    const PER_MINUTE: u32 = 1200; // 20 a second
    const BURST: u32 = 10;
    let mut p = policy(&[("users:read", &[]), ("channels:read", &[])]);
    p.rate_limits = vec![ScopeRateLimit {
        scope: "users:read".into(),
        per_minute: PER_MINUTE,
        burst: BURST,
    }];
    let fixture = Arc::new(Fixture::start(&p).await);
    let allowed = Arc::new(AtomicUsize::new(0));
    let limited = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let run_for = Duration::from_secs(3);
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (fixture, allowed, limited) = (fixture.clone(), allowed.clone(), limited.clone());
        workers.push(tokio::spawn(async move {
            while started.elapsed() < run_for {
                let answer = fixture.get("/api/v1/users").await;
                match answer.status {
                    StatusCode::OK => allowed.fetch_add(1, Ordering::SeqCst),
                    StatusCode::TOO_MANY_REQUESTS => limited.fetch_add(1, Ordering::SeqCst),
                    other => panic!("unexpected {other}"),
                };
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let allowed = allowed.load(Ordering::SeqCst) as f64;
    let expected = f64::from(BURST) + f64::from(PER_MINUTE) / 60.0 * elapsed;
    let limited = limited.load(Ordering::SeqCst);
    assert!(
        limited > 0,
        "the load never hit the limit; the test proves nothing"
    );
    assert!(
        (allowed - expected).abs() <= expected * 0.10,
        "allowed {allowed} calls in {elapsed:.2}s, expected {expected:.1} ± 10%"
    );
    assert_eq!(fixture.chat_api.count() as f64, allowed);

    // Another scope has no limit and is not slowed by the first one's.
    for _ in 0..30 {
        let answer = fixture.get("/api/v1/channels").await;
        assert_eq!(answer.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn rate_limited_call_gets_429_with_retry_after_and_reason() {
    let mut p = policy(&[("messages:write", &[])]);
    p.rate_limits = vec![ScopeRateLimit {
        scope: "messages:write".into(),
        per_minute: 6, // one every 10 s
        burst: 2,
    }];
    let fixture = Fixture::start(&p).await;
    for _ in 0..2 {
        let answer = fixture.post("/api/v1/channels/C1/messages", b"{}").await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    let answer = fixture.post("/api/v1/channels/C1/messages", b"{}").await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = answer.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((9..=10).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(answer.json()["reason"], "RateLimited");
    assert_eq!(answer.json()["scope"], "messages:write");
    assert_eq!(fixture.chat_api.count(), 2);
}

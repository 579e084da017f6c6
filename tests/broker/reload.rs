//! Policy and token files change under a running broker: applied within 2 s, without
//! failing or dropping a request; a malformed policy keeps the old one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::StatusCode;
use plugin_operator::policy::ScopeRateLimit;
use plugin_operator_test_support::broker::{Fixture, policy, write_like_kubelet};

#[tokio::test]
async fn broker_is_ready_only_once_a_policy_is_loaded() {
    let p = policy(&[("users:read", &[])]);
    let fixture = Fixture::start_with(&p, |args| {
        args.policy_file = args.policy_file.with_file_name("arrives-later.json");
    })
    .await;
    assert_eq!(fixture.admin("/healthz").await.status, StatusCode::OK);
    let not_ready = fixture.admin("/readyz").await;
    assert_eq!(not_ready.status, StatusCode::SERVICE_UNAVAILABLE);
    let early = fixture.get("/api/v1/users").await;
    assert_eq!(early.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(early.json()["reason"], "PolicyNotLoaded");

    write_like_kubelet(
        &fixture.policy_dir.0,
        "arrives-later.json",
        &serde_json::to_vec(&p).unwrap(),
    );
    let ready = fixture
        .eventually(Duration::from_secs(2), || async {
            fixture.admin("/readyz").await.status == StatusCode::OK
        })
        .await;
    assert!(ready, "not ready 2 s after the policy arrived");
    let call = fixture.get("/api/v1/users").await;
    assert_eq!(call.status, StatusCode::OK);
}

#[tokio::test]
async fn new_grant_takes_effect_within_two_seconds() {
    let fixture = Fixture::start(&policy(&[("messages:read", &[])])).await;
    let before = fixture.post("/api/v1/channels/C1/messages", b"{}").await;
    assert_eq!(before.status, StatusCode::FORBIDDEN);

    let changed_at = Instant::now();
    fixture.write_policy(&policy(&[
        ("messages:read", &[]),
        ("messages:write", &["C1"]),
    ]));
    let applied = posting_answers(&fixture, StatusCode::OK).await;
    assert!(
        applied,
        "grant not applied after {:?}",
        changed_at.elapsed()
    );

    fixture.write_policy(&policy(&[("messages:read", &[])]));
    let revoked = posting_answers(&fixture, StatusCode::FORBIDDEN).await;
    assert!(revoked, "grant not revoked within 2 s");
}

/// Waits up to 2 s for a post of a message in C1 to be answered with `status`.
async fn posting_answers(fixture: &Fixture, status: StatusCode) -> bool {
    fixture
        .eventually(Duration::from_secs(2), || async {
            fixture
                .post("/api/v1/channels/C1/messages", b"{}")
                .await
                .status
                == status
        })
        .await
}

#[tokio::test]
async fn malformed_policy_is_logged_and_the_old_one_kept() {
    let fixture = Fixture::start(&policy(&[("users:read", &[])])).await;
    fixture.write_policy_bytes(b"{ this is not json");
    assert!(
        reload_counted(&fixture, "rejected", 1).await,
        "the malformed policy should be counted as rejected"
    );
    let mut invalid = policy(&[]);
    invalid.inbound.max_in_flight = 0;
    fixture.write_policy(&invalid);
    assert!(
        reload_counted(&fixture, "rejected", 2).await,
        "the invalid policy should be counted as rejected"
    );
    let call = fixture.get("/api/v1/users").await;
    assert_eq!(
        call.status,
        StatusCode::OK,
        "the old policy must still be in force"
    );
    assert_eq!(fixture.admin("/readyz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn policy_for_another_plugin_is_refused() {
    let fixture = Fixture::start(&policy(&[("users:read", &[])])).await;
    let mut other = policy(&[("users:read", &[]), ("files:read", &[])]);
    other.plugin_id = "team-b/weather".into();
    fixture.write_policy(&other);
    assert!(
        reload_counted(&fixture, "rejected", 1).await,
        "a policy for team-b/weather must be rejected by team-a/weather's broker"
    );
    let call = fixture.get("/api/v1/files/F1").await;
    assert_eq!(call.status, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_changes_under_steady_load_lose_no_request() {
    let base = policy(&[("users:read", &[])]);
    let fixture = Arc::new(Fixture::start(&base).await);
    let stop = Arc::new(AtomicBool::new(false));
    let outbound_ok = Arc::new(AtomicUsize::new(0));
    let inbound_ok = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for worker in 0..4 {
        let (fixture, stop) = (fixture.clone(), stop.clone());
        let (outbound_ok, inbound_ok) = (outbound_ok.clone(), inbound_ok.clone());
        workers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let answer = if worker == 3 {
                    fixture.invoke("POST", "/invoke", b"{}").await
                } else {
                    fixture.get("/api/v1/users").await
                };
                if answer.status == StatusCode::OK {
                    if worker == 3 {
                        &inbound_ok
                    } else {
                        &outbound_ok
                    }
                    .fetch_add(1, Ordering::SeqCst);
                } else {
                    failures.push((answer.status, answer.body));
                }
            }
            failures
        }));
    }
    // Six policy versions, each keeping users:read but changing everything around it:
    // other grants, a generous rate limit that comes and goes, the in-flight cap.
    for version in 0..6u32 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut next = policy(&[("users:read", &[]), ("messages:write", &["C1"])]);
        next.inbound.max_in_flight = 4 + version;
        if version % 2 == 0 {
            next.rate_limits = vec![ScopeRateLimit {
                scope: "users:read".into(),
                per_minute: 6_000_000,
                burst: 100_000,
            }];
            next.grants.pop();
        }
        fixture.write_policy(&next);
        assert!(
            reload_counted(&fixture, "applied", 2 + version).await,
            "policy version {version} not applied within 2 s under load"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        let failures = worker.await.unwrap();
        assert!(
            failures.is_empty(),
            "requests failed during reloads: {failures:?}"
        );
    }
    let (outbound, inbound) = (
        outbound_ok.load(Ordering::SeqCst),
        inbound_ok.load(Ordering::SeqCst),
    );
    assert!(
        outbound > 50 && inbound > 10,
        "too little load: {outbound} / {inbound}"
    );
    assert_eq!(fixture.chat_api.count(), outbound);
    assert_eq!(fixture.plugin.count(), inbound);
}

/// Waits up to 2 s for the broker to have counted `count` policy reloads with `result`.
async fn reload_counted(fixture: &Fixture, result: &str, count: u32) -> bool {
    let line = format!(r#"broker_policy_reloads_total{{result="{result}"}} {count}"#);
    fixture
        .eventually(Duration::from_secs(2), || async {
            fixture.metrics().await.contains(&line)
        })
        .await
}

#[tokio::test]
async fn rotated_token_is_used_for_the_next_calls() {
    let fixture = Fixture::start(&policy(&[("users:read", &[])])).await;
    fixture.get("/api/v1/users").await;
    fixture.write_token("broker-token-two\n");
    let rotated = fixture
        .eventually(Duration::from_secs(2), || async {
            fixture.get("/api/v1/users").await;
            let last = fixture.chat_api.requests().pop().unwrap();
            last.headers["authorization"] == "Bearer broker-token-two"
        })
        .await;
    assert!(rotated, "the rotated token was not picked up within 2 s");
    assert_eq!(
        fixture.chat_api.requests()[0].headers["authorization"],
        "Bearer broker-token-one"
    );

    // An empty token file (a rotation caught half-way) keeps the last good token.
    fixture.write_token("");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let answer = fixture.get("/api/v1/users").await;
    assert_eq!(answer.status, StatusCode::OK);
    let last = fixture.chat_api.requests().pop().unwrap();
    assert_eq!(last.headers["authorization"], "Bearer broker-token-two");
}

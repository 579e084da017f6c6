//! For random grants and random requests, nothing outside the grants is ever
//! forwarded in Enforce mode, and nothing outside the catalog or the plugin's own
//! `{self}` data in Audit mode. Checked against a deliberately simple second
//! implementation of the permission model (the oracle), first on `decide` alone with
//! many cases, then through the real listeners and a recording chat API.

use std::collections::BTreeMap;

use plugin_operator::broker::{Call, CompiledPolicy, Verdict, decide};
use plugin_operator::policy::{
    BrokerPolicy, EnforcementMode, KV_READ_SCOPE, KV_WRITE_SCOPE, default_catalog,
};
use plugin_operator_test_support::broker::{
    Fixture, PolicyBuilder, SELF_SEGMENT, TOKEN, oracle_allows,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Scope -> granted channels (empty: every channel).
type Grants = BTreeMap<String, Vec<String>>;

const CHANNELS: [&str; 3] = ["C1", "C2", "C3"];

/// Every scope of the sample catalog (the key-value ones included) and one no route needs.
fn all_scopes() -> Vec<&'static str> {
    static SAMPLE: std::sync::LazyLock<plugin_operator::api::ScopeCatalogSpec> =
        std::sync::LazyLock::new(plugin_operator::api::sample_scope_catalog);
    let mut scopes = SAMPLE.chat_scope_names();
    scopes.extend([KV_READ_SCOPE, KV_WRITE_SCOPE, "scope:nobody-routes-to"]);
    scopes
}

fn grants_strategy() -> impl Strategy<Value = Grants> {
    let per_scope: Vec<_> = all_scopes()
        .into_iter()
        .map(|scope| {
            proptest::option::of(proptest::sample::subsequence(CHANNELS.to_vec(), 0..=2))
                .prop_map(move |channels| (scope, channels))
        })
        .collect();
    per_scope.prop_map(|entries| {
        entries
            .into_iter()
            .filter_map(|(scope, channels)| {
                channels.map(|c| (scope.to_owned(), c.into_iter().map(String::from).collect()))
            })
            .collect()
    })
}

/// Segments that are plain, tricky, encoded or hostile.
const SEGMENTS: &[&str] = &[
    "C1",
    "C2",
    "C3",
    "C4",
    SELF_SEGMENT,
    "team-b.weather",
    "team-a.weather2",
    "team-a",
    "U1",
    "m1",
    "key",
    "api",
    "v1",
    "v2",
    "kv",
    "channels",
    "messages",
    "users",
    "files",
    "reactions",
    "admin",
    "..",
    ".",
    "%2e%2e",
    "%2E",
    ".%2e",
    "a%2fb",
    "a%5Cb",
    "C%31",
    "team-a%2Eweather",
    "caf%C3%A9",
    "%FF",
    "%C3%28",
    "%00",
    "%",
    "%zz",
    "",
    "C1%20",
    "%7Bself%7D",
    "{self}",
    "{channel}",
    "a;b",
    "a:b",
    "@",
    "~",
];

fn segment() -> impl Strategy<Value = String> {
    proptest::sample::select(SEGMENTS).prop_map(String::from)
}

fn method() -> impl Strategy<Value = String> {
    proptest::sample::select(&["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"][..])
        .prop_map(String::from)
}

/// A catalog template with its placeholders filled, or random segments.
fn path() -> impl Strategy<Value = String> {
    let templates: Vec<String> = default_catalog().into_iter().map(|r| r.path).collect();
    let from_template = (
        proptest::sample::select(templates),
        proptest::collection::vec(segment(), 8),
    )
        .prop_map(|(template, fillers)| {
            let mut fillers = fillers.into_iter();
            template
                .split('/')
                .map(|part| {
                    if part.starts_with('{') {
                        fillers.next().unwrap()
                    } else {
                        part.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("/")
        });
    let random = proptest::collection::vec(segment(), 1..8)
        .prop_map(|segments| format!("/{}", segments.join("/")));
    prop_oneof![3 => from_template, 1 => random]
}

fn request() -> impl Strategy<Value = (String, String)> {
    (method(), path())
}

fn mode() -> impl Strategy<Value = EnforcementMode> {
    prop_oneof![Just(EnforcementMode::Enforce), Just(EnforcementMode::Audit)]
}

fn policy_with(grants: &Grants, mode: EnforcementMode) -> BrokerPolicy {
    grants
        .iter()
        .fold(
            PolicyBuilder::new().mode(mode),
            |builder, (scope, channels)| {
                let channels: Vec<&str> = channels.iter().map(String::as_str).collect();
                builder.grant(scope, &channels)
            },
        )
        .build()
}

/// A path the broker must accept as written: only unreserved characters, no dot segments.
fn is_plain(path: &str) -> bool {
    path[1..].split('/').all(|s| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    })
}

proptest! {
    #![proptest_config(Config { cases: 2000, ..Config::default() })]

    #[test]
    fn decide_forwards_nothing_outside_the_model(
        grants in grants_strategy(),
        mode in mode(),
        requests in proptest::collection::vec(request(), 1..20),
    ) {
        let policy = policy_with(&grants, mode);
        let compiled = CompiledPolicy::compile(&policy).unwrap();
        for (method, path) in &requests {
            let decision = decide(&Call { method, path }, &compiled);
            let allowed = oracle_allows(method, path, &policy);
            if decision.forwards() {
                prop_assert!(allowed, "forwarded {method} {path} outside {grants:?} ({mode:?})");
                if mode == EnforcementMode::Enforce {
                    prop_assert_eq!(decision.verdict, Verdict::Allow);
                }
            }
            if is_plain(path) {
                prop_assert_eq!(decision.forwards(), allowed, "{} {} with {:?} ({:?})", method, path, grants, mode);
            }
        }
    }
}

#[test]
fn nothing_outside_the_grants_reaches_the_chat_api_through_the_listener() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    let cases = (
        grants_strategy(),
        mode(),
        proptest::collection::vec(request(), 1..24),
    );
    runner
        .run(&cases, |(grants, mode, requests)| {
            runtime.block_on(async {
                let policy = policy_with(&grants, mode);
                let fixture = Fixture::start(&policy).await;
                let mut expected_forwards = 0;
                for (method, path) in &requests {
                    if http::Uri::try_from(path.as_str()).is_err() {
                        continue; // not sendable by an HTTP client at all
                    }
                    let allowed = oracle_allows(method, path, &policy);
                    let answer = fixture
                        .call(method, path, &[("authorization", "Bearer plugin")], b"")
                        .await;
                    if answer.status == http::StatusCode::OK {
                        prop_assert!(allowed, "{method} {path} got 200 outside {grants:?}");
                        expected_forwards += 1;
                    } else if is_plain(path) {
                        prop_assert!(
                            !allowed,
                            "{method} {path} refused ({}) within {grants:?}",
                            answer.status
                        );
                    }
                }
                let seen = fixture.chat_api.requests();
                prop_assert_eq!(seen.len(), expected_forwards);
                for request in &seen {
                    let path = request.uri.split('?').next().unwrap();
                    prop_assert!(
                        oracle_allows(request.method.as_str(), path, &policy),
                        "the chat API saw {} {} outside {:?}",
                        request.method,
                        path,
                        grants
                    );
                    prop_assert_eq!(
                        &request.headers["authorization"],
                        &format!("Bearer {TOKEN}")
                    );
                }
                Ok(())
            })
        })
        .unwrap();
}

use serde_json::json;

use super::*;
use std::sync::LazyLock;

use crate::api::{PermissionMode, PluginPolicySpec, ScopeCatalogSpec, sample_scope_catalog};

fn spec(value: serde_json::Value) -> PluginSpec {
    let mut base = json!({"image": "registry.example/weather:1", "port": 8080});
    base.as_object_mut()
        .unwrap()
        .extend(value.as_object().unwrap().clone());
    serde_json::from_value(base).unwrap()
}

fn policy(name: &str, value: serde_json::Value) -> PluginPolicy {
    let mut base = json!({"namespaceSelector": {}});
    base.as_object_mut()
        .unwrap()
        .extend(value.as_object().unwrap().clone());
    let spec: PluginPolicySpec = serde_json::from_value(base).unwrap();
    PluginPolicy::new(name, spec)
}

static SAMPLE: LazyLock<ScopeCatalogSpec> = LazyLock::new(sample_scope_catalog);

/// The sample chat API's catalog, as the chart installs it.
fn sample() -> Catalog<'static> {
    Catalog {
        name: "default",
        spec: Some(&SAMPLE),
    }
}

fn check(spec: &PluginSpec, policies: &[&PluginPolicy]) -> Review {
    review(spec, sample(), policies, &EnvObjects::default())
}

/// The excesses as their messages.
fn excesses(review: &Review) -> Vec<String> {
    review.excesses.iter().map(Excess::to_string).collect()
}

#[test]
fn a_plugin_within_its_policy_is_granted_what_it_asks() {
    let asked = spec(json!({"permissions": {
        "chatApi": [{"scope": "messages:read"}, {"scope": "messages:write", "channels": ["C1"]}],
        "database": {"access": "ReadWrite"},
        "network": {"egress": [{"cidr": "203.0.113.0/24"}]}
    }, "rateLimits": [{"scope": "kv:write", "perMinute": 60}]}));
    let open = policy(
        "open",
        json!({
            "chatApi": [{"scope": "messages:read"}, {"scope": "messages:write", "channels": ["C1", "C2"]}],
            "database": {"access": "ReadWrite"},
            "egress": {"allowed": ["203.0.0.0/16"], "denied": ["127.0.0.0/8"]},
            "images": {"repositories": ["registry.example/"]},
            "maxReplicas": 1,
            "maxResources": {"cpu": "500m", "memory": "128Mi"}
        }),
    );
    let review = check(&asked, &[&open]);
    assert_eq!(excesses(&review), Vec::<String>::new());
    assert!(review.permitted());
    assert_eq!(review.granted, asked);
    assert_eq!(review.policies, ["open"]);
}

#[test]
fn without_a_policy_nothing_is_granted() {
    let asked = spec(json!({"permissions": {"chatApi": [{"scope": "messages:read"}]}}));
    let review = check(&asked, &[]);
    assert!(!review.permitted());
    assert!(
        review
            .message()
            .contains("no PluginPolicy selects this namespace")
    );
    assert_eq!(review.granted.permissions, None);
}

#[test]
fn a_scope_the_policy_lacks_is_named_and_removed_with_its_rate_limit() {
    let asked = spec(json!({
        "permissions": {"chatApi": [{"scope": "messages:read"}, {"scope": "files:write"}]},
        "rateLimits": [{"scope": "files:write", "perMinute": 6}]
    }));
    let narrow = policy("narrow", json!({"chatApi": [{"scope": "messages:read"}]}));
    let review = check(&asked, &[&narrow]);
    assert_eq!(
        excesses(&review),
        [
            "permissions.chatApi[files:write] scope: PluginPolicy narrow allows the scopes [messages:read]"
        ]
    );
    let granted = review.granted.permissions.unwrap().chat_api;
    assert_eq!(granted.len(), 1);
    assert_eq!(granted[0].scope.as_str(), "messages:read");
    assert!(review.granted.rate_limits.is_empty());
}

#[test]
fn channels_are_narrowed_to_the_policys() {
    let narrow = policy(
        "narrow",
        json!({"chatApi": [{"scope": "messages:write", "channels": ["C1", "C2"]}]}),
    );
    let every = spec(json!({"permissions": {"chatApi": [{"scope": "messages:write"}]}}));
    let review = check(&every, &[&narrow]);
    assert_eq!(
        excesses(&review),
        [
            "permissions.chatApi[messages:write] on every channel: PluginPolicy narrow allows channels [C1, C2]"
        ]
    );
    assert_eq!(
        review.granted.permissions.unwrap().chat_api[0].channels,
        ["C1", "C2"]
    );

    let some = spec(
        json!({"permissions": {"chatApi": [{"scope": "messages:write", "channels": ["C2", "C9"]}]}}),
    );
    let review = check(&some, &[&narrow]);
    assert_eq!(review.excesses[0].asked, "on channels [C9]");
    assert_eq!(
        review.granted.permissions.unwrap().chat_api[0].channels,
        ["C2"]
    );

    let outside = spec(
        json!({"permissions": {"chatApi": [{"scope": "messages:write", "channels": ["C9"]}]}}),
    );
    let review = check(&outside, &[&narrow]);
    assert!(review.granted.permissions.unwrap().chat_api.is_empty());
}

#[test]
fn audit_mode_needs_the_policys_consent() {
    let asked = spec(json!({"permissions": {"mode": "Audit"}}));
    let review = check(&asked, &[&policy("strict", json!({}))]);
    assert_eq!(
        excesses(&review),
        ["permissions.mode Audit: PluginPolicy strict allows only Enforce"]
    );
    assert_eq!(
        review.granted.permissions.unwrap().mode,
        Some(PermissionMode::Enforce)
    );
    let lenient = policy("lenient", json!({"allowAuditMode": true}));
    assert!(check(&asked, &[&lenient]).permitted());
}

#[test]
fn key_value_access_is_narrowed_to_read_only_and_the_value_cap() {
    let asked =
        spec(json!({"permissions": {"database": {"access": "ReadWrite", "maxValueBytes": 4096}}}));
    let narrow = policy(
        "narrow",
        json!({"database": {"access": "ReadOnly", "maxValueBytes": 1024}}),
    );
    let review = check(&asked, &[&narrow]);
    assert_eq!(
        excesses(&review),
        [
            "permissions.database.access ReadWrite: PluginPolicy narrow allows ReadOnly",
            "permissions.database.maxValueBytes 4096: PluginPolicy narrow allows at most 1024",
        ]
    );
    let database = review.granted.permissions.unwrap().database.unwrap();
    assert_eq!(database.access, DatabaseAccessMode::ReadOnly);
    assert_eq!(database.max_value_bytes, Some(1024));
    let none = check(&asked, &[&policy("none", json!({}))]);
    assert_eq!(none.granted.permissions.unwrap().database, None);
}

#[test]
fn egress_is_checked_by_containment_and_overlap() {
    let bounds = policy(
        "net",
        json!({"egress": {"allowed": ["0.0.0.0/0"], "denied": ["10.244.0.0/16", "169.254.0.0/16"]}}),
    );
    let egress =
        |cidr: &str| spec(json!({"permissions": {"network": {"egress": [{"cidr": cidr}]}}}));
    let sub = check(&egress("10.244.1.0/24"), &[&bounds]);
    assert_eq!(
        excesses(&sub),
        [
            "permissions.network.egress to 10.244.1.0/24: PluginPolicy net allows nothing that overlaps the denied range 10.244.0.0/16"
        ]
    );
    assert!(
        sub.granted
            .permissions
            .unwrap()
            .network
            .unwrap()
            .egress
            .is_empty()
    );
    let metadata = check(&egress("169.254.169.254/32"), &[&bounds]);
    assert!(!metadata.permitted());
    let half_the_internet = check(&egress("0.0.0.0/1"), &[&bounds]);
    assert!(!half_the_internet.permitted(), "it contains 10.244.0.0/16");
    assert!(check(&egress("203.0.113.0/24"), &[&bounds]).permitted());

    let small = policy("small", json!({"egress": {"allowed": ["203.0.113.0/24"]}}));
    let outside = check(&egress("198.51.100.0/24"), &[&small]);
    assert_eq!(
        excesses(&outside),
        [
            "permissions.network.egress to 198.51.100.0/24: PluginPolicy small allows egress within [203.0.113.0/24]"
        ]
    );
    let loopback = check(
        &egress("127.0.0.1/32"),
        &[&policy("d", json!({"egress": {"allowed": ["0.0.0.0/0"]}}))],
    );
    assert!(!loopback.permitted(), "loopback is denied by default");
}

#[test]
fn images_must_come_from_the_policys_repositories_and_may_need_a_digest() {
    let images = policy(
        "img",
        json!({"images": {"repositories": ["registry.example/team-a/"], "requireDigest": true}}),
    );
    let review = check(
        &spec(json!({"image": "registry.example/weather:1"})),
        &[&images],
    );
    assert_eq!(
        excesses(&review),
        [
            "image registry.example/weather:1: PluginPolicy img allows images from [registry.example/team-a/]",
            "image registry.example/weather:1: PluginPolicy img allows only images pinned by digest (@sha256:<64 hex digits>)",
        ]
    );
    let pinned = format!("registry.example/team-a/w@sha256:{}", "a".repeat(64));
    assert!(check(&spec(json!({"image": pinned})), &[&images]).permitted());
    assert!(!pinned_by_digest("w@sha256:nothex"));
}

#[test]
fn resources_and_replicas_have_ceilings_counting_the_defaults() {
    let small = policy(
        "small",
        json!({"maxResources": {"cpu": "200m", "memory": "1Gi"}, "maxReplicas": 2}),
    );
    let review = check(&spec(json!({"replicas": 3})), &[&small]);
    assert_eq!(
        excesses(&review),
        [
            "replicas 3: PluginPolicy small allows at most 2",
            "resources.limits.cpu 500m: PluginPolicy small allows at most 200m",
        ]
    );
    let fits = spec(json!({"resources": {"limits": {"cpu": "0.2"}}}));
    assert!(check(&fits, &[&small]).permitted());
    let disk = policy(
        "disk",
        json!({"maxResources": {"ephemeralStorage": "64Mi"}}),
    );
    assert_eq!(
        excesses(&check(&spec(json!({})), &[&disk])),
        ["resources.limits.ephemeralStorage 128Mi: PluginPolicy disk allows at most 64Mi"],
        "the default limit counts"
    );
    let fits = spec(json!({"resources": {"limits": {"ephemeralStorage": "64Mi"}}}));
    assert!(check(&fits, &[&disk]).permitted());
}

#[test]
fn secrets_are_allowed_by_name_and_config_maps_by_name_or_label() {
    let asked = spec(
        json!({"env": [{"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "db", "key": "k"}}}]}),
    );
    let by_name = policy(
        "by-name",
        json!({"envSources": {"secrets": {"names": ["db"]}}}),
    );
    assert!(check(&asked, &[&by_name]).permitted());
    let other = policy(
        "other",
        json!({"envSources": {"secrets": {"names": ["api"]}}}),
    );
    assert_eq!(
        excesses(&check(&asked, &[&other])),
        ["env[KEY].valueFrom Secret db: PluginPolicy other allows Secrets named [api]"]
    );
    let config = spec(
        json!({"env": [{"name": "C", "valueFrom": {"configMapKeyRef": {"name": "db", "key": "k"}}}]}),
    );
    assert!(
        !check(&config, &[&by_name]).permitted(),
        "a Secret's name does not allow a ConfigMap"
    );
    let by_label = policy(
        "by-label",
        json!({"envSources": {"configMaps": {"selector": {"matchLabels": {"plugins.chat.dev/shared": "true"}}}}}),
    );
    let mut env = EnvObjects::default();
    assert!(
        !review(&config, sample(), &[&by_label], &env).permitted(),
        "a missing ConfigMap has no labels"
    );
    env.config_maps.insert(
        "db".into(),
        BTreeMap::from([("plugins.chat.dev/shared".into(), "true".into())]),
    );
    assert!(review(&config, sample(), &[&by_label], &env).permitted());
}

#[test]
fn several_policies_grant_their_intersection() {
    let asked = spec(
        json!({"permissions": {"chatApi": [{"scope": "messages:read"}, {"scope": "users:read"}]}}),
    );
    let a = policy(
        "a",
        json!({"chatApi": [{"scope": "messages:read"}, {"scope": "users:read"}], "runtimeClassName": "gvisor"}),
    );
    let b = policy(
        "b",
        json!({"chatApi": [{"scope": "messages:read"}], "runtimeClassName": "gvisor"}),
    );
    let review = check(&asked, &[&a, &b]);
    assert_eq!(review.excesses.len(), 1);
    assert_eq!(review.excesses[0].policy, "b");
    assert_eq!(granted_scopes(&review), ["messages:read"]);
    assert_eq!(review.runtime_class_name.as_deref(), Some("gvisor"));

    let kata = policy("c", json!({"runtimeClassName": "kata"}));
    let conflict = check(&spec(json!({})), &[&a, &kata]);
    assert!(
        conflict
            .message()
            .contains("different RuntimeClasses (gvisor, kata)"),
        "{}",
        conflict.message()
    );
}

fn granted_scopes(review: &Review) -> Vec<String> {
    let permissions = review.granted.permissions.clone().unwrap_or_default();
    permissions.chat_api.into_iter().map(|g| g.scope).collect()
}

#[test]
fn a_scope_the_catalog_does_not_define_is_held_as_unknown_and_not_granted() {
    let asked = spec(json!({"permissions": {
        "chatApi": [{"scope": "messages:read"}, {"scope": "deploy:write"}]
    }, "rateLimits": [{"scope": "deploy:write", "perMinute": 60}]}));
    let open = policy(
        "open",
        json!({"chatApi": [{"scope": "messages:read"}, {"scope": "deploy:write"}]}),
    );
    let review = check(&asked, &[&open]);
    assert!(!review.permitted());
    assert_eq!(review.reason(), "UnknownScope");
    assert_eq!(review.unknown_scopes, ["deploy:write"]);
    assert_eq!(granted_scopes(&review), ["messages:read"]);
    assert!(
        review.granted.rate_limits.is_empty(),
        "its rate limit goes too"
    );
    let message = review.message();
    assert!(
        message.contains("permissions.chatApi[deploy:write]: ScopeCatalog default does not define this scope; it defines [channels:read, messages:read"),
        "{message}"
    );
    assert!(!message.contains("kv:read"), "{message}");
}

#[test]
fn without_the_catalog_no_scope_is_granted() {
    let asked = spec(json!({"permissions": {"chatApi": [{"scope": "messages:read"}]}}));
    let open = policy("open", json!({"chatApi": [{"scope": "messages:read"}]}));
    let missing = Catalog {
        name: "chat-api",
        spec: None,
    };
    let review = review(&asked, missing, &[&open], &EnvObjects::default());
    assert_eq!(review.reason(), "UnknownScope");
    assert!(granted_scopes(&review).is_empty());
    assert!(
        review
            .message()
            .contains("ScopeCatalog chat-api does not exist"),
        "{}",
        review.message()
    );
}

#[test]
fn a_policy_excess_alone_is_permissions_denied() {
    let asked = spec(json!({"permissions": {"chatApi": [{"scope": "users:read"}]}}));
    let review = check(&asked, &[&policy("none", json!({}))]);
    assert_eq!(review.reason(), "PermissionsDenied");
    assert!(review.unknown_scopes.is_empty());
}

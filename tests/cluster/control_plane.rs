//! Control-plane tier: needs only `make cluster-up` (etcd + apiserver + controllers)
//! and KUBECONFIG pointing at it. No node, so pods are admitted but never run.

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenReview};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, PostParams};
use plugin_operator_test_support::cluster::{TestNamespace, client, restricted_container_security};

fn pod(name: &str, container_security: serde_json::Value, pod_security: serde_json::Value) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {
            "securityContext": pod_security,
            "containers": [{
                "name": "main",
                "image": "localhost/po-echo:test",
                "imagePullPolicy": "Never",
                "args": ["sleep"],
                "securityContext": container_security
            }]
        }
    }))
    .unwrap()
}

fn privileged_pod() -> Pod {
    pod(
        "privileged",
        serde_json::json!({"privileged": true}),
        serde_json::json!({}),
    )
}

#[tokio::test]
async fn restricted_namespace_refuses_privileged_pod_and_admits_restricted_one() {
    let client = client().await;
    let ns = TestNamespace::restricted(&client, "cp-podsec").await;
    let pods: Api<Pod> = ns.api();

    let err = pods
        .create(&PostParams::default(), &privileged_pod())
        .await
        .expect_err("a privileged pod must be refused in a restricted namespace");
    match err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 403, "unexpected refusal: {status:?}");
            assert!(
                status.message.contains("violates PodSecurity \"restricted"),
                "refused, but not by PodSecurity: {}",
                status.message
            );
        }
        other => panic!("unexpected error: {other}"),
    }

    let ok = pod(
        "restricted",
        restricted_container_security(),
        serde_json::json!({"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}}),
    );
    let created = pods
        .create(&PostParams::default(), &ok)
        .await
        .expect("a pod meeting the restricted profile must be admitted");
    assert_eq!(created.metadata.name.as_deref(), Some("restricted"));

    // The refusal comes from the namespace label: an unlabelled namespace admits the
    // same privileged pod (server-side dry run, nothing is stored).
    let open = TestNamespace::new(&client, "cp-open", &[]).await;
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    open.api::<Pod>()
        .create(&dry, &privileged_pod())
        .await
        .expect("an unlabelled namespace admits a privileged pod");
}

async fn review(client: &kube::Client, token: &str, audience: &str) -> TokenReview {
    let review: TokenReview = serde_json::from_value(serde_json::json!({
        "spec": {"token": token, "audiences": [audience]}
    }))
    .unwrap();
    Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("TokenReview create")
}

#[tokio::test]
async fn token_review_accepts_projected_token_for_its_audience_only() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "cp-token", &[]).await;
    let sas: Api<ServiceAccount> = ns.api();
    let sa: ServiceAccount =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "broker"}})).unwrap();
    sas.create(&PostParams::default(), &sa)
        .await
        .expect("create ServiceAccount");

    let audience = "chat-api.example";
    let request: TokenRequest = serde_json::from_value(serde_json::json!({
        "spec": {"audiences": [audience], "expirationSeconds": 600}
    }))
    .unwrap();
    let issued = sas
        .create_token_request("broker", &PostParams::default(), &request)
        .await
        .expect("TokenRequest for the ServiceAccount");
    let token = issued.status.expect("TokenRequest status").token;
    assert!(!token.is_empty());

    let good = review(&client, &token, audience).await;
    let status = good.status.expect("TokenReview status");
    assert_eq!(
        status.authenticated,
        Some(true),
        "token refused for its own audience: {status:?}"
    );
    let user = status.user.expect("user info");
    assert_eq!(
        user.username.as_deref(),
        Some(format!("system:serviceaccount:{}:broker", ns.name).as_str())
    );
    assert_eq!(
        status.audiences.as_deref(),
        Some(&[audience.to_string()][..])
    );

    let bad = review(&client, &token, "some-other-audience").await;
    let status = bad.status.expect("TokenReview status");
    assert_ne!(
        status.authenticated,
        Some(true),
        "token accepted for a wrong audience: {status:?}"
    );
    assert!(
        status.error.as_deref().unwrap_or("").contains("audience"),
        "refusal should name the audience: {status:?}"
    );

    // Not a valid token at all.
    let forged = review(&client, "not-a-token", audience).await;
    assert_ne!(forged.status.and_then(|s| s.authenticated), Some(true));
}

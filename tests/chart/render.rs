//! The Helm chart without a cluster: strict lint, the values schema, least-privilege
//! RBAC, leader election, and flags the operator binary accepts. helm is built on
//! first use (`make helm`).

use std::collections::BTreeSet;

use clap::Parser;
use plugin_operator::controller::ControllerArgs;
use plugin_operator_test_support::cluster::assert_success;
use serde_json::{Value, json};

use crate::support::{
    CHART, default_image, kind, name, of_kind, only, operator_args, render, run_helm, template,
};

/// Values that switch every optional part of the chart on.
const EVERYTHING: &[&str] = &[
    "--set",
    "replicas=2",
    "--set",
    "watchNamespaces={team-a,team-b}",
    "--set",
    "scopeCatalog.name=chat-api,scopeCatalog.scopes[0].name=ping:read,scopeCatalog.scopes[0].routes[0].method=GET,scopeCatalog.scopes[0].routes[0].path=/api/v1/ping",
    "--set",
    "dns.enabled=false",
    "--set",
    "invoker.namespace=gateway,invoker.selector=app=gateway",
    "--set",
    "chatApi.caBundle.configMapName=trust-bundle,chatApi.caBundle.key=trust-bundle.pem",
    "--set",
    "monitoring.namespace=monitoring,monitoring.selector=app.kubernetes.io/name=prometheus",
    "--set",
    "metrics.serviceMonitor.enabled=true,metrics.podMonitor.enabled=true",
    "--set",
    "metrics.prometheusRule.enabled=true,metrics.dashboard.enabled=true",
    "--set",
    "extraArgs={--lease-seconds=15}",
];

#[test]
fn chart_passes_strict_lint_with_default_and_optional_values() {
    for extra in [&[][..], EVERYTHING] {
        let mut args = vec!["lint", "--strict", CHART];
        args.extend_from_slice(extra);
        let out = run_helm(&args);
        assert_success(&out, &format!("helm lint --strict {extra:?}"));
    }
}

#[test]
fn schema_refuses_replicas_written_as_a_word() {
    let error = template(&["--set-string", "replicas=two"]).expect_err("replicas=two is refused");
    assert!(
        error.contains("values don't meet the specifications of the schema")
            && error.contains("replicas")
            && error.contains("integer"),
        "the message names the field and the type it wants:\n{error}"
    );
}

#[test]
fn schema_refuses_unknown_keys_and_out_of_range_settings() {
    for (value, mentions) in [
        ("replica=2", "replica"),
        (
            "chatApi.tokenExpirationSeconds=60",
            "tokenExpirationSeconds",
        ),
        ("logFormat=xml", "logFormat"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("chatApi.selector=not a selector", "selector"),
        ("watchNamespaces={Team_A}", "watchNamespaces"),
        (
            "chatApi.caBundle.configMapName=Trust_Bundle",
            "configMapName",
        ),
        ("chatApi.caBundle.key=ca/crt", "key"),
        ("monitoring.selector=prometheus", "selector"),
        ("metrics.prometheusRule.failureRatio=5", "failureRatio"),
        ("metrics.prometheusRule.degradedFor=soon", "degradedFor"),
        ("metrics.podMonitor.scrape=true", "scrape"),
    ] {
        let error = template(&["--set", value]).expect_err(value);
        assert!(
            error.contains("schema") && error.contains(mentions),
            "{value}: the message names {mentions}:\n{error}"
        );
    }
}

#[test]
fn default_values_render_the_operator_and_its_least_privileges() {
    let docs = render(&[]);
    let kinds: BTreeSet<&str> = docs.iter().map(kind).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "Pod",
            "PluginPolicy",
            "ScopeCatalog",
            "Service",
            "ServiceAccount",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding"
        ]),
    );
    let deployment = only(&docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["image"], default_image());
    assert_eq!(container["imagePullPolicy"], "IfNotPresent");
    assert_eq!(pod["automountServiceAccountToken"], true);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let security = &container["securityContext"];
    assert_eq!(security["runAsUser"], 65532);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    let env: Vec<(&str, &str)> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?,
                e["valueFrom"]["fieldRef"]["fieldPath"].as_str()?,
            ))
        })
        .collect();
    assert_eq!(
        env,
        [
            ("POD_NAME", "metadata.name"),
            ("POD_NAMESPACE", "metadata.namespace")
        ]
    );
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    let args = operator_args(&docs);
    assert_eq!(args[0], "controller");
    assert!(!args.iter().any(|a| a == "--leader-elect"), "{args:?}");
    let service = only(&docs, "Service");
    assert_eq!(service["spec"]["ports"][0]["port"], 8080);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "admin");

    let operator_role = of_kind(&docs, "ClusterRole")
        .into_iter()
        .find(|r| name(r) == "plugin-operator")
        .expect("the operator's ClusterRole");
    assert_eq!(
        grants(operator_role),
        expected_operator_grants(),
        "the operator's ClusterRole grants exactly what the operator uses"
    );
}

#[test]
fn no_role_grants_secrets_tokens_or_wildcards() {
    for extra in [
        &[][..],
        EVERYTHING,
        &["--set", "leaderElection.enabled=true"],
    ] {
        let docs = render(extra);
        for role in docs
            .iter()
            .filter(|d| matches!(kind(d), "ClusterRole" | "Role"))
        {
            for rule in role["rules"].as_array().unwrap() {
                for field in ["apiGroups", "resources", "verbs", "resourceNames"] {
                    for item in rule[field].as_array().into_iter().flatten() {
                        let item = item.as_str().unwrap();
                        assert!(
                            !item.contains('*'),
                            "{} {}: wildcard in {field}: {rule}",
                            kind(role),
                            name(role)
                        );
                        assert!(
                            !matches!(
                                item,
                                "secrets"
                                    | "serviceaccounts/token"
                                    | "escalate"
                                    | "bind"
                                    | "impersonate"
                            ),
                            "{} {}: {item} granted: {rule}",
                            kind(role),
                            name(role)
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn watched_namespaces_get_roles_and_cluster_wide_only_policies_and_their_namespaces() {
    let docs = render(&["--set", "watchNamespaces={team-a,team-b}"]);
    let cluster_bindings = of_kind(&docs, "ClusterRoleBinding");
    assert_eq!(cluster_bindings.len(), 1);
    assert_eq!(name(cluster_bindings[0]), "plugin-operator-policies");
    let policies_role = only_named(&docs, "ClusterRole", "plugin-operator-policies");
    assert_eq!(
        policies_role["rules"],
        json!([
            {"apiGroups": ["plugins.chat.dev"], "resources": ["pluginpolicies", "scopecatalogs"], "verbs": ["list", "watch"]},
            {"apiGroups": [""], "resources": ["namespaces"], "resourceNames": ["team-a", "team-b"], "verbs": ["list", "watch"]}
        ]),
        "PluginPolicies and ScopeCatalogs are cluster-scoped; only the watched namespaces' labels are read"
    );
    let operator_cluster_roles: Vec<_> = of_kind(&docs, "ClusterRole")
        .into_iter()
        .filter(|r| name(r) == "plugin-operator")
        .collect();
    assert!(operator_cluster_roles.is_empty());
    let roles = of_kind(&docs, "Role");
    let namespaces: Vec<&str> = roles
        .iter()
        .map(|r| r["metadata"]["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(namespaces, ["team-a", "team-b"]);
    for role in roles {
        assert_eq!(grants(role), expected_operator_grants());
    }
    let bindings = of_kind(&docs, "RoleBinding");
    assert_eq!(bindings.len(), 2);
    for binding in bindings {
        assert_eq!(
            binding["subjects"],
            json!([{"kind": "ServiceAccount", "name": "plugin-operator", "namespace": "plugin-operator-system"}])
        );
    }
    assert!(operator_args(&docs).contains(&"--namespace=team-a,team-b".to_string()));
}

#[test]
fn two_replicas_turn_leader_election_on_with_a_lease_role_for_one_lease() {
    let docs = render(&["--set", "replicas=2"]);
    let args = operator_args(&docs);
    assert!(args.contains(&"--leader-elect".to_string()), "{args:?}");
    assert!(
        args.contains(&"--lease-name=plugin-operator".to_string()),
        "{args:?}"
    );
    let deployment = only(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(deployment["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(
        only(&docs, "PodDisruptionBudget")["spec"]["maxUnavailable"],
        1
    );

    let lease_role = only(&docs, "Role");
    assert_eq!(
        lease_role["metadata"]["namespace"],
        "plugin-operator-system"
    );
    assert_eq!(
        lease_role["rules"],
        json!([
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "resourceNames": ["plugin-operator"], "verbs": ["get", "update"]},
        ])
    );
    let binding = only(&docs, "RoleBinding");
    assert_eq!(binding["roleRef"]["name"], name(lease_role));
}

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Subcommand,
}

#[derive(clap::Subcommand)]
enum Subcommand {
    Controller(ControllerArgs),
}

#[test]
fn rendered_flags_are_accepted_by_the_operator() {
    for extra in [&[][..], EVERYTHING] {
        let docs = render(extra);
        let args = operator_args(&docs);
        let cli = Cli::try_parse_from(std::iter::once("plugin-operator".to_string()).chain(args))
            .unwrap_or_else(|e| panic!("the operator refuses the chart's flags {extra:?}: {e}"));
        let Subcommand::Controller(controller) = cli.command;
        let config = controller.operator_config().unwrap_or_else(|e| {
            panic!("the chart's flags {extra:?} give a bad configuration: {e}")
        });
        assert_eq!(config.chat_api_url, "http://chat-api.chat-system.svc:8080");
        assert_eq!(config.broker_image, default_image());
        if extra.is_empty() {
            assert!(controller.leader_election().is_none());
            assert!(config.dns_peer.is_some());
            assert!(config.monitoring_peer.is_none());
            assert!(controller.namespaces.is_empty());
            assert_eq!(config.chat_api_ca, None);
        } else {
            assert!(controller.leader_election().is_some());
            assert!(config.dns_peer.is_none());
            let ca = config.chat_api_ca.expect("the CA bundle is passed");
            assert_eq!(
                (ca.config_map.as_str(), ca.key.as_str()),
                ("trust-bundle", "trust-bundle.pem")
            );
            let monitoring = config.monitoring_peer.expect("the monitoring peer");
            assert_eq!(monitoring.namespace, "monitoring");
            assert_eq!(monitoring.labels["app.kubernetes.io/name"], "prometheus");
            assert_eq!(controller.namespaces, ["team-a", "team-b"]);
            assert_eq!(config.scope_catalog, "chat-api");
            let election = controller.leader_election().unwrap();
            assert_eq!(
                election.lease_duration.as_secs(),
                15,
                "extraArgs come last and win"
            );
        }
    }
}

#[test]
fn the_scope_catalog_is_the_samples_unless_the_values_list_scopes_and_admission_names_it() {
    let docs = render(&[]);
    let catalog = only(&docs, "ScopeCatalog");
    assert_eq!(name(catalog), "default");
    let sample = serde_json::to_value(plugin_operator::api::sample_scope_catalog()).unwrap();
    assert_eq!(catalog["spec"], sample);
    assert!(operator_args(&docs).contains(&"--scope-catalog=default".to_string()));

    let docs = render(EVERYTHING);
    let catalog = only(&docs, "ScopeCatalog");
    assert_eq!(name(catalog), "chat-api");
    assert_eq!(
        catalog["spec"]["scopes"],
        json!([{"name": "ping:read", "routes": [{"method": "GET", "path": "/api/v1/ping"}]}])
    );
    let binding = only_named(
        &docs,
        "ValidatingAdmissionPolicyBinding",
        "scope-catalog.plugins.chat.dev",
    );
    assert_eq!(
        binding["spec"]["paramRef"],
        json!({"name": "chat-api", "parameterNotFoundAction": "Allow"})
    );

    let docs = render(&[
        "--set",
        "scopeCatalog.create=false,scopeCatalog.admission=false",
    ]);
    assert!(of_kind(&docs, "ScopeCatalog").is_empty());
    assert!(
        of_kind(&docs, "ValidatingAdmissionPolicy")
            .iter()
            .all(|p| name(p) != "scope-catalog.plugins.chat.dev")
    );
}

#[test]
fn image_tag_defaults_to_the_app_version_and_follows_the_values() {
    let image = |extra: &[&str]| {
        only(&render(extra), "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(image(&[]), default_image());
    assert!(default_image().ends_with(":0.1.0"), "{}", default_image());
    assert_eq!(
        image(&["--set", "image.tag=1.2.3"]),
        "localhost/plugin-operator:1.2.3"
    );
    let digest = format!("sha256:{}", "a".repeat(64));
    assert_eq!(
        image(&["--set", &format!("image.digest={digest}")]),
        format!("localhost/plugin-operator@{digest}")
    );
}

#[test]
fn name_overrides_rename_every_object() {
    for (extra, expected) in [
        (
            &["--set", "nameOverride=relay"][..],
            "plugin-operator-relay",
        ),
        (&["--set", "fullnameOverride=po"][..], "po"),
    ] {
        let docs = render(extra);
        let deployment = only(&docs, "Deployment");
        assert_eq!(name(deployment), expected, "{extra:?}");
        assert_eq!(name(only(&docs, "ServiceAccount")), expected, "{extra:?}");
        assert_eq!(
            name(only(&docs, "Service")),
            format!("{expected}-metrics"),
            "{extra:?}"
        );
    }
    let docs = render(&["--set", "nameOverride=relay"]);
    let labels = &only(&docs, "Deployment")["spec"]["selector"]["matchLabels"];
    assert_eq!(labels["app.kubernetes.io/name"], "relay");
}

#[test]
fn extra_env_reaches_the_operator_container_after_the_charts_own() {
    let docs = render(&[
        "--set",
        "extraEnv[0].name=HTTPS_PROXY,extraEnv[0].value=http://proxy.example:3128",
    ]);
    let env = only(&docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .clone();
    let names: Vec<&str> = env.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["POD_NAME", "POD_NAMESPACE", "RUST_LOG", "HTTPS_PROXY"]
    );
    assert_eq!(env[3]["value"], "http://proxy.example:3128");
    let error = template(&["--set", "extraArgs={lease-seconds=15}"])
        .expect_err("a flag without dashes is refused");
    assert!(error.contains("extraArgs"), "{error}");
}

#[test]
fn helm_test_checks_the_operator_through_its_service_and_is_only_a_hook() {
    let docs = render(&["--set", "watchNamespaces={team-a,team-b}"]);
    let pod = only(&docs, "Pod");
    assert_eq!(pod["metadata"]["annotations"]["helm.sh/hook"], "test");
    let labels = &pod["metadata"]["labels"];
    assert_eq!(labels["app.kubernetes.io/component"], "helm-test");
    assert!(
        labels.get("app.kubernetes.io/name").is_none(),
        "the operator Deployment's selector must not match the test pod: {labels}"
    );
    let args = &pod["spec"]["containers"][0]["args"];
    assert_eq!(args[0], "check");
    assert_eq!(
        args[1],
        "--readyz-url=http://plugin-operator-metrics.plugin-operator-system.svc:8080/readyz"
    );
    assert_eq!(args[2], "--plugins-namespace=team-a");
    let without_service = render(&["--set", "metrics.service.enabled=false"]);
    assert!(of_kind(&without_service, "Pod").is_empty());
    // The plain manifests are applied with kubectl: no test pod in them.
    let manifests = std::fs::read_to_string(plugin_operator_test_support::cluster::repo_path(
        "deploy/plugin-operator.yaml",
    ))
    .unwrap();
    assert!(!manifests.contains("helm.sh/hook"));
}

#[test]
fn network_policy_opens_the_admin_port_to_the_test_and_named_peers_and_egress_to_the_api_server() {
    assert!(
        of_kind(&render(&[]), "NetworkPolicy").is_empty(),
        "off by default"
    );
    let docs = render(&[
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        "networkPolicy.apiServer.cidrs={10.0.0.1/32}",
        "--set",
        "networkPolicy.apiServer.ports={6443}",
        "--set",
        "networkPolicy.adminFrom[0].namespaceSelector.matchLabels.team=monitoring",
    ]);
    let policy = only(&docs, "NetworkPolicy");
    let spec = &policy["spec"];
    assert_eq!(
        spec["podSelector"]["matchLabels"],
        only(&docs, "Deployment")["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(spec["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        spec["ingress"],
        json!([{
            "ports": [{"port": "admin", "protocol": "TCP"}],
            "from": [
                {"podSelector": {"matchLabels": {
                    "app.kubernetes.io/instance": "plugin-operator",
                    "app.kubernetes.io/component": "helm-test"
                }}},
                {"namespaceSelector": {"matchLabels": {"team": "monitoring"}}}
            ]
        }])
    );
    assert_eq!(
        spec["egress"],
        json!([{
            "ports": [{"port": 6443, "protocol": "TCP"}],
            "to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}]
        }])
    );

    // The monitoring pods reach the admin port too, beside the test pod and adminFrom.
    let docs = render(&[
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        "monitoring.namespace=monitoring,monitoring.selector=app=prometheus\\,team=ops",
    ]);
    let from = &only(&docs, "NetworkPolicy")["spec"]["ingress"][0]["from"];
    assert_eq!(
        from[1],
        json!({
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app": "prometheus", "team": "ops"}}
        })
    );
    let docs = render(&[
        "--set",
        "networkPolicy.enabled=true,monitoring.namespace=monitoring",
    ]);
    let from = &only(&docs, "NetworkPolicy")["spec"]["ingress"][0]["from"];
    assert_eq!(
        from[1]["podSelector"],
        json!({}),
        "every pod of the namespace"
    );

    let error = template(&["--set", "networkPolicy.apiServer.cidrs={kubernetes}"])
        .expect_err("a name is not a CIDR");
    assert!(error.contains("cidrs"), "{error}");
}

/// (apiGroup, resource, verb) triples of a role, without resourceNames rules.
fn grants(role: &Value) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        assert!(rule.get("resourceNames").is_none(), "{rule}");
        for group in rule["apiGroups"].as_array().unwrap() {
            for resource in rule["resources"].as_array().unwrap() {
                for verb in rule["verbs"].as_array().unwrap() {
                    out.insert((
                        group.as_str().unwrap().to_string(),
                        resource.as_str().unwrap().to_string(),
                        verb.as_str().unwrap().to_string(),
                    ));
                }
            }
        }
    }
    out
}

fn only_named<'a>(docs: &'a [Value], wanted_kind: &str, wanted_name: &str) -> &'a Value {
    let found: Vec<_> = of_kind(docs, wanted_kind)
        .into_iter()
        .filter(|d| name(d) == wanted_name)
        .collect();
    assert_eq!(found.len(), 1, "one {wanted_kind} {wanted_name}");
    found[0]
}

/// What src/controller uses: watches (list, watch), server-side apply of children
/// (patch, and create when the apply creates), a drifted child read and replaced (get,
/// update), status apply, Events, owner references.
fn expected_operator_grants() -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    let mut add = |group: &str, resources: &[&str], verbs: &[&str]| {
        for resource in resources {
            for verb in verbs {
                out.insert((group.into(), resource.to_string(), verb.to_string()));
            }
        }
    };
    add("plugins.chat.dev", &["plugins"], &["list", "watch"]);
    add("plugins.chat.dev", &["plugins/status"], &["patch"]);
    add("plugins.chat.dev", &["plugins/finalizers"], &["update"]);
    add(
        "",
        &["serviceaccounts", "configmaps", "services"],
        &["get", "list", "watch", "create", "patch", "update"],
    );
    add(
        "apps",
        &["deployments"],
        &["get", "list", "watch", "create", "patch", "update"],
    );
    add(
        "networking.k8s.io",
        &["networkpolicies"],
        &["get", "list", "watch", "create", "patch", "update"],
    );
    add("", &["configmaps"], &["get"]);
    add("", &["pods"], &["list", "watch"]);
    add("events.k8s.io", &["events"], &["create", "patch"]);
    out
}

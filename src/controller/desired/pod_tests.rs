use super::*;
use crate::controller::desired::fixtures::{MINIMAL, children, plugin};
use crate::controller::desired::{deployment, service};
use crate::controller::validate::validate;
use crate::policy::default_catalog;
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

fn pod(extra: &str) -> PodSpec {
    pod_with(extra, OperatorConfig::example())
}

fn pod_with(extra: &str, config: OperatorConfig) -> PodSpec {
    let p = plugin(&format!("{MINIMAL}{extra}"));
    pod_template(&validate(&p, &default_catalog()).unwrap(), &config)
        .spec
        .unwrap()
}

/// The operator configured with a trust-manager-like CA bundle for the chat API.
fn with_chat_api_ca() -> OperatorConfig {
    OperatorConfig {
        chat_api_ca: Some(ChatApiCa::new("trust-bundle", "trust-bundle.pem").unwrap()),
        ..OperatorConfig::example()
    }
}

fn mounts(container: &Container, volume: &str) -> Option<VolumeMount> {
    let mut mounts = container.volume_mounts.iter().flatten();
    mounts.find(|m| m.name == volume).cloned()
}

/// The pod's one volume that `is_it`.
fn volume(spec: &PodSpec, is_it: fn(&Volume) -> bool) -> &Volume {
    let volumes = spec.volumes.as_deref().unwrap_or_default();
    let mut found = volumes.iter().filter(|v| is_it(v));
    let volume = found.next().expect("the volume");
    assert!(found.next().is_none(), "one such volume");
    volume
}

fn broker(spec: &PodSpec) -> &Container {
    &spec.init_containers.as_ref().unwrap()[0]
}

fn plugin_of(spec: &PodSpec) -> &Container {
    &spec.containers[0]
}

fn env<'a>(container: &'a Container, name: &str) -> Option<&'a EnvVar> {
    container.env.as_ref()?.iter().find(|e| e.name == name)
}

#[test]
fn broker_runs_as_a_native_sidecar_before_the_plugin() {
    let spec = pod("");
    assert_eq!(spec.init_containers.as_ref().unwrap().len(), 1);
    let broker = broker(&spec);
    assert_eq!(broker.name, "broker");
    assert_eq!(broker.restart_policy.as_deref(), Some("Always"));
    assert_eq!(
        broker.image.as_deref(),
        Some("localhost/plugin-operator:dev")
    );
    let args = broker.args.as_ref().unwrap();
    assert_eq!(args[0], "broker");
    assert!(args.contains(&"--plugin-port=8080".to_string()));
    assert!(args.contains(&"--chat-api-url=http://chat-api.chat-system.svc:8080".to_string()));
    assert!(args.contains(&"--policy-file=/etc/plugin-broker/policy.json".to_string()));
    assert_eq!(spec.containers.len(), 1);
    assert_eq!(
        plugin_of(&spec).image.as_deref(),
        Some("registry.example/weather:1")
    );
}

#[test]
fn every_container_meets_the_restricted_pod_security_profile() {
    let spec = pod("");
    let pod_context = spec.security_context.as_ref().unwrap();
    assert_eq!(pod_context.run_as_non_root, Some(true));
    assert_eq!(
        pod_context.seccomp_profile.as_ref().unwrap().type_,
        "RuntimeDefault"
    );
    for container in [broker(&spec), plugin_of(&spec)] {
        let context = container.security_context.as_ref().unwrap();
        assert_eq!(context.run_as_non_root, Some(true), "{}", container.name);
        assert_eq!(
            context.read_only_root_filesystem,
            Some(true),
            "{}",
            container.name
        );
        assert_eq!(
            context.allow_privilege_escalation,
            Some(false),
            "{}",
            container.name
        );
        assert_eq!(context.privileged, Some(false), "{}", container.name);
        assert_eq!(
            context
                .capabilities
                .as_ref()
                .unwrap()
                .drop
                .as_ref()
                .unwrap(),
            &vec!["ALL".to_string()]
        );
        assert_eq!(context.capabilities.as_ref().unwrap().add, None);
        assert_eq!(
            context.seccomp_profile.as_ref().unwrap().type_,
            "RuntimeDefault"
        );
    }
    assert_eq!(spec.share_process_namespace, Some(false));
    assert_eq!(spec.host_network, None);
    assert_eq!(spec.host_pid, None);
}

#[test]
fn broker_and_plugin_run_as_distinct_non_root_users() {
    let spec = pod("");
    let broker_uid = broker(&spec)
        .security_context
        .as_ref()
        .unwrap()
        .run_as_user
        .unwrap();
    let plugin_uid = plugin_of(&spec)
        .security_context
        .as_ref()
        .unwrap()
        .run_as_user
        .unwrap();
    assert_ne!(broker_uid, plugin_uid);
    assert!(broker_uid > 0 && plugin_uid > 0);
}

#[test]
fn no_service_account_token_is_automounted() {
    let spec = pod("");
    assert_eq!(spec.automount_service_account_token, Some(false));
    assert_eq!(spec.service_account_name.as_deref(), Some("plugin-weather"));
}

#[test]
fn only_the_broker_mounts_the_chat_api_token() {
    let spec = pod("permissions:\n  filesystem:\n    scratch: {sizeLimit: 64Mi}\n");
    let token_volume = volume(&spec, |v| v.projected.is_some());
    let projection = token_volume
        .projected
        .as_ref()
        .unwrap()
        .sources
        .as_ref()
        .unwrap()[0]
        .service_account_token
        .as_ref()
        .unwrap();
    assert_eq!(projection.audience.as_deref(), Some("chat-api"));
    assert_eq!(projection.expiration_seconds, Some(3600));
    let mounts_token = |c: &Container| {
        c.volume_mounts
            .iter()
            .flatten()
            .any(|m| m.name == token_volume.name)
    };
    assert!(mounts_token(broker(&spec)));
    assert!(!mounts_token(plugin_of(&spec)));
    assert!(
        broker(&spec)
            .args
            .as_ref()
            .unwrap()
            .contains(&"--token-file=/var/run/secrets/chat-api/token".into())
    );
}

#[test]
fn only_the_broker_mounts_the_chat_api_ca_and_reads_it_from_there() {
    let scratch = "permissions:\n  filesystem:\n    scratch: {sizeLimit: 64Mi}\n";
    let spec = pod_with(scratch, with_chat_api_ca());
    let ca_volume = volume(&spec, |v| {
        v.config_map
            .as_ref()
            .is_some_and(|c| c.name == "trust-bundle")
    });
    let source = ca_volume.config_map.as_ref().unwrap();
    assert_eq!(
        source.items.as_deref(),
        Some(
            &[KeyToPath {
                key: "trust-bundle.pem".into(),
                path: "ca.crt".into(),
                mode: None,
            }][..]
        ),
        "the one key, under a name of the operator's"
    );
    assert_eq!(
        source.optional, None,
        "the pod waits for the ConfigMap rather than start a broker without its CAs"
    );
    let mount = mounts(broker(&spec), &ca_volume.name).expect("the broker mounts it");
    assert_eq!(mount.mount_path, "/etc/chat-api-ca");
    assert_eq!(mount.read_only, Some(true));
    assert!(
        broker(&spec)
            .args
            .as_ref()
            .unwrap()
            .contains(&"--chat-api-ca-file=/etc/chat-api-ca/ca.crt".into())
    );
    assert!(
        mounts(plugin_of(&spec), &ca_volume.name).is_none(),
        "the plugin container does not mount it"
    );
    assert!(mounts(plugin_of(&spec), "scratch").is_some());
}

#[test]
fn without_a_chat_api_ca_the_broker_trusts_its_own_store() {
    let spec = pod("");
    let volumes = spec.volumes.as_deref().unwrap();
    assert_eq!(
        volumes.iter().filter(|v| v.config_map.is_some()).count(),
        1,
        "the policy's ConfigMap only: {volumes:?}"
    );
    assert!(mounts(broker(&spec), "chat-api-ca").is_none());
    let args = broker(&spec).args.clone().unwrap();
    assert!(
        !args.iter().any(|a| a.starts_with("--chat-api-ca-file")),
        "{args:?}"
    );
}

#[test]
fn plugin_without_scratch_gets_read_only_root_and_no_writable_mount() {
    let spec = pod("");
    assert_eq!(plugin_of(&spec).volume_mounts, None);
    assert!(
        spec.volumes
            .as_ref()
            .unwrap()
            .iter()
            .all(|v| v.empty_dir.is_none())
    );
}

#[test]
fn plugin_with_scratch_gets_an_empty_dir_with_its_size_limit() {
    let spec = pod("permissions:\n  filesystem:\n    scratch: {sizeLimit: 64Mi}\n");
    let scratch = volume(&spec, |v| v.empty_dir.is_some());
    assert_eq!(
        scratch.empty_dir.as_ref().unwrap().size_limit,
        Some(Quantity("64Mi".into()))
    );
    let mount = &plugin_of(&spec).volume_mounts.as_ref().unwrap()[0];
    assert_eq!(
        (mount.name.as_str(), mount.mount_path.as_str()),
        (scratch.name.as_str(), "/scratch")
    );
    assert!(
        broker(&spec)
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .all(|m| m.name != scratch.name)
    );
}

#[test]
fn plugin_reaches_the_chat_api_only_through_the_brokers_loopback_port() {
    let spec = pod("");
    assert_eq!(
        env(plugin_of(&spec), "CHAT_API_URL")
            .unwrap()
            .value
            .as_deref(),
        Some("http://127.0.0.1:9081")
    );
    assert_eq!(
        env(plugin_of(&spec), "PLUGIN_ID").unwrap().value.as_deref(),
        Some("team-a/weather")
    );
    assert_eq!(spec.enable_service_links, Some(false));
}

#[test]
fn user_env_is_passed_through_with_secret_and_config_map_references() {
    let spec = pod(
        "env:\n- {name: LOG_LEVEL, value: info}\n- name: API_KEY\n  valueFrom: {secretKeyRef: {name: weather, key: key}}\n- name: CITY\n  valueFrom: {configMapKeyRef: {name: weather, key: city, optional: true}}\n",
    );
    let plugin = plugin_of(&spec);
    assert_eq!(
        env(plugin, "LOG_LEVEL").unwrap().value.as_deref(),
        Some("info")
    );
    let secret = env(plugin, "API_KEY")
        .unwrap()
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(
        (secret.name.as_str(), secret.key.as_str()),
        ("weather", "key")
    );
    let config = env(plugin, "CITY")
        .unwrap()
        .value_from
        .as_ref()
        .unwrap()
        .config_map_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(config.optional, Some(true));
    assert!(
        env(broker(&spec), "API_KEY").is_none(),
        "the broker never sees the plugin's secrets"
    );
}

#[test]
fn plugin_container_gets_its_resources_and_the_broker_its_own() {
    let spec = pod("resources:\n  limits: {memory: 256Mi}\n");
    let plugin = plugin_of(&spec).resources.as_ref().unwrap();
    assert_eq!(
        plugin.limits.as_ref().unwrap()["memory"],
        Quantity("256Mi".into())
    );
    assert_eq!(
        plugin.requests.as_ref().unwrap()["memory"],
        Quantity("64Mi".into())
    );
    let broker = broker(&spec).resources.as_ref().unwrap();
    assert_eq!(
        broker.limits.as_ref().unwrap()["memory"],
        Quantity("64Mi".into())
    );
}

#[test]
fn both_containers_get_ephemeral_storage_requests_and_limits() {
    let spec = pod("");
    for (container, request, limit) in [
        (broker(&spec), "16Mi", "128Mi"),
        (plugin_of(&spec), "16Mi", "128Mi"),
    ] {
        let resources = container.resources.as_ref().unwrap();
        let storage = |list: &Option<std::collections::BTreeMap<String, Quantity>>| {
            list.as_ref().unwrap()["ephemeral-storage"].0.clone()
        };
        assert_eq!(storage(&resources.requests), request, "{}", container.name);
        assert_eq!(storage(&resources.limits), limit, "{}", container.name);
    }
}

#[test]
fn scratch_gets_its_size_limit_and_room_in_the_plugin_containers_limit() {
    let spec = pod(
        "resources:\n  limits: {ephemeralStorage: 32Mi}\npermissions:\n  filesystem: {scratch: {sizeLimit: 64Mi}}\n",
    );
    let scratch = volume(&spec, |v| v.name == "scratch");
    assert_eq!(
        scratch.empty_dir.as_ref().unwrap().size_limit,
        Some(Quantity("64Mi".into()))
    );
    let limits = plugin_of(&spec).resources.clone().unwrap().limits.unwrap();
    assert_eq!(limits["ephemeral-storage"], Quantity("96Mi".into()));
}

#[test]
fn the_plugin_starts_only_once_the_brokers_post_start_hook_sees_it_ready() {
    let spec = pod("");
    let hook = broker(&spec)
        .lifecycle
        .as_ref()
        .and_then(|lifecycle| lifecycle.post_start.as_ref())
        .expect("a postStart hook");
    assert_eq!(
        hook.exec.as_ref().unwrap().command.as_deref(),
        Some(
            &[
                "/plugin-operator",
                "wait-for-broker",
                "--admin=127.0.0.1:9090",
                "--timeout=30s"
            ]
            .map(String::from)[..]
        )
    );
    // Only a sidecar's start (its postStart hook returned, its startup probe passed)
    // holds back the containers after it; a startup probe would be asked once a second.
    assert_eq!(broker(&spec).restart_policy.as_deref(), Some("Always"));
    assert!(broker(&spec).startup_probe.is_none());
    assert!(plugin_of(&spec).startup_probe.is_none());
}

#[test]
fn deployment_runs_one_replica_by_default_and_none_when_paused() {
    let config = OperatorConfig::example();
    let replicas = |extra: &str| {
        let p = plugin(&format!("{MINIMAL}{extra}"));
        deployment(&validate(&p, &default_catalog()).unwrap(), &config)
            .spec
            .unwrap()
            .replicas
    };
    assert_eq!(replicas(""), Some(1));
    assert_eq!(replicas("replicas: 3\n"), Some(3));
    assert_eq!(replicas("replicas: 3\npaused: true\n"), Some(0));
}

#[test]
fn service_targets_the_brokers_inbound_port_never_the_plugin() {
    let p = plugin(MINIMAL);
    let spec = service(&ChildNames::of(&p).unwrap()).spec.unwrap();
    let port = &spec.ports.unwrap()[0];
    assert_eq!(port.port, 80);
    assert_eq!(
        port.target_port,
        Some(IntOrString::String("inbound".into()))
    );
    let spec = pod("");
    let inbound = broker(&spec)
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .find(|p| p.name.as_deref() == Some("inbound"));
    assert_eq!(inbound.unwrap().container_port, 9080);
}

#[test]
fn policy_config_map_holds_the_compiled_policy() {
    let children = children(MINIMAL);
    let json = &children.config_map.data.unwrap()["policy.json"];
    let policy: crate::policy::BrokerPolicy = serde_json::from_str(json).unwrap();
    assert_eq!(policy.plugin_id, "team-a/weather");
}

//! The plugin pod: the plugin container and the broker as a native sidecar, both under
//! the Pod Security "restricted" profile, with the chat-API credential (and the CAs it
//! trusts for the chat API, when configured) mounted into the broker alone.

use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapKeySelector, ConfigMapVolumeSource, Container, ContainerPort,
    EmptyDirVolumeSource, EnvVar, EnvVarSource, ExecAction, HTTPGetAction, KeyToPath, Lifecycle,
    LifecycleHandler, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ProjectedVolumeSource,
    SeccompProfile, SecretKeySelector, SecurityContext, ServiceAccountTokenProjection,
    TCPSocketAction, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::ChildNames;
use super::resources::{amounts, scratch_size};
use crate::api::{Plugin, PluginEnvVar};
use crate::controller::config::{ChatApiCa, OperatorConfig};
use crate::controller::validate::ValidPlugin;
use crate::policy::{POLICY_FILE_NAME, ports};

/// The broker and the plugin run as different users, so file permissions separate them.
pub const BROKER_UID: i64 = 10001;
pub const PLUGIN_UID: i64 = 10002;

pub const PLUGIN_CONTAINER: &str = "plugin";
/// The one binary in the broker's image (Containerfile, cluster/image.sh).
pub const BROKER_BINARY: &str = "/plugin-operator";
pub const BROKER_CONTAINER: &str = "broker";
pub const POLICY_DIR: &str = "/etc/plugin-broker";
pub const TOKEN_DIR: &str = "/var/run/secrets/chat-api";
pub const TOKEN_FILE: &str = "token";
pub const SCRATCH_DIR: &str = "/scratch";
/// Where the broker finds the chat API's CAs, when the operator is given them.
pub const CHAT_API_CA_DIR: &str = "/etc/chat-api-ca";
pub const CHAT_API_CA_FILE: &str = "ca.crt";

/// The broker's requests and limits: cpu, memory, ephemeral storage. Its disk is its
/// log: audit lines at several thousand a second fill the kubelet's five 10 MiB files
/// between two rotations (every 10 s) with room to spare.
const BROKER_REQUESTS: [&str; 3] = ["10m", "16Mi", "16Mi"];
const BROKER_LIMITS: [&str; 3] = ["500m", "64Mi", "128Mi"];

const POLICY_VOLUME: &str = "broker-policy";
const TOKEN_VOLUME: &str = "chat-api-token";
const SCRATCH_VOLUME: &str = "scratch";
const CHAT_API_CA_VOLUME: &str = "chat-api-ca";

/// The pod template of the plugin's Deployment.
pub fn pod_template(valid: &ValidPlugin, config: &OperatorConfig) -> PodTemplateSpec {
    let (plugin, names) = (valid.plugin, &valid.names);
    let mut volumes = vec![policy_volume(names), token_volume(config)];
    volumes.extend(config.chat_api_ca.as_ref().map(chat_api_ca_volume));
    if let Some(scratch) = scratch_size(&plugin.spec) {
        // Beyond its size the kubelet evicts the pod.
        volumes.push(Volume {
            name: SCRATCH_VOLUME.into(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: Some(scratch.clone()),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(names.labels()),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            service_account_name: Some(names.workload()),
            runtime_class_name: valid.runtime_class_name.clone(),
            automount_service_account_token: Some(false),
            share_process_namespace: Some(false),
            enable_service_links: Some(false),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                // The kubelet makes the token group-readable by this group; only the
                // broker container mounts it.
                fs_group: Some(BROKER_UID),
                seccomp_profile: Some(runtime_default_seccomp()),
                ..Default::default()
            }),
            init_containers: Some(vec![broker_container(plugin, names, config)]),
            containers: vec![plugin_container(valid)],
            volumes: Some(volumes),
            termination_grace_period_seconds: Some(30),
            ..Default::default()
        }),
    }
}

fn broker_container(plugin: &Plugin, names: &ChildNames, config: &OperatorConfig) -> Container {
    let admin_probe = |path: &str| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("admin".into()),
            ..Default::default()
        }),
        period_seconds: Some(5),
        ..Default::default()
    };
    let mut args = vec![
        "broker".into(),
        format!("--policy-file={POLICY_DIR}/{POLICY_FILE_NAME}"),
        format!("--chat-api-url={}", config.chat_api_url),
        format!("--token-file={TOKEN_DIR}/{TOKEN_FILE}"),
        format!("--plugin-port={}", plugin.spec.port),
    ];
    let mut mounts = vec![
        read_only_mount(POLICY_VOLUME, POLICY_DIR),
        read_only_mount(TOKEN_VOLUME, TOKEN_DIR),
    ];
    if config.chat_api_ca.is_some() {
        args.push(format!(
            "--chat-api-ca-file={CHAT_API_CA_DIR}/{CHAT_API_CA_FILE}"
        ));
        mounts.push(read_only_mount(CHAT_API_CA_VOLUME, CHAT_API_CA_DIR));
    }
    Container {
        name: BROKER_CONTAINER.into(),
        image: Some(config.broker_image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(args),
        // A native sidecar: started before the plugin, stopped after it.
        restart_policy: Some("Always".into()),
        ports: Some(vec![
            container_port("inbound", ports::INBOUND),
            container_port("admin", ports::ADMIN),
        ]),
        env: Some(vec![plain_env("BROKER_PLUGIN_ID", names.plugin_id())]),
        resources: Some(k8s_openapi::api::core::v1::ResourceRequirements {
            requests: Some(amounts(BROKER_REQUESTS)),
            limits: Some(amounts(BROKER_LIMITS)),
            ..Default::default()
        }),
        // The kubelet starts the plugin container only once this hook returns, so the
        // plugin's first call finds the broker serving, with its policy and token
        // loaded (/readyz); up to 30 s. A startup probe would do the same a second at a
        // time (src/broker/wait.rs).
        lifecycle: Some(Lifecycle {
            post_start: Some(LifecycleHandler {
                exec: Some(ExecAction {
                    command: Some(vec![
                        BROKER_BINARY.into(),
                        "wait-for-broker".into(),
                        format!("--admin=127.0.0.1:{}", ports::ADMIN),
                        "--timeout=30s".into(),
                    ]),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        readiness_probe: Some(admin_probe("/readyz")),
        liveness_probe: Some(admin_probe("/healthz")),
        security_context: Some(restricted_security_context(BROKER_UID)),
        volume_mounts: Some(mounts),
        ..Default::default()
    }
}

fn plugin_container(valid: &ValidPlugin) -> Container {
    let (plugin, names, resources) = (valid.plugin, &valid.names, &valid.resources);
    let spec = &plugin.spec;
    let mut env = vec![
        plain_env(
            "CHAT_API_URL",
            format!("http://127.0.0.1:{}", ports::OUTBOUND),
        ),
        plain_env("PLUGIN_ID", names.plugin_id()),
        plain_env("PLUGIN_PORT", spec.port.to_string()),
    ];
    env.extend(spec.env.iter().map(user_env));
    let mut mounts = vec![];
    if scratch_size(spec).is_some() {
        mounts.push(VolumeMount {
            name: SCRATCH_VOLUME.into(),
            mount_path: SCRATCH_DIR.into(),
            ..Default::default()
        });
    }
    Container {
        name: PLUGIN_CONTAINER.into(),
        image: Some(spec.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        ports: Some(vec![container_port("http", spec.port as u16)]),
        env: Some(env),
        resources: Some(resources.requirements()),
        readiness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(spec.port),
                ..Default::default()
            }),
            period_seconds: Some(5),
            ..Default::default()
        }),
        security_context: Some(restricted_security_context(PLUGIN_UID)),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        ..Default::default()
    }
}

/// Pod Security "restricted", plus a read-only root filesystem and a fixed user.
fn restricted_security_context(uid: i64) -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(uid),
        run_as_group: Some(uid),
        read_only_root_filesystem: Some(true),
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..Default::default()
    }
}

fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        localhost_profile: None,
    }
}

fn policy_volume(names: &ChildNames) -> Volume {
    Volume {
        name: POLICY_VOLUME.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: names.policy_config_map(),
            default_mode: Some(0o444),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The broker's credential: a ServiceAccount token for the chat API's audience, mounted
/// into the broker container only. With two different users in the pod the kubelet
/// cannot give the file to one of them, so it is owned by root and readable by the
/// pod's fsGroup.
fn token_volume(config: &OperatorConfig) -> Volume {
    Volume {
        name: TOKEN_VOLUME.into(),
        projected: Some(ProjectedVolumeSource {
            default_mode: Some(0o440),
            sources: Some(vec![VolumeProjection {
                service_account_token: Some(ServiceAccountTokenProjection {
                    audience: Some(config.token_audience.clone()),
                    expiration_seconds: Some(config.token_expiration_seconds),
                    path: TOKEN_FILE.into(),
                }),
                ..Default::default()
            }]),
        }),
        ..Default::default()
    }
}

/// The chat API's CAs: the one key of the ConfigMap, as a file of the broker's. The
/// volume is not optional: without the ConfigMap or its key the kubelet does not start
/// the pod (and mounts it as soon as it appears), rather than a broker that would trust
/// nothing. The Plugin's status says which is missing (`ChatApiCaMissing`).
fn chat_api_ca_volume(ca: &ChatApiCa) -> Volume {
    Volume {
        name: CHAT_API_CA_VOLUME.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: ca.config_map.clone(),
            items: Some(vec![KeyToPath {
                key: ca.key.clone(),
                path: CHAT_API_CA_FILE.into(),
                mode: None,
            }]),
            default_mode: Some(0o444),
            optional: None,
        }),
        ..Default::default()
    }
}

fn read_only_mount(volume: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: volume.into(),
        mount_path: path.into(),
        read_only: Some(true),
        ..Default::default()
    }
}

fn container_port(name: &str, port: u16) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: port.into(),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

fn plain_env(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value),
        value_from: None,
    }
}

fn user_env(var: &PluginEnvVar) -> EnvVar {
    let value_from = var.value_from.as_ref().map(|source| EnvVarSource {
        secret_key_ref: source.secret_key_ref.as_ref().map(|r| SecretKeySelector {
            name: r.name.clone(),
            key: r.key.clone(),
            optional: r.optional,
        }),
        config_map_key_ref: source
            .config_map_key_ref
            .as_ref()
            .map(|r| ConfigMapKeySelector {
                name: r.name.clone(),
                key: r.key.clone(),
                optional: r.optional,
            }),
        ..Default::default()
    });
    EnvVar {
        name: var.name.clone(),
        value: var.value.clone(),
        value_from,
    }
}

#[cfg(test)]
#[path = "pod_tests.rs"]
mod tests;

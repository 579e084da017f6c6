//! The ServiceAccount, the policy ConfigMap, the Deployment and the Service.

use std::collections::BTreeMap;

use k8s_openapi::api::{
    apps::v1::{Deployment, DeploymentSpec},
    core::v1::{ConfigMap, Service, ServiceAccount, ServicePort, ServiceSpec},
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{ChildNames, pod_template};
use crate::controller::config::OperatorConfig;
use crate::controller::rollout::{TEMPLATE_HASH_ANNOTATION, template_hash};
use crate::controller::validate::ValidPlugin;
use crate::policy::{BrokerPolicy, POLICY_FILE_NAME};

/// The broker's identity toward the chat API. Its token is never automounted.
pub fn service_account(names: &ChildNames) -> ServiceAccount {
    ServiceAccount {
        metadata: names.metadata(names.workload()),
        automount_service_account_token: Some(false),
        ..Default::default()
    }
}

/// The broker's policy, as the broker reads it.
pub fn config_map(names: &ChildNames, policy: &BrokerPolicy) -> ConfigMap {
    let json = serde_json::to_string_pretty(policy).expect("a policy always serializes");
    ConfigMap {
        metadata: names.metadata(names.policy_config_map()),
        data: Some(BTreeMap::from([(POLICY_FILE_NAME.to_string(), json)])),
        ..Default::default()
    }
}

/// The plugin's pods. `paused` scales to zero; otherwise `replicas`, default 1. The
/// template's hash is annotated, for pacing rollouts ([`crate::controller::rollout`]).
pub fn deployment(valid: &ValidPlugin, config: &OperatorConfig) -> Deployment {
    let (plugin, names) = (valid.plugin, &valid.names);
    let replicas = if plugin.spec.paused.unwrap_or(false) {
        0
    } else {
        plugin.spec.replicas.unwrap_or(1)
    };
    let template = pod_template(valid, config);
    let mut metadata = names.metadata(names.workload());
    metadata.annotations = Some(BTreeMap::from([(
        TEMPLATE_HASH_ANNOTATION.to_string(),
        template_hash(&template),
    )]));
    Deployment {
        metadata,
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            revision_history_limit: Some(3),
            progress_deadline_seconds: Some(300),
            selector: LabelSelector {
                match_labels: Some(names.selector()),
                ..Default::default()
            },
            template,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The chat system reaches the plugin only through the broker's inbound port.
pub fn service(names: &ChildNames) -> Service {
    Service {
        metadata: names.metadata(names.workload()),
        spec: Some(ServiceSpec {
            // Written although it is the default, so that a Service turned into a
            // NodePort or LoadBalancer by hand is drift: it would reach the plugin from
            // outside the cluster.
            type_: Some("ClusterIP".into()),
            selector: Some(names.selector()),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                target_port: Some(IntOrString::String("inbound".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

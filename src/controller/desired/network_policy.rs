//! The pod's NetworkPolicy: deny by default; ingress only to the broker's inbound port
//! from the chat system, and to its admin port (`/metrics`) from the monitoring pods when
//! the operator names them; egress only to the chat API, cluster DNS and declared CIDRs.
//!
//! A NetworkPolicy applies to the whole pod, so the plugin shares these egress rules
//! with its broker. The chat API stays safe because only the broker holds its credential.

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

use super::ChildNames;
use crate::api::Plugin;
use crate::controller::config::{OperatorConfig, PodPeer};
use crate::policy::ports;

pub fn network_policy(
    plugin: &Plugin,
    names: &ChildNames,
    config: &OperatorConfig,
) -> NetworkPolicy {
    let mut egress = vec![NetworkPolicyEgressRule {
        to: Some(vec![peer(&config.chat_api_peer)]),
        ports: None,
    }];
    if let Some(dns) = &config.dns_peer {
        egress.push(NetworkPolicyEgressRule {
            to: Some(vec![peer(dns)]),
            ports: Some(dns_ports()),
        });
    }
    let declared = plugin
        .spec
        .permissions
        .as_ref()
        .and_then(|p| p.network.as_ref());
    for rule in declared.map(|n| n.egress.as_slice()).unwrap_or_default() {
        egress.push(NetworkPolicyEgressRule {
            to: Some(vec![NetworkPolicyPeer {
                ip_block: Some(IPBlock {
                    cidr: rule.cidr.clone(),
                    except: None,
                }),
                ..Default::default()
            }]),
            ports: (!rule.ports.is_empty())
                .then(|| rule.ports.iter().map(|p| port("TCP", *p)).collect()),
        });
    }
    let mut ingress = vec![NetworkPolicyIngressRule {
        from: Some(vec![peer(&config.invoker_peer)]),
        ports: Some(vec![port("TCP", ports::INBOUND.into())]),
    }];
    if let Some(monitoring) = &config.monitoring_peer {
        ingress.push(NetworkPolicyIngressRule {
            from: Some(vec![peer(monitoring)]),
            ports: Some(vec![port("TCP", ports::ADMIN.into())]),
        });
    }
    NetworkPolicy {
        metadata: names.metadata(names.workload()),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(names.selector()),
                ..Default::default()
            }),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(ingress),
            egress: Some(egress),
        }),
    }
}

fn peer(pods: &PodPeer) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                "kubernetes.io/metadata.name".to_string(),
                pods.namespace.clone(),
            )])),
            ..Default::default()
        }),
        pod_selector: Some(LabelSelector {
            match_labels: (!pods.labels.is_empty()).then(|| pods.labels.clone()),
            ..Default::default()
        }),
        ip_block: None,
    }
}

/// Port 53, and the conventional port names of cluster DNS pods ("dns", "dns-tcp"), so
/// DNS servers that listen on another port (non-root CoreDNS on 1053, OpenShift on 5353)
/// are reached too. A NetworkPolicy sees the pod's port, after the Service's mapping.
fn dns_ports() -> Vec<NetworkPolicyPort> {
    let named = |protocol: &str, name: &str| NetworkPolicyPort {
        protocol: Some(protocol.into()),
        port: Some(IntOrString::String(name.into())),
        end_port: None,
    };
    vec![
        port("UDP", 53),
        port("TCP", 53),
        named("UDP", "dns"),
        named("TCP", "dns-tcp"),
    ]
}

fn port(protocol: &str, number: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.into()),
        port: Some(IntOrString::Int(number)),
        end_port: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::desired::fixtures::{MINIMAL, plugin};

    fn build(extra: &str) -> NetworkPolicySpec {
        build_with(extra, &OperatorConfig::example())
    }

    fn build_with(extra: &str, config: &OperatorConfig) -> NetworkPolicySpec {
        let p = plugin(&format!("{MINIMAL}{extra}"));
        network_policy(&p, &ChildNames::of(&p).unwrap(), config)
            .spec
            .unwrap()
    }

    fn match_labels(selector: &Option<LabelSelector>) -> Option<BTreeMap<String, String>> {
        selector.as_ref().unwrap().match_labels.clone()
    }

    #[test]
    fn without_a_monitoring_peer_the_admin_port_is_closed() {
        let ingress = build("").ingress.unwrap();
        assert!(
            ingress
                .iter()
                .flat_map(|rule| rule.ports.iter().flatten())
                .all(|p| p.port != Some(IntOrString::Int(9090))),
            "{ingress:?}"
        );
    }

    #[test]
    fn monitoring_peer_reaches_the_admin_port_and_nothing_else() {
        let config = OperatorConfig {
            monitoring_peer: Some(
                PodPeer::parse("monitoring", "app.kubernetes.io/name=prometheus").unwrap(),
            ),
            ..OperatorConfig::example()
        };
        let ingress = build_with("", &config).ingress.unwrap();
        assert_eq!(ingress.len(), 2, "{ingress:?}");
        assert_eq!(ingress[0].ports.as_ref().unwrap(), &vec![port("TCP", 9080)]);
        let scrape = &ingress[1];
        assert_eq!(scrape.ports.as_ref().unwrap(), &vec![port("TCP", 9090)]);
        let from = scrape.from.as_ref().unwrap();
        assert_eq!(from.len(), 1);
        assert_eq!(
            match_labels(&from[0].namespace_selector).unwrap(),
            BTreeMap::from([(
                "kubernetes.io/metadata.name".to_string(),
                "monitoring".to_string()
            )])
        );
        assert_eq!(
            match_labels(&from[0].pod_selector).unwrap(),
            BTreeMap::from([(
                "app.kubernetes.io/name".to_string(),
                "prometheus".to_string()
            )])
        );
        assert_eq!(
            build_with("", &config).egress,
            build("").egress,
            "egress is the same with or without monitoring"
        );
    }

    #[test]
    fn monitoring_peer_without_labels_is_every_pod_of_its_namespace() {
        let config = OperatorConfig {
            monitoring_peer: Some(PodPeer::parse("monitoring", "").unwrap()),
            ..OperatorConfig::example()
        };
        let ingress = build_with("", &config).ingress.unwrap();
        let from = &ingress[1].from.as_ref().unwrap()[0];
        assert_eq!(
            from.pod_selector,
            Some(LabelSelector::default()),
            "an empty pod selector: every pod of the namespace, not every pod of the cluster"
        );
        assert!(match_labels(&from.namespace_selector).is_some());
    }

    #[test]
    fn policy_denies_both_directions_by_default() {
        let spec = build("");
        assert_eq!(spec.policy_types.unwrap(), vec!["Ingress", "Egress"]);
        assert_eq!(
            spec.pod_selector.unwrap().match_labels.unwrap()["plugins.chat.dev/plugin"],
            "weather"
        );
    }

    #[test]
    fn ingress_reaches_only_the_brokers_inbound_port_from_the_chat_system() {
        let ingress = build("").ingress.unwrap();
        assert_eq!(ingress.len(), 1);
        assert_eq!(ingress[0].ports.as_ref().unwrap(), &vec![port("TCP", 9080)]);
        let from = &ingress[0].from.as_ref().unwrap()[0];
        let namespace = from
            .namespace_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap();
        assert_eq!(namespace["kubernetes.io/metadata.name"], "chat-system");
        let pods = from
            .pod_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap();
        assert_eq!(pods["app.kubernetes.io/name"], "chat-api");
    }

    #[test]
    fn plugin_without_network_permissions_reaches_only_the_chat_api_and_dns() {
        let egress = build("").egress.unwrap();
        assert_eq!(egress.len(), 2);
        assert!(
            egress
                .iter()
                .all(|rule| rule.to.as_ref().unwrap()[0].ip_block.is_none())
        );
        let dns: Vec<_> = egress[1]
            .ports
            .iter()
            .flatten()
            .map(|p| (p.protocol.clone().unwrap(), p.port.clone().unwrap()))
            .collect();
        assert_eq!(
            dns,
            vec![
                ("UDP".to_string(), IntOrString::Int(53)),
                ("TCP".to_string(), IntOrString::Int(53)),
                ("UDP".to_string(), IntOrString::String("dns".into())),
                ("TCP".to_string(), IntOrString::String("dns-tcp".into())),
            ],
            "DNS on port 53 or on the DNS pods' named ports, and nothing else"
        );
    }

    #[test]
    fn declared_cidrs_are_allowed_on_their_ports_only() {
        let egress = build(
            "permissions:\n  network:\n    egress:\n    - {cidr: 203.0.113.0/24, ports: [443]}\n    - {cidr: 198.51.100.7/32}\n",
        )
        .egress
        .unwrap();
        assert_eq!(egress.len(), 4);
        assert_eq!(
            egress[2].to.as_ref().unwrap()[0]
                .ip_block
                .as_ref()
                .unwrap()
                .cidr,
            "203.0.113.0/24"
        );
        assert_eq!(egress[2].ports.as_ref().unwrap(), &vec![port("TCP", 443)]);
        assert_eq!(
            egress[3].ports, None,
            "no ports listed means every port of that network"
        );
    }
}

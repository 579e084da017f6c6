use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Service},
    networking::v1::NetworkPolicy,
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

use super::*;
use crate::controller::config::{ChatApiCa, OperatorConfig};
use crate::controller::desired::fixtures::{MINIMAL, children, children_with};

/// `object` changed as `change` changes its JSON.
fn edit<K: Serialize + DeserializeOwned>(object: &K, change: impl FnOnce(&mut Value)) -> K {
    let mut value = serde_json::to_value(object).unwrap();
    change(&mut value);
    serde_json::from_value(value).unwrap()
}

fn drift_of<K>(desired: &K, change: impl FnOnce(&mut Value)) -> Option<String>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned,
{
    find_drift(desired, &edit(desired, change)).map(|d| d.to_string())
}

fn deployment() -> Deployment {
    children(MINIMAL).deployment
}

fn pod_spec(value: &mut Value) -> &mut Value {
    value.pointer_mut("/spec/template/spec").unwrap()
}

fn container<'a>(value: &'a mut Value, name: &str) -> &'a mut Value {
    let spec = pod_spec(value);
    let list = if name == "broker" {
        "initContainers"
    } else {
        "containers"
    };
    spec[list]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|c| c["name"] == name)
        .unwrap()
}

#[test]
fn children_as_built_do_not_drift() {
    let children = children(MINIMAL);
    assert_eq!(
        find_drift(&children.service_account, &children.service_account),
        None
    );
    assert_eq!(find_drift(&children.config_map, &children.config_map), None);
    assert_eq!(find_drift(&children.deployment, &children.deployment), None);
    assert_eq!(find_drift(&children.service, &children.service), None);
    assert_eq!(
        find_drift(&children.network_policy, &children.network_policy),
        None
    );
}

#[test]
fn a_deployment_scaled_by_hand_drifts_in_its_replicas() {
    let drift = drift_of(&deployment(), |d| d["spec"]["replicas"] = json!(3));
    assert_eq!(drift.as_deref(), Some("spec.replicas changed"));
}

#[test]
fn a_variable_set_into_the_plugin_container_is_drift_named_by_its_name() {
    let drift = drift_of(&deployment(), |d| {
        container(d, "plugin")["env"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "INJECTED", "value": "1"}));
    });
    assert_eq!(
        drift.as_deref(),
        Some("spec.template.spec.containers[plugin].env[INJECTED] added")
    );
}

#[test]
fn a_changed_or_removed_variable_is_drift() {
    let changed = drift_of(&deployment(), |d| {
        container(d, "plugin")["env"][0]["value"] = json!("http://evil.example");
    });
    assert_eq!(
        changed.as_deref(),
        Some("spec.template.spec.containers[plugin].env[CHAT_API_URL].value changed")
    );
    let removed = drift_of(&deployment(), |d| {
        container(d, "plugin")["env"]
            .as_array_mut()
            .unwrap()
            .remove(0);
    });
    assert_eq!(
        removed.as_deref(),
        Some("spec.template.spec.containers[plugin].env[CHAT_API_URL] removed")
    );
}

#[test]
fn an_added_container_or_volume_is_drift() {
    let container = drift_of(&deployment(), |d| {
        pod_spec(d)["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "debug", "image": "busybox"}));
    });
    assert_eq!(
        container.as_deref(),
        Some("spec.template.spec.containers[debug] added")
    );
    let volume = drift_of(&deployment(), |d| {
        pod_spec(d)["volumes"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "host", "hostPath": {"path": "/"}}));
    });
    assert_eq!(
        volume.as_deref(),
        Some("spec.template.spec.volumes[host] added")
    );
}

/// A change made to an object's JSON.
type Edit = fn(&mut Value);

#[test]
fn what_weakens_a_container_or_the_pod_is_drift() {
    let cases: [(&str, Edit); 7] = [
        (
            "spec.template.spec.initContainers[broker].command added",
            |d| {
                container(d, "broker")["command"] =
                    json!(["sh", "-c", "cat /var/run/secrets/chat-api/token"])
            },
        ),
        ("spec.template.spec.containers[plugin].envFrom added", |d| {
            container(d, "plugin")["envFrom"] = json!([{"secretRef": {"name": "chat-admin"}}])
        }),
        (
            "spec.template.spec.containers[plugin].securityContext.privileged changed",
            |d| container(d, "plugin")["securityContext"]["privileged"] = json!(true),
        ),
        (
            "spec.template.spec.containers[plugin].securityContext.appArmorProfile added",
            |d| {
                container(d, "plugin")["securityContext"]["appArmorProfile"] =
                    json!({"type": "Unconfined"})
            },
        ),
        (
            "spec.template.spec.containers[plugin].resources.limits removed",
            |d| {
                container(d, "plugin")["resources"]
                    .as_object_mut()
                    .unwrap()
                    .remove("limits");
            },
        ),
        ("spec.template.spec.hostNetwork added", |d| {
            pod_spec(d)["hostNetwork"] = json!(true)
        }),
        ("spec.template.metadata.labels.role added", |d| {
            d["spec"]["template"]["metadata"]["labels"]["role"] = json!("open")
        }),
    ];
    for (expected, change) in cases {
        assert_eq!(drift_of(&deployment(), change).as_deref(), Some(expected));
    }
}

#[test]
fn defaults_and_scheduling_added_by_others_are_not_drift() {
    let drift = drift_of(&deployment(), |d| {
        d["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision": "1"});
        d["metadata"]["labels"]["team"] = json!("a");
        d["spec"]["strategy"] = json!({"type": "RollingUpdate"});
        d["spec"]["template"]["metadata"]["annotations"] =
            json!({"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"});
        let spec = pod_spec(d);
        spec["hostNetwork"] = json!(false);
        spec["dnsPolicy"] = json!("ClusterFirst");
        spec["tolerations"] = json!([{"key": "dedicated", "operator": "Exists"}]);
        spec["nodeSelector"] = json!({"pool": "plugins"});
        let plugin = container(d, "plugin");
        plugin["terminationMessagePath"] = json!("/dev/termination-log");
        plugin["readinessProbe"]["timeoutSeconds"] = json!(1);
    });
    assert_eq!(drift, None);
}

#[test]
fn the_chat_api_ca_volume_is_kept_as_the_operator_wrote_it() {
    let config = OperatorConfig {
        chat_api_ca: Some(ChatApiCa::new("trust-bundle", "trust-bundle.pem").unwrap()),
        ..OperatorConfig::example()
    };
    let desired = children_with(MINIMAL, &config).deployment;
    assert_eq!(find_drift(&desired, &desired), None);
    let ca_volume = |d: &mut Value| -> Value {
        pod_spec(d)["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "chat-api-ca")
            .cloned()
            .unwrap()
    };
    let other_bundle = drift_of(&desired, |d| {
        let mut volume = ca_volume(d);
        volume["configMap"]["name"] = json!("another-bundle");
        let volumes = pod_spec(d)["volumes"].as_array_mut().unwrap();
        volumes.retain(|v| v["name"] != "chat-api-ca");
        volumes.push(volume);
    });
    assert_eq!(
        other_bundle.as_deref(),
        Some("spec.template.spec.volumes[chat-api-ca].configMap.name changed")
    );
    let into_the_plugin = drift_of(&desired, |d| {
        container(d, "plugin")["volumeMounts"] =
            json!([{"name": "chat-api-ca", "mountPath": "/etc/chat-api-ca"}]);
    });
    assert!(
        into_the_plugin.is_some(),
        "mounted into the plugin container"
    );
    let unmounted = drift_of(&desired, |d| {
        container(d, "broker")["volumeMounts"]
            .as_array_mut()
            .unwrap()
            .retain(|m| m["name"] != "chat-api-ca");
    });
    assert_eq!(
        unmounted.as_deref(),
        Some("spec.template.spec.initContainers[broker].volumeMounts[chat-api-ca] removed")
    );
}

#[test]
fn an_annotation_on_the_pods_other_than_a_restart_is_drift() {
    let drift = drift_of(&deployment(), |d| {
        d["spec"]["template"]["metadata"]["annotations"] =
            json!({"container.apparmor.security.beta.kubernetes.io/plugin": "unconfined"});
    });
    assert_eq!(
        drift.as_deref(),
        Some(
            "spec.template.metadata.annotations.container.apparmor.security.beta.kubernetes.io/plugin added"
        )
    );
}

#[test]
fn quantities_are_compared_as_the_api_server_stores_them() {
    let desired = children(&format!(
        "{MINIMAL}resources: {{requests: {{cpu: '0.5', memory: 1.5Gi}}, limits: {{cpu: 900000u, memory: 2Gi}}}}\n"
    ))
    .deployment;
    let stored = edit(&desired, |d| {
        let resources = &mut container(d, "plugin")["resources"];
        resources["requests"]["cpu"] = json!("500m");
        resources["requests"]["memory"] = json!("1536Mi");
        resources["limits"]["cpu"] = json!("900m");
    });
    assert_eq!(find_drift(&desired, &stored), None);
    let raised = edit(&stored, |d| {
        container(d, "plugin")["resources"]["limits"]["memory"] = json!("8Gi");
    });
    assert_eq!(
        find_drift(&desired, &raised).map(|d| d.field),
        Some("spec.template.spec.containers[plugin].resources.limits.memory".into())
    );
}

#[test]
fn a_network_policy_opened_by_hand_drifts() {
    let desired: NetworkPolicy = children(MINIMAL).network_policy;
    let opened = drift_of(&desired, |n| {
        n["spec"]["ingress"] = json!([{}]);
        n["spec"]["egress"] = json!([{}]);
    })
    .unwrap();
    assert!(
        opened.starts_with("spec.egress[0]") || opened.starts_with("spec.ingress[0]"),
        "{opened}"
    );
    let extra_rule = drift_of(&desired, |n| {
        n["spec"]["egress"].as_array_mut().unwrap().push(json!({}));
    });
    assert_eq!(extra_rule.as_deref(), Some("spec.egress[2] added"));
    let port_range = drift_of(&desired, |n| {
        n["spec"]["ingress"][0]["ports"][0]["endPort"] = json!(65535);
    });
    assert_eq!(
        port_range.as_deref(),
        Some("spec.ingress[0].ports[0].endPort added")
    );
    let narrowed_selector = drift_of(&desired, |n| {
        n["spec"]["podSelector"]["matchLabels"]["role"] = json!("none");
    });
    assert_eq!(
        narrowed_selector.as_deref(),
        Some("spec.podSelector.matchLabels.role added")
    );
}

#[test]
fn a_widened_or_extended_policy_config_map_drifts() {
    let desired: ConfigMap = children(MINIMAL).config_map;
    let widened = drift_of(&desired, |c| {
        c["data"]["policy.json"] = json!("{\"grants\": [{\"scope\": \"users:read\"}]}");
    });
    assert_eq!(widened.as_deref(), Some("data.policy.json changed"));
    let extra_key = drift_of(&desired, |c| c["data"]["override.json"] = json!("{}"));
    assert_eq!(extra_key.as_deref(), Some("data.override.json added"));
    let binary = drift_of(&desired, |c| {
        c["binaryData"] = json!({"policy.json": "e30="})
    });
    assert_eq!(binary.as_deref(), Some("binaryData added"));
}

#[test]
fn a_changed_service_selector_drifts_and_a_cluster_ip_does_not() {
    let desired: Service = children(MINIMAL).service;
    let assigned = drift_of(&desired, |s| {
        s["spec"]["clusterIP"] = json!("10.96.0.7");
        s["spec"]["type"] = json!("ClusterIP");
    });
    assert_eq!(assigned, None);
    let changed = drift_of(&desired, |s| {
        s["spec"]["selector"]["plugins.chat.dev/plugin"] = json!("other");
    });
    assert_eq!(
        changed.as_deref(),
        Some("spec.selector.plugins.chat.dev/plugin changed")
    );
}

#[test]
fn a_service_opened_to_outside_the_cluster_drifts() {
    let desired: Service = children(MINIMAL).service;
    let node_port = drift_of(&desired, |s| {
        s["spec"]["type"] = json!("NodePort");
        s["spec"]["ports"][0]["nodePort"] = json!(30080);
    });
    assert_eq!(node_port.as_deref(), Some("spec.type changed"));
    let load_balancer = drift_of(&desired, |s| s["spec"]["type"] = json!("LoadBalancer"));
    assert_eq!(load_balancer.as_deref(), Some("spec.type changed"));
    let external = drift_of(&desired, |s| {
        s["spec"]["externalIPs"] = json!(["198.51.100.7"])
    });
    assert_eq!(external.as_deref(), Some("spec.externalIPs added"));
    let ranges = drift_of(&desired, |s| {
        s["spec"]["loadBalancerSourceRanges"] = json!(["0.0.0.0/0"])
    });
    assert_eq!(
        ranges.as_deref(),
        Some("spec.loadBalancerSourceRanges added")
    );
    let defaults = drift_of(&desired, |s| {
        s["spec"]["sessionAffinity"] = json!("None");
        s["spec"]["internalTrafficPolicy"] = json!("Cluster");
        s["spec"]["ipFamilies"] = json!(["IPv4"]);
    });
    assert_eq!(defaults, None, "what the API server defaults is not drift");
}

#[test]
fn the_operators_labels_and_owner_must_stay() {
    let desired = children(MINIMAL).service_account;
    let label = drift_of(&desired, |s| {
        s["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("plugins.chat.dev/plugin");
    });
    assert_eq!(
        label.as_deref(),
        Some("metadata.labels.plugins.chat.dev/plugin removed")
    );
    let owner = drift_of(&desired, |s| s["metadata"]["ownerReferences"] = json!([]));
    assert_eq!(owner.as_deref(), Some("metadata.ownerReferences removed"));
    let token = drift_of(&desired, |s| {
        s["automountServiceAccountToken"] = json!(true)
    });
    assert_eq!(
        token.as_deref(),
        Some("automountServiceAccountToken changed")
    );
}

#[test]
fn restored_takes_the_desired_content_and_keeps_other_writers_metadata() {
    let desired = deployment();
    let current = edit(&desired, |d| {
        d["metadata"]["resourceVersion"] = json!("42");
        d["metadata"]["labels"]["team"] = json!("a");
        d["metadata"]["annotations"] = json!({"note": "kept"});
        d["metadata"]["managedFields"] = json!([{"manager": "kubectl-set", "operation": "Update"}]);
        d["metadata"]["ownerReferences"] = json!([]);
        d["spec"]["replicas"] = json!(3);
        container(d, "plugin")["env"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "INJECTED", "value": "1"}));
        d["status"] = json!({"replicas": 3});
    });
    let body = restored(&desired, &current);
    assert_eq!(find_drift(&desired, &body), None);
    let body = serde_json::to_value(&body).unwrap();
    assert_eq!(body["metadata"]["resourceVersion"], "42");
    assert_eq!(body["metadata"]["labels"]["team"], "a");
    assert_eq!(body["metadata"]["annotations"]["note"], "kept");
    assert_eq!(body["metadata"].get("managedFields"), None);
    assert_eq!(body["metadata"]["ownerReferences"][0]["name"], "weather");
    assert_eq!(body.get("status"), None);
}

#[test]
fn a_config_map_restored_loses_the_keys_another_writer_added() {
    let desired = children(MINIMAL).config_map;
    let current = edit(&desired, |c| {
        c["data"]["override.json"] = json!("{}");
        c["binaryData"] = json!({"x": "e30="});
    });
    let body = serde_json::to_value(restored(&desired, &current)).unwrap();
    assert_eq!(body["data"].as_object().unwrap().len(), 1);
    assert_eq!(body.get("binaryData"), None);
}

#[test]
fn the_content_digest_ignores_what_the_comparison_does_not_read() {
    let desired = deployment();
    let digest = content_digest(&desired);
    let served = edit(&desired, |value| {
        value["metadata"]["resourceVersion"] = json!("42");
        value["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = json!("1");
        value["status"] = json!({"observedGeneration": 1, "replicas": 1});
    });
    assert_eq!(content_digest(&served), digest);
}

#[test]
fn any_change_the_comparison_reads_gives_another_digest() {
    let desired = deployment();
    let digest = content_digest(&desired);
    let changes: [fn(&mut Value); 4] = [
        |value| value["metadata"]["labels"]["extra"] = json!("x"),
        |value| value["metadata"]["ownerReferences"] = json!([]),
        |value| value["spec"]["replicas"] = json!(3),
        |value| container(value, "plugin")["env"] = json!([{"name": "INJECTED", "value": "1"}]),
    ];
    for change in changes {
        let changed = edit(&desired, change);
        assert_ne!(content_digest(&changed), digest, "{changed:?}");
    }
}

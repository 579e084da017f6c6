//! The node's configuration comes from the templates in cluster/node/ (and the CoreDNS
//! manifest from cluster/manifests/), their `@NAME@` placeholders filled from the
//! variables of cluster/lib.sh and cluster/node.sh. Rendered here as `write_node_config`
//! renders them, into a scratch folder: no root and no cluster needed.

use std::path::Path;
use std::process::Command;

use plugin_operator_test_support::cluster::{assert_success, random_suffix, repo_path};
use serde::Deserialize;

/// Sources the cluster scripts and writes the node configuration under `$1`.
const RENDER: &str = r#"
source cluster/lib.sh
B="$1" PKI="$1/pki" CONF="$1/conf" LOGS="$1/logs" PIDS="$1/pids"
mkdir -p "$CONF"
source cluster/node.sh
write_kubeconfig() { :; }
write_node_config
render cluster/manifests/coredns.yaml >"$B/coredns.yaml"
"#;

fn read(root: &Path, relative: &str) -> String {
    let path = root.join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(!text.trim().is_empty(), "{relative} is empty");
    let left: Vec<&str> = text
        .split('@')
        .skip(1)
        .step_by(2)
        .filter(|name| !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .collect();
    assert!(left.is_empty(), "{relative} keeps placeholders: {left:?}");
    text
}

fn yaml_documents(relative: &str, text: &str) -> usize {
    serde_norway::Deserializer::from_str(text)
        .map(|document| {
            serde_norway::Value::deserialize(document)
                .unwrap_or_else(|e| panic!("{relative} is not YAML: {e}"))
        })
        .filter(|document| !document.is_null())
        .count()
}

#[test]
fn node_configuration_renders_from_its_templates() {
    let root = std::env::temp_dir().join(format!("node-config-{}", random_suffix()));
    let out = Command::new("bash")
        .args(["-c", RENDER, "bash"])
        .arg(&root)
        .current_dir(repo_path(""))
        .output()
        .expect("bash runs");
    assert_success(&out, "rendering the node configuration");

    for relative in ["conf/kubelet.yaml", "conf/kube-proxy.yaml"] {
        let text = read(&root, relative);
        assert_eq!(yaml_documents(relative, &text), 1, "{relative}");
    }
    let coredns = read(&root, "coredns.yaml");
    assert!(yaml_documents("coredns.yaml", &coredns) > 1);
    let pods: serde_json::Value =
        serde_json::from_str(&read(&root, "node/cni/net.d/10-pods.conflist"))
            .expect("the CNI configuration is JSON");
    let range = &pods["plugins"][0]["ipam"]["ranges"][0][0];
    let (subnet, gateway) = (range["subnet"].as_str(), range["gateway"].as_str());
    let network = subnet.and_then(|s| s.strip_suffix(".0/24"));
    assert_eq!(
        gateway.map(String::from),
        network.map(|n| format!("{n}.1")),
        "the pods' gateway is .1 of their subnet"
    );
    let containerd = read(&root, "node/containerd/config.toml");
    assert!(containerd.contains("[plugins.\"io.containerd.grpc.v1.cri\".cni]"));
    read(&root, "node/resolv.conf");

    let _ = std::fs::remove_dir_all(&root);
}

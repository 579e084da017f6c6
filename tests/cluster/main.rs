//! The local cluster itself (cluster/, docs/local-cluster.md), KUBECONFIG exported:
//! - `control_plane`: needs only `make cluster-up` (etcd, apiserver, controllers); no
//!   node, so pods are admitted but never run.
//! - `node`: needs `make cluster-up NODE=1` (a real kubelet, containerd, runc, CNI,
//!   kube-proxy, CoreDNS, kube-network-policies).
//! - `node_config`: the node's configuration files render from their templates; no
//!   cluster needed.

mod control_plane;
mod node;
mod node_config;

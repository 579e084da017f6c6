//! The fault-injection suite's driver (`make chaos`, chaos/run.sh): one fault per call,
//! on the local cluster named by KUBECONFIG, with real processes. It prints progress on
//! stderr and one JSON line on stdout: the fault, how often it was injected, how often
//! the operator survived it, the recovery times, and what was lost.
//!
//!   chaos <fault> --binary <plugin-operator> [fault flags]
//!
//! Faults: kill (SIGKILL during convergence), leader-skew (two replicas, the leader's
//! clock skewed), rollout (a new broker image rolls at a bounded pace), control-plane
//! (restart kube-apiserver, then etcd), node (restart containerd and the kubelet).

mod common;
mod control_plane;
mod kill;
mod leader;
mod node;
mod rollout;

#[tokio::main]
async fn main() {
    let fault = std::env::args().nth(1).unwrap_or_default();
    let binary = common::arg("--binary", "");
    assert!(
        !binary.is_empty(),
        "--binary <path of plugin-operator> is required"
    );
    let outcome = match fault.as_str() {
        "kill" => kill::run(&binary).await,
        "leader-skew" => leader::run(&binary).await,
        "rollout" => rollout::run(&binary).await,
        "control-plane" => control_plane::run(&binary).await,
        "node" => node::run(&binary).await,
        other => panic!("unknown fault {other:?}: kill, leader-skew, rollout, control-plane, node"),
    };
    outcome.print();
    if outcome.survived < outcome.injected || outcome.lost > 0 {
        std::process::exit(1);
    }
}

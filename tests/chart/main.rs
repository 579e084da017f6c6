//! The Helm chart (charts/plugin-operator, docs/helm.md): `render` and `drift` need no
//! cluster; `install` runs on the local cluster (`make cluster-up NODE=1`, KUBECONFIG
//! exported); `monitoring` needs the API server for the prometheus-operator CRDs. helm
//! and promtool are built on first use (`make helm`, cluster/lib.sh).

mod drift;
mod install;
mod monitoring;
mod readme;
mod render;
mod support;

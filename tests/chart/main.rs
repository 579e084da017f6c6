//! The Helm chart (charts/plugin-operator, docs/helm.md): `render` and `drift` need no
//! cluster; `install` runs on the local cluster (`make cluster-up NODE=1`, KUBECONFIG
//! exported). helm is built on first use (`make helm`).

mod drift;
mod install;
mod readme;
mod render;
mod support;

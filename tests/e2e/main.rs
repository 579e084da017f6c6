//! End-to-end tests in real pods on the local node (`make cluster-up NODE=1`, images
//! from `make images`). Each proves a claim the docs make.

mod support;

mod admission;
mod broker;
mod credentials;
mod gitops;
mod hostile;
mod network;
mod plugin_policy;
mod pod;
mod prometheus;
mod scope_catalog;
mod status;
mod tls;

//! plugin-operator: runs a chat system's third-party plugins on Kubernetes.
//!
//! - [`api`]: the `Plugin` custom resource.
//! - [`policy`]: the broker policy the operator compiles and the broker enforces.
//! - [`controller`]: the reconcile pipeline (validate -> build -> apply -> status).
//! - [`broker`]: the sidecar that checks, limits, credentials and audits every call.
//! - [`telemetry`]: logs and metrics shared by both processes.

pub mod api;
pub mod broker;
pub mod controller;
pub mod policy;
pub mod telemetry;

//! The operator: reconciles each Plugin into its children and reports their state.
//!
//! The pipeline is [`validate`] -> [`desired`] -> [`apply`] -> [`status`], one module per
//! step, driven by `reconcile`. `validate`, `desired` and the status's computation are
//! pure and hold most of the logic; `apply`, `status::report` and `reconcile` are the
//! thin layer that talks to the API server; `run` wires watches, leader election,
//! metrics and shutdown. `rollout` paces Deployments whose pods a change replaces.

mod admin;
pub mod apply;
mod args;
pub mod config;
mod context;
pub mod desired;
pub mod error;
pub mod leader;
mod metrics;
mod reconcile;
pub mod rollout;
mod run;
pub mod status;
pub mod validate;

pub use args::ControllerArgs;
pub use run::run;

//! The operator: reconciles each Plugin into its children and reports their state.
//!
//! The pipeline is [`validate`] -> [`bounds`] -> [`desired`] -> [`apply`] -> [`status`],
//! one module per step, driven by `reconcile`; [`drift`] is how `apply` compares a child
//! with what it would write, and [`verified`] which children it has seen clean.
//! `validate`, `bounds`, `desired` and the status's computation are pure and hold most
//! of the logic; `apply`, `status::report` and `reconcile` are the thin layer that talks
//! to the API server; `run` wires watches, leader election, metrics and shutdown.
//! `rollout` paces Deployments whose pods a change replaces. `check` is what the chart's
//! `helm test` runs against an installed operator.

mod admin;
pub mod apply;
mod args;
pub mod bounds;
pub mod cached;
mod check;
pub mod config;
mod context;
pub mod desired;
pub mod drift;
pub mod error;
pub mod events;
pub mod leader;
mod metrics;
mod reconcile;
pub mod rollout;
mod run;
pub mod status;
pub mod validate;
pub mod verified;

pub use args::ControllerArgs;
pub use check::{CheckArgs, check};
pub use config::DEFAULT_SCOPE_CATALOG;
pub use run::run;

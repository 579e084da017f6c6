//! The operator: reconciles each Plugin into its children and reports their state.
//!
//! The pipeline is validate -> build -> apply -> status. `build` and `status` are pure
//! and hold most of the logic; `apply` and `reconcile` are the thin layer that talks to
//! the API server; `run` wires watches, leader election, metrics and shutdown.

mod admin;
pub mod apply;
mod args;
pub mod build;
pub mod config;
mod context;
pub mod error;
pub mod leader;
mod metrics;
mod reconcile;
mod run;
pub mod status;
mod written;

pub use args::ControllerArgs;
pub use run::run;

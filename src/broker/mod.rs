//! The broker sidecar: one process in each plugin pod with three listeners.
//!
//! - outbound (127.0.0.1): the plugin's only door to the chat API; every call is
//!   decided by [`decide()`] against the [`CompiledPolicy`].
//! - inbound (pod IP): invocations of the plugin, within the policy's limits.
//! - admin: health, readiness and Prometheus metrics.
//!
//! The policy file and the token file are polled and swapped in without a restart.
//!
//! One folder per concern:
//!
//! - `decide/`: the pure decision: the compiled policy, path checks, the denials.
//! - `limits/`: the live state that enforces a policy: rate-limit buckets, in-flight permits.
//! - `http/`: the listeners, bodies and headers, and the clients toward the chat API
//!   and the plugin.
//! - `audit/`: decision ids and the audit log.
//! - `reload/`: the policy and token files, watched and swapped in.
//! - `run.rs`: the wiring; `args.rs`: the flags; `metrics.rs`: the Prometheus metrics.
//! - `wait.rs`: `wait-for-broker`, the broker container's postStart hook: the plugin
//!   container starts once the broker is ready.

mod args;
mod audit;
mod decide;
mod http;
mod limits;
mod metrics;
mod reload;
mod run;
mod wait;

pub use args::BrokerArgs;
pub use audit::AuditDestination;
pub use decide::{Call, CompiledPolicy, Decision, Denial, Verdict, check_path, decide};
pub use http::headers::override_in;
pub use reload::load_policy;
pub use run::{BrokerError, Listeners, RunningBroker, run, start};
pub use wait::{NotReady, WaitArgs, wait_for_broker};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

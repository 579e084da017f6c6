//! The broker side of the test support: the broker in-process ([`Fixture`]), stand-ins
//! for the chat API and the plugin ([`StandIn`]), files laid out like mounted volumes,
//! raw socket exchanges, the one policy builder ([`PolicyBuilder`]) and the decision
//! oracle ([`oracle_allows`]). Used by tests/broker and the fuzz targets.

mod files;
mod fixture;
mod oracle;
mod policy;
mod raw;
mod stand_in;

pub use files::{TempDir, write_like_kubelet};
pub use fixture::{Answer, Fixture, args, fresh_connection_client};
pub use oracle::{oracle_allows, percent_decode};
pub use policy::{PolicyBuilder, policy};
pub use raw::{assert_raw_status, raw_exchange, raw_status};
pub use stand_in::{Recorded, StandIn};

/// The chat-API token the fixture's broker holds.
pub const TOKEN: &str = "broker-token-one";
/// The plugin every built policy and every fixture's broker is for.
pub const PLUGIN_ID: &str = "team-a/weather";
/// How [`PLUGIN_ID`] appears in a path (`{self}`).
pub const SELF_SEGMENT: &str = "team-a.weather";

//! The HTTP side of the broker: one accept loop for the three listeners, the outbound
//! (plugin -> chat API), inbound (chat system -> plugin) and admin handlers, the bodies
//! and headers that cross, and the clients toward the chat API and the plugin.
//!
//! Inbound and outbound share what they both need through [`body`] and [`upstream`],
//! never through each other.

pub mod admin;
pub mod body;
pub mod headers;
pub mod inbound;
pub mod outbound;
pub mod server;
pub mod target;
pub mod upstream;

//! What the tests, the benchmark drivers and the fuzz targets share, in one place.
//!
//! - [`cluster`]: a client for the real API server, throwaway namespaces, waiting.
//! - [`broker`]: the broker in-process, stand-ins for the chat API and the plugin,
//!   policy builders and the decision oracle.
//! - [`driver`]: flags and progress lines of the benchmark and fault drivers.
//! - [`tls`]: a throwaway CA and server certificates, for TLS to the chat API.

pub mod broker;
pub mod cluster;
pub mod driver;
pub mod tls;

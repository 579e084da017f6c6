//! The broker's integration tests, in one binary: the broker runs in-process on
//! `127.0.0.1:0` listeners against recording stand-ins (tests/support), except in
//! `process`, which runs the real binary. No cluster is needed.

mod audit_mode;
mod connection_cap;
mod decide_allocations;
mod inbound;
mod malformed_input;
mod outbound;
mod overrides;
mod process;
mod process_memory;
mod property;
mod rate_limit;
mod reload;
mod tls;
mod upstream;

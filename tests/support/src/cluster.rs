//! The API-server side of the test support.

//! The broker side of the test support.

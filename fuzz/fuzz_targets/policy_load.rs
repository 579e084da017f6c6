//! Arbitrary bytes as a policy file: loading may refuse them but never panics, and
//! whatever loads can decide a call.

#![no_main]

use libfuzzer_sys::fuzz_target;
use plugin_operator::broker::{Call, decide, load_policy};

fuzz_target!(|data: &[u8]| {
    if let Ok(policy) = load_policy(data, None) {
        let _ = decide(
            &Call {
                method: "GET",
                path: "/api/v1/kv/team-a.weather/key",
            },
            &policy,
        );
    }
});

//! Raw request-line bytes -> `http` parsing -> `decide`, under grants chosen by the
//! first input bytes. Beyond "never panics", every call `decide` forwards must also be
//! allowed by a plain re-statement of the permission model (which, in Audit mode, still
//! holds a call to the catalog and to the plugin's own `{self}` data).

#![no_main]

use libfuzzer_sys::fuzz_target;
use plugin_operator::broker::{Call, CompiledPolicy, check_path, decide};
use plugin_operator::policy::{
    BrokerPolicy, EnforcementMode, KNOWN_CHAT_SCOPES, KV_READ_SCOPE, KV_WRITE_SCOPE,
};
use plugin_operator_test_support::broker::{PolicyBuilder, oracle_allows};

const CHANNELS: [&str; 3] = ["C1", "C2", "C3"];

fn scopes() -> Vec<&'static str> {
    let mut scopes = KNOWN_CHAT_SCOPES.to_vec();
    scopes.extend([KV_READ_SCOPE, KV_WRITE_SCOPE]);
    scopes
}

/// Two bytes per scope: granted?, and which channels (bitmask; none set = all).
fn policy_from(selector: &[u8], mode: EnforcementMode) -> BrokerPolicy {
    scopes()
        .into_iter()
        .enumerate()
        .filter(|(i, _)| selector.get(2 * i).is_some_and(|b| b & 1 == 1))
        .fold(PolicyBuilder::new().mode(mode), |builder, (i, scope)| {
            let mask = selector.get(2 * i + 1).copied().unwrap_or(0);
            let channels: Vec<&str> = CHANNELS
                .iter()
                .enumerate()
                .filter(|(bit, _)| mask & (1 << bit) != 0)
                .map(|(_, c)| *c)
                .collect();
            builder.grant(scope, &channels)
        })
        .build()
}

fuzz_target!(|data: &[u8]| {
    const SELECTOR: usize = 18;
    if data.len() < SELECTOR + 1 {
        return;
    }
    let (selector, rest) = data.split_at(SELECTOR);
    let mode = if selector[0] & 0x80 != 0 {
        EnforcementMode::Audit
    } else {
        EnforcementMode::Enforce
    };
    let policy = policy_from(selector, mode);
    let compiled = CompiledPolicy::compile(&policy).expect("generated policies are valid");

    // "METHOD SP request-target", as on the wire.
    let space = rest.iter().position(|b| *b == b' ').unwrap_or(rest.len());
    let (method, target) = (&rest[..space], rest.get(space + 1..).unwrap_or_default());
    let Ok(method) = http::Method::from_bytes(method) else {
        return;
    };
    let Ok(uri) = http::Uri::try_from(target) else {
        return;
    };
    let call = Call {
        method: method.as_str(),
        path: uri.path(),
    };
    let decision = decide(&call, &compiled);
    if decision.forwards() {
        assert!(
            oracle_allows(call.method, call.path, &policy),
            "forwarded {} {} outside {:?} ({:?})",
            call.method,
            call.path,
            policy.grants,
            mode
        );
    }
    if decision.forwards() {
        assert!(check_path(call.path).is_ok());
    }
});

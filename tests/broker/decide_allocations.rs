//! `decide` and the override check allocate nothing: counted with a global allocator
//! that tallies the allocations made by this thread while counting is on. The allocator is the whole
//! test binary's; on other threads, and while not counting, it only passes through.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use http::{HeaderMap, HeaderValue, header};
use plugin_operator::broker::{Call, CompiledPolicy, decide, override_in};
use plugin_operator::policy::{EnforcementMode, KV_READ_SCOPE};
use plugin_operator_test_support::broker::PolicyBuilder;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

struct CountingAllocator;

impl CountingAllocator {
    fn tally() {
        let _ = COUNTING.try_with(|counting| {
            if counting.get() {
                let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
            }
        });
    }
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::tally();
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::tally();
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::tally();
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn allocations_during(work: impl FnOnce()) -> usize {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    work();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(|n| n.get())
}

fn compiled(mode: EnforcementMode) -> CompiledPolicy {
    PolicyBuilder::new()
        .mode(mode)
        .grant("messages:write", &["C1", "C 2"])
        .grant(KV_READ_SCOPE, &[])
        .rate_limit("messages:write", 60, 5)
        .kv_max_value_bytes(64)
        .compile()
}

#[test]
fn decide_allocates_nothing_whatever_it_decides() {
    let calls = [
        ("POST", "/api/v1/channels/C1/messages"),
        ("POST", "/api/v1/channels/C%202/messages"),
        ("POST", "/api/v1/channels/C3/messages"),
        ("GET", "/api/v1/channels"),
        ("GET", "/api/v1/users/U1"),
        ("GET", "/api/v1/kv/team-a.weather/caf%C3%A9"),
        ("GET", "/api/v1/kv/team-b.weather/key"),
        ("GET", "/api/v1/kv/../other"),
        ("GET", "/api/v1/kv/%FF"),
        ("DELETE", "/nowhere/at/all"),
    ];
    for mode in [EnforcementMode::Enforce, EnforcementMode::Audit] {
        let policy = compiled(mode);
        let mut forwarded = 0;
        let count = allocations_during(|| {
            for (method, path) in calls {
                let decision = decide(&Call { method, path }, &policy);
                forwarded += usize::from(decision.forwards());
            }
        });
        assert_eq!(count, 0, "decide allocated {count} times in {mode:?} mode");
        assert!(forwarded >= 3, "the calls must exercise allowed paths too");
    }
    // The counter itself works.
    assert!(allocations_during(|| drop(std::hint::black_box(vec![1u8; 16]))) > 0);
}

#[test]
fn the_override_check_allocates_nothing() {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
    headers.insert("x-http-method-override", HeaderValue::from_static("DELETE"));
    let plain = {
        let mut plain = headers.clone();
        plain.remove("x-http-method-override");
        plain
    };
    let mut found = 0;
    let count = allocations_during(|| {
        for query in [None, Some("limit=5&cursor=abc"), Some("a=1;%5Fmethod=PUT")] {
            found += usize::from(override_in(&plain, query).is_some());
            found += usize::from(override_in(&headers, query).is_some());
        }
    });
    assert_eq!(count, 0, "the override check allocated {count} times");
    assert_eq!(found, 4);
}

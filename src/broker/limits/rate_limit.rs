//! Per-scope token buckets: `burst` tokens at most, refilled at `perMinute / 60` a second.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct TokenBucket {
    per_minute: u32,
    burst: u32,
    state: Mutex<BucketState>,
}

#[derive(Debug)]
struct BucketState {
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    /// A full bucket. Both limits are at least 1 (the policy is validated).
    pub fn new(per_minute: u32, burst: u32, now: Instant) -> Self {
        Self {
            per_minute: per_minute.max(1),
            burst: burst.max(1),
            state: Mutex::new(BucketState {
                tokens: f64::from(burst.max(1)),
                refilled_at: now,
            }),
        }
    }

    pub fn has_limits(&self, per_minute: u32, burst: u32) -> bool {
        self.per_minute == per_minute && self.burst == burst
    }

    /// Takes one token, or says how long until one is available.
    pub fn try_take(&self, now: Instant) -> Result<(), Duration> {
        let per_second = f64::from(self.per_minute) / 60.0;
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let elapsed = now
            .saturating_duration_since(state.refilled_at)
            .as_secs_f64();
        state.tokens = (state.tokens + elapsed * per_second).min(f64::from(self.burst));
        state.refilled_at = now.max(state.refilled_at);
        if state.tokens >= 1.0 {
            state.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - state.tokens) / per_second))
        }
    }
}

/// The `Retry-After` value for a wait: whole seconds, rounded up, at least 1.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    let whole = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    whole.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_refuses_until_refilled() {
        let start = Instant::now();
        let bucket = TokenBucket::new(60, 3, start);
        for _ in 0..3 {
            assert_eq!(bucket.try_take(start), Ok(()));
        }
        let wait = bucket.try_take(start).unwrap_err();
        assert!((wait.as_secs_f64() - 1.0).abs() < 1e-6, "{wait:?}");
        assert!(bucket.try_take(start + Duration::from_millis(999)).is_err());
        assert_eq!(bucket.try_take(start + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn bucket_never_holds_more_than_burst() {
        let start = Instant::now();
        let bucket = TokenBucket::new(600, 2, start);
        let later = start + Duration::from_secs(3600);
        assert!(bucket.try_take(later).is_ok());
        assert!(bucket.try_take(later).is_ok());
        assert!(bucket.try_take(later).is_err());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_seconds(Duration::from_millis(2100)), 3);
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
    }
}

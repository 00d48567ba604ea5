//! Exponential backoff with full jitter, the one retry schedule of scansync.

use std::time::Duration;

/// Attempts for one page transaction before the run fails.
pub const PAGE_ATTEMPTS: u32 = 6;
/// Attempts for the checkpoint write (DESIGN §1.7).
pub const CHECKPOINT_ATTEMPTS: u32 = 3;

/// Returns how long to wait before retry number `attempt` (1 for the first retry):
/// a random time up to 100 ms × 2^attempt, capped at 10 s.
pub fn backoff(attempt: u32) -> Duration {
    let cap_ms = (100u64 << attempt.min(10)).min(10_000);
    Duration::from_millis(cap_ms / 2 + fastrand::u64(0..=cap_ms / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_bounded() {
        assert!(backoff(1) <= Duration::from_millis(200));
        assert!(backoff(3) >= Duration::from_millis(400));
        assert!(backoff(30) <= Duration::from_secs(10));
    }
}

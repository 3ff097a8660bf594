//! The retry policy: exponential backoff with jitter and a cap, and how many attempts a job gets.
//!
//! After failed attempt `n` (1-based) the next attempt waits `min(base · 2^(n-1), cap)`, less a
//! random jitter of up to `jitter` of that delay, so a fleet of jobs that failed together does not
//! retry together. The wait happens in a RabbitMQ delay queue (one per distinct delay, with a
//! queue-level TTL), not in a sleeping worker.

use std::time::Duration;

/// Default delay after the first failed attempt.
pub const DEFAULT_BASE: Duration = Duration::from_secs(1);
/// Default longest delay.
pub const DEFAULT_CAP: Duration = Duration::from_secs(300);
/// Default attempts per job, the first included.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Default jitter: up to 20% of a delay is taken off at random.
pub const DEFAULT_JITTER: f64 = 0.2;

/// When and how often a transiently failing job is tried again.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Delay after the first failed attempt.
    pub base: Duration,
    /// Longest delay.
    pub cap: Duration,
    /// Attempts per job, the first included; after the last one the job is dead.
    pub max_attempts: u32,
    /// Fraction (0–1) of a delay that may be taken off at random.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: DEFAULT_BASE,
            cap: DEFAULT_CAP,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            jitter: DEFAULT_JITTER,
        }
    }
}

impl RetryPolicy {
    /// Whether a job whose attempt `attempt` just failed transiently gets another one.
    pub fn allows_another(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }

    /// The delay queue's TTL after failed attempt `attempt`: `min(base · 2^(attempt-1), cap)`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(32);
        self.base
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.cap)
    }

    /// The delay after failed attempt `attempt` with jitter applied; `random` is uniform in
    /// [0, 1) (injected, so tests are deterministic). Always within `[(1 - jitter)·d, d]`.
    pub fn jittered(&self, attempt: u32, random: f64) -> Duration {
        let delay = self.delay(attempt);
        delay.mul_f64(1.0 - self.jitter.clamp(0.0, 1.0) * random.clamp(0.0, 1.0))
    }

    /// The distinct delays a job can wait, in order: one delay queue each.
    pub fn delays(&self) -> Vec<Duration> {
        let mut delays: Vec<Duration> = (1..self.max_attempts).map(|n| self.delay(n)).collect();
        delays.dedup();
        delays
    }
}

/// A delay as used in queue names and routing keys: `1s`, `300s`, `1500ms`.
pub fn delay_label(delay: Duration) -> String {
    let ms = delay.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_the_base_up_to_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 12,
            ..RetryPolicy::default()
        };
        let secs: Vec<u64> = (1..=11).map(|n| policy.delay(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(policy.delays().len(), 10, "one queue per distinct delay");
        assert_eq!(policy.delay(1_000), DEFAULT_CAP, "no overflow");
    }

    #[test]
    fn the_default_policy_retries_four_times() {
        let policy = RetryPolicy::default();
        assert!(policy.allows_another(4));
        assert!(!policy.allows_another(5));
        let labels: Vec<String> = policy.delays().into_iter().map(delay_label).collect();
        assert_eq!(labels, ["1s", "2s", "4s", "8s"]);
    }

    #[test]
    fn jitter_takes_off_at_most_its_fraction() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.jittered(3, 0.0), Duration::from_secs(4));
        assert_eq!(policy.jittered(3, 0.5), Duration::from_millis(3600));
        assert_eq!(policy.jittered(3, 0.999_999).as_millis(), 3200);
    }

    #[test]
    fn labels_are_short() {
        assert_eq!(delay_label(Duration::from_millis(1500)), "1500ms");
        assert_eq!(delay_label(Duration::from_secs(300)), "300s");
    }
}

//! Parking: how a message waits for a moment that has nothing to do with the retry policy
//! (its `run_at`, a snooze, a `Retry-After` hint, a duplicate waiting for the running copy,
//! a delivery handed back because its kind is at its limit).
//!
//! RabbitMQ has no delayed delivery without a plugin, so a parked message sits in a delay
//! queue ([`crate::topology::Topology::declare_delay_queues`]) whose TTL sends it back to the
//! work queue. The steps below are always declared, whatever the retry policy, so parking
//! works even with `RETRY_MAX_ATTEMPTS=1` (no retry delays at all). A wait longer than the
//! longest step is covered in several hops: the worker that receives a message before its
//! `run_at` parks it again.

use std::time::Duration;

/// The delay queues parking uses, shortest first.
pub const PARK_STEPS: [Duration; 5] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(300),
    Duration::from_secs(3600),
];

/// A wait at most this much shorter than a step uses that step, with its own expiration: a
/// snooze of 30 s computed a moment before it is parked is one hop, not five.
pub const PARK_TOLERANCE: Duration = Duration::from_millis(250);

/// Where a message waits `remaining`: `(delay queue, per-message expiration)`.
///
/// A step that `remaining` just fits (within [`PARK_TOLERANCE`]), with expiration `remaining`;
/// else the longest step not longer than `remaining`, whole (every message of that queue then
/// expires after the same time, so none waits behind another's longer expiration); a wait
/// shorter than the shortest step uses the shortest with its own expiration. The message comes
/// back no later than due, and the receiver parks what is left.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use burrow_shared::engine::park::park_step;
///
/// let s = Duration::from_secs;
/// assert_eq!(park_step(s(7)), (s(5), s(5)));
/// assert_eq!(park_step(Duration::from_millis(29_900)), (s(30), Duration::from_millis(29_900)));
/// assert_eq!(park_step(Duration::from_millis(300)), (s(1), Duration::from_millis(300)));
/// assert_eq!(park_step(s(86_400)), (s(3600), s(3600)));
/// ```
pub fn park_step(remaining: Duration) -> (Duration, Duration) {
    let fits = PARK_STEPS
        .iter()
        .find(|step| **step >= remaining && **step - remaining <= PARK_TOLERANCE);
    if let Some(step) = fits {
        return (*step, remaining);
    }
    match PARK_STEPS.iter().rev().find(|step| **step <= remaining) {
        Some(step) => (*step, *step),
        None => (PARK_STEPS[0], remaining),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parked_message_never_comes_back_late() {
        for ms in [
            1, 999, 1000, 1001, 4_999, 5_000, 29_000, 299_999, 3_600_000, 7_200_001,
        ] {
            let remaining = Duration::from_millis(ms);
            let (delay, wait) = park_step(remaining);
            assert!(wait <= remaining, "{ms} ms: waits {wait:?}");
            assert!(wait <= delay && PARK_STEPS.contains(&delay), "{ms} ms");
            let own_expiration = delay - wait <= PARK_TOLERANCE || delay == PARK_STEPS[0];
            assert!(
                wait == delay || own_expiration,
                "{ms} ms: waits {wait:?} in {delay:?}"
            );
        }
    }
}

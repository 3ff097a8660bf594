//! The worker's health as `GET /readyz` reports it: whether the consumer is connected, when a
//! delivery was last finished, and the work queues' backlog as last seen. The consumer
//! ([`crate::consumer`]) and the queue gauges ([`crate::queue_stats`]) write it; the HTTP
//! server ([`crate::http`]) reads it.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Shared health state; cheap to clone (one `Arc`).
#[derive(Debug, Clone, Default)]
pub struct WorkerHealth {
    inner: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct State {
    /// Consumer sessions open now (0 or 1; a count, so overlapping guards stay correct).
    sessions: usize,
    /// When the process started, or a delivery last finished: the start of "nothing finished".
    last_finished: Instant,
    /// Ready messages in both work queues, as last seen; `None` until the first look.
    ready: Option<u32>,
    /// Since when the work queues have had ready messages, without a break.
    waiting_since: Option<Instant>,
}

impl Default for State {
    fn default() -> Self {
        State {
            sessions: 0,
            last_finished: Instant::now(),
            ready: None,
            waiting_since: None,
        }
    }
}

/// What `/readyz` reads, at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSnapshot {
    /// Whether a consumer session is open on the work queues.
    pub consumer_connected: bool,
    /// Ready messages in both work queues (normal and high priority) as last seen (`None`: not
    /// looked at yet).
    pub ready: Option<u32>,
    /// How long messages have waited while this worker finished nothing: the shorter of "since
    /// the last finished delivery" and "since the queue had ready messages". Zero when none wait.
    pub quiet_for: Duration,
}

/// Marks the consumer connected while it lives; see [`WorkerHealth::consumer_connected`].
#[derive(Debug)]
#[must_use = "the consumer counts as connected only while the guard lives"]
pub struct Connected(WorkerHealth);

impl Drop for Connected {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.sessions = state.sessions.saturating_sub(1);
    }
}

impl WorkerHealth {
    /// A fresh state: not connected, nothing seen, the stall clock starting now.
    pub fn new() -> Self {
        WorkerHealth::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the plain fields inconsistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The consumer is connected until the returned guard is dropped (the session ends).
    pub fn consumer_connected(&self) -> Connected {
        self.lock().sessions += 1;
        Connected(self.clone())
    }

    /// A delivery was finished (its outcome decided).
    pub fn delivery_finished(&self) {
        self.lock().last_finished = Instant::now();
    }

    /// The work queues held `ready` messages just now (both lanes together).
    pub fn record_ready(&self, ready: u32) {
        let mut state = self.lock();
        state.ready = Some(ready);
        if ready == 0 {
            state.waiting_since = None;
        } else if state.waiting_since.is_none() {
            state.waiting_since = Some(Instant::now());
        }
    }

    /// The state now.
    pub fn snapshot(&self) -> HealthSnapshot {
        let state = self.lock();
        let quiet_for = match state.waiting_since {
            Some(since) if state.ready.unwrap_or(0) > 0 => since.max(state.last_finished).elapsed(),
            _ => Duration::ZERO,
        };
        HealthSnapshot {
            consumer_connected: state.sessions > 0,
            ready: state.ready,
            quiet_for,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_consumer_counts_as_connected_while_its_guard_lives() {
        let health = WorkerHealth::new();
        assert!(!health.snapshot().consumer_connected);
        let guard = health.consumer_connected();
        assert!(health.snapshot().consumer_connected);
        drop(guard);
        assert!(!health.snapshot().consumer_connected);
    }

    #[test]
    fn quiet_time_counts_only_while_messages_wait() {
        let health = WorkerHealth::new();
        assert_eq!(health.snapshot().ready, None);
        health.record_ready(0);
        assert_eq!(health.snapshot().quiet_for, Duration::ZERO);
        health.record_ready(5);
        std::thread::sleep(Duration::from_millis(20));
        let quiet = health.snapshot().quiet_for;
        assert!(quiet >= Duration::from_millis(20), "{quiet:?}");
        health.delivery_finished();
        assert!(
            health.snapshot().quiet_for < quiet,
            "a finished delivery restarts the clock"
        );
        health.record_ready(0);
        assert_eq!(health.snapshot().quiet_for, Duration::ZERO);
    }
}

//! The api's side of the broker, shared by the request handlers and the outbox relay: where job
//! messages go (the connection pool and the topology), the bell that wakes the relay after a
//! commit, the relay's view of the broker for `/readyz`, and the (test-only) failpoint.
//!
//! Request handlers never publish: they write the outbox and ring the bell
//! ([`Publisher::wake_relay`]); [`crate::relay::run_relay`] does the publishing.

use std::sync::{Arc, Mutex, PoisonError};

use burrow_shared::Topology;
use tokio::sync::Notify;

use crate::failpoint::Failpoint;

/// Where job messages go, and the signals between handlers and the relay. Cheap to clone: the
/// clones share one bell and one health record.
#[derive(Clone)]
pub struct Publisher {
    /// Broker connections; the relay keeps one of them open while the broker is up.
    amqp: deadpool_lapin::Pool,
    /// The exchange messages are published to (and the queues the relay declares).
    topology: Topology,
    /// Shared with the relay task, so a handler's wake-up and the relay's health meet.
    signals: Arc<RelaySignals>,
    /// Test-only crash point, read from the config once at start-up.
    failpoint: Option<Failpoint>,
}

/// State shared by every clone of one [`Publisher`].
#[derive(Default)]
struct RelaySignals {
    /// Rung after each commit that added outbox rows. `Notify` keeps one permit when the relay
    /// is busy, so a wake-up during a batch is not lost and many wake-ups coalesce into one.
    wake: Notify,
    /// Written by the relay, read by `/readyz`. A std mutex: it is never held across `.await`.
    health: Mutex<BrokerHealth>,
}

/// The relay's view of the broker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerHealth {
    /// Whether the relay's latest attempt to reach the broker (connect, declare, publish)
    /// succeeded. `false` until it first connects.
    pub reachable: bool,
    /// Broker failures in a row since it was last reachable (0 while it is reachable).
    pub failures: u32,
    /// The latest broker error, for operators and logs; never sent to HTTP clients.
    pub last_error: Option<String>,
}

impl Publisher {
    /// A publisher to `topology`'s work exchange over `amqp`, with no failpoint armed.
    ///
    /// Building one does not contact the broker; the relay connects when it runs.
    pub fn new(amqp: deadpool_lapin::Pool, topology: Topology) -> Self {
        Publisher {
            amqp,
            topology,
            signals: Arc::default(),
            failpoint: None,
        }
    }

    /// Arms `failpoint` (test-only; see [`Failpoint`]).
    #[must_use]
    pub fn with_failpoint(mut self, failpoint: Option<Failpoint>) -> Self {
        self.failpoint = failpoint;
        self
    }

    /// The broker connection pool.
    pub fn pool(&self) -> &deadpool_lapin::Pool {
        &self.amqp
    }

    /// The exchange and queue names.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The armed failpoint, if any.
    pub fn failpoint(&self) -> Option<Failpoint> {
        self.failpoint
    }

    /// Tells the relay that new outbox rows are committed. Never blocks; if the relay is busy it
    /// runs another pass when it is done.
    pub fn wake_relay(&self) {
        self.signals.wake.notify_one();
    }

    /// Resolves at the next [`Publisher::wake_relay`] (or at once if one is pending).
    pub(crate) async fn relay_woken(&self) {
        self.signals.wake.notified().await;
    }

    /// A snapshot of the relay's view of the broker.
    pub fn broker_health(&self) -> BrokerHealth {
        self.health_mut(|health| health.clone())
    }

    /// Records that the broker answered; returns the state before, so the caller can log a
    /// recovery once.
    pub(crate) fn record_broker_up(&self) -> BrokerHealth {
        self.health_mut(|health| std::mem::replace(health, BrokerHealth::up()))
    }

    /// Records a broker failure; returns the state before, so the caller can log the first
    /// failure of an outage once.
    pub(crate) fn record_broker_down(&self, error: String) -> BrokerHealth {
        self.health_mut(|health| {
            let before = health.clone();
            health.reachable = false;
            health.failures = health.failures.saturating_add(1);
            health.last_error = Some(error);
            before
        })
    }

    fn health_mut<T>(&self, f: impl FnOnce(&mut BrokerHealth) -> T) -> T {
        // A panic while holding the lock cannot leave a half-written record worth refusing.
        let mut health = self
            .signals
            .health
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f(&mut health)
    }
}

impl BrokerHealth {
    fn up() -> Self {
        BrokerHealth {
            reachable: true,
            failures: 0,
            last_error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn health_counts_failures_until_the_broker_answers_again() {
        let pool = burrow_shared::amqp::amqp_pool("amqp://127.0.0.1:1/%2f", 1).expect("pool");
        let publisher = Publisher::new(pool, Topology::default());
        let shared = publisher.clone();
        assert_eq!(
            publisher.broker_health(),
            BrokerHealth::default(),
            "down until connected"
        );

        assert_eq!(
            shared.record_broker_down("refused".to_owned()).failures,
            0,
            "first"
        );
        assert_eq!(shared.record_broker_down("refused".to_owned()).failures, 1);
        let health = publisher.broker_health();
        assert!(!health.reachable);
        assert_eq!(health.failures, 2);
        assert_eq!(health.last_error.as_deref(), Some("refused"));

        assert_eq!(
            shared.record_broker_up().failures,
            2,
            "the recovery sees the outage"
        );
        assert_eq!(publisher.broker_health(), BrokerHealth::up());
    }
}

//! What the relay shares with the process around it: the wake-up bell, and its view of the
//! broker (for `/readyz`).

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

/// A cheap, clonable handle on a running [`super::OutboxRelay`].
#[derive(Clone, Default)]
pub struct RelayHandle {
    signals: Arc<Signals>,
}

#[derive(Default)]
struct Signals {
    wake: Notify,
    health: Mutex<BrokerHealth>,
}

/// The relay's latest view of the broker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerHealth {
    /// Whether the latest relay pass reached the broker (`false` until the first one does).
    pub reachable: bool,
    /// Passes failed in a row.
    pub failures: u32,
    /// The latest failure.
    pub last_error: Option<String>,
}

impl RelayHandle {
    /// Wakes the relay now instead of at its next poll (e.g. right after a commit in this
    /// process; commits elsewhere wake it through `NOTIFY`).
    pub fn wake(&self) {
        self.signals.wake.notify_one();
    }

    pub(super) async fn woken(&self) {
        self.signals.wake.notified().await;
    }

    /// The relay's latest view of the broker.
    pub fn broker_health(&self) -> BrokerHealth {
        self.health_mut(|health| health.clone())
    }

    /// Records a pass that reached the broker; returns the health before.
    pub(super) fn record_broker_up(&self) -> BrokerHealth {
        self.health_mut(|health| std::mem::replace(health, BrokerHealth::up()))
    }

    /// Records a pass that failed on the broker; returns the health before.
    pub(super) fn record_broker_down(&self, error: String) -> BrokerHealth {
        self.health_mut(|health| {
            let before = health.clone();
            health.reachable = false;
            health.failures = health.failures.saturating_add(1);
            health.last_error = Some(error);
            before
        })
    }

    fn health_mut<T>(&self, f: impl FnOnce(&mut BrokerHealth) -> T) -> T {
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

    #[test]
    fn health_counts_failures_until_the_broker_answers_again() {
        let handle = RelayHandle::default();
        let shared = handle.clone();
        assert_eq!(
            handle.broker_health(),
            BrokerHealth::default(),
            "down until connected"
        );
        assert_eq!(
            shared.record_broker_down("refused".to_owned()).failures,
            0,
            "first"
        );
        assert_eq!(shared.record_broker_down("refused".to_owned()).failures, 1);
        let health = handle.broker_health();
        assert!(!health.reachable);
        assert_eq!(health.failures, 2);
        assert_eq!(health.last_error.as_deref(), Some("refused"));
        assert_eq!(
            shared.record_broker_up().failures,
            2,
            "the recovery sees the outage"
        );
        assert_eq!(handle.broker_health(), BrokerHealth::up());
    }
}

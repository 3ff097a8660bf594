//! The api's side of the broker, shared by the request handlers: where job messages go (the
//! connection pool and the topology), the handle of this process's outbox relay (to wake it
//! after a commit, and its view of the broker for `/readyz`), and the (test-only) failpoint.
//!
//! Request handlers never publish: they write the outbox ([`burrow_shared::enqueue_many`]) and ring
//! the bell ([`Publisher::wake_relay`]); the relay ([`burrow_shared::relay`]) publishes.

use burrow_shared::relay::{BrokerHealth, RelayHandle};
use burrow_shared::Topology;

use crate::failpoint::Failpoint;

/// Cheap to clone: everything inside is shared.
#[derive(Clone)]
pub struct Publisher {
    amqp: burrow_shared::amqp::AmqpPool,
    topology: Topology,
    relay: RelayHandle,
    failpoint: Option<Failpoint>,
}

impl Publisher {
    /// A publisher over `amqp` for `topology`, with no failpoint and a fresh relay handle (give
    /// it to the relay: [`burrow_shared::relay::OutboxRelay::with_handle`]).
    pub fn new(amqp: burrow_shared::amqp::AmqpPool, topology: Topology) -> Self {
        Publisher {
            amqp,
            topology,
            relay: RelayHandle::default(),
            failpoint: None,
        }
    }

    /// The same publisher with a test-only failpoint armed (or none).
    #[must_use]
    pub fn with_failpoint(mut self, failpoint: Option<Failpoint>) -> Self {
        self.failpoint = failpoint;
        self
    }

    /// The broker connection pool.
    pub fn pool(&self) -> &burrow_shared::amqp::AmqpPool {
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

    /// The handle this process's relay reports to.
    pub fn relay(&self) -> RelayHandle {
        self.relay.clone()
    }

    /// Wakes the relay after a commit, so the message goes out now rather than at the next poll.
    pub fn wake_relay(&self) {
        self.relay.wake();
    }

    /// The relay's latest view of the broker.
    pub fn broker_health(&self) -> BrokerHealth {
        self.relay.broker_health()
    }
}

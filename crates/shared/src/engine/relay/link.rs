//! The relay's broker link: one confirm channel on a pooled connection, with the topology
//! declared on it, kept open across batches and replaced after an error.

use std::time::Duration;

use lapin::Channel;

use super::{RelayError, CONNECT_TIMEOUT};
use crate::engine::publish::open_confirm_channel;
use crate::engine::topology::Topology;

/// A confirm channel with the pooled connection it runs on (checked out while the channel
/// lives, so the pool does not hand that connection to anyone else meanwhile).
pub(super) struct Link {
    /// In confirm mode, the topology declared on it.
    pub(super) channel: Channel,
    /// Kept checked out of the pool while the channel lives.
    connection: crate::amqp::AmqpConnection,
}

/// The open link in `slot`, or a new one (connect, confirm channel, declare the topology).
pub(super) async fn ensure_link<'a>(
    slot: &'a mut Option<Link>,
    amqp: &crate::amqp::AmqpPool,
    topology: &Topology,
) -> Result<&'a Link, RelayError> {
    if slot.as_ref().is_some_and(|link| !link.is_open()) {
        if let Some(link) = slot.take() {
            link.close("reopening a closed channel").await;
        }
    }
    match slot {
        Some(link) => Ok(link),
        None => Ok(slot.insert(Link::open(amqp, topology).await?)),
    }
}

impl Link {
    /// Connects (bounded by [`CONNECT_TIMEOUT`]), opens a confirm channel, declares the topology.
    async fn open(amqp: &crate::amqp::AmqpPool, topology: &Topology) -> Result<Link, RelayError> {
        let open = async {
            let connection = amqp
                .get()
                .await
                .map_err(|e| RelayError::Connect(e.to_string()))?;
            let channel = open_confirm_channel(&connection).await?;
            topology.declare(&channel).await?;
            Ok::<_, RelayError>(Link {
                channel,
                connection,
            })
        };
        tokio::time::timeout(CONNECT_TIMEOUT, open)
            .await
            .map_err(|_| RelayError::Timeout(CONNECT_TIMEOUT, "connecting"))?
    }

    /// Whether both the connection and the channel are still up.
    pub(super) fn is_open(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }

    /// Closes the channel, best effort (it may already be gone); the connection goes back to
    /// the pool, which drops it on the next checkout if it is broken.
    pub(super) async fn close(self, reason: &str) {
        if self.channel.status().connected() {
            let closing = self.channel.close(200, reason.into());
            let _ = tokio::time::timeout(Duration::from_secs(1), closing).await;
        }
    }
}

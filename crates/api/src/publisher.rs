//! The api's side of the broker: publish one job message with a publisher confirm.

use burrow_shared::publish::{open_confirm_channel, publish_job, PublishError};
use burrow_shared::{JobMessage, Topology};

/// Publishes job messages over pooled connections.
#[derive(Clone)]
pub struct Publisher {
    amqp: deadpool_lapin::Pool,
    topology: Topology,
}

impl Publisher {
    /// A publisher to `topology`'s work exchange.
    pub fn new(amqp: deadpool_lapin::Pool, topology: Topology) -> Self {
        Publisher { amqp, topology }
    }

    /// The pool, for readiness checks.
    pub fn pool(&self) -> &deadpool_lapin::Pool {
        &self.amqp
    }

    /// Publishes `message` and waits for the broker's confirm.
    ///
    /// A channel lives for one publish: confirms are then never shared between requests, and a
    /// channel the broker closed (e.g. after an error) cannot poison later publishes.
    ///
    /// # Errors
    /// When the broker is unreachable, refuses or cannot route the message.
    pub async fn publish(&self, message: &JobMessage) -> Result<(), PublishError> {
        let connection = self
            .amqp
            .get()
            .await
            .map_err(|e| PublishError::NoConnection(e.to_string()))?;
        let channel = open_confirm_channel(&connection).await?;
        let published = publish_job(&channel, &self.topology, message).await;
        let _ = channel.close(200, "published".into()).await;
        published
    }
}

//! What a worker does with a delivery once its job has run: the acknowledgement decision.
//!
//! Acks are manual and sent only after the job's effect is committed in Postgres, so a worker
//! that dies mid-job leaves the message unacked and RabbitMQ redelivers it (at-least-once,
//! <https://www.rabbitmq.com/docs/confirms#consumer-acknowledgements>).

use std::time::Duration;

use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions, BasicRejectOptions};

/// Pause before a transient failure's message is requeued, so an outage (Postgres down) does
/// not spin through the queue's delivery limit in milliseconds.
pub const REQUEUE_DELAY: Duration = Duration::from_secs(1);

/// The decision for one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done with it: the job ended (succeeded or failed) or had already ended.
    Ack,
    /// It can never run (undecodable, unknown job): reject without requeue, so the queue's
    /// dead-letter exchange moves it to the DLQ.
    Reject {
        /// Why, for the log.
        reason: String,
    },
    /// A transient failure (database or broker unavailable): requeue after [`REQUEUE_DELAY`].
    /// The queue's delivery limit dead-letters a message that keeps failing.
    Requeue {
        /// Why, for the log.
        reason: String,
    },
}

impl Outcome {
    /// Sends the decision to the broker.
    ///
    /// Returns whether the broker was told (`false`: this delivery was already acknowledged).
    ///
    /// # Errors
    /// The broker error, e.g. the channel closed. The message is then redelivered, and
    /// processing it again is harmless: a finished job is acked without work.
    pub async fn apply(&self, delivery: &Delivery) -> Result<bool, lapin::Error> {
        match self {
            Outcome::Ack => delivery.ack(BasicAckOptions::default()).await,
            Outcome::Reject { .. } => delivery.reject(BasicRejectOptions { requeue: false }).await,
            Outcome::Requeue { .. } => {
                tokio::time::sleep(REQUEUE_DELAY).await;
                delivery
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..BasicNackOptions::default()
                    })
                    .await
            }
        }
    }
}

//! What a worker does with a delivery once its job has run: the acknowledgement decision.
//!
//! Acks are manual and sent only after the job's effect is committed in Postgres, so a worker
//! that dies mid-job leaves the message unacked and RabbitMQ redelivers it (at-least-once,
//! <https://www.rabbitmq.com/docs/confirms#consumer-acknowledgements>).

use std::time::Duration;

use burrow_shared::publish::{publish_dead_letter, DeadLetter};
use burrow_shared::Topology;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions, BasicRejectOptions};
use lapin::Channel;
use tracing::warn;

/// Pause before a transient failure's message is requeued, so an outage (Postgres down) does
/// not spin through the queue's delivery limit in milliseconds.
pub const REQUEUE_DELAY: Duration = Duration::from_secs(1);

/// The decision for one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done with it: the job ended, had already ended, or its retry is safely in a delay queue.
    Ack,
    /// It must not run again (undecodable, no such job, retries exhausted): a copy goes to the
    /// DLQ with the reason and attempts in headers, then the delivery is acked. If that publish
    /// fails, the delivery is rejected without requeue, so the queue's own dead-letter exchange
    /// moves it to the DLQ (without our headers).
    DeadLetter {
        /// Why, as the `x-burrow-reason` header.
        reason: String,
        /// Attempts made, as the `x-burrow-attempts` header.
        attempts: u32,
    },
    /// The retry could not be scheduled (the broker refused the publish): requeue after
    /// [`REQUEUE_DELAY`]. The queue's delivery limit dead-letters a message that keeps failing.
    Requeue {
        /// Why, for the log.
        reason: String,
    },
}

impl Outcome {
    /// Sends the decision to the broker; `publisher` is a confirm-mode channel for DLQ copies.
    ///
    /// Returns whether the broker was told (`false`: this delivery was already acknowledged).
    ///
    /// # Errors
    /// The broker error, e.g. the channel closed. The message is then redelivered, and
    /// processing it again is harmless: a finished job is acked without work.
    pub async fn apply(
        &self,
        delivery: &Delivery,
        publisher: &Channel,
        topology: &Topology,
    ) -> Result<bool, lapin::Error> {
        match self {
            Outcome::Ack => delivery.ack(BasicAckOptions::default()).await,
            Outcome::DeadLetter { reason, attempts } => {
                let dead = DeadLetter {
                    body: &delivery.data,
                    reason,
                    attempts: *attempts,
                };
                match publish_dead_letter(publisher, topology, &dead).await {
                    Ok(()) => delivery.ack(BasicAckOptions::default()).await,
                    Err(e) => {
                        warn!(error = %e, "could not publish to the DLQ; rejecting instead");
                        delivery.reject(BasicRejectOptions { requeue: false }).await
                    }
                }
            }
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

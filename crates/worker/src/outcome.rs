//! The decision for one delivery ([`Outcome`], made by [`crate::process`] without broker I/O)
//! and the one place that carries it out ([`Outcome::apply`]).
//!
//! Acks are manual and sent only after the job's state is committed in Postgres, so a worker
//! that dies mid-job leaves the message unacked and RabbitMQ redelivers it (at-least-once,
//! <https://www.rabbitmq.com/docs/confirms#consumer-acknowledgements>). A message that must
//! wait (a retry's backoff, a `run_at`, a snooze) is published to a delay queue with a
//! publisher confirm *before* the delivery is acked, so it is never in neither place.

use std::time::Duration;

use burrow_shared::park::park_step;
use burrow_shared::publish::{publish_dead_letter, publish_retry, DeadLetter};
use burrow_shared::{JobMessage, Topology};
use chrono::{DateTime, Utc};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions, BasicRejectOptions};
use lapin::Channel;
use tracing::warn;

/// Pause before a delivery is requeued after a failure to record its outcome, so an outage
/// (Postgres down) does not spin through the queue's delivery limit in milliseconds.
pub const REQUEUE_DELAY: Duration = Duration::from_secs(1);

/// The decision for one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done with it: the job ended, or had already ended.
    Ack,
    /// The next attempt: `message` (attempt + 1) goes to the delay queue of `delay` (the
    /// backoff) and expires after `wait` (the backoff less jitter), then the delivery is acked.
    Retry {
        /// The next attempt's message.
        message: JobMessage,
        /// The delay queue (its TTL).
        delay: Duration,
        /// The message's own expiration, at most `delay`.
        wait: Duration,
    },
    /// Not now: `message` waits in the delay queue of `delay` for `wait` (see
    /// [`burrow_shared::park`]), then comes back to the work queue; the delivery is acked.
    Park {
        /// The message to park, with its `run_at` if it has one.
        message: JobMessage,
        /// The delay queue.
        delay: Duration,
        /// The message's own expiration, at most `delay`.
        wait: Duration,
    },
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
    /// Back to the work queue as it is (`basic.nack` with requeue): after [`REQUEUE_DELAY`]
    /// when the outcome could not be recorded (`pause`), at once when a hard stop interrupted
    /// the run. The queue's delivery limit dead-letters a message that keeps coming back.
    Requeue {
        /// Why, for the log.
        reason: String,
        /// Wait [`REQUEUE_DELAY`] first.
        pause: bool,
    },
}

impl Outcome {
    /// Park `message` until `at` (its next hop, when `at` is further than the longest step).
    pub fn park_until(message: JobMessage, at: DateTime<Utc>) -> Outcome {
        let remaining = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        let (delay, wait) = park_step(remaining);
        Outcome::Park {
            message: JobMessage {
                run_at: Some(at),
                ..message
            },
            delay,
            wait,
        }
    }

    /// Park `message` unchanged for about `after` (rounded down to a park step).
    pub fn park_for(message: JobMessage, after: Duration) -> Outcome {
        let (delay, wait) = park_step(after);
        Outcome::Park {
            message,
            delay,
            wait,
        }
    }

    /// Requeue after a pause: recording the outcome failed.
    pub fn requeue(reason: impl Into<String>) -> Outcome {
        Outcome::Requeue {
            reason: reason.into(),
            pause: true,
        }
    }

    /// Carries the decision out; `publisher` is a confirm-mode channel for delay-queue and DLQ
    /// copies. A publish that is not confirmed turns into a requeue after [`REQUEUE_DELAY`].
    ///
    /// Returns whether the broker was told (`false`: lapin found the channel closed).
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
            Outcome::Retry {
                message,
                delay,
                wait,
            }
            | Outcome::Park {
                message,
                delay,
                wait,
            } => match publish_retry(publisher, topology, message, *delay, *wait).await {
                Ok(()) => delivery.ack(BasicAckOptions::default()).await,
                Err(e) => {
                    warn!(error = %e, "could not publish to the delay queue; requeueing");
                    requeue(delivery, true).await
                }
            },
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
            Outcome::Requeue { pause, .. } => requeue(delivery, *pause).await,
        }
    }
}

async fn requeue(delivery: &Delivery, pause: bool) -> Result<bool, lapin::Error> {
    if pause {
        tokio::time::sleep(REQUEUE_DELAY).await;
    }
    let requeue = BasicNackOptions {
        requeue: true,
        ..BasicNackOptions::default()
    };
    delivery.nack(requeue).await
}

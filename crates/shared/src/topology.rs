//! RabbitMQ names and the one function that declares them.
//!
//! ```text
//!  api ──publish(rk "work")──▶ {p}.jobs (direct) ──▶ {p}.jobs.work (quorum) ──▶ workers
//!                                                          │ reject / delivery limit
//!                                                          ▼
//!                                    {p}.jobs.dlx (fanout) ──▶ {p}.jobs.dead (quorum, the DLQ)
//!
//!  worker ──retry(rk "4s")──▶ {p}.jobs.retry (direct) ──▶ {p}.jobs.delay.4s (quorum, TTL 4 s)
//!                                                          │ expired: dead-lettered to
//!                                                          ▼
//!                                              {p}.jobs (rk "work") ──▶ {p}.jobs.work
//! ```
//!
//! Retries wait in delay queues, one per distinct backoff delay, named after their delay: a
//! queue-level `x-message-ttl` dead-letters each message back to the work exchange when it
//! expires (<https://www.rabbitmq.com/docs/ttl>, <https://www.rabbitmq.com/docs/dlx>). Naming
//! them by delay means a changed retry policy declares new queues instead of conflicting with
//! the old ones. Their dead-lettering is `at-least-once` (quorum queues, RabbitMQ ≥ 3.10), so a
//! waiting retry is not lost on the way back. The delayed-message plugin is not used: it is
//! unmaintained and keeps one unreplicated copy of each message.
//!
//! Everything is durable and the work queue is a quorum queue (replicated, and the queue type
//! RabbitMQ recommends for data safety: <https://www.rabbitmq.com/docs/quorum-queues>). Its
//! dead-letter exchange and delivery limit are set explicitly: RabbitMQ 4.x gives quorum queues a
//! default delivery limit of 20, 3.x gives none, and burrow must behave the same on both.
//!
//! Declaring is idempotent: both binaries declare on start. Declaring an existing queue with other
//! arguments fails with `PRECONDITION_FAILED`, which is why every argument lives here only.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use std::time::Duration;

use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, ExchangeKind};

use crate::retry::delay_label;

/// Default prefix of every exchange and queue name.
pub const DEFAULT_PREFIX: &str = "burrow";

/// Routing key of job messages on the work exchange.
pub const WORK_ROUTING_KEY: &str = "work";

/// How many times RabbitMQ redelivers one message (requeues after a nack or a lost consumer)
/// before it dead-letters it: a poison message that crashes workers cannot loop forever.
pub const WORK_DELIVERY_LIMIT: i64 = 10;

/// The exchange and queue names of one burrow installation.
///
/// The prefix separates installations sharing a vhost, and gives each test its own names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Direct exchange the api publishes jobs to.
    pub exchange: String,
    /// Quorum queue the workers consume from.
    pub work_queue: String,
    /// Fanout exchange the work queue dead-letters into.
    pub dead_letter_exchange: String,
    /// Quorum queue where dead-lettered (poison) messages rest for inspection and re-drive.
    pub dead_letter_queue: String,
    /// Direct exchange retries are published to, routing key = the delay label (`4s`).
    pub retry_exchange: String,
    prefix: String,
}

impl Default for Topology {
    fn default() -> Self {
        Topology::with_prefix(DEFAULT_PREFIX)
    }
}

impl Topology {
    /// Names under `prefix`: `{prefix}.jobs`, `{prefix}.jobs.work`, `{prefix}.jobs.dlx`,
    /// `{prefix}.jobs.dead`.
    pub fn with_prefix(prefix: &str) -> Self {
        Topology {
            exchange: format!("{prefix}.jobs"),
            work_queue: format!("{prefix}.jobs.work"),
            dead_letter_exchange: format!("{prefix}.jobs.dlx"),
            dead_letter_queue: format!("{prefix}.jobs.dead"),
            retry_exchange: format!("{prefix}.jobs.retry"),
            prefix: prefix.to_owned(),
        }
    }

    /// The name prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The delay queue holding retries that wait `delay`: `{prefix}.jobs.delay.{label}`.
    pub fn delay_queue(&self, delay: Duration) -> String {
        format!("{}.jobs.delay.{}", self.prefix, delay_label(delay))
    }

    /// Declares the retry exchange and one delay queue per delay in `delays`, idempotently.
    /// Each queue's TTL is its delay; expired messages go back to the work queue.
    ///
    /// # Errors
    /// The broker's error.
    pub async fn declare_delay_queues(
        &self,
        channel: &Channel,
        delays: &[Duration],
    ) -> Result<(), lapin::Error> {
        channel
            .exchange_declare(
                self.retry_exchange.as_str().into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        for delay in delays {
            let queue = self.delay_queue(*delay);
            let mut arguments = quorum_arguments();
            let ttl_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
            arguments.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl_ms));
            arguments.insert("x-dead-letter-exchange".into(), long_string(&self.exchange));
            arguments.insert(
                "x-dead-letter-routing-key".into(),
                long_string(WORK_ROUTING_KEY),
            );
            // At-least-once dead-lettering needs overflow=reject-publish (quorum queues only).
            arguments.insert(
                "x-dead-letter-strategy".into(),
                long_string("at-least-once"),
            );
            arguments.insert("x-overflow".into(), long_string("reject-publish"));
            channel
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions::durable(),
                    arguments,
                )
                .await?;
            channel
                .queue_bind(
                    queue.as_str().into(),
                    self.retry_exchange.as_str().into(),
                    delay_label(*delay).as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }

    /// Declares the exchanges, queues and bindings (durable, quorum queues), idempotently.
    ///
    /// # Errors
    /// The broker's error, e.g. `PRECONDITION_FAILED` if a queue of the same name exists with
    /// other arguments; the channel is closed by the broker in that case.
    pub async fn declare(&self, channel: &Channel) -> Result<(), lapin::Error> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                self.exchange.as_str().into(),
                ExchangeKind::Direct,
                durable,
                FieldTable::default(),
            )
            .await?;
        channel
            .exchange_declare(
                self.dead_letter_exchange.as_str().into(),
                ExchangeKind::Fanout,
                durable,
                FieldTable::default(),
            )
            .await?;

        channel
            .queue_declare(
                self.dead_letter_queue.as_str().into(),
                QueueDeclareOptions::durable(),
                quorum_arguments(),
            )
            .await?;
        channel
            .queue_bind(
                self.dead_letter_queue.as_str().into(),
                self.dead_letter_exchange.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;

        let mut work_arguments = quorum_arguments();
        work_arguments.insert(
            "x-dead-letter-exchange".into(),
            long_string(&self.dead_letter_exchange),
        );
        work_arguments.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(WORK_DELIVERY_LIMIT),
        );
        channel
            .queue_declare(
                self.work_queue.as_str().into(),
                QueueDeclareOptions::durable(),
                work_arguments,
            )
            .await?;
        channel
            .queue_bind(
                self.work_queue.as_str().into(),
                self.exchange.as_str().into(),
                WORK_ROUTING_KEY.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(())
    }
}

fn quorum_arguments() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert("x-queue-type".into(), long_string("quorum"));
    arguments
}

fn long_string(text: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(text.as_bytes().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_share_the_prefix() {
        let topology = Topology::with_prefix("t1");
        assert_eq!(topology.exchange, "t1.jobs");
        assert_eq!(topology.work_queue, "t1.jobs.work");
        assert_eq!(topology.dead_letter_exchange, "t1.jobs.dlx");
        assert_eq!(topology.dead_letter_queue, "t1.jobs.dead");
        assert_eq!(topology.retry_exchange, "t1.jobs.retry");
        assert_eq!(
            topology.delay_queue(Duration::from_secs(4)),
            "t1.jobs.delay.4s"
        );
    }
}

//! Publishing job messages with publisher confirms.
//!
//! A publish counts only when the broker confirms it (`basic.ack` on a channel in confirm mode,
//! <https://www.rabbitmq.com/docs/confirms#publisher-confirms>) and did not return it as
//! unroutable (`mandatory` flag). Messages are persistent (delivery mode 2), so with a quorum
//! queue a confirmed message survives a broker restart.
//!
//! Job messages are routed by their queue ([`JobMessage::queue_name`]) and priority
//! ([`Lane::of`]): to the high or the normal work queue of their queue, and a retry to the delay
//! queue of its own queue and lane, so it comes back where it left.

use std::time::Duration;

use chrono::Utc;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection};

use crate::message::JobMessage;
use crate::topology::{Lane, Topology};

/// AMQP delivery mode 2: the broker writes the message to disk.
const PERSISTENT: u8 = 2;

/// Why a job message was not accepted by the broker. Every case is transient from the caller's
/// point of view: nothing was enqueued and the same publish may succeed later.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// No connection to the broker could be had.
    #[error("no broker connection: {0}")]
    NoConnection(String),
    /// The connection or channel failed, or the broker refused an operation.
    #[error("broker error: {0}")]
    Broker(#[from] lapin::Error),
    /// The broker answered `basic.nack`: it could not take responsibility for the message.
    #[error("the broker refused the message (basic.nack)")]
    Nacked,
    /// No queue is bound for the routing key (the topology is missing).
    #[error("the message was returned as unroutable: {0}")]
    Unroutable(String),
}

/// Opens a channel in confirm mode (`confirm.select`) on `connection`.
///
/// # Errors
/// The broker's error if the channel cannot be opened.
pub async fn open_confirm_channel(connection: &Connection) -> Result<Channel, lapin::Error> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

/// Publishes `message` to the work exchange and waits for the broker's confirm. Its queue and
/// priority pick the work queue: routing key [`Lane::routing_key_in`] its queue of [`Lane::of`]
/// its priority.
///
/// `channel` must be in confirm mode (see [`open_confirm_channel`]).
///
/// # Errors
/// [`PublishError`] when the broker did not confirm the message as routed and stored.
pub async fn publish_job(
    channel: &Channel,
    topology: &Topology,
    message: &JobMessage,
) -> Result<(), PublishError> {
    let properties = job_properties(message);
    publish_confirmed(
        channel,
        &topology.exchange,
        &Lane::of(message.priority).routing_key_in(message.queue_name()),
        &message.encode(),
        properties,
    )
    .await
}

/// Publishes `message` (the next attempt) to the delay queue for `delay` of its queue and its
/// priority's lane ([`Lane::delay_routing_key_in`]), expiring after `wait` (≤ `delay`, the
/// jittered wait), from where it returns to that lane's work queue in its queue.
///
/// # Errors
/// [`PublishError`] when the broker did not confirm it.
pub async fn publish_retry(
    channel: &Channel,
    topology: &Topology,
    message: &JobMessage,
    delay: Duration,
    wait: Duration,
) -> Result<(), PublishError> {
    // Per-message expiration (a string of milliseconds) under the queue's TTL adds the jitter.
    let properties =
        job_properties(message).with_expiration(ShortString::from(wait.as_millis().to_string()));
    publish_confirmed(
        channel,
        &topology.retry_exchange,
        &Lane::of(message.priority).delay_routing_key_in(message.queue_name(), delay),
        &message.encode(),
        properties,
    )
    .await
}

/// Why a message was dead-lettered, as headers on its DLQ copy.
#[derive(Debug, Clone)]
pub struct DeadLetter<'a> {
    /// The original body, unchanged.
    pub body: &'a [u8],
    /// Why it is dead: the last error, or why it could not be decoded.
    pub reason: &'a str,
    /// Attempts made (0 when the message never ran).
    pub attempts: u32,
}

/// Header names on DLQ messages.
pub mod headers {
    /// Why the message was dead-lettered.
    pub const REASON: &str = "x-burrow-reason";
    /// Attempts made before it was dead-lettered.
    pub const ATTEMPTS: &str = "x-burrow-attempts";
}

/// Publishes a copy of a dead message to the dead-letter exchange (so to the DLQ) with
/// [`headers::REASON`] and [`headers::ATTEMPTS`].
///
/// # Errors
/// [`PublishError`] when the broker did not confirm it.
pub async fn publish_dead_letter(
    channel: &Channel,
    topology: &Topology,
    dead: &DeadLetter<'_>,
) -> Result<(), PublishError> {
    let mut table = FieldTable::default();
    table.insert(
        headers::REASON.into(),
        AMQPValue::LongString(dead.reason.into()),
    );
    table.insert(
        headers::ATTEMPTS.into(),
        AMQPValue::LongLongInt(i64::from(dead.attempts)),
    );
    let properties = BasicProperties::default()
        .with_delivery_mode(PERSISTENT)
        .with_app_id("burrow".into())
        .with_headers(table);
    publish_confirmed(
        channel,
        &topology.dead_letter_exchange,
        "",
        dead.body,
        properties,
    )
    .await
}

fn job_properties(message: &JobMessage) -> BasicProperties {
    let properties = BasicProperties::default()
        .with_delivery_mode(PERSISTENT)
        .with_content_type("application/json".into())
        .with_message_id(ShortString::from(message.job_id.to_string()))
        .with_correlation_id(ShortString::from(message.correlation_id.to_string()))
        .with_type(ShortString::from(message.kind.as_str()))
        .with_app_id("burrow".into())
        // Informational: the lane (the queue) is what orders jobs. Within one lane even a 4.x
        // quorum queue sees a single level (0–4 normal, 5–9 high), so this changes no order.
        .with_priority(message.priority.min(9))
        .with_timestamp(u64::try_from(Utc::now().timestamp()).unwrap_or_default());
    // W3C trace context as AMQP headers, where tracing tools and other consumers look for it.
    match &message.trace {
        Some(trace) => {
            let mut headers = FieldTable::default();
            trace.add_to_amqp(&mut headers);
            properties.with_headers(headers)
        }
        None => properties,
    }
}

/// Publishes with `mandatory` and waits for the confirm; unroutable or nacked is an error.
async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
) -> Result<(), PublishError> {
    let confirmation = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            body,
            properties,
        )
        .await?
        .await?;
    match confirmation {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(returned)) => Err(PublishError::Unroutable(
            returned.reply_text.as_str().to_owned(),
        )),
        Confirmation::Nack(_) => Err(PublishError::Nacked),
        // The channel was not in confirm mode: a programming error, reported as a refusal
        // rather than silently treated as success.
        Confirmation::NotRequested => Err(PublishError::Nacked),
    }
}

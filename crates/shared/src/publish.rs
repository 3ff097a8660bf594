//! Publishing job messages with publisher confirms.
//!
//! A publish counts only when the broker confirms it (`basic.ack` on a channel in confirm mode,
//! <https://www.rabbitmq.com/docs/confirms#publisher-confirms>) and did not return it as
//! unroutable (`mandatory` flag). Messages are persistent (delivery mode 2), so with a quorum
//! queue a confirmed message survives a broker restart.

use chrono::Utc;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel, Confirmation, Connection};

use crate::message::JobMessage;
use crate::topology::{Topology, WORK_ROUTING_KEY};

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

/// Publishes `message` to the work exchange and waits for the broker's confirm.
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
    let properties = BasicProperties::default()
        .with_delivery_mode(PERSISTENT)
        .with_content_type("application/json".into())
        .with_message_id(ShortString::from(message.job_id.to_string()))
        .with_correlation_id(ShortString::from(message.correlation_id.to_string()))
        .with_type(ShortString::from(message.kind.as_str()))
        .with_app_id("burrow".into())
        .with_timestamp(u64::try_from(Utc::now().timestamp()).unwrap_or_default());
    let confirmation = channel
        .basic_publish(
            topology.exchange.as_str().into(),
            WORK_ROUTING_KEY.into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            &message.encode(),
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

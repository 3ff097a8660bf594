//! The raw floor of per-job overhead: a bare lapin loop that publishes N persistent messages
//! with publisher confirms and consumes them with manual acks and prefetch 100, on the same
//! broker and the same queue type (a durable quorum queue) as burrow's work queue, with bodies
//! of a job message's size. No database, no api.
//!
//! The publisher sends batches of 100 and waits for their confirms before the next batch (the
//! shape of burrow's outbox relay); the consumer, on its own connection, acks each delivery
//! as it arrives. Both run at once; the time runs from the first publish to the last ack.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use burrow_shared::JobMessage;
use futures::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde::Serialize;
use tokio_util::task::AbortOnDropHandle;
use uuid::Uuid;

use crate::cpu::{CpuBreakdown, CpuMeter};

/// Messages published before their confirms are awaited (burrow's relay takes 100 rows).
const CONFIRM_BATCH: u64 = 100;
/// AMQP delivery mode 2: persistent.
const PERSISTENT: u8 = 2;

/// What the raw loop took.
#[derive(Debug, Clone, Serialize)]
pub struct RawAmqp {
    /// Messages published, confirmed, delivered and acked.
    pub messages: u64,
    /// The consumer's prefetch.
    pub prefetch: u16,
    /// Body size in bytes.
    pub body_bytes: usize,
    /// First publish to last ack.
    pub secs: f64,
    /// Messages per second.
    pub per_sec: f64,
    /// First publish to last confirm.
    pub publish_secs: f64,
    /// CPU per component over the run.
    pub cpu: CpuBreakdown,
}

/// Runs the loop on `queue` (declared as a quorum queue, deleted afterwards) and gives up
/// after `deadline`.
///
/// # Errors
/// A broker error, a nacked publish, or the deadline.
pub async fn run(
    amqp_url: &str,
    queue: &str,
    messages: u64,
    prefetch: u16,
    deadline: Duration,
) -> anyhow::Result<RawAmqp> {
    let consumer_connection = Connection::connect(amqp_url, ConnectionProperties::default())
        .await
        .context("connecting to AMQP_URL")?;
    let publisher_connection = Connection::connect(amqp_url, ConnectionProperties::default())
        .await
        .context("connecting to AMQP_URL")?;
    let channel = consumer_connection.create_channel().await?;
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    // A leftover from an interrupted run would hold stale messages: start from an empty queue.
    channel
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await?;
    channel
        .queue_declare(queue.into(), QueueDeclareOptions::durable(), arguments)
        .await?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let mut deliveries = channel
        .basic_consume(
            queue.into(),
            "burrow-bench-raw".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;

    let publisher = publisher_connection.create_channel().await?;
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let body = JobMessage::new(Uuid::now_v7(), "noop", Uuid::new_v4()).encode();
    let properties = BasicProperties::default()
        .with_delivery_mode(PERSISTENT)
        .with_content_type("application/json".into());

    let meter = CpuMeter::start(None, None);
    let started = Instant::now();
    // Aborted if this function returns early, so no consumer outlives a failed run.
    let consumer = AbortOnDropHandle::new(tokio::spawn(async move {
        let mut acked = 0;
        while acked < messages {
            match deliveries.next().await {
                Some(Ok(delivery)) => {
                    delivery.ack(BasicAckOptions::default()).await?;
                    acked += 1;
                }
                Some(Err(e)) => return Err(anyhow::Error::from(e).context("consuming")),
                None => anyhow::bail!("the broker cancelled the consumer"),
            }
        }
        Ok(Instant::now())
    }));
    let publish = async {
        let mut sent = 0;
        while sent < messages {
            let batch = CONFIRM_BATCH.min(messages - sent);
            let mut confirms = Vec::with_capacity(batch as usize);
            for _ in 0..batch {
                confirms.push(
                    publisher
                        .basic_publish(
                            "".into(),
                            queue.into(),
                            BasicPublishOptions::default(),
                            &body,
                            properties.clone(),
                        )
                        .await?,
                );
            }
            for confirm in confirms {
                anyhow::ensure!(confirm.await?.is_ack(), "the broker nacked a publish");
            }
            sent += batch;
        }
        Ok::<_, anyhow::Error>(started.elapsed())
    };
    let published = tokio::time::timeout(deadline, publish)
        .await
        .context("the raw publisher missed its deadline")??;
    let finished = tokio::time::timeout(deadline.saturating_sub(started.elapsed()), consumer)
        .await
        .context("the raw consumer missed its deadline")?
        .context("the raw consumer panicked")??;
    let cpu = meter.finish();
    let secs = finished.duration_since(started).as_secs_f64();

    let _ = channel
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await;
    let _ = publisher_connection.close(200, "done".into()).await;
    let _ = consumer_connection.close(200, "done".into()).await;
    Ok(RawAmqp {
        messages,
        prefetch,
        body_bytes: body.len(),
        secs,
        per_sec: messages as f64 / secs,
        publish_secs: published.as_secs_f64(),
        cpu,
    })
}

//! The consumer loop: prefetch-limited, manually acked, N jobs at once, drained on shutdown.

use std::sync::Arc;

use anyhow::{bail, Context as _};
use burrow_shared::Topology;
use futures::StreamExt as _;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::process::{process_delivery, JobContext};

/// Consumer settings.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// Jobs run at once.
    pub concurrency: usize,
    /// `basic.qos` prefetch count: unacked messages the broker may push to this consumer.
    pub prefetch: u16,
    /// How long in-flight jobs may take to finish after shutdown is requested.
    pub drain_timeout: std::time::Duration,
}

/// Consumes the work queue until `shutdown` is cancelled (or the connection fails).
///
/// Declares the topology, sets `basic.qos`, consumes with manual acks and runs up to
/// `concurrency` jobs at once. On shutdown: cancels the consumer (`basic.cancel`) so no new
/// deliveries arrive, lets in-flight jobs finish for up to `drain_timeout`, then closes the
/// channel; the broker requeues whatever is still unacked.
///
/// # Errors
/// When the broker is unreachable, the topology cannot be declared, or the consumer is
/// cancelled by the broker (e.g. the queue was deleted).
pub async fn consume(
    amqp: &deadpool_lapin::Pool,
    topology: &Topology,
    ctx: JobContext,
    settings: &ConsumerSettings,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let connection = amqp.get().await.context("connecting to RabbitMQ")?;
    let channel = connection.create_channel().await?;
    topology
        .declare(&channel)
        .await
        .context("declaring the topology")?;
    channel
        .basic_qos(settings.prefetch, BasicQosOptions::default())
        .await?;
    let consumer_tag = format!("{}#{}", ctx.worker_id, uuid::Uuid::new_v4().simple());
    let mut deliveries = channel
        .basic_consume(
            topology.work_queue.as_str().into(),
            consumer_tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    info!(
        queue = %topology.work_queue,
        concurrency = settings.concurrency,
        prefetch = settings.prefetch,
        worker = %ctx.worker_id,
        "consuming"
    );

    let ctx = Arc::new(ctx);
    let slots = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    let in_flight = TaskTracker::new();
    let ended = loop {
        let slot = tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            slot = slots.clone().acquire_owned() => slot?,
        };
        let delivery = tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            delivery = deliveries.next() => delivery,
        };
        let delivery = match delivery {
            Some(Ok(delivery)) => delivery,
            Some(Err(e)) => break Err(anyhow::Error::from(e).context("consuming")),
            None => break Err(anyhow::anyhow!("the broker cancelled the consumer")),
        };
        let ctx = ctx.clone();
        in_flight.spawn(async move {
            let outcome = process_delivery(&ctx, &delivery.data).await;
            if let Err(e) = outcome.apply(&delivery).await {
                warn!(error = %e, ?outcome, "could not acknowledge; the broker will redeliver");
            }
            drop(slot);
        });
    };

    info!(
        in_flight = in_flight.len(),
        "stopping: cancelling the consumer and draining"
    );
    if let Err(e) = channel
        .basic_cancel(consumer_tag.as_str().into(), BasicCancelOptions::default())
        .await
    {
        warn!(error = %e, "basic.cancel failed");
    }
    in_flight.close();
    if tokio::time::timeout(settings.drain_timeout, in_flight.wait())
        .await
        .is_err()
    {
        warn!(
            left = in_flight.len(),
            "drain timeout passed; unacked jobs go back to the queue"
        );
    }
    // Closing the channel returns every unacked delivery to the queue.
    let _ = channel.close(200, "worker stopping".into()).await;
    if ended.is_ok() && !shutdown.is_cancelled() {
        bail!("consumer ended unexpectedly");
    }
    ended
}

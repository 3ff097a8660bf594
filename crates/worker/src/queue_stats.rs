//! The queue gauges: every [`REFRESH`], a passive `queue.declare` of the work queue and the DLQ
//! reads their ready messages and consumers (the broker's own counts, no management plugin
//! needed) into `burrow_queue_messages{queue}` and `burrow_queue_consumers{queue}`, and the work
//! queue's backlog into [`WorkerHealth`] for `/readyz`.

use std::time::Duration;

use anyhow::Context as _;
use burrow_shared::Topology;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::Channel;
use tokio_util::sync::CancellationToken;

use crate::health::WorkerHealth;
use crate::metrics;

/// How often the queues are looked at.
pub const REFRESH: Duration = Duration::from_secs(5);

/// Refreshes the queue gauges every [`REFRESH`] until `shutdown`. Broker errors are logged at
/// debug level (the consumer reports outages) and the gauges keep their last values.
pub async fn run_queue_stats(
    amqp: deadpool_lapin::Pool,
    topology: Topology,
    health: WorkerHealth,
    shutdown: CancellationToken,
) {
    loop {
        if let Err(e) = refresh(&amqp, &topology, &health).await {
            tracing::debug!(error = format!("{e:#}"), "could not read the queue sizes");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(REFRESH) => {}
        }
    }
}

/// One look at both queues, on a short-lived channel (a failed passive declare closes it).
async fn refresh(
    amqp: &deadpool_lapin::Pool,
    topology: &Topology,
    health: &WorkerHealth,
) -> anyhow::Result<()> {
    let connection = amqp.get().await.context("connecting to RabbitMQ")?;
    let channel = connection.create_channel().await?;
    drop(connection);
    let result = async {
        let (ready, consumers) = counts(&channel, &topology.work_queue).await?;
        metrics::record_queue(&topology.work_queue, ready, consumers);
        health.record_ready(ready);
        let (ready, consumers) = counts(&channel, &topology.dead_letter_queue).await?;
        metrics::record_queue(&topology.dead_letter_queue, ready, consumers);
        anyhow::Ok(())
    }
    .await;
    if channel.status().connected() {
        let _ = channel.close(200, "queue sizes read".into()).await;
    }
    result
}

/// Ready messages and consumers of `queue` (a passive declare: fails if the queue is missing).
async fn counts(channel: &Channel, queue: &str) -> anyhow::Result<(u32, u32)> {
    let queue = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("passive declare of {queue}"))?;
    Ok((queue.message_count(), queue.consumer_count()))
}

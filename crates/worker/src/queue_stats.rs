//! The queue gauges: every [`REFRESH`], a passive `queue.declare` of both work queues (normal
//! and high priority) of every queue the worker consumes (`WORKER_QUEUES`) and the DLQ reads
//! their ready messages and consumers (the broker's own counts, no management plugin needed)
//! into `burrow_queue_messages{queue}` and `burrow_queue_consumers{queue}` (`queue` being the
//! broker's queue name, `burrow.jobs.q.imports` for a named queue's), and the consumed work
//! queues' backlog (all lanes together) into [`WorkerHealth`] for `/readyz`.

use std::time::Duration;

use anyhow::Context as _;
use burrow_shared::engine::queue_counts::queue_counts;
use burrow_shared::topology::Lane;
use burrow_shared::Topology;
use lapin::Channel;
use tokio_util::sync::CancellationToken;

use crate::health::WorkerHealth;
use crate::metrics;

/// How often the queues are looked at.
pub const REFRESH: Duration = Duration::from_secs(5);

/// Refreshes the queue gauges of `queues` (names as in [`Topology::queues`]) every [`REFRESH`]
/// until `shutdown`. Broker errors are logged at debug level (the consumer reports outages)
/// and the gauges keep their last values.
pub async fn run_queue_stats(
    amqp: burrow_shared::amqp::AmqpPool,
    topology: Topology,
    queues: Vec<String>,
    health: WorkerHealth,
    shutdown: CancellationToken,
) {
    loop {
        if let Err(e) = refresh(&amqp, &topology, &queues, &health).await {
            tracing::debug!(error = format!("{e:#}"), "could not read the queue sizes");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(REFRESH) => {}
        }
    }
}

/// One look at the queues, on a short-lived channel (a failed passive declare closes it).
async fn refresh(
    amqp: &burrow_shared::amqp::AmqpPool,
    topology: &Topology,
    queues: &[String],
    health: &WorkerHealth,
) -> anyhow::Result<()> {
    let connection = amqp.get().await.context("connecting to RabbitMQ")?;
    let channel = connection.create_channel().await?;
    drop(connection);
    let result = async {
        // A job waits whichever lane it is in: the backlog is every consumed work queue.
        let mut backlog = 0u32;
        let routes: Vec<(&String, Lane)> = queues
            .iter()
            .flat_map(|name| [Lane::Normal, Lane::High].map(|lane| (name, lane)))
            .collect();
        for (name, lane) in routes {
            let queue = topology.work_queue_in(name, lane);
            let (ready, consumers) = counts(&channel, &queue).await?;
            metrics::record_queue(&queue, ready, consumers);
            backlog = backlog.saturating_add(ready);
        }
        health.record_ready(backlog);
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
    let counts = queue_counts(channel, queue)
        .await
        .with_context(|| format!("passive declare of {queue}"))?;
    Ok((counts.ready, counts.consumers))
}

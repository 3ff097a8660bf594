//! The consumer loop: prefetch-limited, manually acked, N jobs at once, drained on shutdown,
//! and re-established with backoff when the broker connection is lost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use backon::BackoffBuilder as _;
use burrow_shared::publish::open_confirm_channel;
use burrow_shared::telemetry::TraceContext;
use burrow_shared::Topology;
use futures::StreamExt as _;
use lapin::options::BasicQosOptions;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::deliveries::consume_lanes;
use crate::metrics;
use crate::process::{process_delivery, JobContext};

/// Consumer settings.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// Jobs run at once.
    pub concurrency: usize,
    /// `basic.qos` prefetch count: unacked messages the broker may push to this consumer.
    pub prefetch: u16,
    /// How long in-flight jobs may take to finish after shutdown is requested (the soft stop).
    pub drain_timeout: Duration,
    /// After the drain timeout, how long runs whose tokens were cancelled (the hard stop) may
    /// take to return and requeue their messages before the channel closes anyway.
    pub hard_stop_grace: Duration,
    /// The queues consumed (`WORKER_QUEUES`), both lanes of each, high first
    /// ([`burrow_shared::topology`], "Queues per kind"); declared with their delay queues.
    pub queues: Vec<String>,
}

/// Default [`ConsumerSettings::hard_stop_grace`].
pub const HARD_STOP_GRACE: Duration = Duration::from_secs(5);

/// A session that lived this long counts as healthy: the reconnect backoff starts over.
const HEALTHY_SESSION: Duration = Duration::from_secs(30);

/// Consumes the work queues of [`ConsumerSettings::queues`] (high priority first) until
/// `shutdown` is cancelled, reconnecting after broker failures with exponential backoff and
/// jitter (250 ms up to 30 s). Each new session re-declares the topology (with those queues),
/// so a broker that lost its definitions is repaired.
///
/// # Errors
/// An invalid queue name in [`ConsumerSettings::queues`]; otherwise failures are logged and
/// retried until shutdown.
pub async fn consume(
    amqp: &burrow_shared::amqp::AmqpPool,
    topology: &Topology,
    ctx: JobContext,
    settings: &ConsumerSettings,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    anyhow::ensure!(!settings.queues.is_empty(), "no queue to consume");
    let ctx = Arc::new(ctx);
    let topology = &topology
        .clone()
        .with_queues(settings.queues.clone())
        .context("WORKER_QUEUES")?;
    let mut backoff = reconnect_backoff();
    loop {
        let started = Instant::now();
        let session = consume_session(amqp, topology, &ctx, settings, &shutdown).await;
        if shutdown.is_cancelled() {
            return session;
        }
        if started.elapsed() > HEALTHY_SESSION {
            backoff = reconnect_backoff();
        }
        let delay = backoff.next().unwrap_or(Duration::from_secs(30));
        match session {
            Ok(()) => warn!(?delay, "consumer session ended; reconnecting"),
            Err(e) => warn!(
                error = format!("{e:#}"),
                ?delay,
                "consumer session failed; reconnecting"
            ),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

fn reconnect_backoff() -> impl Iterator<Item = Duration> {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(250))
        .with_max_delay(Duration::from_secs(30))
        .with_jitter()
        .without_max_times()
        .build()
}

/// One connection's worth of consuming. Returns `Ok` after a requested shutdown (drained), an
/// error when the connection or consumer fails.
///
/// On shutdown (the soft stop): cancels the consumer (`basic.cancel`) so no new deliveries
/// arrive and lets in-flight jobs finish for up to `drain_timeout`. Then the hard stop: cancels
/// the runs' tokens and gives them `hard_stop_grace` to return (each gives its attempt back and
/// requeues its message), then closes the channels; the broker requeues whatever is still
/// unacked. On a failure it does not wait: in-flight jobs finish on
/// their own and their acks fail, so the broker redelivers them (harmless, jobs are idempotent).
async fn consume_session(
    amqp: &burrow_shared::amqp::AmqpPool,
    topology: &Topology,
    ctx: &Arc<JobContext>,
    settings: &ConsumerSettings,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let connection = amqp.get().await.context("connecting to RabbitMQ")?;
    let channel = connection.create_channel().await?;
    topology
        .declare(&channel)
        .await
        .context("declaring the topology")?;
    // The retry delays of every kind, and the park steps (run_at, snooze, hand-back).
    let mut delays = ctx.retry_delays();
    delays.extend(burrow_shared::park::PARK_STEPS);
    delays.sort();
    delays.dedup();
    topology
        .declare_delay_queues(&channel, &delays)
        .await
        .context("declaring the delay queues")?;
    let publisher = open_confirm_channel(&connection).await?;
    channel
        .basic_qos(settings.prefetch, BasicQosOptions::default())
        .await?;
    // Both work queues of each queue, high first: a free slot always takes a high-priority
    // delivery first.
    let mut deliveries =
        consume_lanes(&channel, topology, &settings.queues, &ctx.worker_id).await?;
    // Ready (for `/readyz`) from here until this session ends, however it ends.
    let _connected = ctx.health.consumer_connected();
    info!(
        queues = %deliveries.queues.join(","),
        concurrency = settings.concurrency,
        prefetch = settings.prefetch,
        worker = %ctx.worker_id,
        "consuming"
    );

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
        let (ctx, publisher, topology) = (ctx.clone(), publisher.clone(), topology.clone());
        in_flight.spawn(async move {
            let _gauge = metrics::InFlight::enter();
            let trace = TraceContext::from_amqp(delivery.properties.headers().as_ref());
            let outcome = process_delivery(&ctx, &delivery.data, trace).await;
            ctx.health.delivery_finished();
            match outcome.apply(&delivery, &publisher, &topology).await {
                Ok(true) => {}
                // lapin answers `Ok(false)` instead of an error when the channel has died.
                Ok(false) => warn!(
                    ?outcome,
                    "channel gone before the ack; the broker will redeliver"
                ),
                Err(e) => {
                    warn!(error = %e, ?outcome, "could not acknowledge; the broker will redeliver")
                }
            }
            drop(slot);
        });
    };
    ended?;

    info!(
        in_flight = in_flight.len(),
        "stopping: cancelling the consumer and draining"
    );
    deliveries.cancel(&channel).await;
    in_flight.close();
    if tokio::time::timeout(settings.drain_timeout, in_flight.wait())
        .await
        .is_err()
    {
        // The hard stop: every run's token fires; a run that stops gives its attempt back and
        // requeues its message itself.
        warn!(
            left = in_flight.len(),
            "drain timeout passed; cancelling the runs left (hard stop)"
        );
        ctx.hard_stop.cancel();
        if tokio::time::timeout(settings.hard_stop_grace, in_flight.wait())
            .await
            .is_err()
        {
            warn!(
                left = in_flight.len(),
                "runs ignored their cancellation; their messages go back with the channel"
            );
        }
    }
    // Closing the channel returns every unacked delivery to the queue.
    let _ = channel.close(200, "worker stopping".into()).await;
    let _ = publisher.close(200, "worker stopping".into()).await;
    Ok(())
}

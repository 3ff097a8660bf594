//! burrow's worker: the engine that consumes job messages from RabbitMQ and runs them, as a
//! library ([`Worker::builder`]: register your kinds, run it in your binary) and as the
//! `burrow-worker` daemon ([`run`], with the shipped kinds).
//!
//! # Layout
//! - [`builder`]: [`Worker`] and its builder, the public entry point.
//! - [`config`]: settings from environment variables.
//! - [`consumer`]: the consumer loop (prefetch, manual acks, concurrency, drain).
//! - [`deliveries`]: one consumer per priority lane of each consumed queue, merged so
//!   high-priority jobs go first.
//! - [`batcher`]: claims and successes of many jobs in one commit (group commit).
//! - [`kind_slots`]: per-kind limits on jobs run at once (imports: 2).
//! - [`cluster_caps`]: cluster-wide caps per kind: which kinds, and their claim.
//! - [`rate_limits`]: rate limits per kind and key: which kinds, the reservation, the pump.
//! - [`kind_table`]: the copy of a per-kind table (caps, rate limits) that deliveries read.
//! - [`process`]: one delivery → claim, run, record → an [`outcome::Outcome`] (no broker I/O).
//! - [`outcome`]: the decision (ack, retry, park, dead-letter, requeue) and where it is carried out.
//! - [`watch`]: progress flushing and cancel requests while a job runs.
//! - [`maintenance`]: sweeper, retention and recurring jobs, one replica at a time each.
//! - [`sweeper`]: re-enqueues jobs whose worker and message are both gone (one replica at a time).
//! - [`http`]: `/healthz`, `/readyz` and `/metrics` on `WORKER_HTTP_ADDR`.
//! - [`health`]: what `/readyz` reads: consumer connected, last finished delivery, backlog.
//! - [`metrics`]: the Prometheus metric names (with units), the recorder, recording helpers.
//! - [`queue_stats`]: the queue gauges (ready messages, consumers), refreshed every ~5 s.
//! - [`tenant_stats`]: the tenant gauges (backlog, running per owner tag), refreshed every ~5 s.
//!
//! `main.rs` only reads config, starts tracing, registers the shipped kinds and awaits [`run`].

pub mod batcher;
pub mod builder;
pub mod cluster_caps;
pub mod config;
pub mod consumer;
pub mod deliveries;
pub mod health;
pub mod http;
pub mod kind_slots;
pub mod kind_table;
pub mod maintenance;
pub mod metrics;
pub mod outcome;
pub mod process;
pub mod queue_stats;
pub mod rate_limits;
pub mod sweeper;
pub mod tenant_stats;
pub mod watch;

use anyhow::Context as _;
use burrow_shared::engine::fair_share::FairShare;
use burrow_shared::handler::Registry;
use burrow_shared::publish::open_confirm_channel;
use burrow_shared::redrive::RedriveReport;
use burrow_shared::Topology;
use tokio_util::sync::CancellationToken;

pub use crate::builder::{Worker, WorkerBuilder};
use crate::config::WorkerConfig;

/// Moves up to `limit` job messages from the DLQ back to the work queue (`burrow-worker redrive`).
///
/// # Errors
/// If a service is unreachable or a publish is not confirmed.
pub async fn redrive(config: &WorkerConfig, limit: u32) -> anyhow::Result<RedriveReport> {
    let db = burrow_shared::db::connect(&config.database_url, 2)
        .await
        .context("connecting to DATABASE_URL")?;
    let amqp = burrow_shared::amqp::amqp_pool(&config.amqp_url, 1).context("AMQP_URL")?;
    let connection = amqp.get().await.context("connecting to AMQP_URL")?;
    let channel = open_confirm_channel(&connection).await?;
    let topology = Topology::with_prefix(&config.queue_prefix);
    topology
        .declare(&channel)
        .await
        .context("declaring the topology")?;
    let report = burrow_shared::redrive::redrive(&db, &channel, &topology, limit).await?;
    let _ = channel.close(200, "redrive done".into()).await;
    Ok(report)
}

/// The `burrow-worker` daemon: connects to Postgres (migrating it), builds a [`Worker`] running
/// `registry`'s kinds with the settings of `config` (environment variables), serves
/// `/healthz`, `/readyz` and `/metrics` on `WORKER_HTTP_ADDR`, and runs until `shutdown`.
///
/// # Errors
/// If Postgres is unreachable at start, the configuration is invalid, or the consumer fails.
pub async fn run(
    config: WorkerConfig,
    registry: Registry,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let db = burrow_shared::db::connect(&config.database_url, config.database_max_connections)
        .await
        .context("connecting to DATABASE_URL")?;
    let mut builder = Worker::builder(db.clone(), config.amqp_url.clone())
        .registry(registry)
        .worker_id(config.worker_id())
        .queue_prefix(config.queue_prefix.clone())
        .concurrency(config.concurrency)
        .prefetch(config.prefetch)
        .retry(config.retry_policy())
        .drain_timeout(config.drain_timeout())
        .sweeper(
            std::time::Duration::from_secs(config.job_lease_secs),
            std::time::Duration::from_secs(config.sweep_interval_secs),
        )
        .retention_days(config.retention_days)
        .http(config.http_addr, config.readiness_rules())
        .metrics(true)
        .fair_share(FairShare::from_window(config.fair_share_window))
        .failpoint_transient_file(config.failpoint_transient_file());
    if let Some(queues) = config.worker_queues().context("WORKER_QUEUES")? {
        builder = builder.queues(queues);
    }
    if let Some(json) = &config.recurring_jobs {
        builder = builder.recurring(json.clone());
    }
    for (kind, cap) in config.kind_caps().context("KIND_CAPS")? {
        builder = builder.global_concurrency(kind, cap);
    }
    for (kind, limit) in config.kind_rate_limits().context("KIND_RATE_LIMITS")? {
        builder = builder.rate_limit(kind, limit);
    }
    for (tenant, weight) in &config.fair_share_weights {
        builder = builder.fair_share_weight(tenant.clone(), *weight);
    }
    let result = builder.build().await?.run(shutdown).await;
    db.close().await;
    result
}

//! burrow's worker daemon: consumes job messages from RabbitMQ and runs them.
//!
//! # Layout
//! - [`config`]: settings from environment variables.
//! - [`consumer`]: the consumer loop (prefetch, manual acks, concurrency, drain).
//! - [`deliveries`]: one consumer per priority lane, merged so high-priority jobs go first.
//! - [`batcher`]: claims and successes of many jobs in one commit (group commit).
//! - [`kind_slots`]: per-kind limits on jobs run at once (imports: 2).
//! - [`process`]: one delivery → claim, import, commit → an [`outcome::Outcome`].
//! - [`outcome`]: ack, dead-letter, or requeue.
//! - [`watch`]: progress flushing and cancel requests while a job runs.
//! - [`maintenance`]: sweeper, retention and recurring jobs, one replica at a time each.
//! - [`sweeper`]: re-enqueues jobs whose worker and message are both gone (one replica at a time).
//! - [`http`]: `/healthz`, `/readyz` and `/metrics` on `WORKER_HTTP_ADDR`.
//! - [`health`]: what `/readyz` reads: consumer connected, last finished delivery, backlog.
//! - [`metrics`]: the Prometheus metric names (with units), the recorder, recording helpers.
//! - [`queue_stats`]: the queue gauges (ready messages, consumers), refreshed every ~5 s.
//!
//! `main.rs` only reads config, starts tracing and awaits [`run`].

pub mod batcher;
pub mod config;
pub mod consumer;
pub mod deliveries;
pub mod health;
pub mod http;
pub mod kind_slots;
pub mod maintenance;
pub mod metrics;
pub mod outcome;
pub mod process;
pub mod queue_stats;
pub mod sweeper;
pub mod watch;

use std::time::Duration;

use anyhow::Context as _;
use burrow_shared::import::ImportOptions;
use burrow_shared::publish::open_confirm_channel;
use burrow_shared::redrive::RedriveReport;
use burrow_shared::Topology;
use tokio_util::sync::CancellationToken;

use crate::config::WorkerConfig;
use crate::consumer::{consume, ConsumerSettings};
use crate::health::WorkerHealth;
use crate::http::HttpState;
use crate::maintenance::Maintenance;
use crate::process::JobContext;

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

/// Connects to Postgres and RabbitMQ and consumes until `shutdown` is cancelled, serving
/// `/healthz`, `/readyz` and `/metrics` on `WORKER_HTTP_ADDR` meanwhile. Installs the process's
/// metrics recorder (once per process).
///
/// # Errors
/// If a service is unreachable at start, or the consumer fails.
pub async fn run(config: WorkerConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let db = burrow_shared::db::connect(&config.database_url, config.database_max_connections)
        .await
        .context("connecting to DATABASE_URL")?;
    let amqp = burrow_shared::amqp::amqp_pool(&config.amqp_url, 2).context("AMQP_URL")?;
    let import = ImportOptions {
        row_delay: Duration::from_millis(config.import_row_delay_ms),
        ..ImportOptions::default()
    };
    let handle = metrics::install();
    let health = WorkerHealth::new();
    let ctx = JobContext {
        retry: config.retry_policy(),
        health: health.clone(),
        always_transient_file: config.failpoint_transient_file(),
        ..JobContext::new(db.clone(), config.worker_id(), import)
    };
    let settings = ConsumerSettings {
        concurrency: config.concurrency,
        prefetch: config.prefetch,
        drain_timeout: config.drain_timeout(),
    };
    let topology = Topology::with_prefix(&config.queue_prefix);
    let recurring = match &config.recurring_jobs {
        Some(json) => maintenance::recurring::parse_recurring(json, &ctx.registry)?,
        None => Vec::new(),
    };
    let maintenance = Maintenance {
        db: db.clone(),
        amqp: amqp.clone(),
        topology: topology.clone(),
        retry: config.retry_policy(),
        lease: Duration::from_secs(config.job_lease_secs),
        interval: Duration::from_secs(config.sweep_interval_secs),
        retention_days: config.retention_days,
        recurring,
    };
    let maintenance = tokio::spawn(maintenance.run(shutdown.clone()));
    let http_stop = CancellationToken::new();
    let http = tokio::spawn(http::run_http(
        config.http_addr,
        HttpState {
            db: db.clone(),
            health: health.clone(),
            rules: config.readiness_rules(),
            metrics: Some(handle.clone()),
        },
        // Stopped only after the drain, so liveness probes keep answering while jobs finish.
        http_stop.clone(),
    ));
    let queue_stats = tokio::spawn(queue_stats::run_queue_stats(
        amqp.clone(),
        topology.clone(),
        health,
        shutdown.clone(),
    ));
    let upkeep = tokio::spawn(metrics::run_upkeep(handle, shutdown.clone()));
    let result = consume(&amqp, &topology, ctx, &settings, shutdown).await;
    http_stop.cancel();
    let _ = tokio::join!(maintenance, http, queue_stats, upkeep);
    amqp.close();
    db.close().await;
    result
}

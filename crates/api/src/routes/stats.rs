//! `GET /api/stats`: the dashboard's overview: work queues' (normal and high priority) and DLQ
//! depth and consumers (from RabbitMQ), jobs per status, in-flight jobs, completions per minute,
//! and flow control (from Postgres): the cluster-wide caps per kind with their running and
//! waiting jobs, the rate limits per kind with their waiting jobs, and the backlog per tenant
//! (the [`TENANTS_LISTED`] largest by name, the others summed).
//!
//! Admin keys only: a tenant's key must not learn the other tenants' names or counts.

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use burrow_shared::engine::kind_caps::{self, CapUsage};
use burrow_shared::engine::queue_counts::queue_counts;
use burrow_shared::engine::rate_limits::{self, RateUsage};
use burrow_shared::engine::tenant_backlog::{self, TenantBacklog};
use burrow_shared::job_stats::{self, MinuteCount};
use burrow_shared::topology::{Lane, DEFAULT_QUEUE};
use burrow_shared::{outbox, JobStatus};
use lapin::Channel;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Minutes of throughput shown, the current one included.
pub const THROUGHPUT_MINUTES: i32 = 15;
/// Most tenants named in [`Stats::tenants`]; the others are summed in `tenants.others`.
pub const TENANTS_LISTED: u32 = 20;
/// Longest wait for RabbitMQ before its figures are reported as `null`.
const BROKER_TIMEOUT: Duration = Duration::from_secs(2);

/// One queue as RabbitMQ reports it to a passive `queue.declare`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct QueueStats {
    /// The queue's name.
    pub name: String,
    /// Messages ready for delivery (not those delivered and unacked).
    pub messages: u32,
    /// Consumers attached: for the work queue, one per worker process.
    pub consumers: u32,
}

/// The answer of `GET /api/stats`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Stats {
    /// `up` when RabbitMQ answered just now, else `down` (and the queues are `null`).
    pub rabbitmq: &'static str,
    /// The work queue of normal-priority jobs (0–4); `null` while RabbitMQ is unreachable or the
    /// queue is not declared yet.
    pub work_queue: Option<QueueStats>,
    /// The work queue of high-priority jobs (5–9), which workers serve first; `null` as
    /// `work_queue`.
    pub high_queue: Option<QueueStats>,
    /// The dead-letter queue (of every queue); `null` as `work_queue`.
    pub dead_letter_queue: Option<QueueStats>,
    /// The work queues (normal, then high) of every queue other than the default one that the
    /// api's kinds declare ("Queues per kind", e.g. `burrow.jobs.q.imports`); one not declared
    /// yet, or every one while RabbitMQ is unreachable, is left out.
    pub named_queues: Vec<QueueStats>,
    /// Jobs per status, every status present.
    #[schema(value_type = std::collections::BTreeMap<String, i64>)]
    pub jobs_by_status: Map<String, Value>,
    /// Jobs `processing` now.
    pub in_flight: i64,
    /// Accepted jobs whose message the relay has not published yet.
    pub outbox_pending: i64,
    /// Completions per minute over the last [`THROUGHPUT_MINUTES`] minutes.
    pub throughput: Throughput,
    /// Every kind with a cluster-wide cap, by name: its cap, its jobs running under it, and
    /// its jobs waiting for a slot (parked in Postgres; they show as `queued` or `retrying`).
    pub kind_caps: Vec<CapUsage>,
    /// Every kind with a rate limit, by name: the limit as the table holds it, its jobs waiting
    /// for their reserved slot (parked in Postgres; they show as `queued` or `retrying`), and
    /// its keys over their rate now.
    pub rate_limits: Vec<RateUsage>,
    /// Jobs `queued` or `retrying` (backlog) and `processing` (running) per owner tag, with
    /// the owner's fair-sharing weight (1 unless set by `FAIR_SHARE_WEIGHTS`): the
    /// [`TENANTS_LISTED`] largest backlogs by name, the rest summed in `others`.
    pub tenants: TenantBacklog,
}

/// Completions per minute.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Throughput {
    /// How many minutes `per_minute` covers.
    pub window_minutes: i32,
    /// Oldest first; the last entry is the current, partial minute.
    pub per_minute: Vec<MinuteCount>,
}

/// The overview. Postgres errors are 500; RabbitMQ being down is not an error: its figures are
/// `null` and `rabbitmq` is `down`.
#[utoipa::path(
    get,
    path = "/api/stats",
    tag = "operations",
    responses(
        (status = 200, description = "Queues, jobs per status, throughput", body = Stats),
        (status = 403, description = "The key is not an admin key", body = ApiError),
        (status = 500, description = "Database error", body = ApiError),
    )
)]
pub async fn stats(State(state): State<AppState>, caller: Caller) -> Result<Json<Stats>, ApiError> {
    caller.require_admin()?;
    let (queues, by_status, per_minute, outbox_pending, caps, rates, tenants) = tokio::join!(
        queue_stats(&state),
        job_stats::count_by_status(&state.db),
        job_stats::completed_per_minute(&state.db, THROUGHPUT_MINUTES),
        outbox::pending_count(&state.db),
        kind_caps::usage(&state.db),
        rate_limits::usage(&state.db),
        tenant_backlog::backlog(&state.db, TENANTS_LISTED),
    );
    let by_status = by_status?;
    let in_flight = by_status
        .iter()
        .find(|(status, _)| *status == JobStatus::Processing)
        .map_or(0, |(_, count)| *count);
    let jobs_by_status = by_status
        .into_iter()
        .map(|(status, count)| (status.as_str().to_owned(), Value::from(count)))
        .collect();
    Ok(Json(Stats {
        rabbitmq: if queues.reachable { "up" } else { "down" },
        work_queue: queues.work,
        high_queue: queues.high,
        dead_letter_queue: queues.dead,
        named_queues: queues.named,
        jobs_by_status,
        in_flight,
        outbox_pending: outbox_pending?,
        throughput: Throughput {
            window_minutes: THROUGHPUT_MINUTES,
            per_minute: per_minute?,
        },
        kind_caps: caps?,
        rate_limits: rates?,
        tenants: tenants?,
    }))
}

/// What RabbitMQ says about the work queues and the DLQ.
#[derive(Debug, Default)]
struct BrokerView {
    /// Whether a channel could be opened within [`BROKER_TIMEOUT`].
    reachable: bool,
    work: Option<QueueStats>,
    high: Option<QueueStats>,
    dead: Option<QueueStats>,
    named: Vec<QueueStats>,
}

/// Inspects the three queues on one channel; a queue that is not declared yet (or a broker that
/// does not answer within [`BROKER_TIMEOUT`]) gives `None`.
async fn queue_stats(state: &AppState) -> BrokerView {
    let topology = state.publisher.topology();
    let inspect = async {
        let Ok(connection) = state.publisher.pool().get().await else {
            return BrokerView::default();
        };
        let Ok(channel) = connection.create_channel().await else {
            return BrokerView::default();
        };
        // A failed passive declare closes the channel, so each queue gets its own attempt
        // only while the channel is still open.
        let work = inspect_queue(&channel, &topology.work_queue).await;
        let high = match work {
            Some(_) => inspect_queue(&channel, &topology.high_queue).await,
            None => None,
        };
        let dead = match high {
            Some(_) => inspect_queue(&channel, &topology.dead_letter_queue).await,
            None => None,
        };
        let mut named = Vec::new();
        let named_routes: Vec<(&str, Lane)> = topology
            .queues()
            .filter(|queue| *queue != DEFAULT_QUEUE && dead.is_some())
            .flat_map(|queue| [Lane::Normal, Lane::High].map(|lane| (queue, lane)))
            .collect();
        for (queue, lane) in named_routes {
            match inspect_queue(&channel, &topology.work_queue_in(queue, lane)).await {
                Some(stats) => named.push(stats),
                // The failed passive declare closed the channel.
                None => break,
            }
        }
        if channel.status().connected() {
            // Close it, so polling dashboards do not pile up channels on the pooled connection.
            let _ = channel.close(200, "stats read".into()).await;
        }
        BrokerView {
            reachable: true,
            work,
            high,
            dead,
            named,
        }
    };
    tokio::time::timeout(BROKER_TIMEOUT, inspect)
        .await
        .unwrap_or_else(|_| {
            tracing::debug!("stats: RabbitMQ did not answer in time");
            BrokerView::default()
        })
}

/// A passive `queue.declare`: the queue's ready messages and consumers, without creating it.
async fn inspect_queue(channel: &Channel, name: &str) -> Option<QueueStats> {
    let counts = queue_counts(channel, name)
        .await
        .map_err(|e| tracing::debug!(queue = name, error = %e, "stats: queue not readable"))
        .ok()?;
    Some(QueueStats {
        name: name.to_owned(),
        messages: counts.ready,
        consumers: counts.consumers,
    })
}

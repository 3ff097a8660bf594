//! The worker's Prometheus metrics: every name in one place, with its unit, the recorder, and
//! the small recording helpers that keep [`crate::process`] readable.
//!
//! | metric | type | labels | unit: meaning |
//! |---|---|---|---|
//! | `burrow_jobs_started_total` | counter | `kind` | jobs: runs claimed by this worker |
//! | `burrow_jobs_succeeded_total` | counter | `kind` | jobs: ended `succeeded` (effect committed) |
//! | `burrow_jobs_failed_total` | counter | `kind` | jobs: ended `failed` (permanent error) |
//! | `burrow_jobs_retried_total` | counter | `kind` | jobs: transient failures sent to another attempt |
//! | `burrow_jobs_dead_lettered_total` | counter | `kind` | messages: sent to the DLQ (retries exhausted, unknown kind, no job, undecodable; `kind="unknown"` when the kind is not one this build runs) |
//! | `burrow_jobs_cancelled_total` | counter | `kind` | jobs: ended `cancelled` on request |
//! | `burrow_job_duration_seconds` | histogram | `kind`, `outcome` | seconds: how long the handler ran (its transaction included), for runs whose handler started |
//! | `burrow_job_rows_total` | counter | `kind` | rows: reported by succeeded runs (imports: rows committed; exports: rows written) |
//! | `burrow_jobs_in_flight` | gauge | | deliveries: being processed by this worker now |
//! | `burrow_queue_messages` | gauge | `queue` | messages: ready (not yet delivered) in each work queue (normal, high priority) and the DLQ, refreshed every ~5 s |
//! | `burrow_queue_consumers` | gauge | `queue` | consumers: on each work queue and the DLQ, refreshed every ~5 s |
//! | `burrow_kind_cap` | gauge | `kind` | jobs: the cluster-wide cap of each capped kind, refreshed every ~5 s |
//! | `burrow_kind_cap_running` | gauge | `kind` | jobs: of each capped kind running under its cap, across all workers, refreshed every ~5 s |
//! | `burrow_kind_cap_waiting` | gauge | `kind` | jobs: of each capped kind waiting for a slot (parked in Postgres), refreshed every ~5 s |
//! | `burrow_kind_rate_waiting` | gauge | `kind` | jobs: of each rate-limited kind waiting for their reserved slot (parked in Postgres), refreshed every ~5 s |
//! | `burrow_tenant_backlog` | gauge | `tenant` | jobs: `queued` or `retrying` per owner tag, refreshed every ~5 s (see below for the label's values) |
//! | `burrow_tenant_running` | gauge | `tenant` | jobs: `processing` per owner tag, refreshed as `burrow_tenant_backlog` |
//!
//! Counters are this process's since it started; sum them over workers in Prometheus. The
//! queue, cap, rate and tenant gauges are the broker's and the database's view, the same from
//! every worker: aggregate them with `max`.
//!
//! The `tenant` label is bounded: it names the [`crate::tenant_stats::TENANTS_LABELLED`] owners
//! with the largest backlog, [`TENANT_NONE`] for jobs without owner and [`TENANT_OTHER`] for
//! everyone else summed. An owner that leaves the top keeps its series, set to 0, until the
//! worker restarts, so the label set is at most the owners ever in the top since start-up.
//!
//! The recorder is global (the `metrics` facade's design): [`install`] installs it once per
//! process, in [`crate::run`]. Without it (tests that drive the consumer directly) the helpers
//! record nothing and `/metrics` serves an empty page.
//!
//! Every counter is on the page from start-up, at 0, as Prometheus advises for series known in
//! advance (<https://prometheus.io/docs/practices/instrumentation/#avoid-missing-metrics>): a
//! rate over a series that appears only at its first increment misses that increment.
//! [`zero_known`] registers them for the kinds the worker runs (every outcome's counter, per
//! kind), and `dead_lettered{kind="unknown"}` and the unlabelled ones.

use std::sync::OnceLock;
use std::time::Duration;

use burrow_shared::handler::Registry;
use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

/// Jobs claimed and started, by `kind`.
pub const JOBS_STARTED: &str = "burrow_jobs_started_total";
/// Jobs that ended `succeeded`, by `kind`.
pub const JOBS_SUCCEEDED: &str = "burrow_jobs_succeeded_total";
/// Jobs that ended `failed` (a permanent error), by `kind`.
pub const JOBS_FAILED: &str = "burrow_jobs_failed_total";
/// Transient failures that scheduled another attempt, by `kind`.
pub const JOBS_RETRIED: &str = "burrow_jobs_retried_total";
/// Messages sent to the DLQ, by `kind`.
pub const JOBS_DEAD_LETTERED: &str = "burrow_jobs_dead_lettered_total";
/// Jobs that ended `cancelled`, by `kind`.
pub const JOBS_CANCELLED: &str = "burrow_jobs_cancelled_total";
/// Handler run time in seconds, by `kind` and `outcome`.
pub const JOB_DURATION: &str = "burrow_job_duration_seconds";
/// Rows committed by imports.
pub const JOB_ROWS: &str = "burrow_job_rows_total";
/// Deliveries being processed now.
pub const JOBS_IN_FLIGHT: &str = "burrow_jobs_in_flight";
/// Ready messages in a queue, by `queue`.
pub const QUEUE_MESSAGES: &str = "burrow_queue_messages";
/// Consumers of a queue, by `queue`.
pub const QUEUE_CONSUMERS: &str = "burrow_queue_consumers";
/// Gauge, per kind: its cluster-wide cap.
pub const KIND_CAP: &str = "burrow_kind_cap";
/// Gauge, per kind: its jobs running under its cap, across all workers.
pub const KIND_CAP_RUNNING: &str = "burrow_kind_cap_running";
/// Gauge, per kind: its jobs waiting for a slot of its cap.
pub const KIND_CAP_WAITING: &str = "burrow_kind_cap_waiting";
/// Gauge, per kind: its jobs waiting for their slot of its rate limit, across all workers.
pub const KIND_RATE_WAITING: &str = "burrow_kind_rate_waiting";

/// Gauge, per owner tag: its jobs `queued` or `retrying`.
pub const TENANT_BACKLOG: &str = "burrow_tenant_backlog";
/// Gauge, per owner tag: its jobs `processing`.
pub const TENANT_RUNNING: &str = "burrow_tenant_running";
/// The `tenant` label of jobs without owner tag.
pub const TENANT_NONE: &str = "(none)";
/// The `tenant` label summing the owners outside the top.
pub const TENANT_OTHER: &str = "(other)";

/// The `kind` label of kinds this build does not run: keeps the label set bounded whatever a
/// message says.
pub const UNKNOWN_KIND: &str = "unknown";

/// Upper bounds of the [`JOB_DURATION`] buckets, in seconds: 5 ms (a no-op) to 30 min (the
/// broker's default consumer timeout).
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0,
];

/// How often the recorder's upkeep runs (drains histogram samples, so memory stays bounded
/// between scrapes).
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// How a run ended, as the `outcome` label and the counter it increments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// Committed: [`JOBS_SUCCEEDED`].
    Succeeded,
    /// A permanent error: [`JOBS_FAILED`].
    Failed,
    /// A transient error, another attempt scheduled: [`JOBS_RETRIED`].
    Retried,
    /// To the DLQ: [`JOBS_DEAD_LETTERED`].
    DeadLettered,
    /// Cancelled on request: [`JOBS_CANCELLED`].
    Cancelled,
}

impl JobOutcome {
    /// Every outcome.
    pub const ALL: [JobOutcome; 5] = [
        JobOutcome::Succeeded,
        JobOutcome::Failed,
        JobOutcome::Retried,
        JobOutcome::DeadLettered,
        JobOutcome::Cancelled,
    ];

    /// The `outcome` label value.
    pub fn label(self) -> &'static str {
        match self {
            JobOutcome::Succeeded => "succeeded",
            JobOutcome::Failed => "failed",
            JobOutcome::Retried => "retried",
            JobOutcome::DeadLettered => "dead_lettered",
            JobOutcome::Cancelled => "cancelled",
        }
    }

    fn counter(self) -> &'static str {
        match self {
            JobOutcome::Succeeded => JOBS_SUCCEEDED,
            JobOutcome::Failed => JOBS_FAILED,
            JobOutcome::Retried => JOBS_RETRIED,
            JobOutcome::DeadLettered => JOBS_DEAD_LETTERED,
            JobOutcome::Cancelled => JOBS_CANCELLED,
        }
    }
}

/// `kind` if this worker runs it, else [`UNKNOWN_KIND`].
pub fn kind_label<'a>(registry: &Registry, kind: &'a str) -> &'a str {
    if registry.get(kind).is_some() {
        kind
    } else {
        UNKNOWN_KIND
    }
}

/// Counts a claimed run of `kind`.
pub fn record_started(kind: &str) {
    metrics::counter!(JOBS_STARTED, "kind" => kind.to_owned()).increment(1);
}

/// Counts how a run of `kind` ended and, when its handler ran (`ran`), how long it took.
pub fn record_outcome(kind: &str, outcome: JobOutcome, ran: Option<Duration>) {
    metrics::counter!(outcome.counter(), "kind" => kind.to_owned()).increment(1);
    if let Some(ran) = ran {
        metrics::histogram!(
            JOB_DURATION,
            "kind" => kind.to_owned(),
            "outcome" => outcome.label(),
        )
        .record(ran.as_secs_f64());
    }
}

/// Counts the rows a succeeded run of `kind` reported ([`burrow_shared::handler::JobOutput::rows`]).
pub fn record_rows(kind: &str, rows: u64) {
    metrics::counter!(JOB_ROWS, "kind" => kind.to_owned()).increment(rows);
}

/// Sets the gauges of a capped kind: its cap, and its jobs running and waiting cluster-wide.
pub fn record_cap(usage: &burrow_shared::engine::kind_caps::CapUsage) {
    let kind = usage.kind.clone();
    metrics::gauge!(KIND_CAP, "kind" => kind.clone()).set(f64::from(usage.cap));
    metrics::gauge!(KIND_CAP_RUNNING, "kind" => kind.clone()).set(f64::from(usage.running));
    metrics::gauge!(KIND_CAP_WAITING, "kind" => kind).set(f64::from(usage.waiting));
}

/// Sets the gauge of a rate-limited kind: its jobs waiting for their slot cluster-wide.
pub fn record_rate_waiting(kind: &str, waiting: u32) {
    metrics::gauge!(KIND_RATE_WAITING, "kind" => kind.to_owned()).set(f64::from(waiting));
}

/// Sets the gauges of the owner labelled `tenant`: its jobs waiting to run and running.
pub fn record_tenant(tenant: &str, backlog: u64, running: u64) {
    // Gauges are f64: exact up to 2^53 jobs.
    metrics::gauge!(TENANT_BACKLOG, "tenant" => tenant.to_owned()).set(backlog as f64);
    metrics::gauge!(TENANT_RUNNING, "tenant" => tenant.to_owned()).set(running as f64);
}

/// Sets the gauges of `queue`: ready messages and consumers, as the broker reported them.
pub fn record_queue(queue: &str, messages: u32, consumers: u32) {
    metrics::gauge!(QUEUE_MESSAGES, "queue" => queue.to_owned()).set(f64::from(messages));
    metrics::gauge!(QUEUE_CONSUMERS, "queue" => queue.to_owned()).set(f64::from(consumers));
}

/// One delivery in [`JOBS_IN_FLIGHT`] while this lives (the gauge goes down on drop, also when
/// the task panics).
#[derive(Debug)]
#[must_use = "the delivery counts as in flight only while the guard lives"]
pub struct InFlight(());

impl InFlight {
    /// Counts one more delivery in flight.
    pub fn enter() -> Self {
        metrics::gauge!(JOBS_IN_FLIGHT).increment(1.0);
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(JOBS_IN_FLIGHT).decrement(1.0);
    }
}

/// Registers every counter of the worker at 0 (adding 0 changes no value): for each of `kinds`
/// (the registry's: the `kind` label values this worker records) [`JOBS_STARTED`] and every
/// outcome's counter and [`JOB_ROWS`]; [`JOBS_DEAD_LETTERED`] for [`UNKNOWN_KIND`]. Call it
/// once the recorder is installed, with the worker's registry; calling it again is harmless.
pub fn zero_known<'a>(kinds: impl IntoIterator<Item = &'a str>) {
    metrics::counter!(JOBS_DEAD_LETTERED, "kind" => UNKNOWN_KIND).increment(0);
    for kind in kinds {
        metrics::counter!(JOBS_STARTED, "kind" => kind.to_owned()).increment(0);
        metrics::counter!(JOB_ROWS, "kind" => kind.to_owned()).increment(0);
        for outcome in JobOutcome::ALL {
            metrics::counter!(outcome.counter(), "kind" => kind.to_owned()).increment(0);
        }
    }
}

/// Installs the Prometheus recorder for this process (the first call; later calls return the
/// same handle) and describes every metric. If another recorder is installed already, warns and
/// returns the handle of a recorder nobody records to: `/metrics` is then empty.
///
/// The labelled counters are registered at 0 by [`zero_known`], which the worker builder calls
/// with its registry's kinds.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(JOB_DURATION.to_owned()), DURATION_BUCKETS);
            let builder = match builder {
                Ok(builder) => builder,
                Err(e) => {
                    tracing::warn!(error = %e, "invalid histogram buckets; using summaries");
                    PrometheusBuilder::new()
                }
            };
            match builder.install_recorder() {
                Ok(handle) => {
                    describe();
                    // This process runs an outbox relay too.
                    burrow_shared::relay_metrics::describe();
                    zero_known([]);
                    handle
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed; /metrics stays empty");
                    PrometheusBuilder::new().build_recorder().handle()
                }
            }
        })
        .clone()
}

/// Runs the recorder's upkeep every [`UPKEEP_INTERVAL`] until `shutdown`.
pub async fn run_upkeep(handle: PrometheusHandle, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(UPKEEP_INTERVAL) => handle.run_upkeep(),
        }
    }
}

/// The `# HELP` lines: what each metric counts, in which unit.
fn describe() {
    describe_counter!(
        JOBS_STARTED,
        Unit::Count,
        "Job runs claimed and started by this worker."
    );
    describe_counter!(
        JOBS_SUCCEEDED,
        Unit::Count,
        "Jobs that ended succeeded (effect committed)."
    );
    describe_counter!(
        JOBS_FAILED,
        Unit::Count,
        "Jobs that ended failed (a permanent error)."
    );
    describe_counter!(
        JOBS_RETRIED,
        Unit::Count,
        "Transient failures that scheduled another attempt."
    );
    describe_counter!(
        JOBS_DEAD_LETTERED,
        Unit::Count,
        "Messages sent to the dead-letter queue."
    );
    describe_counter!(
        JOBS_CANCELLED,
        Unit::Count,
        "Jobs that ended cancelled on request."
    );
    describe_histogram!(
        JOB_DURATION,
        Unit::Seconds,
        "How long a job's handler ran, its transaction included."
    );
    describe_counter!(
        JOB_ROWS,
        Unit::Count,
        "Rows reported by succeeded runs (imports: rows committed; exports: rows written)."
    );
    describe_gauge!(
        JOBS_IN_FLIGHT,
        Unit::Count,
        "Deliveries this worker is processing now."
    );
    describe_gauge!(
        QUEUE_MESSAGES,
        Unit::Count,
        "Ready messages in the queue, as last seen by a passive queue.declare."
    );
    describe_gauge!(
        QUEUE_CONSUMERS,
        Unit::Count,
        "Consumers of the queue, as last seen by a passive queue.declare."
    );
    describe_gauge!(
        KIND_CAP,
        Unit::Count,
        "The cluster-wide cap of the kind: most jobs of it running at once."
    );
    describe_gauge!(
        KIND_CAP_RUNNING,
        Unit::Count,
        "Jobs of the capped kind running under its cap, across all workers."
    );
    describe_gauge!(
        KIND_CAP_WAITING,
        Unit::Count,
        "Jobs of the capped kind waiting for a slot, parked in Postgres."
    );
    describe_gauge!(
        KIND_RATE_WAITING,
        Unit::Count,
        "Jobs of the rate-limited kind waiting for their reserved slot, parked in Postgres."
    );
    describe_gauge!(
        TENANT_BACKLOG,
        Unit::Count,
        "Jobs queued or retrying of the owner tag (top owners by backlog, the rest as (other))."
    );
    describe_gauge!(
        TENANT_RUNNING,
        Unit::Count,
        "Jobs processing of the owner tag (labelled as burrow_tenant_backlog)."
    );
}

//! The api's Prometheus metrics: every name in one place, with its unit, the recorder, and the
//! recording helpers. `GET /metrics` ([`crate::routes`]) renders them.
//!
//! | metric | type | labels | unit: meaning |
//! |---|---|---|---|
//! | `burrow_jobs_enqueued_total` | counter | `kind` | jobs: created by this api process (an idempotent replay creates none) |
//! | `burrow_outbox_published_total` | counter | | messages: outbox rows this process's relay published (broker-confirmed) |
//! | `burrow_outbox_pending` | gauge | | messages: outbox rows not yet published (all replicas), as last seen by the relay |
//!
//! The recorder is global (the `metrics` facade's design): [`install`] installs it once per
//! process, in [`crate::Application::build`]. Without it (tests that build the api from parts)
//! the helpers record nothing and `/metrics` serves an empty page.

use std::sync::OnceLock;

use metrics::{describe_counter, describe_gauge, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Jobs created, by `kind`.
pub const JOBS_ENQUEUED: &str = "burrow_jobs_enqueued_total";
/// Outbox rows published with a broker confirm.
pub const OUTBOX_PUBLISHED: &str = "burrow_outbox_published_total";
/// Outbox rows waiting to be published.
pub const OUTBOX_PENDING: &str = "burrow_outbox_pending";

/// The Prometheus text exposition format, version 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Counts a job created, of `kind` (a kind the api validated: the label set stays bounded).
pub fn record_enqueued(kind: &str) {
    metrics::counter!(JOBS_ENQUEUED, "kind" => kind.to_owned()).increment(1);
}

/// Counts outbox rows the broker confirmed.
pub fn record_published(rows: usize) {
    metrics::counter!(OUTBOX_PUBLISHED).increment(u64::try_from(rows).unwrap_or(u64::MAX));
}

/// Sets the outbox backlog, in messages.
pub fn record_pending(rows: i64) {
    metrics::gauge!(OUTBOX_PENDING).set(rows as f64);
}

/// Installs the Prometheus recorder for this process (the first call; later calls return the
/// same handle) and describes every metric. If another recorder is installed already, warns and
/// returns the handle of a recorder nobody records to: `/metrics` is then empty.
///
/// Nothing here records histograms, so no upkeep task is needed (rendering does the rest).
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(handle) => {
                describe();
                handle
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics recorder not installed; /metrics stays empty");
                PrometheusBuilder::new().build_recorder().handle()
            }
        })
        .clone()
}

/// The `# HELP` lines: what each metric counts, in which unit.
fn describe() {
    describe_counter!(
        JOBS_ENQUEUED,
        Unit::Count,
        "Jobs created by this api process."
    );
    describe_counter!(
        OUTBOX_PUBLISHED,
        Unit::Count,
        "Outbox messages this process's relay published, broker-confirmed."
    );
    describe_gauge!(
        OUTBOX_PENDING,
        Unit::Count,
        "Outbox messages not yet published, as last seen by the relay."
    );
}

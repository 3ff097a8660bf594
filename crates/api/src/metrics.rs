//! The api's Prometheus metrics: every name in one place, with its unit, the recorder, and the
//! recording helpers. `GET /metrics` ([`crate::routes`]) renders them.
//!
//! | metric | type | labels | unit: meaning |
//! |---|---|---|---|
//! | `burrow_jobs_enqueued_total` | counter | `kind` | jobs: created by this api process (an idempotent replay creates none) |
//! | `burrow_outbox_published_total`, `burrow_outbox_pending` | | | the relay's ([`burrow_shared::relay_metrics`]) |
//!
//! The recorder is global (the `metrics` facade's design): [`install`] installs it once per
//! process, in [`crate::Application::build`]. Without it (tests that build the api from parts)
//! the helpers record nothing and `/metrics` serves an empty page.
//!
//! Every counter is on the page from start-up, at 0, as Prometheus advises for series known in
//! advance (<https://prometheus.io/docs/practices/instrumentation/#avoid-missing-metrics>): a
//! rate over a series that appears only at its first increment misses that increment.
//! [`install`] registers the unlabelled ones and [`zero_known`] the `kind` of every kind of the
//! registry; [`crate::routes::router`] calls it with the api's registry.

use std::sync::OnceLock;

use metrics::{describe_counter, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Jobs created, by `kind`.
pub const JOBS_ENQUEUED: &str = "burrow_jobs_enqueued_total";
pub use burrow_shared::relay_metrics::{OUTBOX_PENDING, OUTBOX_PUBLISHED};

/// The Prometheus text exposition format, version 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Counts a job created, of `kind` (a kind the api validated: the label set stays bounded).
pub fn record_enqueued(kind: &str) {
    metrics::counter!(JOBS_ENQUEUED, "kind" => kind.to_owned()).increment(1);
}

/// Registers every counter of the api at 0 (adding 0 changes no value): the unlabelled ones,
/// and [`JOBS_ENQUEUED`] for each of `kinds` (the registry's: the label values this api can
/// record). Call it once the recorder is installed; calling it again is harmless.
pub fn zero_known<'a>(kinds: impl IntoIterator<Item = &'a str>) {
    for kind in kinds {
        metrics::counter!(JOBS_ENQUEUED, "kind" => kind.to_owned()).increment(0);
    }
}

/// Installs the Prometheus recorder for this process (the first call; later calls return the
/// same handle) and describes every metric. If another recorder is installed already, warns and
/// returns the handle of a recorder nobody records to: `/metrics` is then empty. Registers the
/// unlabelled counters at 0 ([`zero_known`] does the labelled ones).
///
/// Nothing here records histograms, so no upkeep task is needed (rendering does the rest).
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(handle) => {
                describe();
                burrow_shared::relay_metrics::describe();
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
}

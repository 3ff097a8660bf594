//! The outbox relay's Prometheus metrics, recorded through the `metrics` facade into whatever
//! recorder the process installed (the api and the worker serve them on `/metrics`).
//!
//! | metric | type | unit: meaning |
//! |---|---|---|
//! | `burrow_outbox_published_total` | counter | messages: outbox rows this process's relay published (broker-confirmed) |
//! | `burrow_outbox_pending` | gauge | messages: outbox rows not yet published (all processes), as last seen by the relay |

use metrics::{describe_counter, describe_gauge, Unit};

/// Outbox rows published with a broker confirm.
pub const OUTBOX_PUBLISHED: &str = "burrow_outbox_published_total";
/// Outbox rows waiting to be published.
pub const OUTBOX_PENDING: &str = "burrow_outbox_pending";

/// Counts outbox rows the broker confirmed.
pub fn record_published(rows: usize) {
    metrics::counter!(OUTBOX_PUBLISHED).increment(u64::try_from(rows).unwrap_or(u64::MAX));
}

/// Sets the outbox backlog, in messages.
pub fn record_pending(rows: i64) {
    metrics::gauge!(OUTBOX_PENDING).set(rows as f64);
}

/// The `# HELP` lines of the relay's metrics, and the counter at 0 (a series known in
/// advance is exported from the start:
/// <https://prometheus.io/docs/practices/instrumentation/#avoid-missing-metrics>). Call once,
/// after installing the recorder.
pub fn describe() {
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
    metrics::counter!(OUTBOX_PUBLISHED).absolute(0);
}

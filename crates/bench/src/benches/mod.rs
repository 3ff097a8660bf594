//! The benchmarks, one file each, numbered as in the issue.
//!
//! - [`import`]: 1, the big import end to end vs calamine + COPY; 2, the worker's peak RSS.
//! - [`overhead`]: 3, noop jobs through the whole system vs a raw lapin loop.
//! - [`latency`]: 4, `POST /api/jobs` p50/p99 under an open-loop offered rate.
//! - [`retry`]: 5, retry gaps vs the configured backoff.
//! - [`sweep`]: 6, worker concurrency × prefetch, the defaults vs the best.

pub mod import;
pub mod latency;
pub mod overhead;
pub mod retry;
pub mod sweep;

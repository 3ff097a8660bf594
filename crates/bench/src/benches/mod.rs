//! The benchmarks, one file each, numbered as in the issue.
//!
//! - [`import`]: 1, the big import end to end vs calamine + COPY; 2, the worker's peak RSS.
//! - [`overhead`]: 3, noop jobs through the whole system vs a raw lapin loop.
//! - [`latency`]: 4, `POST /api/jobs` p50/p99 under an open-loop offered rate.
//! - [`retry`]: 5, retry gaps vs the configured backoff.
//! - [`sweep`]: 6, worker concurrency × prefetch, the defaults vs the best.
//! - [`csv`]: 7, the same rows as CSV, end to end (absolute target).
//! - [`typed`]: 8, a typed append profile vs calamine + COPY into its table.
//! - [`upsert`]: 9, an upsert profile onto the rows already in its table.
//! - [`peers`]: 10, polars and DuckDB on the same workbook vs burrow's import.
//! - [`workflows`]: 11, a batch with a callback vs plain noop jobs, and a chain's time per link.
//! - [`limits`]: 12, noop jobs under a cluster-wide cap never reached vs none.
//! - [`fairness`]: 13, one tenant's jobs behind another's burst vs alone, with fair sharing.
//! - [`timed_jobs`]: timing runs of jobs from their rows (rows 11 and 12).
//! - [`upload`]: one import end to end (rows 1, 7–10); [`bench_profile`]: the profiles of 8 and 9.

pub mod bench_profile;
pub mod csv;
pub mod fairness;
pub mod import;
pub mod latency;
pub mod limits;
pub mod overhead;
pub mod peers;
pub mod retry;
pub mod sweep;
pub mod timed_jobs;
pub mod typed;
pub mod upload;
pub mod upsert;
pub mod workflows;

//! The engine: everything a job system needs whatever its jobs do. Nothing here knows a
//! shipped kind; the product (imports, exports) lives beside it and plugs in through
//! [`handler::JobHandler`].
//!
//! - [`message`]: the versioned JSON job message (it points at a job; file bytes never travel).
//! - [`status`]: the job statuses and the terminal set.
//! - [`handler`]: the `JobHandler` trait, run context, outcomes, and the kinds registry.
//! - [`state`]: the one owner of job state: every status change, with its history entry.
//! - [`dependencies`]: jobs that wait for other jobs (parents, children, their release).
//! - [`batches`]: batches of jobs with callbacks, and their aggregate status.
//! - [`jobs`]: job rows, their files and results (reads and inserts; no status changes).
//! - [`job_stats`]: aggregates for the dashboard (per status, per minute, failures by error).
//! - [`kind_caps`]: cluster-wide concurrency caps per kind (declared, loaded, in use).
//! - [`rate_limits`]: rate limits per kind and key (declared, reserved, waiting).
//! - [`tenant_backlog`]: work not ended per owner tag (backlog, running), the largest first.
//! - [`leader`]: one replica at a time for periodic chores (sweeper, retention, recurring jobs).
//! - [`job_lock`]: the per-job advisory lock that lets one delivery of a job run at a time.
//! - [`job_batch`]: a worker's lock session: locks and claims of many jobs in one statement.
//! - [`progress`]: progress reporting from a running job.
//! - [`topology`]: exchange and queue names, and the one function that declares them.
//! - [`publish`]: publishing a job message with publisher confirms.
//! - [`queue_counts`]: a queue's ready messages and consumers (a passive `queue.declare`).
//! - [`enqueue`]: putting jobs in the queue inside the caller's transaction (the outbox's write half).
//! - [`outbox`]: the transactional outbox rows.
//! - [`relay`]: the outbox relay (the outbox's read half), run by every process that enqueues;
//!   [`relay_metrics`]: its metrics; [`fair_share`]: the order it releases in between tenants;
//!   [`fair_share_weights`]: the tenants' weights in that order (`FAIR_SHARE_WEIGHTS`).
//! - [`park`]: waiting for a moment (`run_at`, snooze) in delay queues, whatever the retry policy.
//! - [`redrive`]: moving dead-lettered job messages back to the work queue.
//! - [`retry`]: the retry policy (exponential backoff, jitter, attempts).
//! - [`readiness`]: when `/readyz` says `degraded` (backlog, stall), and the job table's backlog.

pub mod batches;
pub mod dependencies;
pub mod enqueue;
pub mod fair_share;
pub mod fair_share_weights;
pub mod handler;
pub mod job_batch;
pub mod job_lock;
pub mod job_stats;
pub mod jobs;
pub mod kind_caps;
pub mod leader;
pub mod message;
pub mod outbox;
pub mod park;
pub mod progress;
pub mod publish;
pub mod queue_counts;
pub mod rate_limits;
pub mod readiness;
pub mod redrive;
pub mod relay;
pub mod relay_metrics;
pub mod retry;
pub mod state;
pub mod status;
pub mod tenant_backlog;
pub mod topology;

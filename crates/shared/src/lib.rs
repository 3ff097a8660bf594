//! burrow's shared core, used by the api and the worker.
//!
//! # Layout
//! - [`message`]: the versioned JSON job message (it points at a job; file bytes never travel).
//! - [`status`]: the job status model.
//! - [`topology`]: exchange and queue names, and the one function that declares them.
//! - [`publish`]: publishing a job message with publisher confirms.
//! - [`redrive`]: moving dead-lettered job messages back to the work queue.
//! - [`outbox`]: the transactional outbox the api writes and its relay drains.
//! - [`retry`]: the retry policy (exponential backoff, jitter, attempts).
//! - [`readiness`]: when `/readyz` says `degraded` (backlog, stall), and the job table's backlog.
//! - [`jobs`]: the SQL for job rows and their files.
//! - [`job_stats`]: aggregates for the dashboard (per status, per minute, failures by error).
//! - [`job_batch`]: claims and successes of many jobs in one statement (group commit).
//! - [`job_lock`]: the per-job advisory lock that lets one delivery of a job run at a time.
//! - [`handler`]: the `JobHandler` trait and the kinds registry; [`kinds`]: the kinds burrow ships.
//! - [`progress`]: progress reporting from a running job.
//! - [`people_sheet`]: writing the people sheet as .xlsx (fixtures and exports).
//! - [`import`]: the xlsx import processor (calamine cell reader → `COPY`).
//! - [`api_keys`]: API keys (hashed) and their owners.
//! - [`db`], [`amqp`]: connecting to Postgres (and migrating) and to RabbitMQ.
//! - `fixtures` (feature `fixtures`): the deterministic xlsx generator behind `fixtures/`.
//! - `testing` (feature `test-support`): isolated databases and queue names for tests.
//!
//! No web framework, runtime set-up or tracing subscriber lives here.

pub mod amqp;
pub mod api_keys;
pub mod db;
#[cfg(feature = "fixtures")]
pub mod fixtures;
pub mod handler;
pub mod import;
pub mod job_batch;
pub mod job_lock;
pub mod job_stats;
pub mod jobs;
pub mod kinds;
pub mod message;
pub mod outbox;
pub mod people_sheet;
pub mod progress;
pub mod publish;
pub mod readiness;
pub mod redrive;
pub mod retry;
pub mod status;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod topology;

pub use message::{JobMessage, KIND_IMPORT_XLSX};
pub use status::JobStatus;
pub use topology::Topology;

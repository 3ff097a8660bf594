//! burrow's shared core, used by the api, the worker and apps built on burrow.
//!
//! # Layout
//! - [`engine`]: the job system, whatever the jobs do — messages, statuses, the one owner of
//!   job state ([`state`]), enqueueing in the caller's transaction ([`enqueue()`]), the outbox
//!   and its relay ([`relay`]), topology, parking, retries, re-drive, the handler trait and
//!   registry ([`handler`]). Its modules are re-exported here under their short paths
//!   (`burrow_shared::jobs`, …).
//! - The product, beside it: [`import`] (the xlsx import processor, calamine cell reader →
//!   `COPY`), [`kinds`] (the kinds burrow ships: import, export, noop, sleep, webhook),
//!   [`people_sheet`] (writing the people sheet as .xlsx).
//! - [`api_keys`]: API keys (hashed) and their owners.
//! - [`process_id`]: a process's name in what it writes (`{hostname}:{pid}`).
//! - [`db`], [`amqp`]: connecting to Postgres (and migrating) and to RabbitMQ.
//! - `fixtures` (feature `fixtures`): the deterministic xlsx generator behind `fixtures/`.
//! - [`telemetry`]: the trace context jobs carry across processes and, with feature
//!   `telemetry`, the subscriber the binaries install (logs, OTLP span export).
//! - `testing` (feature `test-support`): isolated databases and queue names for tests.
//!
//! No web framework or runtime set-up lives here.

pub mod amqp;
pub mod api_keys;
pub mod db;
pub mod engine;
#[cfg(feature = "fixtures")]
pub mod fixtures;
pub mod import;
pub mod kinds;
pub mod people_sheet;
pub mod process_id;
pub mod telemetry;
#[cfg(feature = "test-support")]
pub mod testing;

// The engine's modules under their short paths (`burrow_shared::jobs`, …).
pub use engine::{
    enqueue, handler, job_batch, job_lock, job_stats, jobs, leader, message, outbox, park,
    progress, publish, rate_limits, readiness, redrive, relay, relay_metrics, retry, state, status,
    topology,
};
pub use enqueue::{enqueue, enqueue_many, EnqueueError, Enqueued, NewJob};
pub use kinds::KIND_IMPORT_XLSX;
pub use message::JobMessage;
pub use status::JobStatus;
pub use topology::Topology;

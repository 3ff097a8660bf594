//! Job kinds: the handler trait every kind implements, and the registry the worker dispatches
//! on and the api validates against.
//!
//! A kind is one type implementing [`JobHandler`]: a name, a typed payload (JSON), and
//! `run(ctx, payload) -> Result<JobOutput, JobError>` where the error says what happens next
//! (retry, fail, snooze). Any crate can define kinds; a binary registers the ones it runs
//! (`burrow_worker::Worker::builder(..).register(MyKind)`).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize as _;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;

use crate::engine::dependencies::Relative;
use crate::jobs::JobRow;
use crate::progress::Progress;
use crate::retry::RetryPolicy;

/// How a run ended without success, and so what happens next. Whatever the run wrote through
/// its transaction is rolled back in every case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// Trying again later may help (a database or broker outage, a timeout): the next attempt
    /// waits its backoff, or the job is dead once its attempts are used up.
    #[error("{0}")]
    Retryable(String),
    /// As [`JobError::Retryable`], but the handler knows when trying again makes sense (e.g. an
    /// HTTP `Retry-After`, RFC 9110 §10.2.3): the next attempt waits `after` instead of the
    /// backoff. The attempt counts.
    #[error("{reason} (retry after {after:?})")]
    RetryAfter {
        /// The error.
        reason: String,
        /// How long to wait before the next attempt.
        after: Duration,
    },
    /// Trying again cannot help (bad input): the job fails at once.
    #[error("{0}")]
    Permanent(String),
    /// As [`JobError::Permanent`], and the run leaves a file for the user, e.g. an import's
    /// error report (the rejected rows and why): stored with the failure, downloadable at
    /// `GET /api/jobs/{id}/result`.
    #[error("{reason}")]
    PermanentWithResult {
        /// The error, the job's message.
        reason: String,
        /// The file.
        result: ResultFile,
    },
    /// The run saw its cancellation token and stopped; nothing was committed.
    #[error("cancelled")]
    Cancelled,
    /// Not now: run the job again after this long. The attempt is given back (not counted),
    /// so a job may snooze any number of times (Oban's `{:snooze, seconds}`).
    #[error("snoozed for {0:?}")]
    Snooze(Duration),
}

/// A file a job produced, downloadable at `GET /api/jobs/{id}/result`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultFile {
    /// Download name.
    pub file_name: String,
    /// MIME type.
    pub content_type: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// What a successful run produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobOutput {
    /// Shown as the job's message, e.g. "Imported 200 rows".
    pub message: String,
    /// Rows the job wrote or read, when that means something for the kind.
    pub rows: Option<u64>,
    /// A result file, if the kind makes one.
    pub result: Option<ResultFile>,
    /// A small JSON value for the job's children to read ([`RunContext::parents`]), stored
    /// as `jobs.output`; at most [`MAX_OUTPUT_BYTES`] serialised, or the run fails.
    pub output: Option<serde_json::Value>,
}

impl JobOutput {
    /// `self` if its [`JobOutput::output`] fits [`MAX_OUTPUT_BYTES`].
    ///
    /// # Errors
    /// [`JobError::Permanent`] naming the size: the same run would return the same output.
    pub fn within_limits(self) -> Result<JobOutput, JobError> {
        let size = self
            .output
            .as_ref()
            .map_or(0, |output| output.to_string().len());
        if size > MAX_OUTPUT_BYTES {
            return Err(JobError::Permanent(format!(
                "the run's output is {size} bytes of JSON, more than {MAX_OUTPUT_BYTES}: \
                 pass ids, counts or a URL, not data"
            )));
        }
        Ok(self)
    }
}

/// Largest [`JobOutput::output`], in bytes of JSON: outputs pass small facts along (ids,
/// counts, a URL), not data, and are shown with the job in every listing.
pub const MAX_OUTPUT_BYTES: usize = 16 * 1024;

/// What a handler gets for one run.
pub struct RunContext<'a> {
    /// The job, as claimed (status `processing`, attempt counted).
    pub job: &'a JobRow,
    /// The transaction that will also mark the job succeeded: whatever the handler writes
    /// through it commits together with the success, or not at all.
    pub tx: RunTx<'a>,
    /// Cancelled when someone cancels the job, when the kind's [`JobHandler::timeout`] passes,
    /// or when the worker stops hard (its drain timeout passed); handlers check it between
    /// batches and return [`JobError::Cancelled`]. The worker tells the three apart: only the
    /// first ends the job `cancelled`.
    pub cancel: CancellationToken,
    /// Where to report progress (cheap; flushed to `job_progress` about every 250 ms).
    pub progress: Progress,
}

impl RunContext<'_> {
    /// The jobs this one waited for ([`crate::engine::enqueue::NewJob::depends_on`]), with
    /// their status and output, read outside the run's transaction (they have ended).
    ///
    /// # Errors
    /// [`JobError::Retryable`] when the database cannot be read.
    pub async fn parents(&self) -> Result<Vec<Relative>, JobError> {
        crate::engine::dependencies::parents(self.tx.db, self.job.id)
            .await
            .map_err(|e| JobError::Retryable(format!("database: {e}")))
    }

    /// The batch this job is the `on_success` or `on_complete` callback of, if any.
    ///
    /// # Errors
    /// [`JobError::Retryable`] when the database cannot be read.
    pub async fn batch_called_back(
        &self,
    ) -> Result<Option<crate::engine::batches::BatchSummary>, JobError> {
        crate::engine::batches::find_batch_called_back(self.tx.db, self.job.id)
            .await
            .map_err(|e| JobError::Retryable(format!("database: {e}")))
    }
}

/// A run's transaction, begun on first use ([`RunTx::conn`]).
///
/// A run that never asks for it has written nothing, so its success needs no transaction of
/// its own: the worker records it together with other jobs' in one statement and one commit
/// (group commit), which is what makes small jobs cheap.
pub struct RunTx<'a> {
    db: &'a PgPool,
    slot: &'a mut Option<Transaction<'static, Postgres>>,
}

impl<'a> RunTx<'a> {
    /// A transaction on `db`, begun lazily into `slot`; the caller commits or drops what
    /// `slot` holds after the run.
    pub fn new(db: &'a PgPool, slot: &'a mut Option<Transaction<'static, Postgres>>) -> Self {
        RunTx { db, slot }
    }

    /// The connection inside the run's transaction, beginning it on the first call.
    ///
    /// # Errors
    /// [`JobError::Retryable`] when no connection or transaction could be had.
    pub async fn conn(&mut self) -> Result<&mut PgConnection, JobError> {
        let tx = match self.slot.take() {
            Some(tx) => tx,
            None => self
                .db
                .begin()
                .await
                .map_err(|e| JobError::Retryable(format!("database: {e}")))?,
        };
        Ok(&mut **self.slot.insert(tx))
    }
}

/// One job kind.
pub trait JobHandler: Send + Sync + 'static {
    /// The kind's name, as in `{"kind": "…"}` and the `jobs.kind` column.
    const KIND: &'static str;
    /// Whether jobs of this kind are created by uploading a file (multipart), not from JSON.
    const NEEDS_UPLOAD: bool = false;
    /// Most jobs of this kind one worker process runs at once (`None`: only the worker's
    /// `WORKER_CONCURRENCY` bounds them). Set it for kinds heavy on memory or CPU, so the
    /// worker-wide concurrency can stay high for small jobs.
    const MAX_CONCURRENCY: Option<usize> = None;
    /// Most jobs of this kind running at once across every worker process and host (`None`:
    /// no cluster-wide cap). Workers write it to the `kind_caps` table at start-up, where the
    /// last one to start wins; a worker's `KIND_CAPS` overrides it
    /// ([`crate::engine::kind_caps`]). Set it for kinds that load something shared (a
    /// database, a partner's API) that more replicas must not overload.
    const GLOBAL_CONCURRENCY: Option<usize> = None;
    /// Most jobs of this kind started per period across every worker and host, per key of
    /// [`JobHandler::rate_key`] (`None`: no limit). Jobs over it wait for their slot, never
    /// fail. Workers write it to the `kind_rate_limits` table at start-up, where the last one
    /// to start wins; a worker's `KIND_RATE_LIMITS` overrides it
    /// ([`crate::engine::rate_limits`]).
    const RATE_LIMIT: Option<crate::engine::rate_limits::RateLimit> = None;
    /// The queue its jobs travel through ([`crate::topology`], "Queues per kind"): workers
    /// consume the queues of `WORKER_QUEUES`, so a kind on its own queue (imports) can run on
    /// workers of its own. A name of `a-z`, `0-9`, `_`, `-` (at most 32); an invalid one
    /// fails the enqueue and the worker's start.
    const QUEUE: &'static str = crate::topology::DEFAULT_QUEUE;
    /// The kind's payload, parsed from the job's JSON payload.
    type Payload: DeserializeOwned + Send;

    /// This kind's retry policy; `None` (the default) uses the worker's.
    fn retry_policy(&self) -> Option<RetryPolicy> {
        None
    }

    /// Longest a run may take; `None` (the default): no limit. When it passes, the run's
    /// cancellation token fires and the attempt ends as a retryable failure ("timed out").
    fn timeout(&self) -> Option<Duration> {
        None
    }

    /// The key a rate limit counts this job under ([`JobHandler::RATE_LIMIT`]): jobs with the
    /// same key share one rate (a webhook's target host, a customer id). `None` (the default):
    /// every job of the kind shares one.
    fn rate_key(&self, _payload: &Self::Payload) -> Option<String> {
        None
    }

    /// Checks a payload beyond its shape (ranges, references); the api answers 422 with the
    /// message. The default accepts every payload that parses.
    fn check(&self, _payload: &Self::Payload) -> Result<(), String> {
        Ok(())
    }

    /// Runs the job once.
    fn run(
        &self,
        ctx: RunContext<'_>,
        payload: Self::Payload,
    ) -> impl Future<Output = Result<JobOutput, JobError>> + Send;
}

/// A boxed future, for dynamic dispatch over kinds.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`JobHandler`] with its payload type erased, so kinds fit in one registry.
pub trait ErasedHandler: Send + Sync {
    /// [`JobHandler::NEEDS_UPLOAD`].
    fn needs_upload(&self) -> bool;

    /// [`JobHandler::MAX_CONCURRENCY`].
    fn max_concurrency(&self) -> Option<usize>;

    /// [`JobHandler::GLOBAL_CONCURRENCY`].
    fn global_concurrency(&self) -> Option<usize>;

    /// [`JobHandler::RATE_LIMIT`].
    fn rate_limit(&self) -> Option<crate::engine::rate_limits::RateLimit>;

    /// [`JobHandler::QUEUE`].
    fn queue(&self) -> &'static str;

    /// [`JobHandler::rate_key`] of a JSON payload; `None` too if it does not parse (the job
    /// then counts in the kind's one bucket; its run fails on the payload anyway).
    fn rate_key(&self, payload: &serde_json::Value) -> Option<String>;

    /// [`JobHandler::retry_policy`].
    fn retry_policy(&self) -> Option<RetryPolicy>;

    /// [`JobHandler::timeout`].
    fn timeout(&self) -> Option<Duration>;

    /// Parses and checks a payload.
    ///
    /// # Errors
    /// A message for the client (the api's 422).
    fn validate(&self, payload: &serde_json::Value) -> Result<(), String>;

    /// Parses the payload and runs the job.
    fn run<'a>(
        &'a self,
        ctx: RunContext<'a>,
        payload: serde_json::Value,
    ) -> BoxFuture<'a, Result<JobOutput, JobError>>;
}

impl<H: JobHandler> ErasedHandler for H {
    fn needs_upload(&self) -> bool {
        H::NEEDS_UPLOAD
    }

    fn max_concurrency(&self) -> Option<usize> {
        H::MAX_CONCURRENCY
    }

    fn global_concurrency(&self) -> Option<usize> {
        H::GLOBAL_CONCURRENCY
    }

    fn rate_limit(&self) -> Option<crate::engine::rate_limits::RateLimit> {
        H::RATE_LIMIT
    }

    fn queue(&self) -> &'static str {
        H::QUEUE
    }

    fn rate_key(&self, payload: &serde_json::Value) -> Option<String> {
        let parsed = H::Payload::deserialize(payload).ok()?;
        JobHandler::rate_key(self, &parsed)
    }

    fn retry_policy(&self) -> Option<RetryPolicy> {
        JobHandler::retry_policy(self)
    }

    fn timeout(&self) -> Option<Duration> {
        JobHandler::timeout(self)
    }

    fn validate(&self, payload: &serde_json::Value) -> Result<(), String> {
        let parsed =
            H::Payload::deserialize(payload).map_err(|e| format!("invalid payload: {e}"))?;
        self.check(&parsed)
    }

    fn run<'a>(
        &'a self,
        ctx: RunContext<'a>,
        payload: serde_json::Value,
    ) -> BoxFuture<'a, Result<JobOutput, JobError>> {
        Box::pin(async move {
            let payload = H::Payload::deserialize(payload)
                .map_err(|e| JobError::Permanent(format!("invalid payload: {e}")))?;
            JobHandler::run(self, ctx, payload).await
        })
    }
}

/// The kinds a process knows, by name: the worker dispatches on it, the api validates
/// against it. Built by the binary (or app) that runs the kinds, not by the engine.
///
/// # Example
/// ```
/// use burrow_shared::handler::Registry;
/// use burrow_shared::kinds::{Noop, Sleep};
///
/// let registry = Registry::default().register(Noop).register(Sleep);
/// assert_eq!(registry.kinds().collect::<Vec<_>>(), ["noop", "sleep"]);
/// ```
#[derive(Clone, Default)]
pub struct Registry {
    handlers: BTreeMap<&'static str, Arc<dyn ErasedHandler>>,
}

impl Registry {
    /// Adds a kind (replacing an earlier handler of the same name).
    #[must_use]
    pub fn register<H: JobHandler>(mut self, handler: H) -> Self {
        self.handlers.insert(H::KIND, Arc::new(handler));
        self
    }

    /// Adds every kind of `other` (replacing same-named ones).
    #[must_use]
    pub fn merge(mut self, other: Registry) -> Self {
        self.handlers.extend(other.handlers);
        self
    }

    /// The handler of `kind`.
    pub fn get(&self, kind: &str) -> Option<&Arc<dyn ErasedHandler>> {
        self.handlers.get(kind)
    }

    /// Every kind's name, sorted.
    pub fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.handlers.keys().copied()
    }

    /// The queue of `kind` ([`JobHandler::QUEUE`]); [`crate::topology::DEFAULT_QUEUE`] for a
    /// kind this registry does not know.
    pub fn queue_of(&self, kind: &str) -> &'static str {
        self.get(kind)
            .map_or(crate::topology::DEFAULT_QUEUE, |handler| handler.queue())
    }

    /// Every queue its kinds declare, [`crate::topology::DEFAULT_QUEUE`] included only if a
    /// kind uses it; sorted, once each.
    pub fn queues(&self) -> Vec<&'static str> {
        let mut queues: Vec<&'static str> = self.handlers.values().map(|h| h.queue()).collect();
        queues.sort_unstable();
        queues.dedup();
        queues
    }
}

//! Job kinds: the handler trait every kind implements, and the registry the worker dispatches
//! on and the api validates against.
//!
//! A kind is one type implementing [`JobHandler`]: a name, a typed payload (JSON), and
//! `run(ctx, payload) -> Result<JobOutput, JobError>` where the error says whether a retry can
//! help. Adding a kind is one file in `kinds/` plus one line in [`crate::kinds::registry`].

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Deserialize as _;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;

use crate::jobs::JobRow;
use crate::progress::Progress;

/// How a run ended without success.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// Trying again later may help (a database or broker outage, a timeout, the handler asking).
    #[error("{0}")]
    Retryable(String),
    /// Trying again cannot help (bad input): the job fails at once.
    #[error("{0}")]
    Permanent(String),
    /// The run saw its cancellation token and stopped; nothing was committed.
    #[error("cancelled")]
    Cancelled,
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
}

/// What a handler gets for one run.
pub struct RunContext<'a> {
    /// The job, as claimed (status `processing`, attempt counted).
    pub job: &'a JobRow,
    /// The transaction that will also mark the job succeeded: whatever the handler writes
    /// through it commits together with the success, or not at all.
    pub tx: RunTx<'a>,
    /// Cancelled when someone cancels the job (or the worker is hard-stopped); handlers check
    /// it between batches and return [`JobError::Cancelled`].
    pub cancel: CancellationToken,
    /// Where to report progress (cheap; flushed to `job_progress` about every 250 ms).
    pub progress: Progress,
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
    /// The kind's payload, parsed from the job's JSON payload.
    type Payload: DeserializeOwned + Send;

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

/// The kinds a build knows, by name.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: BTreeMap<&'static str, Arc<dyn ErasedHandler>>,
}

impl Registry {
    /// Adds a kind.
    pub fn register<H: JobHandler>(mut self, handler: H) -> Self {
        self.handlers.insert(H::KIND, Arc::new(handler));
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
}

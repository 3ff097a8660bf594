//! Enqueueing: a job row, its file, its `queued` event and its first message (in the outbox),
//! written in the caller's transaction.
//!
//! This is the write half of the transactional outbox
//! (<https://microservices.io/patterns/data/transactional-outbox.html>): call [`enqueue`] in
//! the transaction that writes your own rows, and the job exists if and only if that
//! transaction commits — a rollback leaves no job, no message and nothing to run. The outbox
//! relay ([`crate::engine::relay`]) publishes the message after the commit; it is woken by a
//! Postgres `NOTIFY` on [`OUTBOX_CHANNEL`] that is delivered only on commit
//! (<https://www.postgresql.org/docs/current/sql-notify.html>).
//!
//! Every way a job (re)enters the queue goes through here: the api's routes, recurring jobs,
//! the api's retry and the sweeper ([`requeue`]).

use std::collections::{HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Connection as _, PgConnection};
use uuid::Uuid;

use crate::engine::dependencies::{self, LinkError};
use crate::engine::handler::JobHandler;
use crate::engine::jobs::{self, JobRow, JOB_COLUMNS};
use crate::engine::message::JobMessage;
use crate::engine::outbox;
use crate::engine::state::{self, Transition};
use crate::engine::status::JobStatus;
use crate::telemetry::TraceContext;
use crate::topology::{check_queue_name, DEFAULT_QUEUE};

/// The Postgres `LISTEN` channel an enqueue notifies when it commits; relays listen on it.
pub const OUTBOX_CHANNEL: &str = "burrow_outbox";

/// Highest priority: 0 (normal) to 9 (most urgent).
pub const MAX_PRIORITY: i16 = 9;

/// A job to enqueue. Start from [`NewJob::of`] (typed) or [`NewJob::new`] (by kind name).
#[derive(Clone)]
pub struct NewJob {
    /// The id to give it (UUIDv7).
    pub id: Uuid,
    /// Which handler runs it.
    pub kind: String,
    /// The kind's parameters, as JSON.
    pub payload: serde_json::Value,
    /// 0 (normal) to 9 (most urgent): 5–9 go through the high-priority work queue.
    pub priority: i16,
    /// Not before this time.
    pub run_at: Option<DateTime<Utc>>,
    /// A key that makes enqueueing idempotent per `user_id`: a second job with the same pair is
    /// not stored; [`enqueue`] returns the first.
    pub idempotency_key: Option<String>,
    /// The owner tag.
    pub user_id: Option<String>,
    /// A display name for its file.
    pub file_name: Option<String>,
    /// A file the job reads (stored in `job_files`; it never travels through the broker).
    pub file: Option<Vec<u8>>,
    /// Ties request, message and logs together.
    pub correlation_id: Uuid,
    /// The trace its runs continue; `None`: the one of the span current at [`enqueue`], if
    /// tracing is on (recurring jobs are enqueued inside their schedule tick's span).
    pub trace: Option<TraceContext>,
    /// Jobs that must end before this one runs: stored jobs, or jobs earlier in the same
    /// [`enqueue_many`] call. Empty: it is queued at once. See [`crate::engine::dependencies`].
    pub depends_on: Vec<Uuid>,
    /// Run once every parent has ended, whatever their outcome; `false`: a parent that ends
    /// failed, dead or cancelled cancels this job.
    pub run_on_failure: bool,
    /// The batch it is a member of ([`crate::engine::batches`]).
    pub batch_id: Option<Uuid>,
    /// The queue it travels through: its kind's [`JobHandler::QUEUE`] with [`NewJob::of`],
    /// [`DEFAULT_QUEUE`] with [`NewJob::new`] (set it with [`NewJob::queue`] when enqueueing
    /// a kind of another queue by name). Stored with the job, so every later attempt goes back
    /// to it.
    pub queue: String,
}

impl fmt::Debug for NewJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewJob")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("payload", &self.payload)
            .field("priority", &self.priority)
            .field("run_at", &self.run_at)
            .field("idempotency_key", &self.idempotency_key)
            .field("user_id", &self.user_id)
            .field("file_name", &self.file_name)
            .field("file_bytes", &self.file.as_ref().map(Vec::len))
            .field("correlation_id", &self.correlation_id)
            .field("trace", &self.trace)
            .field("depends_on", &self.depends_on)
            .field("run_on_failure", &self.run_on_failure)
            .field("batch_id", &self.batch_id)
            .field("queue", &self.queue)
            .finish()
    }
}

impl NewJob {
    /// A job of `kind` with a fresh UUIDv7 id and correlation id, payload `{}`, priority 0.
    pub fn new(kind: &str) -> Self {
        NewJob {
            id: Uuid::now_v7(),
            kind: kind.to_owned(),
            payload: serde_json::json!({}),
            priority: 0,
            run_at: None,
            idempotency_key: None,
            user_id: None,
            file_name: None,
            file: None,
            correlation_id: Uuid::new_v4(),
            trace: None,
            depends_on: Vec::new(),
            run_on_failure: false,
            batch_id: None,
            queue: DEFAULT_QUEUE.to_owned(),
        }
    }

    /// A job of handler `H`'s kind with `payload`.
    ///
    /// # Errors
    /// [`EnqueueError::Payload`] if the payload does not serialise to JSON.
    ///
    /// # Example
    /// ```
    /// use burrow_shared::engine::enqueue::NewJob;
    /// use burrow_shared::kinds::{Sleep, SleepPayload};
    ///
    /// let job = NewJob::of::<Sleep>(&SleepPayload { ms: 50 })?
    ///     .priority(5)
    ///     .idempotency_key("sleep-42");
    /// assert_eq!(job.kind, "sleep");
    /// # Ok::<(), burrow_shared::engine::enqueue::EnqueueError>(())
    /// ```
    pub fn of<H>(payload: &H::Payload) -> Result<Self, EnqueueError>
    where
        H: JobHandler,
        H::Payload: Serialize,
    {
        Ok(NewJob {
            payload: serde_json::to_value(payload).map_err(EnqueueError::Payload)?,
            queue: H::QUEUE.to_owned(),
            ..NewJob::new(H::KIND)
        })
    }

    /// Through `queue` instead ([`crate::topology`], "Queues per kind"): the queue of its kind
    /// when enqueueing by name ([`crate::handler::Registry::queue_of`]). [`enqueue`] refuses
    /// an invalid name.
    ///
    /// # Example
    /// ```
    /// use burrow_shared::engine::enqueue::NewJob;
    ///
    /// let job = NewJob::new("import_xlsx").queue("imports");
    /// assert_eq!(job.first_message().queue_name(), "imports");
    /// ```
    #[must_use]
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// With priority `priority` (0–9; [`enqueue`] refuses others).
    #[must_use]
    pub fn priority(mut self, priority: i16) -> Self {
        self.priority = priority;
        self
    }

    /// Not run before `at`.
    #[must_use]
    pub fn run_at(mut self, at: DateTime<Utc>) -> Self {
        self.run_at = Some(at);
        self
    }

    /// With an idempotency key (per owner tag).
    #[must_use]
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Owned by `user_id`.
    #[must_use]
    pub fn user_id(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    /// With a file for the job to read, shown as `file_name`.
    #[must_use]
    pub fn file(mut self, file_name: impl Into<String>, bytes: Vec<u8>) -> Self {
        self.file_name = Some(file_name.into());
        self.file = Some(bytes);
        self
    }

    /// Waiting for `parents` to end first (stored jobs, or jobs earlier in the same
    /// [`enqueue_many`] call).
    ///
    /// # Example
    /// ```
    /// use burrow_shared::engine::enqueue::NewJob;
    ///
    /// let import = NewJob::new("import_xlsx");
    /// let notify = NewJob::new("webhook").depends_on([import.id]).run_on_failure();
    /// assert_eq!(notify.depends_on, [import.id]);
    /// ```
    #[must_use]
    pub fn depends_on(mut self, parents: impl IntoIterator<Item = Uuid>) -> Self {
        self.depends_on.extend(parents);
        self
    }

    /// Runs once its parents have ended even if one failed ([`NewJob::run_on_failure`]).
    #[must_use]
    pub fn run_on_failure(mut self) -> Self {
        self.run_on_failure = true;
        self
    }

    /// Its first-attempt message.
    pub fn first_message(&self) -> JobMessage {
        JobMessage {
            run_at: self.run_at,
            trace: self.trace.clone(),
            priority: u8::try_from(self.priority.clamp(0, MAX_PRIORITY)).unwrap_or(0),
            ..JobMessage::new(self.id, &self.kind, self.correlation_id)
        }
        .in_queue(&self.queue)
    }
}

/// A stored job, and whether this call created it (`false`: a job with the same owner tag and
/// idempotency key existed, and is returned instead).
#[derive(Debug, Clone, PartialEq)]
pub struct Enqueued {
    /// The job as stored.
    pub job: JobRow,
    /// Whether it is new.
    pub created: bool,
}

/// Why a job could not be enqueued; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// The job is malformed (e.g. a priority outside 0–9, an empty kind).
    #[error("invalid job: {0}")]
    Invalid(String),
    /// The payload does not serialise to JSON.
    #[error("the payload is not serialisable: {0}")]
    Payload(serde_json::Error),
    /// Postgres failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Enqueues one job in the caller's transaction: [`enqueue_many`] for one.
///
/// # Errors
/// As [`enqueue_many`].
///
/// # Example
/// ```no_run
/// use burrow_shared::engine::enqueue::{enqueue, NewJob};
/// use burrow_shared::kinds::{Noop, NoopPayload};
///
/// # async fn example(db: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
/// let mut tx = db.begin().await?;
/// sqlx::query("INSERT INTO signups (email) VALUES ($1)").bind("ada@example.com").execute(&mut *tx).await?;
/// let enqueued = enqueue(&mut tx, NewJob::of::<Noop>(&NoopPayload {})?).await?;
/// tx.commit().await?; // the job and its message exist from here on, not before
/// println!("job {}", enqueued.job.id);
/// # Ok(()) }
/// ```
pub async fn enqueue(conn: &mut PgConnection, job: NewJob) -> Result<Enqueued, EnqueueError> {
    enqueue_many(conn, vec![job])
        .await?
        .pop()
        .ok_or_else(|| EnqueueError::Invalid("no job came back".to_owned()))
}

/// Enqueues `jobs` (rows, files, `queued` events, outbox messages and the relay's `NOTIFY`) in
/// one statement, all or none, and returns them in the order given. Call it inside your own
/// transaction (`&mut *tx`): the jobs then commit or roll back with your rows; on a connection
/// outside a transaction it commits them by itself. A job whose `(user_id, idempotency_key)`
/// is stored already is not written again: the stored one comes back with `created: false`.
///
/// The message is published by the outbox relay after the commit ([`crate::engine::relay`]),
/// so this never waits for RabbitMQ and works while it is down.
///
/// Each job keeps the trace context of the span current here (unless it has one), so its runs
/// continue the caller's trace ([`crate::telemetry`]).
///
/// # Errors
/// [`EnqueueError::Invalid`] for a priority outside 0–9 or an empty kind;
/// [`EnqueueError::Database`]. Nothing is written then.
pub async fn enqueue_many(
    conn: &mut PgConnection,
    mut jobs: Vec<NewJob>,
) -> Result<Vec<Enqueued>, EnqueueError> {
    // Where each id last appears in the call: a parent's position tells, in O(1), whether it
    // comes after the job that names it (a 10,000-member batch's callback names 10,000).
    let last_index: HashMap<Uuid, usize> = jobs
        .iter()
        .enumerate()
        .map(|(index, job)| (job.id, index))
        .collect();
    let mut seen = HashSet::new();
    for (index, job) in jobs.iter().enumerate() {
        check(job)?;
        check_parents(job, index, &last_index, &mut seen)?;
    }
    if jobs.iter().any(|job| job.trace.is_none()) {
        if let Some(current) = TraceContext::current() {
            for job in jobs.iter_mut().filter(|job| job.trace.is_none()) {
                job.trace = Some(current.clone());
            }
        }
    }
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    // A savepoint inside the caller's transaction (or a transaction of its own): the
    // idempotency look-ups below must see exactly what this call wrote, all or nothing.
    let mut tx = conn.begin().await?;
    // Jobs of this call that others in it wait for: stored with `has_dependents` already, so
    // `link` need not update those rows right after inserting them (for a batch, 10,000 new
    // row versions, each with its own foreign-key check). If every such child is skipped for
    // its idempotency key, the flag stays set without an edge: its end then runs the release
    // function for nothing, which is harmless.
    let parents_in_call: HashSet<Uuid> = jobs
        .iter()
        .flat_map(|job| &job.depends_on)
        .copied()
        .filter(|parent| last_index.contains_key(parent))
        .collect();
    let mut created: HashMap<Uuid, JobRow> = insert(&mut tx, &jobs, &parents_in_call)
        .await?
        .into_iter()
        .map(|row| (row.id, row))
        .collect();
    let edges: Vec<(Uuid, Uuid)> = jobs
        .iter()
        .filter(|job| created.contains_key(&job.id))
        .flat_map(|job| job.depends_on.iter().map(|parent| (job.id, *parent)))
        .collect();
    // Parents this statement inserted: nobody else sees them before the commit, so none can
    // have ended; a parent of the call that was not inserted (its idempotency key existed) is
    // not among them and is looked up like any stored job (and refused: its id is unknown).
    let fresh: HashSet<Uuid> = parents_in_call
        .into_iter()
        .filter(|parent| created.contains_key(parent))
        .collect();
    let resolved = dependencies::link(&mut tx, &edges, &fresh)
        .await
        .map_err(|e| match e {
            LinkError::UnknownParent(_) => EnqueueError::Invalid(e.to_string()),
            LinkError::Database(e) => EnqueueError::Database(e),
        })?;
    if resolved {
        // A parent had ended already: a child may have been released or cancelled just now.
        let linked: Vec<Uuid> = edges.iter().map(|(child, _)| *child).collect();
        for row in jobs::find_jobs(&mut *tx, &linked).await? {
            created.insert(row.id, row);
        }
    }
    let mut stored = Vec::with_capacity(jobs.len());
    for job in &jobs {
        if let Some(row) = created.remove(&job.id) {
            stored.push(Enqueued {
                job: row,
                created: true,
            });
            continue;
        }
        let key = job.idempotency_key.as_deref().unwrap_or_default();
        let earlier = jobs::find_by_idempotency_key(&mut *tx, job.user_id.as_deref(), key)
            .await?
            .ok_or_else(|| {
                EnqueueError::Invalid(format!(
                    "job {} conflicts with another in this call",
                    job.id
                ))
            })?;
        stored.push(Enqueued {
            job: earlier,
            created: false,
        });
    }
    tx.commit().await?;
    Ok(stored)
}

/// Puts an existing job back in the queue by `transition` (one whose target is `queued`:
/// [`Transition::Restart`], [`Transition::Requeue`], [`Transition::Redrive`]) and adds its next
/// message to the outbox, in the caller's transaction. The message carries `attempt` and keeps
/// the job's priority and queue, so it returns to its lane in its queue. Returns whether the job moved (`false`:
/// it was not in a status the transition leaves; nothing was written).
///
/// # Errors
/// [`EnqueueError::Invalid`] for a transition that does not lead to `queued`;
/// [`EnqueueError::Database`].
pub async fn requeue(
    conn: &mut PgConnection,
    id: Uuid,
    transition: Transition<'_>,
    attempt: u32,
) -> Result<bool, EnqueueError> {
    if transition.to() != crate::engine::status::JobStatus::Queued {
        return Err(EnqueueError::Invalid(format!(
            "{transition:?} does not put a job back in the queue"
        )));
    }
    let mut tx = conn.begin().await?;
    if !state::apply(&mut *tx, id, transition).await? {
        return Ok(false);
    }
    let Some(job) = jobs::find_job(&mut *tx, id).await? else {
        return Ok(false);
    };
    let message = JobMessage {
        priority: u8::try_from(job.priority.clamp(0, MAX_PRIORITY)).unwrap_or(0),
        run_at: job.run_at,
        // Every attempt continues the trace the job was enqueued in.
        trace: jobs::trace_context(&mut *tx, id).await?,
        ..JobMessage::new(job.id, job.kind, job.correlation_id).for_attempt(attempt.max(1))
    }
    .in_queue(&job.queue);
    outbox::add(&mut tx, &message).await?;
    tx.commit().await?;
    Ok(true)
}

/// A job's parents: no duplicates, not itself, and none of the jobs after it in the same call
/// (so no cycle can be built). `index` is the job's place in the call, `last_index` where each
/// id of the call last appears, `seen` a scratch set (cleared here). O(parents).
fn check_parents(
    job: &NewJob,
    index: usize,
    last_index: &HashMap<Uuid, usize>,
    seen: &mut HashSet<Uuid>,
) -> Result<(), EnqueueError> {
    seen.clear();
    for parent in &job.depends_on {
        if *parent == job.id {
            return Err(EnqueueError::Invalid(format!(
                "job {} depends on itself",
                job.id
            )));
        }
        if !seen.insert(*parent) {
            return Err(EnqueueError::Invalid(format!(
                "job {} names parent {parent} twice",
                job.id
            )));
        }
        if last_index.get(parent).is_some_and(|at| *at > index) {
            return Err(EnqueueError::Invalid(format!(
                "job {} depends on {parent}, which comes after it: a parent must exist first",
                job.id
            )));
        }
    }
    Ok(())
}

fn check(job: &NewJob) -> Result<(), EnqueueError> {
    if job.kind.is_empty() {
        return Err(EnqueueError::Invalid("the kind is empty".to_owned()));
    }
    if !(0..=MAX_PRIORITY).contains(&job.priority) {
        return Err(EnqueueError::Invalid(format!(
            "priority {} is outside 0–{MAX_PRIORITY}",
            job.priority
        )));
    }
    check_queue_name(&job.queue).map_err(|e| EnqueueError::Invalid(e.to_string()))
}

/// The rows, events, files and outbox messages of `jobs` in one statement; returns the rows
/// inserted (jobs whose idempotency key exists already, or comes earlier in `jobs`, are
/// skipped and missing). The `NOTIFY` is an init plan of the final `SELECT`, so it runs once,
/// and only when a job was inserted. Jobs in `parents` are stored with `has_dependents`.
async fn insert(
    tx: &mut PgConnection,
    jobs: &[NewJob],
    parents: &HashSet<Uuid>,
) -> Result<Vec<JobRow>, sqlx::Error> {
    let column = |f: fn(&NewJob) -> Option<String>| jobs.iter().map(f).collect::<Vec<_>>();
    let with_file: Vec<&NewJob> = jobs.iter().filter(|j| j.file.is_some()).collect();
    sqlx::query_as::<_, JobRow>(&format!(
        "WITH inserted AS ( \
             INSERT INTO jobs (id, kind, user_id, file_name, correlation_id, payload, priority, \
                               run_at, idempotency_key, traceparent, tracestate, status, \
                               awaiting_parents, run_on_failure, batch_id, has_dependents, \
                               queue) \
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::uuid[], \
                                  $6::jsonb[], $7::int2[], $8::timestamptz[], $9::text[], \
                                  $14::text[], $15::text[], $16::text[], $17::int4[], \
                                  $18::bool[], $19::uuid[], $20::bool[], $21::text[]) \
             ON CONFLICT (coalesce(user_id, ''), idempotency_key) \
                 WHERE idempotency_key IS NOT NULL DO NOTHING \
             RETURNING {JOB_COLUMNS}), \
         event AS (INSERT INTO job_events (job_id, event) SELECT id, status FROM inserted), \
         outboxed AS ( \
             INSERT INTO outbox (job_id, message) \
             SELECT m.id, m.body FROM unnest($1::uuid[], $10::bytea[]) AS m(id, body) \
             JOIN inserted USING (id) WHERE inserted.status = 'queued'), \
         held AS ( \
             INSERT INTO held_messages (job_id, message) \
             SELECT m.id, m.body FROM unnest($1::uuid[], $10::bytea[]) AS m(id, body) \
             JOIN inserted USING (id) WHERE inserted.status = 'awaiting'), \
         files AS ( \
             INSERT INTO job_files (job_id, content, size_bytes) \
             SELECT f.id, f.content, length(f.content) \
             FROM unnest($11::uuid[], $12::bytea[]) AS f(id, content) JOIN inserted USING (id)) \
         SELECT inserted.*, (SELECT pg_notify($13, '')) AS notified FROM inserted"
    ))
    .bind(jobs.iter().map(|j| j.id).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.kind.as_str()).collect::<Vec<_>>())
    .bind(column(|j| j.user_id.clone()))
    .bind(column(|j| j.file_name.clone()))
    .bind(jobs.iter().map(|j| j.correlation_id).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| &j.payload).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.priority).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.run_at).collect::<Vec<_>>())
    .bind(column(|j| j.idempotency_key.clone()))
    .bind(
        jobs.iter()
            .map(|j| j.first_message().encode())
            .collect::<Vec<_>>(),
    )
    .bind(with_file.iter().map(|j| j.id).collect::<Vec<_>>())
    .bind(
        with_file
            .iter()
            .map(|j| j.file.as_deref().unwrap_or_default())
            .collect::<Vec<_>>(),
    )
    .bind(OUTBOX_CHANNEL)
    .bind(column(|j| j.trace.as_ref().map(|t| t.traceparent.clone())))
    .bind(column(|j| {
        j.trace.as_ref().and_then(|t| t.tracestate.clone())
    }))
    .bind(
        jobs.iter()
            .map(|j| {
                let status = if j.depends_on.is_empty() {
                    JobStatus::Queued
                } else {
                    JobStatus::Awaiting
                };
                status.as_str()
            })
            .collect::<Vec<_>>(),
    )
    .bind(
        jobs.iter()
            .map(|j| i32::try_from(j.depends_on.len()).unwrap_or(i32::MAX))
            .collect::<Vec<_>>(),
    )
    .bind(jobs.iter().map(|j| j.run_on_failure).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.batch_id).collect::<Vec<_>>())
    .bind(
        jobs.iter()
            .map(|j| parents.contains(&j.id))
            .collect::<Vec<_>>(),
    )
    .bind(jobs.iter().map(|j| j.queue.as_str()).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await
}

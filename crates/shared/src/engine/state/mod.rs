//! The one owner of job state: every change of `jobs.status` goes through this module, which
//! allows only the legal moves below and writes the job's `job_events` entry in the same
//! statement (so history and status cannot disagree, even after a crash).
//!
//! | transition | from | to | event | made by |
//! |---|---|---|---|---|
//! | claim ([`batch::release_lock_and_claim`], taking a cap slot for a capped kind; [`capped::claim`] when none was free) | queued, retrying, processing¹ | processing | `processing` | worker, attempt counted |
//! | [`Transition::Succeed`] (and [`batch::succeed_many`]) | processing | succeeded | `succeeded` | worker |
//! | [`Transition::Fail`] | processing | failed | `failed` | worker: permanent error |
//! | [`Transition::Retry`] | queued², processing, retrying | retrying | `retrying` | worker: transient error |
//! | [`Transition::Snooze`] | processing | queued | `snoozed` | worker: the handler asked, attempt given back |
//! | [`Transition::Interrupt`] | processing | queued | `interrupted` | worker: hard stop, attempt given back |
//! | [`Transition::Bury`] | queued, processing, retrying | dead | `dead` | worker, sweeper: retries exhausted, unknown kind |
//! | [`Transition::StopRun`] | processing | cancelled | `cancelled` | worker: the run saw a cancel request |
//! | [`Transition::CancelWaiting`] | awaiting, queued, retrying | cancelled | `cancelled` | api: cancel before a run |
//! | [`Transition::Requeue`] | processing, retrying | queued | `requeued` | sweeper: worker and message lost |
//! | [`Transition::Redrive`] | dead | queued | `redriven` | DLQ re-drive, fresh attempt budget |
//! | [`Transition::Restart`] | failed, dead, cancelled | queued | `queued` | api retry, fresh attempt budget |
//! | release³ | awaiting | queued | `queued` | the database: its last parent ended |
//! | cascade³ | awaiting | cancelled | `cancelled` | the database: a parent ended failed, dead or cancelled |
//!
//! ¹ A redelivery after a worker crash finds its job `processing`; the run it left never
//! committed, so it is claimed again. ² A claim that failed on the database leaves the job
//! `queued` or `retrying`; its retry is still recorded. ³ Made by the trigger
//! `jobs_release_dependents` (migration `20261205000600_workflows.sql`) in the transaction
//! that ends the parent, whichever transition above ends it: a child is released exactly once
//! and never by a transaction that rolls back ([`crate::engine::dependencies`]).
//!
//! The terminal set is [`JobStatus::TERMINAL`]; asking for a cancel while a job runs
//! ([`request_cancel`]) sets a flag, not a status. Every transition that ends or restarts a
//! run also takes the run's live progress out of `job_progress`, freezing the final figures
//! on the job row. A job's result file is written with its end (`succeed`,
//! [`fail_with_result`]) and removed by a re-drive or restart, which begin it afresh.

pub mod batch;
pub mod capped;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::engine::handler::{JobOutput, ResultFile};
use crate::engine::status::JobStatus;

use JobStatus::{Awaiting, Cancelled, Dead, Failed, Processing, Queued, Retrying};

/// One change of a job's status, with what it records.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transition<'a> {
    /// The run succeeded: its message and rows become the job's.
    Succeed {
        /// Shown as the job's message, e.g. "Imported 200 rows".
        message: &'a str,
        /// Rows the run wrote or read, if that means something for the kind.
        rows: Option<u64>,
        /// The run's JSON output, for its children ([`JobOutput::output`]).
        output: Option<&'a serde_json::Value>,
    },
    /// The run failed for good (bad input): `message` says why.
    Fail {
        /// The error, for the job's message and the event.
        message: &'a str,
    },
    /// A transient failure: the next attempt starts about `next_attempt_at`.
    Retry {
        /// The error, kept in `last_error`.
        error: &'a str,
        /// When the next attempt is due.
        next_attempt_at: DateTime<Utc>,
    },
    /// The handler asked to run again at `until`; the attempt it used is given back.
    Snooze {
        /// Not before this time.
        until: DateTime<Utc>,
    },
    /// The worker stopped hard (its drain timeout passed) and cancelled the run; its message
    /// goes back to the queue and the attempt is given back.
    Interrupt,
    /// Retries exhausted, or the job cannot run here: it rests, with its message in the DLQ.
    Bury {
        /// Why, kept in `last_error` and the message.
        reason: &'a str,
    },
    /// The run saw its cancel request and stopped; nothing of it committed.
    StopRun,
    /// Cancelled before it ran; its message is acked without work when it arrives.
    CancelWaiting,
    /// Its worker and its message were lost: it waits for a fresh message (same attempts).
    Requeue {
        /// Why, for the message and the event.
        why: &'a str,
    },
    /// Back from the DLQ with a fresh attempt budget.
    Redrive,
    /// Run again on request with a fresh attempt budget (its history stays).
    Restart {
        /// Why, for the message and the event.
        why: &'a str,
    },
}

impl Transition<'_> {
    /// The statuses this transition may leave.
    pub fn from(&self) -> &'static [JobStatus] {
        match self {
            Transition::Succeed { .. }
            | Transition::Fail { .. }
            | Transition::Snooze { .. }
            | Transition::Interrupt
            | Transition::StopRun => &[Processing],
            Transition::Retry { .. } | Transition::Bury { .. } => &[Queued, Processing, Retrying],
            Transition::CancelWaiting => &[Awaiting, Queued, Retrying],
            Transition::Requeue { .. } => &[Processing, Retrying],
            Transition::Redrive => &[Dead],
            Transition::Restart { .. } => &[Failed, Dead, Cancelled],
        }
    }

    /// The status it leads to.
    pub fn to(&self) -> JobStatus {
        match self {
            Transition::Succeed { .. } => JobStatus::Succeeded,
            Transition::Fail { .. } => Failed,
            Transition::Retry { .. } => Retrying,
            Transition::Bury { .. } => Dead,
            Transition::StopRun | Transition::CancelWaiting => Cancelled,
            Transition::Snooze { .. }
            | Transition::Interrupt
            | Transition::Requeue { .. }
            | Transition::Redrive
            | Transition::Restart { .. } => Queued,
        }
    }

    /// The `job_events.event` it writes.
    pub fn event(&self) -> &'static str {
        match self {
            Transition::Snooze { .. } => "snoozed",
            Transition::Interrupt => "interrupted",
            Transition::Requeue { .. } => "requeued",
            Transition::Redrive => "redriven",
            other => other.to().as_str(),
        }
    }

    /// The event's detail (`$2` of the statement).
    fn detail(&self) -> Option<&str> {
        match self {
            Transition::Succeed { message, .. } | Transition::Fail { message } => Some(message),
            Transition::Retry { error, .. } => Some(error),
            Transition::Bury { reason } => Some(reason),
            Transition::Requeue { why } | Transition::Restart { why } => Some(why),
            Transition::Redrive => Some("Re-driven from the DLQ"),
            Transition::Interrupt => Some("Interrupted: the worker stopped"),
            Transition::Snooze { .. } | Transition::StopRun | Transition::CancelWaiting => None,
        }
    }

    /// The columns it sets besides `status`. `$2` is the detail, `$3` the rows, `$4` a time,
    /// `$5` the output;
    /// `live` is the run's progress taken out of `job_progress`. Timestamps use
    /// `clock_timestamp()`: `now()` is the start of a transaction that may have run the job.
    fn set(&self) -> &'static str {
        match self {
            Transition::Succeed { .. } => {
                "rows_imported = $3, message = $2, output = $5, completed_at = clock_timestamp(), \
                 progress_done = coalesce($3, (SELECT total FROM live), progress_done), \
                 progress_total = coalesce($3, (SELECT total FROM live), progress_total)"
            }
            Transition::Fail { .. } => {
                "message = $2, rows_imported = 0, completed_at = clock_timestamp(), \
                 progress_done = coalesce((SELECT done FROM live), progress_done), \
                 progress_total = coalesce((SELECT total FROM live), progress_total)"
            }
            Transition::Retry { .. } => {
                "last_error = $2, next_attempt_at = $4, message = 'Retrying after: ' || $2, \
                 progress_done = coalesce((SELECT done FROM live), progress_done), \
                 progress_total = coalesce((SELECT total FROM live), progress_total)"
            }
            Transition::Snooze { .. } => {
                "attempts = greatest(attempts - 1, 0), run_at = $4, next_attempt_at = $4, \
                 message = 'Snoozed', progress_done = NULL, progress_total = NULL"
            }
            Transition::Interrupt => {
                "attempts = greatest(attempts - 1, 0), message = $2, \
                 progress_done = NULL, progress_total = NULL"
            }
            Transition::Bury { .. } => {
                "last_error = $2, message = $2, next_attempt_at = NULL, rows_imported = 0, \
                 completed_at = clock_timestamp(), \
                 progress_done = coalesce((SELECT done FROM live), progress_done), \
                 progress_total = coalesce((SELECT total FROM live), progress_total)"
            }
            Transition::StopRun | Transition::CancelWaiting => {
                "message = 'Cancelled', next_attempt_at = NULL, completed_at = clock_timestamp(), \
                 awaiting_parents = 0, \
                 progress_done = coalesce((SELECT done FROM live), progress_done), \
                 progress_total = coalesce((SELECT total FROM live), progress_total)"
            }
            Transition::Requeue { .. } => {
                "message = $2, next_attempt_at = NULL, progress_done = NULL, progress_total = NULL"
            }
            Transition::Redrive | Transition::Restart { .. } => {
                "attempts = 0, message = $2, cancel_requested = false, next_attempt_at = NULL, \
                 started_at = NULL, completed_at = NULL, progress_done = NULL, \
                 progress_total = NULL"
            }
        }
    }

    /// Whether the move starts the job afresh, so the result file of its last run (an error
    /// report, say) no longer describes it and is removed with the move.
    fn drops_result(&self) -> bool {
        matches!(self, Transition::Redrive | Transition::Restart { .. })
    }

    /// Whether the job may be `awaiting`, so its held-back message goes with the move.
    fn drops_held_message(&self) -> bool {
        matches!(self, Transition::CancelWaiting)
    }

    fn output(&self) -> Option<&serde_json::Value> {
        match self {
            Transition::Succeed { output, .. } => *output,
            _ => None,
        }
    }

    fn rows(&self) -> Option<i64> {
        match self {
            Transition::Succeed { rows, .. } => rows.map(|r| i64::try_from(r).unwrap_or(i64::MAX)),
            _ => None,
        }
    }

    fn at(&self) -> Option<DateTime<Utc>> {
        match self {
            Transition::Retry {
                next_attempt_at, ..
            } => Some(*next_attempt_at),
            Transition::Snooze { until } => Some(*until),
            _ => None,
        }
    }
}

/// Moves job `id` by `transition` if its status is one the transition may leave, and records
/// the event, in one statement. Returns whether the job moved (`false`: it was elsewhere, e.g.
/// a late duplicate delivery of a job that ended; nothing was written).
///
/// # Errors
/// `text` as Postgres can store it: NUL (U+0000), which a `text` column refuses ("invalid byte
/// sequence for encoding UTF8: 0x00"), becomes U+FFFD. Without this a failure message quoting
/// a cell with a NUL could not be written, and the job would be retried until dead.
fn storable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', "\u{fffd}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// The database error.
///
/// # Example
/// ```no_run
/// # async fn example(db: sqlx::PgPool, id: uuid::Uuid) -> Result<(), sqlx::Error> {
/// use burrow_shared::engine::state::{apply, Transition};
/// let moved = apply(&db, id, Transition::Fail { message: "row 2: bad e-mail" }).await?;
/// # let _ = moved; Ok(()) }
/// ```
pub async fn apply(
    db: impl PgExecutor<'_>,
    id: Uuid,
    transition: Transition<'_>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(&format!(
        "WITH live AS (DELETE FROM job_progress WHERE job_id = $1 RETURNING done, total), \
         changed AS ( \
             UPDATE jobs SET status = '{to}', {set} \
             WHERE id = $1 AND status IN ({from}) RETURNING id, attempts, worker) \
         {drop_result} {drop_held} \
         INSERT INTO job_events (job_id, event, attempt, worker, detail) \
         SELECT id, '{event}', attempts, worker, $2 FROM changed",
        drop_result = if transition.drops_result() {
            ", dropped AS (DELETE FROM job_results \
                           WHERE job_id = $1 AND EXISTS (SELECT 1 FROM changed))"
        } else {
            ""
        },
        drop_held = if transition.drops_held_message() {
            ", unheld AS (DELETE FROM held_messages \
                          WHERE job_id = $1 AND EXISTS (SELECT 1 FROM changed))"
        } else {
            ""
        },
        to = transition.to().as_str(),
        set = transition.set(),
        from = JobStatus::sql_list(transition.from()),
        event = transition.event(),
    ))
    .bind(id)
    .bind(transition.detail().map(storable))
    .bind(transition.rows())
    .bind(transition.at())
    .bind(transition.output())
    .execute(db)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Ends a `processing` job `succeeded` with `output` and stores its result file, if any. Run it
/// in the transaction that wrote the job's effect, so both commit together or not at all.
///
/// # Errors
/// The database error; [`sqlx::Error::RowNotFound`] if the job was not `processing`.
pub async fn succeed(
    tx: &mut PgConnection,
    id: Uuid,
    output: &JobOutput,
) -> Result<(), sqlx::Error> {
    let succeed = Transition::Succeed {
        message: &output.message,
        rows: output.rows,
        output: output.output.as_ref(),
    };
    if !apply(&mut *tx, id, succeed).await? {
        return Err(sqlx::Error::RowNotFound);
    }
    if let Some(result) = &output.result {
        store_result(tx, id, result).await?;
    }
    Ok(())
}

/// Ends a `processing` job `failed` with `message` and stores `result` (e.g. an import's
/// error report) in one transaction, so a failed job never lacks the report its message
/// promises. Returns whether the job was `processing`; if not, nothing is written.
///
/// # Errors
/// The database error.
pub async fn fail_with_result(
    db: &sqlx::PgPool,
    id: Uuid,
    message: &str,
    result: &ResultFile,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    if !apply(&mut *tx, id, Transition::Fail { message }).await? {
        return Ok(false);
    }
    store_result(&mut tx, id, result).await?;
    tx.commit().await?;
    Ok(true)
}

/// Stores a run's result file, replacing an earlier attempt's.
async fn store_result(
    tx: &mut PgConnection,
    id: Uuid,
    result: &ResultFile,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO job_results (job_id, file_name, content_type, content, size_bytes) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (job_id) DO UPDATE SET file_name = $2, content_type = $3, content = $4, \
                                           size_bytes = $5",
    )
    .bind(id)
    .bind(&result.file_name)
    .bind(&result.content_type)
    .bind(&result.bytes)
    .bind(i64::try_from(result.bytes.len()).unwrap_or(i64::MAX))
    .execute(tx)
    .await?;
    Ok(())
}

/// Asks a `processing` job to stop: its worker sees the flag and cancels the run. Not a
/// status change (the run goes on until it notices), but recorded as `cancel_requested`.
/// Returns whether the job was processing.
///
/// # Errors
/// The database error.
pub async fn request_cancel(db: impl PgExecutor<'_>, id: Uuid) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "WITH changed AS ( \
             UPDATE jobs SET cancel_requested = true WHERE id = $1 AND status = 'processing' \
             RETURNING id, attempts, worker) \
         INSERT INTO job_events (job_id, event, attempt, worker) \
         SELECT id, 'cancel_requested', attempts, worker FROM changed",
    )
    .bind(id)
    .execute(db)
    .await?;
    Ok(done.rows_affected() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every() -> Vec<Transition<'static>> {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        vec![
            Transition::Succeed {
                message: "ok",
                rows: Some(1),
                output: None,
            },
            Transition::Fail { message: "bad" },
            Transition::Retry {
                error: "down",
                next_attempt_at: at,
            },
            Transition::Snooze { until: at },
            Transition::Interrupt,
            Transition::Bury { reason: "gone" },
            Transition::StopRun,
            Transition::CancelWaiting,
            Transition::Requeue { why: "lost" },
            Transition::Redrive,
            Transition::Restart { why: "asked" },
        ]
    }

    #[test]
    fn nothing_leaves_a_terminal_status_but_a_restart_or_a_redrive() {
        for transition in every() {
            let leaves_terminal = transition.from().iter().any(|s| s.is_terminal());
            let restarts = matches!(transition, Transition::Restart { .. } | Transition::Redrive);
            assert_eq!(leaves_terminal, restarts, "{transition:?}");
            assert!(!transition.from().contains(&transition.to()) || transition.to() == Retrying);
        }
    }

    #[test]
    fn only_a_running_job_can_succeed_fail_snooze_or_stop() {
        for transition in every() {
            if matches!(
                transition,
                Transition::Succeed { .. }
                    | Transition::Fail { .. }
                    | Transition::Snooze { .. }
                    | Transition::Interrupt
                    | Transition::StopRun
            ) {
                assert_eq!(transition.from(), [Processing], "{transition:?}");
            }
        }
    }
}

//! State changes of many jobs in one statement, so a worker pays one statement and one commit
//! for a batch of small jobs instead of several per job (group commit). The moves and events
//! are those of the table in [`super`].

use sqlx::{FromRow as _, PgConnection, PgExecutor, Row as _};
use uuid::Uuid;

use crate::engine::handler::JobOutput;
use crate::engine::job_lock::lock_key;
use crate::engine::jobs::{JobRow, JOB_COLUMNS};
use crate::engine::status::JobStatus;
use crate::job_batch::{ClaimRequest, ClaimedRun};
use crate::telemetry::TraceContext;

/// One turn of a worker's lock session, in one statement (one round trip, one commit):
/// releases the locks of `release` (jobs that ended), takes the advisory lock of each job of
/// `claim` without waiting, and claims every locked job that has not ended for `worker` —
/// status `processing`, attempt counted, `processing` event, leftover progress removed. A
/// redelivery after a crash finds its job `processing` and claims it again (the run it left
/// behind never committed).
///
/// A request marked [`ClaimRequest::capped`] (its kind has a cluster-wide cap,
/// [`crate::engine::kind_caps`]) is claimed only if it takes a slot of its kind
/// (`burrow_cap_take_many`: its own, or a free one with no waiter ahead; no kind-wide lock),
/// in this same statement; if none is free it is not claimed and comes back in
/// [`ClaimedTurn::full`], still locked, for [`super::capped::claim`] (which parks it). A kind
/// without a cap any more is claimed as if uncapped.
///
/// Session locks stack, so never ask for a job this session holds. Returns the ids locked,
/// the rows claimed and the capped ones without a slot; any other locked id without a row has
/// ended or does not exist ([`crate::job_batch::statuses`] tells which). All stay locked until
/// released.
///
/// # Errors
/// The database error; nothing is claimed then (the session may hold locks it took: close
/// it).
pub async fn release_lock_and_claim(
    conn: &mut PgConnection,
    release: &[Uuid],
    claim: &[ClaimRequest],
    worker: &str,
) -> Result<ClaimedTurn, sqlx::Error> {
    let keys = |ids: &[Uuid]| ids.iter().map(|id| lock_key(*id)).collect::<Vec<i64>>();
    let ids: Vec<Uuid> = claim.iter().map(|c| c.id).collect();
    let runs: Vec<Option<String>> = claim
        .iter()
        .map(|c| c.run.as_ref().map(|run| run.traceparent.clone()))
        .collect();
    if claim.is_empty() {
        // The statement below reads `released` only while joining it to the ids to lock: with
        // none, Postgres would never run the unlocks.
        crate::job_batch::unlock(conn, release).await?;
        return Ok(ClaimedTurn::default());
    }
    let capped: Vec<bool> = claim.iter().map(|c| c.capped).collect();
    // Each run's span context is kept on its job, and the one kept before comes back, for the
    // run's link to it. With tracing off (no run has one) neither is looked up.
    let (previous_cte, run_value, previous_value) = if runs.iter().any(Option::is_some) {
        (
            "previous AS (SELECT id, run_traceparent FROM jobs \
                          WHERE id IN (SELECT id FROM locked)),",
            "(SELECT l.run FROM locked l WHERE l.id = jobs.id)",
            "(SELECT p.run_traceparent FROM previous p WHERE p.id = jobs.id)",
        )
    } else {
        ("", "NULL", "NULL::text")
    };
    // A slot per capped request, taken in this statement: each job's row first (the order of
    // a run's end, which locks its job and then its slot), then `burrow_cap_take_many` for
    // them all (free slots paired with jobs in one UPDATE per kind while no one waits; one
    // by one otherwise). Without capped requests none of it is in the statement.
    // An awaiting job has no message in the broker; refusing it here too keeps a stray one (a
    // message forged or replayed by hand) from running it before its parents.
    let not_runnable =
        JobStatus::sql_list(&[&JobStatus::TERMINAL[..], &[JobStatus::Awaiting]].concat());
    let (slot_ctes, not_full, took_slot, full_value, full_join) = if capped.contains(&true) {
        (
            format!(
                "capped_jobs AS MATERIALIZED ( \
                     SELECT j.id, j.kind FROM jobs j \
                     WHERE j.id IN (SELECT id FROM locked WHERE capped) \
                       AND j.status NOT IN ({not_runnable}) \
                     ORDER BY j.id FOR NO KEY UPDATE), \
                 slotted AS MATERIALIZED ( \
                     SELECT t.id, t.took \
                     FROM (SELECT array_agg(id) AS ids, array_agg(kind) AS kinds \
                           FROM capped_jobs) AS c, \
                          burrow_cap_take_many(c.ids, c.kinds) AS t), \
                 unparked AS ( \
                     DELETE FROM capped_waiters \
                     WHERE job_id IN (SELECT id FROM slotted WHERE took)),"
            ),
            "AND id NOT IN (SELECT id FROM slotted WHERE took IS FALSE)",
            "capped OR id IN (SELECT id FROM slotted WHERE took)",
            "coalesce(slotted.took IS FALSE, false)",
            "LEFT JOIN slotted USING (id)",
        )
    } else {
        (String::new(), "", "capped", "false", "")
    };
    // `released` is a one-row aggregate joined into `locked`, so every release happens before
    // the first lock: a job released and asked for again in the same turn is locked once, not
    // twice. "Not ended" is spelled NOT IN on purpose: the status index cannot serve it, so
    // the ids are looked up by primary key (see [`open_session`]).
    let rows = sqlx::query(&format!(
        "WITH released AS ( \
             SELECT count(pg_advisory_unlock(key)) FROM unnest($1::bigint[]) AS key), \
         locked AS ( \
             SELECT r.id, r.run, r.capped FROM unnest($2::uuid[], $3::bigint[], $5::text[], \
                                                      $6::boolean[]) \
                 AS r(id, key, run, capped), released \
             WHERE pg_try_advisory_lock(r.key)), \
         {previous_cte} \
         {slot_ctes} \
         live AS (DELETE FROM job_progress WHERE job_id IN (SELECT id FROM locked)), \
         claimed AS ( \
             UPDATE jobs SET status = 'processing', attempts = attempts + 1, worker = $4, \
                    started_at = clock_timestamp(), message = NULL, next_attempt_at = NULL, \
                    rate_slot_at = NULL, \
                    progress_done = NULL, progress_total = NULL, \
                    run_traceparent = {run_value}, capped = {took_slot} \
             WHERE id IN (SELECT id FROM locked) \
               AND status NOT IN ({not_runnable}) {not_full} \
             RETURNING {JOB_COLUMNS}, {previous_value} AS previous_run), \
         event AS ( \
             INSERT INTO job_events (job_id, event, attempt, worker) \
             SELECT id, 'processing', attempts, worker FROM claimed) \
         SELECT locked.id AS locked_id, {full_value} AS full, claimed.* \
         FROM locked {full_join} LEFT JOIN claimed USING (id)",
    ))
    .bind(keys(release))
    .bind(&ids)
    .bind(keys(&ids))
    .bind(worker)
    .bind(&runs)
    .bind(&capped)
    .fetch_all(conn)
    .await?;
    let mut turn = ClaimedTurn::default();
    for row in rows {
        let id: Uuid = row.try_get("locked_id")?;
        turn.locked.push(id);
        if row.try_get::<bool, _>("full")? {
            turn.full.push(id);
        } else if row.try_get::<Option<Uuid>, _>("id")?.is_some() {
            let previous: Option<String> = row.try_get("previous_run")?;
            turn.claimed.push(ClaimedRun {
                job: JobRow::from_row(&row)?,
                previous_run: TraceContext::from_headers(previous.as_deref(), None),
            });
        }
    }
    Ok(turn)
}

/// What one [`release_lock_and_claim`] did.
#[derive(Debug, Default)]
pub struct ClaimedTurn {
    /// Every job whose lock was taken (the others are busy elsewhere).
    pub locked: Vec<Uuid>,
    /// The jobs claimed, now `processing`.
    pub claimed: Vec<ClaimedRun>,
    /// Locked capped jobs for which no slot of their kind was free: not claimed, still
    /// locked, for [`super::capped::claim`].
    pub full: Vec<Uuid>,
}

/// Marks every `processing` job of `done` succeeded with its output's message and rows, in one
/// statement (one commit): [`super::succeed`] for runs that wrote nothing and made
/// no result file. Returns the ids that changed; the others were no longer `processing`.
///
/// Runs under a cluster-wide cap ([`crate::engine::kind_caps`]) let go of their slots in the
/// same statement, all at once per kind (`burrow_cap_let_go_many`: freed together while no
/// one waits, else each handed to the oldest waiter), instead of one trigger call per job: the
/// statement clears their `capped` flag, which the row trigger then skips.
///
/// # Errors
/// The database error; nothing is marked then.
pub async fn succeed_many(
    db: impl PgExecutor<'_>,
    done: &[(Uuid, JobOutput)],
) -> Result<Vec<Uuid>, sqlx::Error> {
    let ids: Vec<Uuid> = done.iter().map(|(id, _)| *id).collect();
    let messages: Vec<&str> = done.iter().map(|(_, o)| o.message.as_str()).collect();
    let rows: Vec<Option<i64>> = done
        .iter()
        .map(|(_, o)| o.rows.map(|r| i64::try_from(r).unwrap_or(i64::MAX)))
        .collect();
    let outputs: Vec<Option<&serde_json::Value>> =
        done.iter().map(|(_, o)| o.output.as_ref()).collect();
    sqlx::query_scalar(
        "WITH done AS ( \
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::jsonb[]) \
                 AS d(id, message, rows, output)), \
         live AS ( \
             DELETE FROM job_progress WHERE job_id = ANY($1) RETURNING job_id, total), \
         changed AS ( \
             UPDATE jobs j SET status = 'succeeded', rows_imported = d.rows, message = d.message, \
                    output = d.output, completed_at = clock_timestamp(), \
                    progress_done = coalesce(d.rows, l.total, j.progress_done), \
                    progress_total = coalesce(d.rows, l.total, j.progress_total), \
                    capped = false \
             FROM done d LEFT JOIN live l ON l.job_id = d.id \
             WHERE j.id = d.id AND j.status = 'processing' \
             RETURNING j.id, j.kind, j.attempts, j.worker, d.message), \
         event AS ( \
             INSERT INTO job_events (job_id, event, attempt, worker, detail) \
             SELECT id, 'succeeded', attempts, worker, message FROM changed), \
         let_go AS ( \
             SELECT burrow_cap_let_go_many(array_agg(c.id), array_agg(c.kind)) \
             FROM changed c \
             WHERE EXISTS (SELECT 1 FROM kind_cap_slots s WHERE s.job_id = c.id)) \
         SELECT id FROM changed, let_go",
    )
    .bind(&ids)
    .bind(&messages)
    .bind(&rows)
    .bind(&outputs)
    .fetch_all(db)
    .await
}

//! Jobs that wait for other jobs: the edges from parents to children, and reading them.
//!
//! A job enqueued with parents ([`crate::engine::enqueue::NewJob::depends_on`]) is stored
//! `awaiting`, its first message held back. The release is the database's: the trigger
//! `jobs_release_dependents` (migration `20261205000600_workflows.sql`) runs in the
//! transaction that ends a parent, whichever code path ends it (a worker's success or group
//! commit, a failure, the sweeper burying it, the api cancelling it), and
//! - counts the parent off each of its children (once per edge: a parent restarted and ending
//!   again does not count twice);
//! - releases a child whose last parent ended: `queued`, its message handed to the outbox;
//! - cancels a child at once when the parent ended `failed`, `dead` or `cancelled`, with the
//!   reason, unless the child was created with `run_on_failure`; a cancelled child cancels its
//!   own children the same way.
//!
//! So a child is released exactly once, by the commit that ends its last parent, and a
//! rolled-back end releases nothing. Cycles cannot be built: parents exist before their
//! children (or come earlier in the same [`crate::engine::enqueue::enqueue_many`] call).
//!
//! Two parents of one child ending at once on two replicas update the child's counter one
//! after the other (row lock). Two transactions that end parents of the same two children in
//! opposite orders can deadlock; Postgres aborts one, and its worker treats that like any
//! database error: the run is retried (at-least-once).

use std::collections::HashSet;

use serde::Serialize;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::engine::status::JobStatus;

/// A parent or child of a job, as its run context and the api show it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Relative {
    /// The job's id.
    pub id: Uuid,
    /// Its kind.
    pub kind: String,
    /// Its status now.
    #[sqlx(try_from = "String")]
    pub status: JobStatus,
    /// Its message ("Imported 200 rows", the error).
    pub message: Option<String>,
    /// What its successful run returned ([`crate::engine::handler::JobOutput::output`]).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub output: Option<serde_json::Value>,
}

/// Records that each `(child, parent)` of `edges` waits for its parent, in the caller's
/// transaction, after the children were inserted `awaiting` with their count of parents (by the
/// caller's own transaction, so none has an edge yet; no pair may come twice).
/// Parents that have ended already are resolved here and now (the trigger saw them end before
/// they had this child).
///
/// Locks each stored parent row and marks it as having dependents, so a parent ending at the
/// same moment either ends first (and its end is seen here) or after this commit (and its
/// trigger sees the edge). Parents in `fresh` are skipped there: rows this transaction inserted
/// (with `has_dependents` set, not ended), which no other transaction can see, let alone end,
/// before the commit that also stores the edges; locking and re-reading them would only cost a
/// row visit each (10,000 for a full batch's callback).
///
/// Returns whether a parent had ended, so a child may have moved (released or cancelled).
///
/// # Errors
/// [`LinkError::UnknownParent`] if a parent does not exist; the database error.
pub(crate) async fn link(
    conn: &mut PgConnection,
    edges: &[(Uuid, Uuid)],
    fresh: &HashSet<Uuid>,
) -> Result<bool, LinkError> {
    if edges.is_empty() {
        return Ok(false);
    }
    let mut parents: Vec<Uuid> = edges
        .iter()
        .map(|(_, parent)| *parent)
        .filter(|parent| !fresh.contains(parent))
        .collect();
    // One order for every caller, so two enqueues sharing parents lock them alike.
    parents.sort_unstable();
    parents.dedup();
    let mut marked: Vec<(Uuid, String)> = Vec::new();
    if !parents.is_empty() {
        // The lock conflicts with the UPDATE that ends a parent, and after waiting for one,
        // the status read is the one it committed. Locked in id order, like every caller.
        marked = sqlx::query_as(
            "SELECT id, status FROM jobs WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
        )
        .bind(&parents)
        .fetch_all(&mut *conn)
        .await?;
        let found: HashSet<Uuid> = marked.iter().map(|(id, _)| *id).collect();
        if let Some(missing) = parents.iter().find(|id| !found.contains(id)) {
            return Err(LinkError::UnknownParent(*missing));
        }
        sqlx::query(
            "UPDATE jobs SET has_dependents = true WHERE id = ANY($1) AND NOT has_dependents",
        )
        .bind(&parents)
        .execute(&mut *conn)
        .await?;
    }
    let (children, parent_ids): (Vec<Uuid>, Vec<Uuid>) = edges.iter().copied().unzip();
    // No `ON CONFLICT`: every child was inserted by the caller's statement just now, so none
    // has an edge yet, and the caller refuses a parent named twice.
    sqlx::query(
        "INSERT INTO job_dependencies (child_id, parent_id) \
         SELECT * FROM unnest($1::uuid[], $2::uuid[])",
    )
    .bind(&children)
    .bind(&parent_ids)
    .execute(&mut *conn)
    .await?;
    let (ended, outcomes): (Vec<Uuid>, Vec<String>) = marked
        .into_iter()
        .filter(|(_, status)| {
            status
                .parse::<JobStatus>()
                .is_ok_and(JobStatus::is_terminal)
        })
        .unzip();
    if !ended.is_empty() {
        sqlx::query(
            "SELECT burrow_resolve_dependents(e.id, e.outcome) \
             FROM unnest($1::uuid[], $2::text[]) AS e(id, outcome) ORDER BY e.id",
        )
        .bind(&ended)
        .bind(&outcomes)
        .execute(&mut *conn)
        .await?;
    }
    Ok(!ended.is_empty())
}

/// Why [`link`] refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    /// No job has this id.
    #[error("parent job {0} does not exist")]
    UnknownParent(Uuid),
    /// Postgres failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The jobs `id` waits (or waited) for, oldest first.
///
/// # Errors
/// The database error.
pub async fn parents(db: impl PgExecutor<'_>, id: Uuid) -> Result<Vec<Relative>, sqlx::Error> {
    sqlx::query_as(
        "SELECT j.id, j.kind, j.status, j.message, j.output \
         FROM job_dependencies d JOIN jobs j ON j.id = d.parent_id \
         WHERE d.child_id = $1 ORDER BY j.id",
    )
    .bind(id)
    .fetch_all(db)
    .await
}

/// The jobs that wait (or waited) for `id`, oldest first, at most `limit`.
///
/// # Errors
/// The database error.
pub async fn children(
    db: impl PgExecutor<'_>,
    id: Uuid,
    limit: i64,
) -> Result<Vec<Relative>, sqlx::Error> {
    sqlx::query_as(
        "SELECT j.id, j.kind, j.status, j.message, j.output \
         FROM job_dependencies d JOIN jobs j ON j.id = d.child_id \
         WHERE d.parent_id = $1 ORDER BY j.id LIMIT $2",
    )
    .bind(id)
    .bind(limit)
    .fetch_all(db)
    .await
}

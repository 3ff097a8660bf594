//! Leader election for periodic chores (the sweeper, retention, recurring jobs): every
//! replica tries each tick, and the one that gets the chore's transaction-level advisory lock
//! does it. The lock ends with the transaction, so a replica that dies mid-chore frees it at
//! once and another takes the next tick (<https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS>).
//!
//! The keys are ASCII tags of the chores; job locks ([`crate::job_lock`]) use hashed UUIDs.

use sqlx::PgConnection;

/// A chore that one replica does at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chore {
    /// Re-enqueueing jobs whose worker and message were lost ("burrowSW").
    Sweeper,
    /// Deleting finished jobs past their retention ("burrowRT").
    Retention,
    /// Enqueueing recurring jobs ("burrowRC").
    Recurring,
}

impl Chore {
    /// Its advisory lock key.
    pub fn key(self) -> i64 {
        match self {
            Chore::Sweeper => 0x6275_7272_6f77_5357,
            Chore::Retention => 0x6275_7272_6f77_5254,
            Chore::Recurring => 0x6275_7272_6f77_5243,
        }
    }
}

/// Whether this replica leads `chore` for the rest of the transaction `tx` (never waits).
///
/// # Errors
/// The database error.
///
/// # Example
/// ```no_run
/// use burrow_shared::engine::leader::{try_lead, Chore};
/// # async fn example(db: sqlx::PgPool) -> Result<(), sqlx::Error> {
/// let mut tx = db.begin().await?;
/// if try_lead(&mut tx, Chore::Retention).await? {
///     // … the chore, in `tx` …
/// }
/// tx.commit().await?;
/// # Ok(()) }
/// ```
pub async fn try_lead(tx: &mut PgConnection, chore: Chore) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(chore.key())
        .fetch_one(tx)
        .await
}

//! A per-job mutex across all workers: a Postgres session-level advisory lock.
//!
//! RabbitMQ may hand two deliveries of one job to two workers at once (a duplicate publish, or a
//! redelivery while the first worker is still running). Only one may run the job; the other
//! sees the lock taken and parks its copy in a delay queue until the job has ended or the lock
//! is free. The lock lives on a database session (a worker holds the locks of all its running
//! jobs on one, see `burrow_worker::batcher`), so a crashed worker releases them when its
//! connection drops (<https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS>).
//! [`JobLock`] takes one lock on a connection of its own: the sweeper uses it to tell a live
//! run from a dead one.

use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};
use uuid::Uuid;

/// A held job lock and the connection holding it; run the job on [`JobLock::conn`].
pub struct JobLock {
    conn: Option<PoolConnection<Postgres>>,
    key: i64,
}

impl JobLock {
    /// Takes the lock of job `id` without waiting; `None` when another session holds it.
    ///
    /// # Errors
    /// The database error.
    pub async fn try_acquire(db: &PgPool, id: Uuid) -> Result<Option<JobLock>, sqlx::Error> {
        let key = lock_key(id);
        let mut conn = db.acquire().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut *conn)
            .await?;
        Ok(locked.then_some(JobLock {
            conn: Some(conn),
            key,
        }))
    }

    /// The connection that holds the lock.
    pub fn conn(&mut self) -> &mut sqlx::PgConnection {
        // Only `release` and `drop` take the connection, and both consume the lock.
        self.conn
            .as_deref_mut()
            .expect("connection present until release")
    }

    /// Unlocks and returns the connection to the pool.
    pub async fn release(mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(self.key)
            .execute(&mut *conn)
            .await;
        if unlocked.is_err() {
            // Never pool a session that may still hold the lock: close it, freeing the lock.
            drop(conn.detach());
        }
    }
}

impl Drop for JobLock {
    fn drop(&mut self) {
        // Dropped without `release` (a panic, a cancelled task): close the session instead of
        // pooling it, which frees the lock on the server.
        if let Some(conn) = self.conn.take() {
            drop(conn.detach());
        }
    }
}

/// The 64-bit advisory key of a job: both halves of its UUID folded together, so UUIDv7s made
/// in the same millisecond still differ (their low half is random).
pub fn lock_key(id: Uuid) -> i64 {
    let (high, low) = id.as_u64_pair();
    (high ^ low) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_the_same_millisecond_get_different_keys() {
        let a = Uuid::now_v7();
        let b = Uuid::now_v7();
        assert_ne!(lock_key(a), lock_key(b));
        assert_eq!(lock_key(a), lock_key(a));
    }
}

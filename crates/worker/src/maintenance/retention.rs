//! Retention: deletes finished jobs (with their files, rows, results and history) once they are
//! older than `RETENTION_DAYS`, a batch per tick, one replica at a time.

use sqlx::PgPool;

/// Advisory lock key of retention ("burrowRT").
pub const RETENTION_LOCK: i64 = 0x6275_7272_6f77_5254;
/// Jobs deleted per tick at most, so one tick never holds locks for long.
pub const RETENTION_BATCH: i64 = 1000;

/// Deletes up to [`RETENTION_BATCH`] jobs that ended more than `days` days ago (everything
/// of theirs goes too: `ON DELETE CASCADE`). Returns how many; 0 when `days` is 0 (keep
/// forever) or another replica holds the lock.
///
/// # Errors
/// The database error.
pub async fn delete_expired(db: &PgPool, days: u32) -> Result<u64, sqlx::Error> {
    if days == 0 {
        return Ok(0);
    }
    let mut tx = db.begin().await?;
    let leader: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(RETENTION_LOCK)
        .fetch_one(&mut *tx)
        .await?;
    if !leader {
        return Ok(0);
    }
    let deleted = sqlx::query(
        "DELETE FROM jobs WHERE id IN ( \
             SELECT id FROM jobs \
             WHERE status IN ('succeeded', 'failed', 'dead', 'cancelled') \
               AND completed_at < now() - make_interval(days => $1) \
             LIMIT $2)",
    )
    .bind(i32::try_from(days).unwrap_or(i32::MAX))
    .bind(RETENTION_BATCH)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    // job_progress has no foreign key (see its migration): rows whose job is gone go here.
    sqlx::query(
        "DELETE FROM job_progress p WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = p.job_id)",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(deleted)
}

//! Retention: deletes finished jobs (with their files, rows, results and history) once they are
//! older than `RETENTION_DAYS`, a batch per tick, one replica at a time.

use burrow_shared::leader::{try_lead, Chore};
use burrow_shared::JobStatus;
use sqlx::PgPool;
/// Jobs deleted per tick at most, so one tick never holds locks for long.
pub const RETENTION_BATCH: i64 = 1000;

/// Deletes up to [`RETENTION_BATCH`] jobs that ended more than `days` days ago (everything
/// of theirs goes too: `ON DELETE CASCADE`, and a trigger for imported rows). Returns how
/// many; 0 when `days` is 0 (keep forever) or another replica holds the lock.
///
/// # Errors
/// The database error.
pub async fn delete_expired(db: &PgPool, days: u32) -> Result<u64, sqlx::Error> {
    if days == 0 {
        return Ok(0);
    }
    let mut tx = db.begin().await?;
    if !try_lead(&mut tx, Chore::Retention).await? {
        return Ok(0);
    }
    let deleted = sqlx::query(&format!(
        "DELETE FROM jobs WHERE id IN ( \
             SELECT id FROM jobs \
             WHERE status IN ({ended}) AND completed_at < now() - make_interval(days => $1) \
             LIMIT $2)",
        ended = JobStatus::sql_list(&JobStatus::TERMINAL),
    ))
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

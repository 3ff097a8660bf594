//! The transactional outbox: job messages written in the same transaction as their job, and
//! published later by a relay (<https://microservices.io/patterns/data/transactional-outbox.html>).

use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::message::JobMessage;

/// A message waiting to be published.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PendingMessage {
    /// Outbox row id (publication order).
    pub id: i64,
    /// The job it runs.
    pub job_id: Uuid,
    /// The encoded [`JobMessage`].
    pub message: Vec<u8>,
}

/// Adds `message` to the outbox. Call in the transaction that writes its job.
///
/// # Errors
/// The database error.
pub async fn add(tx: &mut PgConnection, message: &JobMessage) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO outbox (job_id, message) VALUES ($1, $2)")
        .bind(message.job_id)
        .bind(message.encode())
        .execute(tx)
        .await?;
    Ok(())
}

/// Adds many messages in one statement. Call in the transaction that writes their jobs.
///
/// # Errors
/// The database error.
pub async fn add_all(tx: &mut PgConnection, messages: &[JobMessage]) -> Result<(), sqlx::Error> {
    let ids: Vec<Uuid> = messages.iter().map(|m| m.job_id).collect();
    let bodies: Vec<Vec<u8>> = messages.iter().map(JobMessage::encode).collect();
    sqlx::query(
        "INSERT INTO outbox (job_id, message) SELECT * FROM unnest($1::uuid[], $2::bytea[])",
    )
    .bind(&ids)
    .bind(&bodies)
    .execute(tx)
    .await?;
    Ok(())
}

/// Locks up to `limit` pending messages, oldest first, skipping rows another relay holds
/// (`FOR UPDATE SKIP LOCKED`), so api replicas share the backlog without double work. The
/// locks last until `tx` ends: publish, then [`mark_published`], then commit.
///
/// # Errors
/// The database error.
pub async fn lock_pending(
    tx: &mut PgConnection,
    limit: i64,
) -> Result<Vec<PendingMessage>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, job_id, message FROM outbox WHERE published_at IS NULL \
         ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(tx)
    .await
}

/// Stamps the given rows as published.
///
/// # Errors
/// The database error.
pub async fn mark_published(tx: &mut PgConnection, ids: &[i64]) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE outbox SET published_at = clock_timestamp() WHERE id = ANY($1)")
        .bind(ids)
        .execute(tx)
        .await?;
    Ok(())
}

/// Messages not yet published (the relay's backlog).
///
/// # Errors
/// The database error.
pub async fn pending_count(db: impl PgExecutor<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(db)
        .await
}

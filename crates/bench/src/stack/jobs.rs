//! Reading and resetting the bench database's job tables directly: counts and times per owner
//! tag, the outbox's backlog, committed transactions, and emptying the tables (and removing a
//! kind's cap) between benches.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::Stack;

impl Stack {
    /// Transactions committed in the bench database so far (`pg_stat_database.xact_commit`,
    /// read-only ones included). Backends report theirs when they exit or at most every
    /// second while busy, so read it after stopping the processes whose work it should count.
    ///
    /// # Errors
    /// The database error.
    pub async fn transactions(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(&self.db)
        .await?)
    }

    /// Outbox rows not yet published (all tags).
    ///
    /// # Errors
    /// The database error.
    pub async fn outbox_pending(&self) -> anyhow::Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&self.db)
                .await?,
        )
    }

    /// Waits until the relay published every outbox row (up to `timeout`).
    ///
    /// # Errors
    /// If rows are still pending then.
    pub async fn wait_outbox_drained(&self, timeout: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let pending = self.outbox_pending().await?;
            if pending == 0 {
                return Ok(());
            }
            anyhow::ensure!(
                started.elapsed() < timeout,
                "{pending} outbox rows still unpublished after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The jobs owned by `tag`, counted by outcome.
    ///
    /// # Errors
    /// The database error.
    pub async fn tally(&self, tag: &str) -> anyhow::Result<Tally> {
        let (succeeded, ended_badly, total, first_started, last_completed) =
            sqlx::query_as::<_, (i64, i64, i64, Option<DateTime<Utc>>, Option<DateTime<Utc>>)>(
                "SELECT count(*) FILTER (WHERE status = 'succeeded'), \
                        count(*) FILTER (WHERE status IN ('failed', 'dead', 'cancelled')), \
                        count(*), min(started_at), max(completed_at) \
                 FROM jobs WHERE user_id = $1",
            )
            .bind(tag)
            .fetch_one(&self.db)
            .await?;
        Ok(Tally {
            succeeded: u64::try_from(succeeded).unwrap_or(0),
            ended_badly: u64::try_from(ended_badly).unwrap_or(0),
            total: u64::try_from(total).unwrap_or(0),
            first_started,
            last_completed,
        })
    }

    /// The median and 95th-percentile wait (`started_at − created_at`) of `tag`'s started jobs,
    /// in milliseconds (0 if none started).
    ///
    /// # Errors
    /// The database error.
    pub async fn wait_percentiles_ms(&self, tag: &str) -> anyhow::Result<(f64, f64)> {
        let (p50, p95): (Option<f64>, Option<f64>) = sqlx::query_as(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY wait_ms), \
                    percentile_cont(0.95) WITHIN GROUP (ORDER BY wait_ms) \
             FROM (SELECT extract(epoch FROM started_at - created_at)::float8 * 1000 AS wait_ms \
                   FROM jobs WHERE user_id = $1 AND started_at IS NOT NULL) waits",
        )
        .bind(tag)
        .fetch_one(&self.db)
        .await?;
        Ok((p50.unwrap_or(0.0), p95.unwrap_or(0.0)))
    }

    /// Jobs of any tag whose `completed_at` falls in `[from, to]`.
    ///
    /// # Errors
    /// The database error.
    pub async fn completed_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> anyhow::Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM jobs WHERE completed_at BETWEEN $1 AND $2")
                .bind(from)
                .bind(to)
                .fetch_one(&self.db)
                .await?,
        )
    }

    /// Forgets every tenant's fair-share usage (`burrow_shared::engine::fair_share`), so a
    /// bench's tenants start even.
    ///
    /// # Errors
    /// The database error.
    pub async fn reset_fair_share(&self) -> anyhow::Result<()> {
        sqlx::query("TRUNCATE fair_share_usage")
            .execute(&self.db)
            .await?;
        Ok(())
    }

    /// Empties the job tables (`TRUNCATE jobs CASCADE`: files, results, history, outbox), so
    /// each bench starts on empty tables. Call it while no worker runs. Imported rows have no
    /// foreign key to `jobs`: [`Self::reset_imported_rows`] empties them.
    ///
    /// (`TRUNCATE`, not `DELETE`: it empties each table at once instead of deleting 50,000
    /// jobs and their cascades row by row.)
    ///
    /// # Errors
    /// The database error.
    pub async fn reset_jobs(&self) -> anyhow::Result<()> {
        sqlx::query("TRUNCATE jobs CASCADE")
            .execute(&self.db)
            .await?;
        Ok(())
    }

    /// Removes `kind`'s cluster-wide cap: caps live in the database, so a worker started
    /// without `KIND_CAPS` after one started with it still obeys the cap until it is removed.
    ///
    /// # Errors
    /// The database error.
    pub async fn remove_kind_cap(&self, kind: &str) -> anyhow::Result<()> {
        burrow_shared::engine::kind_caps::remove(&self.db, kind).await?;
        Ok(())
    }

    /// Empties `imported_rows` and forces a checkpoint, so each import starts on an empty table
    /// with no checkpoint of the previous one's WAL pending.
    ///
    /// # Errors
    /// The database error.
    pub async fn reset_imported_rows(&self) -> anyhow::Result<()> {
        sqlx::query("TRUNCATE imported_rows")
            .execute(&self.db)
            .await?;
        sqlx::query("CHECKPOINT").execute(&self.db).await?;
        Ok(())
    }
}

/// Counts of a tag's jobs, and the first start and last completion among them.
#[derive(Debug, Clone, Copy)]
pub struct Tally {
    /// Jobs that ended `succeeded`.
    pub succeeded: u64,
    /// Jobs that ended `failed`, `dead` or `cancelled`.
    pub ended_badly: u64,
    /// All the tag's jobs.
    pub total: u64,
    /// The earliest `started_at`.
    pub first_started: Option<DateTime<Utc>>,
    /// The latest `completed_at`.
    pub last_completed: Option<DateTime<Utc>>,
}

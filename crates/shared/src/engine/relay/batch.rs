//! One relay batch: lock pending outbox rows, publish them, await the confirms, stamp the
//! confirmed rows published, commit.

use std::collections::BTreeSet;

use futures::future::join_all;
use lapin::Channel;
use sqlx::PgPool;

use super::fair::{lock_fair, FairRelease};
use super::{RelayError, BATCH_SIZE, CONFIRM_TIMEOUT};
use crate::engine::fair_share;
use crate::engine::message::JobMessage;
use crate::engine::outbox::{self, PendingMessage};
use crate::engine::publish::publish_job;
use crate::engine::topology::Topology;

/// What one batch did.
pub(super) struct Batch {
    /// Rows locked.
    pub(super) locked: usize,
    /// Rows confirmed by the broker and stamped published.
    pub(super) published: usize,
}

impl Batch {
    /// Whether the batch was full and every row in it was published: then more rows may be
    /// pending right behind it. (A batch with rows left pending is not retried at once, so an
    /// unpublishable row cannot make the relay spin.)
    pub(super) fn full_and_all_published(&self) -> bool {
        i64::try_from(self.locked).is_ok_and(|locked| locked == BATCH_SIZE)
            && self.published == self.locked
    }
}

/// One transaction: lock pending rows (the oldest, or with `fair` the next in turn order up to
/// the window's room), publish them, await the confirms, stamp the confirmed rows, commit.
/// Rows whose publish failed stay pending; the first failure is returned after the confirmed
/// rows are committed.
pub(super) async fn relay_batch(
    db: &PgPool,
    channel: &Channel,
    topology: &Topology,
    mut fair: Option<&mut FairRelease>,
    undecodable: &mut BTreeSet<i64>,
) -> Result<Batch, RelayError> {
    let mut tx = db.begin().await?;
    let pending = match fair.as_deref_mut() {
        None => outbox::lock_pending(&mut tx, BATCH_SIZE).await?,
        Some(fair) => lock_fair(&mut tx, channel, topology, fair).await?,
    };
    if pending.is_empty() {
        return Ok(Batch {
            locked: 0,
            published: 0,
        });
    }
    let messages: Vec<(i64, JobMessage)> = pending
        .iter()
        .filter_map(|row| decode(row, undecodable))
        .collect();

    // Publish the whole batch at once and await the confirms together: one round trip per
    // batch instead of one per message. Each confirm is matched to its own row.
    let publishes = messages
        .iter()
        .map(|(id, message)| async move { (*id, publish_job(channel, topology, message).await) });
    let results = tokio::time::timeout(CONFIRM_TIMEOUT, join_all(publishes))
        .await
        .map_err(|_| RelayError::Timeout(CONFIRM_TIMEOUT, "awaiting publisher confirms"))?;

    let mut confirmed = Vec::with_capacity(results.len());
    let mut failure = None;
    for (id, result) in results {
        match result {
            Ok(()) => confirmed.push(id),
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    if !confirmed.is_empty() {
        outbox::mark_published(&mut tx, &confirmed).await?;
        if let Some(fair) = fair {
            fair_share::record_released(&mut tx, &confirmed, fair.share.half_life()).await?;
        }
    }
    tx.commit().await?;
    crate::engine::relay_metrics::record_published(confirmed.len());
    match failure {
        Some(e) => {
            tracing::debug!(
                published = confirmed.len(),
                locked = pending.len(),
                "outbox batch partly published"
            );
            Err(e.into())
        }
        None => Ok(Batch {
            locked: pending.len(),
            published: confirmed.len(),
        }),
    }
}

/// The row's message, or `None` (reported once per row) if this build cannot read it, e.g. a
/// newer version written by another replica during a rolling upgrade; it stays pending for a
/// relay that can.
fn decode(row: &PendingMessage, undecodable: &mut BTreeSet<i64>) -> Option<(i64, JobMessage)> {
    match JobMessage::decode(&row.message) {
        Ok(message) => Some((row.id, message)),
        Err(e) => {
            if undecodable.insert(row.id) {
                tracing::error!(
                    outbox.id = row.id,
                    job.id = %row.job_id,
                    error = %e,
                    "outbox row is not a job message this build can publish; leaving it pending"
                );
            }
            None
        }
    }
}

//! A relay batch's selection in fair mode: the turn to release (one relay at a time), the room
//! left in the window, and the pending rows in turn order up to it, from the relay's last
//! ranking of the backlog ([`crate::engine::fair_share`]).

use std::collections::VecDeque;
use std::time::Instant;

use lapin::Channel;
use sqlx::PgConnection;

use super::{RelayError, BATCH_SIZE};
use crate::engine::fair_share::{self, FairShare, RELEASE_LOCK, RERANK_AFTER};
use crate::engine::outbox::PendingMessage;
use crate::engine::queue_counts::queue_counts;
use crate::engine::topology::Topology;

/// How many ids of the backlog one ranking keeps: the releases until the next ranking.
const RANKED_AHEAD: i64 = 2_000;

/// A relay's fair sharing: the setting, and the last ranking of the backlog it releases from.
pub(super) struct FairRelease {
    /// The window and the usage half-life.
    pub(super) share: FairShare,
    /// Outbox ids in turn order, as last ranked; released from the front.
    order: VecDeque<i64>,
    /// When `order` was ranked; `None`: rank before the next release.
    ranked_at: Option<Instant>,
}

impl FairRelease {
    pub(super) fn new(share: FairShare) -> Self {
        FairRelease {
            share,
            order: VecDeque::new(),
            ranked_at: None,
        }
    }

    /// New messages arrived: rank again before the next release, so they get their turn.
    pub(super) fn rerank(&mut self) {
        self.ranked_at = None;
    }

    fn needs_ranking(&self) -> bool {
        self.order.is_empty() || self.ranked_at.is_none_or(|at| at.elapsed() >= RERANK_AFTER)
    }
}

/// Locks the next pending rows to release in `tx`: none if another relay is releasing now
/// (it holds the release lock until its batch commits) or the work queues already hold
/// `fair.window()` ready messages.
pub(super) async fn lock_fair(
    tx: &mut PgConnection,
    channel: &Channel,
    topology: &Topology,
    fair: &mut FairRelease,
) -> Result<Vec<PendingMessage>, RelayError> {
    let my_turn: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(RELEASE_LOCK)
        .fetch_one(&mut *tx)
        .await?;
    if !my_turn {
        return Ok(Vec::new());
    }
    // Read under the lock: whatever the relay before this one published is confirmed, so
    // counted, by now.
    let ready = ready_messages(channel, topology).await?;
    let room = i64::from(fair.share.window()) - i64::from(ready);
    if room <= 0 {
        return Ok(Vec::new());
    }
    if fair.needs_ranking() {
        let ranked = fair_share::turn_order(&mut *tx, RANKED_AHEAD, fair.share.half_life()).await?;
        fair.order = ranked.into();
        fair.ranked_at = Some(Instant::now());
    }
    let take = usize::try_from(room.min(BATCH_SIZE))
        .unwrap_or(0)
        .min(fair.order.len());
    let next: Vec<i64> = fair.order.drain(..take).collect();
    let rows = fair_share::lock_pending_ids(tx, &next).await?;
    if rows.len() < next.len() {
        // Some were released by another relay (or are being): this order is behind.
        fair.rerank();
    }
    Ok(rows)
}

/// Messages ready (not delivered) in every work queue of `topology` (both lanes of the default
/// queue and of each named one it declares), from passive declares.
async fn ready_messages(channel: &Channel, topology: &Topology) -> Result<u32, RelayError> {
    let mut ready = 0u32;
    for queue in topology.work_queues() {
        let counts = queue_counts(channel, queue.as_str()).await?;
        ready = ready.saturating_add(counts.ready);
    }
    Ok(ready)
}

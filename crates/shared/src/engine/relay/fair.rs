//! A relay batch's selection in fair mode: the turn to release (one relay at a time), the room
//! left in the window, and the pending rows in turn order up to it
//! ([`crate::engine::fair_share`]).

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::Channel;
use sqlx::PgConnection;

use super::{RelayError, BATCH_SIZE};
use crate::engine::fair_share::{self, FairShare, RELEASE_LOCK};
use crate::engine::outbox::PendingMessage;
use crate::engine::topology::Topology;

/// Locks the next pending rows to release in `tx`: none if another relay is releasing now
/// (it holds the release lock until its batch commits) or the work queues already hold
/// `fair.window()` ready messages.
pub(super) async fn lock_fair(
    tx: &mut PgConnection,
    channel: &Channel,
    topology: &Topology,
    fair: &FairShare,
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
    let room = i64::from(fair.window()) - i64::from(ready);
    if room <= 0 {
        return Ok(Vec::new());
    }
    Ok(fair_share::lock_next(tx, room.min(BATCH_SIZE), fair.half_life()).await?)
}

/// Messages ready (not delivered) in every work queue of `topology` (both lanes of the default
/// queue and of each named one it declares), from passive declares.
async fn ready_messages(channel: &Channel, topology: &Topology) -> Result<u32, RelayError> {
    let mut ready = 0u32;
    for queue in topology.work_queues() {
        let queue = channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        ready = ready.saturating_add(queue.message_count());
    }
    Ok(ready)
}

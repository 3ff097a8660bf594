//! Re-drive: moving dead-lettered job messages from the DLQ back to the work queue.
//!
//! Each job message found in the DLQ whose job is `dead` puts it back to `queued` with a fresh
//! attempt budget and a `redriven` event ([`crate::state::Transition::Redrive`])
//! (the message's history stays in the job's `last_error`) and is published to the work
//! exchange with a confirm (to the high or normal work queue, by its priority), all inside one
//! database transaction: the row lock taken by the `UPDATE` makes a worker that receives the
//! message before the commit wait for it, and a failed publish rolls the job back to `dead`. Only then is the DLQ copy acked. Messages that are not
//! job messages stay in the DLQ.

use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions};
use lapin::Channel;
use sqlx::PgPool;

use crate::message::JobMessage;
use crate::publish::{publish_job, PublishError};
use crate::state::{self, Transition};
use crate::topology::Topology;

/// What a re-drive did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RedriveReport {
    /// Job messages moved back to the work queue.
    pub moved: u32,
    /// Messages left in the DLQ: undecodable, naming no job, or naming a job that is not
    /// `dead`.
    pub left: u32,
}

/// Why a re-drive stopped.
#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    /// The broker failed.
    #[error("broker error: {0}")]
    Broker(#[from] lapin::Error),
    /// A publish was not confirmed.
    #[error("publish failed: {0}")]
    Publish(#[from] PublishError),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// Moves up to `limit` job messages from the DLQ back to the work queue.
///
/// `channel` must be in confirm mode. Messages left behind are returned to the DLQ at the end
/// (`basic.nack` with requeue), so one call never sees the same message twice.
///
/// # Errors
/// [`RedriveError`]; messages not yet acked stay in the DLQ.
pub async fn redrive(
    db: &PgPool,
    channel: &Channel,
    topology: &Topology,
    limit: u32,
) -> Result<RedriveReport, RedriveError> {
    let mut report = RedriveReport::default();
    let mut kept = Vec::new();
    let result = async {
        while report.moved + report.left < limit {
            let Some(got) = channel
                .basic_get(
                    topology.dead_letter_queue.as_str().into(),
                    BasicGetOptions::default(),
                )
                .await?
            else {
                break;
            };
            let delivery = got.delivery;
            let Ok(message) = JobMessage::decode(&delivery.data) else {
                report.left += 1;
                kept.push(delivery);
                continue;
            };
            let mut tx = db.begin().await?;
            // Only a `dead` job moves (a job the sweeper re-enqueued meanwhile, or one that
            // ended otherwise, keeps its state); the move records a `redriven` event.
            if !state::apply(&mut *tx, message.job_id, Transition::Redrive).await? {
                report.left += 1;
                kept.push(delivery);
                continue;
            }
            publish_job(channel, topology, &message.for_attempt(1)).await?;
            tx.commit().await?;
            delivery.ack(BasicAckOptions::default()).await?;
            report.moved += 1;
        }
        Ok::<(), RedriveError>(())
    }
    .await;
    for delivery in kept {
        let requeue = BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        };
        delivery.nack(requeue).await?;
    }
    result.map(|()| report)
}

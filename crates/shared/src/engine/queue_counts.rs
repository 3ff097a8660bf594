//! What RabbitMQ says of a queue's size without touching it: a passive `queue.declare`
//! (AMQP 0-9-1 §1.7.2.1), whose `declare-ok` carries the messages ready (not delivered to a
//! consumer, not unacked) and the consumers. The relay's fair-share window, the worker's
//! queue gauges, the api's `/api/stats` and the tests all read queues this way.

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::Channel;

/// A queue's counts as the broker reported them at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueCounts {
    /// Messages ready for delivery (not counting those delivered and not yet acked).
    pub ready: u32,
    /// Consumers subscribed to the queue.
    pub consumers: u32,
}

/// Reads `queue`'s counts with a passive `queue.declare`: nothing is created or changed.
///
/// # Errors
/// The channel error: `NOT_FOUND` (404) if the queue does not exist, which also closes the
/// channel (AMQP 0-9-1 channel exceptions end the channel), or a broken connection.
///
/// # Example
/// ```no_run
/// # async fn example(channel: lapin::Channel) -> Result<(), lapin::Error> {
/// use burrow_shared::engine::queue_counts::queue_counts;
/// let counts = queue_counts(&channel, "burrow.jobs").await?;
/// println!("{} ready, {} consumers", counts.ready, counts.consumers);
/// # Ok(()) }
/// ```
pub async fn queue_counts(channel: &Channel, queue: &str) -> Result<QueueCounts, lapin::Error> {
    let declared = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok(QueueCounts {
        ready: declared.message_count(),
        consumers: declared.consumer_count(),
    })
}

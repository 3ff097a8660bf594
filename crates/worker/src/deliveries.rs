//! Where a worker's deliveries come from: one consumer per priority lane of each queue it
//! consumes (`WORKER_QUEUES`) on the session's channel, merged into one stream that always hands
//! out a high-priority delivery first.
//!
//! Quorum queues do not order by priority on RabbitMQ 3.x (and know two levels, served 2:1, on
//! 4.x), so burrow gives each level its own queue ([`Lane`], see `burrow_shared::topology`) and
//! the worker does the preferring. Each lane gets its own `basic.consume`; `basic.qos` with
//! `global = false` limits each *consumer* to the prefetch count
//! (<https://www.rabbitmq.com/docs/consumer-prefetch>), so a normal backlog filling one
//! consumer's prefetch never holds back high deliveries on the other. A worker thus holds up to
//! twice its prefetch unacked: `prefetch` per lane.
//!
//! The merge is strict: whenever a job slot frees, a buffered high delivery wins over any
//! normal one, and a normal one is taken only when no high one is at hand. While high jobs keep
//! arriving at least as fast as the worker runs them, normal jobs wait (their prefetched
//! deliveries stay unacked, and count towards RabbitMQ's `consumer_timeout`); RabbitMQ 4.x's
//! own quorum-queue priorities serve 2:1 instead, to keep normal messages moving.
//!
//! A worker consuming several queues ("Queues per kind", `burrow_shared::topology`) groups its
//! consumers by lane: every high consumer is preferred over every normal one, and within a lane
//! the queues take turns (round robin), so a backlog in one queue never starves another of the
//! same lane. With one queue, as by default, this is exactly the two-consumer merge above.

use std::pin::Pin;
use std::task::{Context, Poll};

use burrow_shared::topology::{Lane, DEFAULT_QUEUE};
use burrow_shared::Topology;
use futures::{Stream, StreamExt as _};
use lapin::message::Delivery;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Consumer};
use tracing::warn;

/// The consumers of one session, high lane first; as a [`Stream`], their deliveries merged,
/// high first. The stream ends (`None`) as soon as any consumer ends (the broker cancelled
/// it, e.g. its queue was deleted), so the session reconnects instead of silently running one
/// lane only.
pub struct Deliveries {
    /// Consumer tags (`{worker_id}#{session}.{lane}`, `{worker_id}#{session}.{queue}.{lane}`
    /// for a named queue), high lane first: what [`Deliveries::cancel`] sends `basic.cancel`
    /// for, and what the management UI shows.
    pub tags: Vec<String>,
    /// The queues consumed, high lane first, for the logs.
    pub queues: Vec<String>,
    /// One tier per lane, in [`Lane::ALL`] order (the order they are preferred in), of one
    /// consumer per queue.
    consumers: Preferring<Consumer>,
}

/// Starts one consumer per lane of each of `queues` (names as in [`Topology::queues`]) on
/// `channel`, every high lane's first (so a session that starts on two backlogs receives high
/// deliveries first), with manual acks. Set `basic.qos` on `channel` before: each consumer
/// gets that prefetch.
///
/// # Errors
/// The broker's error, e.g. `NOT_FOUND` for a missing queue (the broker then closes the
/// channel). A consumer started before the failure is cancelled when it is dropped.
pub async fn consume_lanes(
    channel: &Channel,
    topology: &Topology,
    queues: &[String],
    worker_id: &str,
) -> Result<Deliveries, lapin::Error> {
    let session = uuid::Uuid::new_v4().simple();
    let consumers = Lane::ALL.len() * queues.len();
    let mut deliveries = Deliveries {
        tags: Vec::with_capacity(consumers),
        queues: Vec::with_capacity(consumers),
        consumers: Preferring::new(),
    };
    for lane in Lane::ALL {
        let mut tier = Vec::with_capacity(queues.len());
        for name in queues {
            let tag = if name == DEFAULT_QUEUE {
                format!("{worker_id}#{session}.{}", lane.as_str())
            } else {
                format!("{worker_id}#{session}.{name}.{}", lane.as_str())
            };
            let queue = topology.work_queue_in(name, lane);
            let consumer = channel
                .basic_consume(
                    queue.as_ref().into(),
                    tag.as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            deliveries.tags.push(tag);
            deliveries.queues.push(queue.into_owned());
            tier.push(consumer);
        }
        deliveries.consumers.push_tier(tier);
    }
    Ok(deliveries)
}

impl Deliveries {
    /// Cancels every consumer (`basic.cancel`), so no new deliveries arrive; those already
    /// buffered and never handed out go back to their queues when the channel closes. A failed
    /// cancel is logged and skipped: closing the channel cancels the consumer anyway.
    pub async fn cancel(&self, channel: &Channel) {
        for tag in &self.tags {
            if let Err(e) = channel
                .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
                .await
            {
                warn!(error = %e, consumer = %tag, "basic.cancel failed");
            }
        }
    }
}

impl Stream for Deliveries {
    type Item = Result<Delivery, lapin::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.consumers.poll_next_unpin(cx)
    }
}

/// Streams merged by preference between tiers and in turns within one: each poll answers with
/// the first tier, in order, that has an answer (an item, or a stream's end), so an earlier
/// tier's ready item always wins; within a tier the stream after the one that answered last is
/// asked first, so the streams of one tier take turns.
struct Preferring<S> {
    /// The tiers, preferred first first; each with the index of the stream to ask first.
    tiers: Vec<(Vec<S>, usize)>,
}

impl<S> Preferring<S> {
    fn new() -> Self {
        Preferring { tiers: Vec::new() }
    }

    /// Adds a tier, less preferred than those before it.
    fn push_tier(&mut self, streams: Vec<S>) {
        self.tiers.push((streams, 0));
    }
}

impl<S: Stream + Unpin> Stream for Preferring<S> {
    type Item = S::Item;

    /// Every stream polled registers the waker, so an item on any of them wakes the task.
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        for (streams, first) in &mut self.tiers {
            let count = streams.len();
            for turn in 0..count {
                let at = (*first + turn) % count;
                if let Poll::Ready(answer) = streams[at].poll_next_unpin(cx) {
                    *first = (at + 1) % count;
                    return Poll::Ready(answer);
                }
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use futures::channel::mpsc;
    use futures::stream::{self, BoxStream};
    use futures::FutureExt as _;

    use super::*;

    /// A lane holding `items` and then staying open, like a consumer on a drained queue.
    fn lane(items: &[&'static str]) -> BoxStream<'static, &'static str> {
        stream::iter(items.to_vec())
            .chain(stream::pending())
            .boxed()
    }

    /// Tiers of streams, preferred first first.
    fn tiers<const N: usize>(
        tiers: [Vec<BoxStream<'static, &'static str>>; N],
    ) -> Preferring<BoxStream<'static, &'static str>> {
        let mut merged = Preferring::new();
        for tier in tiers {
            merged.push_tier(tier);
        }
        merged
    }

    /// The next item if one is ready now (`Some(None)`: the stream ended).
    fn ready(
        merged: &mut Preferring<BoxStream<'static, &'static str>>,
    ) -> Option<Option<&'static str>> {
        merged.next().now_or_never()
    }

    #[test]
    fn buffered_high_deliveries_go_before_any_normal_one() {
        let mut merged = tiers([vec![lane(&["h1", "h2"])], vec![lane(&["n1", "n2"])]]);
        let order: Vec<_> = std::iter::from_fn(|| ready(&mut merged).flatten()).collect();
        assert_eq!(order, ["h1", "h2", "n1", "n2"]);
    }

    #[test]
    fn a_high_delivery_arriving_later_overtakes_the_normal_backlog() {
        let (high, arrivals) = mpsc::unbounded();
        let mut merged = tiers([vec![arrivals.boxed()], vec![lane(&["n1", "n2", "n3"])]]);
        assert_eq!(ready(&mut merged), Some(Some("n1")), "no high one yet");
        high.unbounded_send("h1").expect("open");
        assert_eq!(ready(&mut merged), Some(Some("h1")));
        assert_eq!(ready(&mut merged), Some(Some("n2")));
        drop(high);
        assert_eq!(
            ready(&mut merged),
            Some(None),
            "one lane's end ends the merged stream, so the session reconnects"
        );
    }

    #[test]
    fn the_queues_of_one_lane_take_turns_and_every_high_one_goes_first() {
        let mut merged = tiers([
            vec![lane(&["default-h1"]), lane(&["imports-h1", "imports-h2"])],
            vec![
                lane(&["default-n1", "default-n2", "default-n3"]),
                lane(&["imports-n1", "imports-n2"]),
            ],
        ]);
        let order: Vec<_> = std::iter::from_fn(|| ready(&mut merged).flatten()).collect();
        assert_eq!(
            order,
            [
                "default-h1",
                "imports-h1",
                "imports-h2",
                "default-n1",
                "imports-n1",
                "default-n2",
                "imports-n2",
                "default-n3",
            ],
            "a backlog in one queue does not starve the other"
        );
    }
}

//! The outbox relay: publishes the job messages [`crate::engine::enqueue`] committed to the `outbox`
//! table, and stamps each one published once the broker has confirmed it. The read half of the
//! transactional outbox (<https://microservices.io/patterns/data/transactional-outbox.html>).
//!
//! # Loop
//! 1. Make sure a confirm channel is open: take a pooled connection, open a channel in confirm
//!    mode and declare the topology on it (so the api works against an empty broker, and after
//!    the broker lost its queues). The channel is kept across batches and reopened after any
//!    broker error.
//! 2. Drain: in one transaction, lock up to [`BATCH_SIZE`] pending rows (`FOR UPDATE SKIP
//!    LOCKED`, so every relay — one per api and worker process — shares the backlog without
//!    publishing a row twice), publish them
//!    all, await every confirm, stamp the confirmed rows published, commit. Repeat while
//!    batches come back full.
//! 3. Wait for a wake-up — a `NOTIFY` on [`OUTBOX_CHANNEL`], which every enqueue sends when it
//!    commits, or [`RelayHandle::wake`] — the [`POLL_INTERVAL`] (which picks up rows left
//!    behind by a crash, or whose notification was lost while the listener reconnected) or the
//!    stop signal.
//!
//! # Failures
//! A broker or database error ends the pass: rows whose publish was not confirmed stay
//! pending, and the relay waits with exponential backoff and jitter ([`RETRY_MIN_DELAY`] up to
//! [`RETRY_MAX_DELAY`]) before it tries again, forever, until stopped. Meanwhile enqueueing
//! goes on (it only writes Postgres); the api's `/readyz` reports `degraded`. The first failure of an outage is logged as a
//! warning and the recovery as info; the retries in between only at debug level.
//!
//! # Delivery
//! At least once. A row is stamped only after its publish was confirmed; if the stamp does not
//! commit (a crash, a database error, a confirm timeout) the row stays pending and is published
//! again later, so a job may be delivered twice and workers must be (and are) idempotent.
//! The stop signal is checked between batches only: the relay never gives up a batch halfway.
//!
//! # Fair sharing
//! With [`OutboxRelay::with_fair_share`], step 2 releases rows only while the work queues hold
//! fewer ready messages than the window, in turn order between tenants instead of oldest
//! first, one relay at a time; and step 3 looks again every
//! [`crate::engine::fair_share::FAIR_POLL_INTERVAL`] while rows wait. The model is in
//! [`crate::engine::fair_share`].
//!
//! The loop lives here; `link` holds the broker channel, `batch` one transaction, `fair` the
//! fair selection, `handle` what the process around the relay sees of it.

mod batch;
mod fair;
mod handle;
mod link;

use std::collections::BTreeSet;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use self::batch::relay_batch;
use self::fair::FairRelease;
pub use self::handle::{BrokerHealth, RelayHandle};
use self::link::{ensure_link, Link};
use crate::engine::enqueue::OUTBOX_CHANNEL;
use crate::engine::fair_share::{FairShare, FAIR_POLL_INTERVAL};
use crate::engine::outbox;
use crate::engine::publish::PublishError;
use crate::engine::topology::Topology;

/// Most rows locked and published in one transaction.
pub const BATCH_SIZE: i64 = 500;
/// How often the relay looks at the outbox without a wake-up, for rows written by another api
/// replica or left behind by a crash.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Longest wait for a broker connection, its channel and the topology declaration.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the confirms of one batch (a blocked broker, e.g. a memory alarm, holds
/// them back); after it the batch is rolled back and retried.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);
/// First retry delay after a failure.
pub const RETRY_MIN_DELAY: Duration = Duration::from_millis(100);
/// Longest retry delay. The base delay doubles up to half of this and jitter adds up to 100 %.
pub const RETRY_MAX_DELAY: Duration = Duration::from_secs(5);

/// An outbox relay, ready to run. Every process that enqueues should run one (the api and
/// the worker binaries do); relays of many processes share the outbox safely.
///
/// # Example
/// ```no_run
/// use burrow_shared::engine::relay::OutboxRelay;
/// use burrow_shared::Topology;
/// use tokio_util::sync::CancellationToken;
///
/// # async fn example(db: sqlx::PgPool, amqp: burrow_shared::amqp::AmqpPool) {
/// let stop = CancellationToken::new();
/// let relay = OutboxRelay::new(db, amqp, Topology::default());
/// let health = relay.handle(); // health.broker_health() for a readiness probe
/// let task = tokio::spawn(relay.run(stop.clone()));
/// // … until shutdown:
/// stop.cancel();
/// let _ = task.await;
/// # }
/// ```
pub struct OutboxRelay {
    db: PgPool,
    amqp: crate::amqp::AmqpPool,
    topology: Topology,
    handle: RelayHandle,
    fair: Option<FairShare>,
}

impl OutboxRelay {
    /// A relay of `db`'s outbox to the broker behind `amqp`, publishing to `topology`.
    pub fn new(db: PgPool, amqp: crate::amqp::AmqpPool, topology: Topology) -> Self {
        OutboxRelay {
            db,
            amqp,
            topology,
            handle: RelayHandle::default(),
            fair: None,
        }
    }

    /// The same relay releasing with fair sharing between tenants when `fair` is set: at most
    /// `fair.window()` messages ready in the work queues, the rest waiting in the outbox in
    /// turn order ([`crate::engine::fair_share`]). `None` (the default) publishes the outbox
    /// oldest first, as fast as the broker confirms.
    #[must_use]
    pub fn with_fair_share(mut self, fair: Option<FairShare>) -> Self {
        self.fair = fair;
        self
    }

    /// The same relay reporting to (and woken through) `handle`, e.g. one its process made
    /// before the relay.
    #[must_use]
    pub fn with_handle(mut self, handle: RelayHandle) -> Self {
        self.handle = handle;
        self
    }

    /// Its handle: wake it, read its view of the broker.
    pub fn handle(&self) -> RelayHandle {
        self.handle.clone()
    }

    /// Relays until `stop` is cancelled; see the module docs. Never fails: errors are logged,
    /// reflected in [`RelayHandle::broker_health`] and retried. Rows a stopped relay did not
    /// publish stay pending for the next relay to run.
    pub async fn run(self, stop: CancellationToken) {
        let listener = tokio::spawn(listen(self.db.clone(), self.handle.clone(), stop.clone()));
        Relay::new(self, stop).run().await;
        listener.abort();
    }
}

/// Wakes the relay on every `NOTIFY` of [`OUTBOX_CHANNEL`], reconnecting (after a pause) while
/// Postgres is away; the relay's poll covers notifications lost meanwhile.
async fn listen(db: PgPool, handle: RelayHandle, stop: CancellationToken) {
    while !stop.is_cancelled() {
        let listening = async {
            let mut listener = PgListener::connect_with(&db).await?;
            listener.listen(OUTBOX_CHANNEL).await?;
            loop {
                listener.recv().await?;
                handle.wake();
            }
        };
        let ended: Result<(), sqlx::Error> = tokio::select! {
            () = stop.cancelled() => return,
            ended = listening => ended,
        };
        if let Err(e) = ended {
            tracing::debug!(error = %e, "outbox listener lost; polling until it reconnects");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(POLL_INTERVAL) => {}
        }
    }
}

/// Why a relay pass failed.
#[derive(Debug, thiserror::Error)]
enum RelayError {
    /// No broker connection could be had.
    #[error("no broker connection: {0}")]
    Connect(String),
    /// The broker did not answer in time.
    #[error("the broker did not answer within {0:?} while {1}")]
    Timeout(Duration, &'static str),
    /// The channel failed or the broker refused an operation (e.g. declaring the topology).
    #[error("broker error: {0}")]
    Broker(#[from] lapin::Error),
    /// A publish was not confirmed.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// Postgres failed; the broker may be fine.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl RelayError {
    /// Whether the broker (not Postgres) failed, so the channel must be reopened.
    fn is_broker(&self) -> bool {
        !matches!(self, RelayError::Database(_))
    }
}

/// The retry delays an [`ExponentialBuilder`] yields.
type RetryDelays = <ExponentialBuilder as BackoffBuilder>::Backoff;

/// The relay's state between passes.
struct Relay {
    /// Where the outbox lives.
    db: PgPool,
    /// The broker.
    amqp: crate::amqp::AmqpPool,
    /// Where messages go.
    topology: Topology,
    /// The wake-up bell and the health record.
    handle: RelayHandle,
    /// Cancelled when the process stops.
    stop: CancellationToken,
    /// The open confirm channel, kept across batches; `None` after a broker error.
    link: Option<Link>,
    /// Delays before the next retries; restarted after every successful pass.
    backoff: RetryDelays,
    /// Whether the latest pass failed on Postgres, to log a database outage once.
    db_failing: bool,
    /// Outbox ids already reported as undecodable, to report each once.
    undecodable: BTreeSet<i64>,
    /// Fair sharing between tenants, if on, with the relay's ranking of the backlog.
    fair: Option<FairRelease>,
}

/// The retry delays: 100 ms, doubling up to 2.5 s, each plus up to 100 % jitter (so at most
/// [`RETRY_MAX_DELAY`]), without end.
fn retry_delays() -> RetryDelays {
    ExponentialBuilder::default()
        .with_min_delay(RETRY_MIN_DELAY)
        .with_max_delay(RETRY_MAX_DELAY / 2)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
}

impl Relay {
    fn new(relay: OutboxRelay, stop: CancellationToken) -> Self {
        Relay {
            db: relay.db,
            amqp: relay.amqp,
            topology: relay.topology,
            handle: relay.handle,
            stop,
            link: None,
            backoff: retry_delays(),
            db_failing: false,
            undecodable: BTreeSet::new(),
            fair: relay.fair.map(FairRelease::new),
        }
    }

    async fn run(mut self) {
        tracing::info!(exchange = %self.topology.exchange, "outbox relay started");
        loop {
            if self.stop.is_cancelled() && !self.link.as_ref().is_some_and(Link::is_open) {
                // Stopping: a last batch on an open channel, but no new connection.
                break;
            }
            let drained = self.drain().await;
            let pending = self.record_pending().await;
            match drained {
                Ok(()) => self.on_success(),
                Err(e) => {
                    self.on_failure(e).await;
                    let delay = self.backoff.next().unwrap_or(RETRY_MAX_DELAY);
                    tokio::select! {
                        biased;
                        () = self.stop.cancelled() => break,
                        () = tokio::time::sleep(delay) => continue,
                    }
                }
            }
            // In fair mode, rows held back wait for room in the window, which only the
            // workers' consuming makes: nothing notifies it, so look again soon.
            let poll = if self.fair.is_some() && pending.is_some_and(|rows| rows > 0) {
                FAIR_POLL_INTERVAL
            } else {
                POLL_INTERVAL
            };
            // A wake-up goes first: a job committed just before the stop is still relayed if
            // the channel is open (see the top of the loop).
            let woken = tokio::select! {
                biased;
                () = self.handle.woken() => true,
                () = self.stop.cancelled() => break,
                () = tokio::time::sleep(poll) => false,
            };
            if let (true, Some(fair)) = (woken, self.fair.as_mut()) {
                fair.rerank();
            }
        }
        if let Some(link) = self.link.take() {
            link.close("relay stopped").await;
        }
        tracing::info!("outbox relay stopped");
    }

    /// Publishes batches until the outbox has no more pending rows for this relay.
    async fn drain(&mut self) -> Result<(), RelayError> {
        let link = ensure_link(&mut self.link, &self.amqp, &self.topology).await?;
        loop {
            let batch = relay_batch(
                &self.db,
                &link.channel,
                &self.topology,
                self.fair.as_mut(),
                &mut self.undecodable,
            )
            .await?;
            if batch.published > 0 {
                tracing::debug!(published = batch.published, "outbox batch published");
            }
            if !batch.full_and_all_published() || self.stop.is_cancelled() {
                return Ok(());
            }
        }
    }

    /// Sets the `burrow_outbox_pending` gauge and returns the count; skipped (the gauge keeps
    /// its value) while Postgres does not answer.
    async fn record_pending(&self) -> Option<i64> {
        let pending = outbox::pending_count(&self.db).await.ok()?;
        crate::engine::relay_metrics::record_pending(pending);
        Some(pending)
    }

    fn on_success(&mut self) {
        self.backoff = retry_delays();
        if std::mem::take(&mut self.db_failing) {
            tracing::info!("outbox relay reaches Postgres again");
        }
        let before = self.handle.record_broker_up();
        if before.failures > 0 {
            tracing::info!(
                failures = before.failures,
                "RabbitMQ is reachable again; relaying the outbox"
            );
        } else if !before.reachable {
            tracing::info!("outbox relay connected to RabbitMQ");
        }
    }

    async fn on_failure(&mut self, error: RelayError) {
        if !error.is_broker() {
            if !std::mem::replace(&mut self.db_failing, true) {
                tracing::warn!(error = %error, "outbox relay cannot reach Postgres; retrying");
            } else {
                tracing::debug!(error = %error, "outbox relay retry failed");
            }
            return;
        }
        if let Some(link) = self.link.take() {
            link.close("reopening after an error").await;
        }
        let before = self.handle.record_broker_down(error.to_string());
        if before.failures == 0 {
            tracing::warn!(
                error = %error,
                "RabbitMQ is unreachable; jobs wait in the outbox, retrying with backoff"
            );
        } else {
            tracing::debug!(
                error = %error,
                failures = before.failures + 1,
                "RabbitMQ still unreachable"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_start_at_100ms_grow_and_never_pass_5s() {
        let delays: Vec<Duration> = retry_delays().take(30).collect();
        assert_eq!(delays.len(), 30, "retries never run out");
        assert!(delays[0] >= RETRY_MIN_DELAY && delays[0] <= 2 * RETRY_MIN_DELAY);
        assert!(delays
            .iter()
            .all(|d| *d >= RETRY_MIN_DELAY && *d <= RETRY_MAX_DELAY));
        assert!(
            delays[29] >= RETRY_MAX_DELAY / 2,
            "the delay grows to its cap"
        );
    }
}

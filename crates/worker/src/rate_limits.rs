//! The worker's side of rate limits per kind and key ([`burrow_shared::engine::rate_limits`]):
//! which kinds are limited (a copy of the `kind_rate_limits` table, refreshed every
//! [`LIMITS_REFRESH`]), the reservation before a limited kind's claim, and the pump that
//! sends due waiters back through the outbox.
//!
//! A delivery of a limited kind reserves its slot before its claim; one that must wait is
//! parked in Postgres and acked, so it neither holds a consumer slot nor bounces through the
//! delay queues. Every worker runs the pump ([`RateLimits::run_pump`]): it sleeps until the
//! earliest waiter is due (at most [`PUMP_IDLE`]; a park on this worker wakes it early), moves
//! the due ones to the outbox, and the relay publishes them. Kinds without a limit pay one map
//! look-up on the delivery path; while no kind is limited, the pump only looks every
//! [`LIMITS_REFRESH`] (for the waiters of a limit just removed).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use burrow_shared::engine::rate_limits::{self, RateLimit, Reservation};
use burrow_shared::handler::Registry;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::warn;
use uuid::Uuid;

use crate::kind_table::KindTable;
use crate::metrics;

/// How often a worker re-reads which kinds are limited: a limit another replica declares is
/// applied by this one at most this long later.
pub const LIMITS_REFRESH: Duration = Duration::from_secs(5);

/// Longest the pump sleeps without looking: bounds how late a waiter parked by a replica that
/// died is released by another.
pub const PUMP_IDLE: Duration = Duration::from_millis(250);

/// Most waiters one pump step moves to the outbox (the rest go in the next step, at once).
const PUMP_BATCH: u32 = 500;

/// The limited kinds as this worker last read them, and the pump's wake-up; cheap to clone.
#[derive(Clone, Default, Debug)]
pub struct RateLimits {
    limits: KindTable<RateLimit>,
    parked: Arc<Notify>,
}

impl RateLimits {
    /// Limits as given (for tests and start-up, before the first [`RateLimits::refresh`]).
    pub fn with(limits: BTreeMap<String, RateLimit>) -> Self {
        RateLimits {
            limits: KindTable::with(limits),
            parked: Arc::default(),
        }
    }

    /// The limit of `kind`, if it has one (as last read).
    pub fn limit(&self, kind: &str) -> Option<RateLimit> {
        self.limits.get(kind)
    }

    fn is_empty(&self) -> bool {
        self.limits.is_empty()
    }

    /// Re-reads the `kind_rate_limits` table.
    ///
    /// # Errors
    /// The database error; the limits stay as they were.
    pub async fn refresh(&self, db: &PgPool) -> Result<(), sqlx::Error> {
        self.limits.replace(rate_limits::load(db).await?);
        Ok(())
    }

    /// Refreshes every [`LIMITS_REFRESH`] until `stop`, and sets the waiting gauges
    /// ([`metrics::record_rate_waiting`]) each time.
    pub async fn run_refresh(self, db: PgPool, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(LIMITS_REFRESH) => {}
            }
            if let Err(e) = self.refresh(&db).await {
                warn!(error = %e, "could not re-read the rate limits; keeping the last ones");
                continue;
            }
            if self.is_empty() {
                continue;
            }
            match rate_limits::waiting(&db).await {
                Ok(waiting) => waiting
                    .iter()
                    .for_each(|(kind, n)| metrics::record_rate_waiting(kind, *n)),
                Err(e) => warn!(error = %e, "could not count the jobs waiting for a rate"),
            }
        }
    }

    /// Reserves a slot for job `id` of a limited kind (or finds the one it holds), parking
    /// `message` (the delivery's encoded job message) until it if it is not due; wakes this
    /// worker's pump when it parks.
    ///
    /// # Errors
    /// The database error, as text; nothing changed then.
    pub async fn reserve(
        &self,
        db: &PgPool,
        registry: &Registry,
        id: Uuid,
        message: &[u8],
    ) -> Result<Reservation, String> {
        let reservation = rate_limits::reserve(db, registry, id, message)
            .await
            .map_err(|e| format!("reserving the job's rate slot: {e}"))?;
        if matches!(reservation, Reservation::Wait { .. }) {
            self.parked.notify_one();
        }
        Ok(reservation)
    }

    /// Moves due waiters to the outbox until `stop`: sleeps until the earliest is due, at most
    /// [`PUMP_IDLE`], or until this worker parks one. Every replica runs it; each waiter goes
    /// once (the database hands it to one of them).
    pub async fn run_pump(self, db: PgPool, stop: CancellationToken) {
        let mut pause = PUMP_IDLE;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
                () = self.parked.notified() => {}
            }
            // With no kind limited (as last read), waiters of a limit just removed are still
            // released, at a slower pace.
            let idle = if self.is_empty() {
                LIMITS_REFRESH
            } else {
                PUMP_IDLE
            };
            pause = match step(&db).await {
                Ok(next) => next.map_or(idle, |next| next.min(idle)),
                Err(e) => {
                    warn!(error = %e, "could not release the jobs due after their rate wait");
                    idle
                }
            };
        }
    }
}

/// Releases what is due; returns how long until the next waiter is due.
async fn step(db: &PgPool) -> Result<Option<Duration>, sqlx::Error> {
    while rate_limits::release_due(db, PUMP_BATCH).await? == PUMP_BATCH {}
    rate_limits::next_due(db).await
}

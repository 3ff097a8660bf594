//! Rate limits per kind and per key, shared by every worker process and host: at most `rate`
//! jobs of a kind per `period` for each key its handler extracts from the payload
//! ([`crate::handler::JobHandler::rate_key`]; ≤ 10 `webhook` jobs per second per target host,
//! say), after a burst of `burst`. Jobs over the limit wait; they never fail.
//!
//! # Model: GCRA with reservations
//! Each (kind, key) has one row in `rate_limit_state` holding its *theoretical arrival time*
//! `tat`. With the emission interval `T = period / rate` and the tolerance
//! `τ = (burst − 1) · T`, a delivery of a job reserves, in one locked step
//! (`burrow_rate_reserve`, migration `20261205000800_rate_limits.sql`):
//!
//! ```text
//! slot = max(now, tat − τ)        the job's reserved start
//! tat  = max(tat, now) + T
//! ```
//!
//! ([`Gcra::reserve`] is the same arithmetic, unit-tested with an injected clock.) In any
//! window shorter than `W` at most `burst + ⌈W / T⌉ − 1` slots fall: with a burst of 1, at
//! most `rate` per period. The slot is written on the job (`jobs.rate_slot_at`, and
//! `next_attempt_at` for observers) and the claim that runs the job clears it, so a retry, a
//! snoozed job or a run after a crash reserves again.
//!
//! - **Due now:** the job is claimed and runs.
//! - **Later:** the delivery's message goes to `rate_waiters` with its due time, a
//!   `waiting_for_rate` event is recorded, the job stays `queued` (or `retrying`), and the
//!   delivery is acked. Workers move due waiters to the outbox ([`release_due`]) a
//!   [`RELEASE_LEAD`] early, so the message comes back once, just before its slot; that
//!   delivery finds its slot, waits out the rest and runs without reserving again. A wait
//!   shorter than the lead is waited out in the delivery, without a park. A duplicate delivery of a waiting job finds the slot and reserves nothing.
//!
//! # Why this design
//! - *Times, not permits:* a token bucket that hands out permits must get them back, and a
//!   crashed worker keeps what it took. A reservation is only a time: if its job dies the slot
//!   is unused, and the limiter's state is correct by construction.
//! - *Reserve, then wait:* a delivery that is only told "not yet" comes back to ask again, and
//!   every ask can lose to a newcomer; a reserved slot is kept, so each job waits once, in
//!   arrival order per key, for exactly as long as the limit requires.
//! - *Waiting in Postgres, not in delay queues:* the delay queues ([`crate::engine::park`])
//!   cover a wait in hops of whole steps (1 s, 5 s, 30 s, …; a per-message expiration shorter
//!   than its queue's would wait behind longer ones), so a 7.3 s wait takes three publishes.
//!   A waiter row is written once and released once, whatever the wait.
//! - *The limit in a table, not per replica:* replicas that disagreed on `T` would each reserve
//!   with their own and the rate would be neither. Like the caps
//!   ([`crate::engine::kind_caps`]), workers write their limits at start-up ([`declare`]; the
//!   last to start wins) and every reservation reads the table in the same statement.
//!
//! # Changing a limit
//! Slots already reserved stand: after lowering a rate, the jobs already waiting run at the
//! old pace and newcomers queue after the last of them at the new one; after raising it, the
//! waiting jobs keep their later slots. Removing a limit ([`remove`]) lets newcomers run at
//! once, and waiting jobs run at their slots.
//!
//! # Limits
//! A rate-limited delivery costs two statements before its claim: a read of the job (for its
//! key) and the reservation (`burrow_rate_reserve_job`), one statement committed on its own so
//! the key's row lock, for which every delivery of the key queues, is held that briefly. (Held
//! across a transaction's round trips, the queue of a burst made starts up to 1.4 s late.)
//! Run times follow the slots within the time a release takes to reach a worker (the pump's
//! wake-up, the outbox relay, the broker: a few milliseconds to tens of them), so start times
//! can be that much closer together than the slots. A message lost by the broker after its
//! release is not re-sent (as for any published message, the sweeper's rules apply).
//!
//! # Keys that go quiet
//! A key's row stays after its last job. A row whose `tat` has passed reserves exactly as a
//! missing one (the next slot is `now` either way), so the sweeper's replica deletes the rows
//! idle for [`IDLE_STATE_KEPT`] ([`prune_idle`]): the table holds the keys in use, not every
//! key ever seen.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use crate::handler::Registry;
use crate::status::JobStatus;

/// `rate` jobs per `period`, after a burst of up to `burst` jobs at once.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use burrow_shared::engine::rate_limits::RateLimit;
///
/// let limit = RateLimit::per_second(10);
/// assert_eq!(limit.interval(), Duration::from_millis(100));
/// assert_eq!(limit.with_burst(5).burst, 5);
/// assert_eq!("100/m:20".parse::<RateLimit>().unwrap(), RateLimit::per_minute(100).with_burst(20));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Jobs per `period` (at least 1).
    pub rate: u32,
    /// The period `rate` counts over (at least 1 ms).
    pub period: Duration,
    /// Jobs that may start at once after a quiet time (at least 1: no burst beyond the rate).
    pub burst: u32,
}

impl RateLimit {
    /// `rate` jobs per second, burst 1.
    pub const fn per_second(rate: u32) -> RateLimit {
        RateLimit {
            rate,
            period: Duration::from_secs(1),
            burst: 1,
        }
    }

    /// `rate` jobs per minute, burst 1.
    pub const fn per_minute(rate: u32) -> RateLimit {
        RateLimit {
            rate,
            period: Duration::from_secs(60),
            burst: 1,
        }
    }

    /// The same rate with a burst of `burst` jobs (at least 1).
    #[must_use]
    pub const fn with_burst(mut self, burst: u32) -> RateLimit {
        self.burst = if burst == 0 { 1 } else { burst };
        self
    }

    /// The emission interval `T = period / rate`: the time one job's slot takes.
    pub fn interval(&self) -> Duration {
        self.period / self.rate.max(1)
    }

    fn period_ms(&self) -> i64 {
        i64::try_from(self.period.as_millis())
            .unwrap_or(i64::MAX)
            .max(1)
    }
}

/// Why a rate limit's text did not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid rate limit {0:?}: expected RATE/UNIT[:BURST], UNIT one of s, m, h (10/s, 100/m:20)"
)]
pub struct ParseRateLimitError(String);

impl std::str::FromStr for RateLimit {
    type Err = ParseRateLimitError;

    /// `RATE/UNIT[:BURST]`: `10/s`, `100/m:20`, `3600/h`; `RATE` and `BURST` at least 1.
    fn from_str(text: &str) -> Result<RateLimit, ParseRateLimitError> {
        let error = || ParseRateLimitError(text.to_owned());
        let (rate, rest) = text.trim().split_once('/').ok_or_else(error)?;
        let (unit, burst) = match rest.split_once(':') {
            Some((unit, burst)) => (unit, Some(burst)),
            None => (rest, None),
        };
        let rate: u32 = rate.trim().parse().map_err(|_| error())?;
        let period = match unit.trim() {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(error()),
        };
        let burst: u32 = match burst {
            Some(burst) => burst.trim().parse().map_err(|_| error())?,
            None => 1,
        };
        if rate == 0 || burst == 0 {
            return Err(error());
        }
        Ok(RateLimit {
            rate,
            period,
            burst,
        })
    }
}

/// The reservation arithmetic of GCRA, on any clock (the database runs the same in
/// `burrow_rate_reserve`; this one is for reasoning and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    /// The emission interval `T`.
    pub interval: Duration,
    /// The burst (at least 1).
    pub burst: u32,
}

impl Gcra {
    /// The arithmetic of `limit`.
    pub fn of(limit: RateLimit) -> Gcra {
        Gcra {
            interval: limit.interval(),
            burst: limit.burst.max(1),
        }
    }

    /// Reserves a slot at `now` for a key whose theoretical arrival time is `tat` (`None`: a
    /// key never used). Returns `(slot, new tat)`; `slot >= now`.
    ///
    /// # Example
    /// ```
    /// use std::time::Duration;
    /// use burrow_shared::engine::rate_limits::{Gcra, RateLimit};
    ///
    /// let gcra = Gcra::of(RateLimit::per_second(10));
    /// let now = Duration::ZERO;
    /// let (first, tat) = gcra.reserve(None, now);
    /// let (second, _) = gcra.reserve(Some(tat), now);
    /// assert_eq!((first, second), (now, Duration::from_millis(100)));
    /// ```
    pub fn reserve(&self, tat: Option<Duration>, now: Duration) -> (Duration, Duration) {
        let tolerance = self.interval * (self.burst - 1);
        let slot = match tat {
            Some(tat) => now.max(tat.saturating_sub(tolerance)),
            None => now,
        };
        let tat = tat.map_or(now, |tat| tat.max(now)) + self.interval;
        (slot, tat)
    }
}

/// Writes `limits` (kind → limit) for `by` (a worker id), replacing what another replica wrote
/// for the same kinds; other kinds' rows stay.
///
/// # Errors
/// The database error; nothing is written then.
///
/// # Example
/// ```no_run
/// # async fn example(db: sqlx::PgPool) -> Result<(), sqlx::Error> {
/// use std::collections::BTreeMap;
/// use burrow_shared::engine::rate_limits::{self, RateLimit};
/// let limits = BTreeMap::from([("webhook".to_owned(), RateLimit::per_second(10))]);
/// rate_limits::declare(&db, &limits, "host-1:4242").await?;
/// assert_eq!(rate_limits::load(&db).await?.get("webhook"), Some(&RateLimit::per_second(10)));
/// # Ok(()) }
/// ```
pub async fn declare(
    db: &PgPool,
    limits: &BTreeMap<String, RateLimit>,
    by: &str,
) -> Result<(), sqlx::Error> {
    if limits.is_empty() {
        return Ok(());
    }
    let kinds: Vec<&str> = limits.keys().map(String::as_str).collect();
    let count = |n: u32| i32::try_from(n).unwrap_or(i32::MAX).max(1);
    let rates: Vec<i32> = limits.values().map(|l| count(l.rate)).collect();
    let periods: Vec<i64> = limits.values().map(RateLimit::period_ms).collect();
    let bursts: Vec<i32> = limits.values().map(|l| count(l.burst)).collect();
    sqlx::query(
        "INSERT INTO kind_rate_limits (kind, rate, period_ms, burst, updated_by) \
         SELECT k, r, p, b, $5 FROM unnest($1::text[], $2::int[], $3::bigint[], $4::int[]) \
             AS u(k, r, p, b) \
         ON CONFLICT (kind) DO UPDATE \
             SET rate = EXCLUDED.rate, period_ms = EXCLUDED.period_ms, burst = EXCLUDED.burst, \
                 updated_at = now(), updated_by = EXCLUDED.updated_by",
    )
    .bind(&kinds)
    .bind(&rates)
    .bind(&periods)
    .bind(&bursts)
    .bind(by)
    .execute(db)
    .await?;
    Ok(())
}

/// Removes `kind`'s limit; returns whether it had one. Waiting jobs still run at their slots.
///
/// # Errors
/// The database error.
pub async fn remove(db: &PgPool, kind: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM kind_rate_limits WHERE kind = $1")
        .bind(kind)
        .execute(db)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Every limit in force: kind → limit.
///
/// # Errors
/// The database error.
pub async fn load(db: impl PgExecutor<'_>) -> Result<BTreeMap<String, RateLimit>, sqlx::Error> {
    let rows: Vec<(String, i32, i64, i32)> =
        sqlx::query_as("SELECT kind, rate, period_ms, burst FROM kind_rate_limits")
            .fetch_all(db)
            .await?;
    let count = |n: i32| u32::try_from(n).unwrap_or(1).max(1);
    Ok(rows
        .into_iter()
        .map(|(kind, rate, period_ms, burst)| {
            let limit = RateLimit {
                rate: count(rate),
                period: Duration::from_millis(u64::try_from(period_ms).unwrap_or(1)),
                burst: count(burst),
            };
            (kind, limit)
        })
        .collect())
}

/// How long before its slot a waiter is released: its message's trip through the outbox relay
/// and the broker (a few to tens of milliseconds, more on a loaded host) then ends before the
/// slot, and the receiving worker waits out the rest ([`Reservation::Soon`]), so runs start
/// at their slots rather than a trip late. A reservation this close is waited out in the
/// delivery instead of parked.
pub const RELEASE_LEAD: Duration = Duration::from_millis(250);

/// What [`reserve`] decided for one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// Claim the job now: its slot is due, its kind has no limit, or the job cannot run
    /// (ended, awaiting, missing; the claim says which).
    Run,
    /// Claim the job at `at`, less than [`RELEASE_LEAD`] from now: wait in the delivery (a
    /// released message arrives up to that much early; a wait that short is not worth a park).
    Soon {
        /// The reserved slot.
        at: DateTime<Utc>,
    },
    /// The message waits in `rate_waiters` until `until`, when it is published again. Ack
    /// the delivery.
    Wait {
        /// The reserved slot.
        until: DateTime<Utc>,
        /// The key the slot was reserved under (`""`: the kind's one bucket).
        key: String,
    },
}

/// Reserves a slot for job `id` of a rate-limited kind, or finds the one it holds, and parks
/// `message` (the delivery's encoded [`crate::JobMessage`], as it will be published again)
/// until it if it is not due. The key comes from the kind's handler in `registry`
/// ([`crate::handler::ErasedHandler::rate_key`]) on the job's payload.
///
/// # Errors
/// The database error; nothing changed then.
///
/// # Example
/// ```no_run
/// # async fn example(db: sqlx::PgPool, registry: burrow_shared::handler::Registry,
/// #     id: uuid::Uuid, message: Vec<u8>) -> Result<(), sqlx::Error> {
/// use burrow_shared::engine::rate_limits::{reserve, Reservation};
/// match reserve(&db, &registry, id, &message).await? {
///     Reservation::Run => { /* claim and run the job */ }
///     Reservation::Soon { at } => { /* wait until `at`, then claim and run the job */ }
///     Reservation::Wait { until, key } => { /* ack: the message comes back at `until` */ }
/// }
/// # Ok(()) }
/// ```
pub async fn reserve(
    db: &PgPool,
    registry: &Registry,
    id: Uuid,
    message: &[u8],
) -> Result<Reservation, sqlx::Error> {
    // The payload, for the key, is read without a lock: the reservation below locks the job.
    let job: Option<(String, String, serde_json::Value)> =
        sqlx::query_as("SELECT kind, status, payload FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(db)
            .await?;
    let Some((kind, status, payload)) = job else {
        return Ok(Reservation::Run);
    };
    let status = JobStatus::try_from(status).map_err(|e| sqlx::Error::Decode(e.into()))?;
    if status.is_terminal() || status == JobStatus::Awaiting {
        // Nothing to reserve for: the claim answers. A `processing` job does reserve: its
        // delivery is a redelivery after a crash, whose run calls the target again.
        return Ok(Reservation::Run);
    }
    let key = registry
        .get(&kind)
        .and_then(|handler| handler.rate_key(&payload))
        .unwrap_or_default();
    // One statement, committed on its own: every delivery of the key queues for its row lock,
    // so the lock is held for this statement only, not for a transaction's round trips
    // (`burrow_rate_reserve_job`, migration `20261205000800_rate_limits.sql`).
    let (decision, slot): (String, Option<DateTime<Utc>>) =
        sqlx::query_as("SELECT decision, slot FROM burrow_rate_reserve_job($1, $2, $3, $4, $5)")
            .bind(id)
            .bind(&kind)
            .bind(&key)
            .bind(message)
            .bind(RELEASE_LEAD)
            .fetch_one(db)
            .await?;
    Ok(match (decision.as_str(), slot) {
        ("soon", Some(at)) => Reservation::Soon { at },
        ("wait", Some(until)) => Reservation::Wait { until, key },
        _ => Reservation::Run,
    })
}

/// How long a key's state is kept after its theoretical arrival time has passed, before
/// [`prune_idle`] deletes it. Any length would do (a passed `tat` reserves as no row); a
/// minute keeps a key used now and then from being deleted and written back every time.
pub const IDLE_STATE_KEPT: Duration = Duration::from_secs(60);

/// Deletes the state of keys idle for `idle` (their theoretical arrival time passed more than
/// `idle` ago); returns how many. A key in use (its row locked by a reservation) is skipped
/// and kept. A deleted key's next job reserves as a new key's, which is what the old row
/// would have given (`burrow_rate_reserve` also writes the row back if a prune deleted it under
/// a reservation in flight, migration `20261206004000_rate_state_pruning.sql`).
///
/// # Errors
/// The database error; nothing deleted then.
///
/// # Example
/// ```no_run
/// # async fn example(db: sqlx::PgPool) -> Result<(), sqlx::Error> {
/// use burrow_shared::engine::rate_limits::{prune_idle, IDLE_STATE_KEPT};
/// let deleted = prune_idle(&db, IDLE_STATE_KEPT).await?;
/// println!("forgot {deleted} idle keys");
/// # Ok(()) }
/// ```
pub async fn prune_idle(db: impl PgExecutor<'_>, idle: Duration) -> Result<u32, sqlx::Error> {
    let n: i32 = sqlx::query_scalar("SELECT burrow_rate_prune($1)")
        .bind(idle)
        .fetch_one(db)
        .await?;
    Ok(u32::try_from(n).unwrap_or(0))
}

/// Moves up to `limit` waiters due within [`RELEASE_LEAD`] to the outbox; returns how many. Safe to call from every
/// replica at once (each waiter goes once).
///
/// # Errors
/// The database error; nothing moved then.
pub async fn release_due(db: &PgPool, limit: u32) -> Result<u32, sqlx::Error> {
    let limit = i32::try_from(limit).unwrap_or(i32::MAX);
    let n: i32 = sqlx::query_scalar("SELECT burrow_release_rate_waiters($1, $2)")
        .bind(limit)
        .bind(RELEASE_LEAD)
        .fetch_one(db)
        .await?;
    Ok(u32::try_from(n).unwrap_or(0))
}

/// How long until the next waiter is to be released (its slot less [`RELEASE_LEAD`]; zero if
/// one is now); `None` if none waits.
///
/// # Errors
/// The database error.
pub async fn next_due(db: &PgPool) -> Result<Option<Duration>, sqlx::Error> {
    let ms: Option<f64> = sqlx::query_scalar(
        // Not `greatest(0, …)`: it skips a NULL, and no waiter must stay `None`.
        "SELECT (extract(epoch FROM min(due_at) - clock_timestamp()) * 1000)::float8 \
         FROM rate_waiters",
    )
    .fetch_one(db)
    .await?;
    Ok(ms.map(|ms| {
        Duration::from_micros((ms.max(0.0) * 1000.0) as u64).saturating_sub(RELEASE_LEAD)
    }))
}

/// One rate-limited kind as it stands: for `/api/stats` (and, through [`waiting`], the
/// worker's gauges).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RateUsage {
    /// The kind.
    pub kind: String,
    /// Jobs per `period_ms` for each key, as `kind_rate_limits` holds it.
    pub rate: u32,
    /// The period `rate` counts over, in milliseconds.
    pub period_ms: u64,
    /// Jobs of one key that may start at once after a quiet time.
    pub burst: u32,
    /// Jobs parked until their reserved slot (`rate_waiters`), every key together.
    pub waiting: u32,
    /// Keys whose next job would wait now: their burst is used up (`rate_limit_state`).
    pub keys_throttled: u32,
}

/// Every rate-limited kind's limit, its waiting jobs and its throttled keys, by kind.
///
/// A key is throttled when its theoretical arrival time less the burst's tolerance is still
/// ahead (`tat − (burst − 1) · T > now`): a job of it reserved now gets a later slot.
///
/// # Errors
/// The database error.
pub async fn usage(db: impl PgExecutor<'_>) -> Result<Vec<RateUsage>, sqlx::Error> {
    let rows: Vec<(String, i32, i64, i32, i64, i64)> = sqlx::query_as(
        "SELECT l.kind, l.rate, l.period_ms, l.burst, \
                (SELECT count(*) FROM rate_waiters w WHERE w.kind = l.kind), \
                (SELECT count(*) FROM rate_limit_state s \
                 WHERE s.kind = l.kind \
                   AND s.tat - make_interval(secs => (l.burst - 1) * l.period_ms / 1000.0 / l.rate) \
                       > clock_timestamp()) \
         FROM kind_rate_limits l ORDER BY l.kind",
    )
    .fetch_all(db)
    .await?;
    let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
    Ok(rows
        .into_iter()
        .map(
            |(kind, rate, period_ms, burst, waiting, keys_throttled)| RateUsage {
                kind,
                rate: u32::try_from(rate).unwrap_or(1),
                period_ms: u64::try_from(period_ms).unwrap_or(1),
                burst: u32::try_from(burst).unwrap_or(1),
                waiting: count(waiting),
                keys_throttled: count(keys_throttled),
            },
        )
        .collect())
}

/// Jobs waiting for their rate slot, by kind (every rate-limited kind, 0 included).
///
/// # Errors
/// The database error.
pub async fn waiting(db: impl PgExecutor<'_>) -> Result<BTreeMap<String, u32>, sqlx::Error> {
    Ok(usage(db)
        .await?
        .into_iter()
        .map(|usage| (usage.kind, usage.waiting))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    /// Reserves `n` slots at the times `at` gives, returning the slots.
    fn slots(gcra: Gcra, at: impl Fn(usize) -> Duration, n: usize) -> Vec<Duration> {
        let mut tat = None;
        (0..n)
            .map(|i| {
                let (slot, next) = gcra.reserve(tat, at(i));
                assert!(slot >= at(i), "a slot is never in the past");
                tat = Some(next);
                slot
            })
            .collect()
    }

    #[test]
    fn a_burst_of_arrivals_is_spaced_by_the_interval() {
        let gcra = Gcra::of(RateLimit::per_second(10));
        let got = slots(gcra, |_| Duration::ZERO, 5);
        assert_eq!(got, [MS(0), MS(100), MS(200), MS(300), MS(400)]);
    }

    #[test]
    fn a_burst_allowance_starts_that_many_at_once_then_the_rate() {
        let gcra = Gcra::of(RateLimit::per_second(10).with_burst(3));
        let got = slots(gcra, |_| MS(1_000), 6);
        assert_eq!(
            got,
            [
                MS(1_000),
                MS(1_000),
                MS(1_000),
                MS(1_100),
                MS(1_200),
                MS(1_300)
            ]
        );
    }

    #[test]
    fn arrivals_slower_than_the_rate_never_wait() {
        let gcra = Gcra::of(RateLimit::per_second(10));
        let got = slots(gcra, |i| MS(150 * i as u64), 5);
        assert_eq!(got, [MS(0), MS(150), MS(300), MS(450), MS(600)]);
    }

    #[test]
    fn a_quiet_time_does_not_bank_more_than_the_burst() {
        let gcra = Gcra::of(RateLimit::per_second(10).with_burst(2));
        let (_, tat) = gcra.reserve(None, MS(0));
        // Ten seconds quiet, then four at once: two now, then one per interval.
        let mut tat = Some(tat);
        let mut got = Vec::new();
        for _ in 0..4 {
            let (slot, next) = gcra.reserve(tat, MS(10_000));
            tat = Some(next);
            got.push(slot);
        }
        assert_eq!(got, [MS(10_000), MS(10_000), MS(10_100), MS(10_200)]);
    }

    #[test]
    fn no_window_of_a_period_holds_more_than_rate_plus_burst_minus_one() {
        for burst in [1, 2, 5] {
            let limit = RateLimit::per_second(10).with_burst(burst);
            // Irregular arrivals: clumps and gaps, 200 jobs.
            let got = slots(
                Gcra::of(limit),
                |i| MS((i as u64 * 37) % 500 + i as u64 * 20),
                200,
            );
            for start in &got {
                let inside = got
                    .iter()
                    .filter(|s| *s >= start && **s < *start + Duration::from_secs(1))
                    .count();
                assert!(
                    (inside as u32) < 10 + burst,
                    "burst {burst}: {inside} in 1 s"
                );
            }
        }
    }

    #[test]
    fn limits_parse_with_units_and_bursts() {
        let parse = |s: &str| s.parse::<RateLimit>();
        assert_eq!(parse("10/s"), Ok(RateLimit::per_second(10)));
        assert_eq!(
            parse(" 100/m:20 "),
            Ok(RateLimit::per_minute(100).with_burst(20))
        );
        assert_eq!(
            parse("3600/h").map(|l| l.interval()),
            Ok(Duration::from_secs(1))
        );
        for bad in ["", "10", "10/d", "0/s", "10/s:0", "x/s", "10/s:x"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}

//! Fair sharing between tenants: one tenant's burst of 10,000 jobs must not make another's
//! 100 wait behind all of it, while the first still gets every spare worker.
//!
//! A tenant is a job's owner tag (`jobs.user_id`, set from the API key); jobs without one share
//! the tenant `""`.
//!
//! # Model
//! - **The outbox is the waiting room.** RabbitMQ serves a queue first in, first out, so
//!   whatever order is in the work queue is the order jobs run in. With fair sharing on
//!   ([`FairShare`], `FAIR_SHARE_WINDOW`), relays keep the backlog in the outbox and release
//!   messages only while the work queues hold fewer ready messages than the **window**: the
//!   broker holds a short queue, Postgres the long one, and the order is decided late.
//! - **Turn order.** Each pending message's turn is its tenant's *usage* — the messages
//!   released for it lately, halved every [`FairShare::half_life`] — plus its place among the
//!   tenant's pending messages (1, 2, …), divided by the tenant's *weight* (1 unless set:
//!   [`crate::engine::fair_share_weights`], `FAIR_SHARE_WEIGHTS`):
//!   `turn = (usage + place) / weight`. Lower turns go first; ties go to the older message.
//!   High-priority messages (priority ≥ 5) go before every normal one, as in the work queues;
//!   the weights order each of the two lanes. A tenant that has just been served a lot waits
//!   behind one that has not, and two tenants with backlogs, once their turns have met, share
//!   the releases in proportion to their weights (a weight of 1 each: they alternate). A
//!   tenant alone gets every release, whatever its weight.
//! - **What the weight does.** A tenant of weight `w` with `u` usage has its pending messages
//!   at turns `(u + 1) / w`, `(u + 2) / w`, …: `1 / w` apart, and a release moves its usage up
//!   by one, so the turn of the rest stays where it was. Over any stretch of turns of length
//!   `L`, a tenant with a backlog therefore gets `w·L` releases, give or take one: a tenant of
//!   weight 3 beside one of weight 1 gets three releases in four (`A A A B A A A B …` from
//!   even usage). Usage counts releases, not weighted ones: "even" is usage in proportion to
//!   the weights (30 released for the weight-3 tenant is turn 10, as 10 for the weight-1 one),
//!   and the decay, the same for every tenant, keeps it so. Integer weights make exact ties
//!   (the weight-3 tenant's third message and the other's first); once usage has decayed by a
//!   hair a tie may fall either way, which moves a release by one place, not the proportion.
//! - **One relay releases at a time.** Every process runs a relay; in fair mode each batch
//!   first takes a transaction-level advisory lock, so the room a relay reads (the broker's
//!   ready count) already includes what the relay before it published, and the window holds
//!   however many relays there are.
//!
//! # Why this design
//! - *Usage, not round robin:* round robin gives a newcomer one release in two, so behind a
//!   tenant with a backlog its jobs start at half the rate they would alone — its tail waits
//!   twice as long, plus the window. Counting what each tenant was served lately serves the
//!   newcomer first until its usage catches up (this is the fair-share factor of batch
//!   schedulers such as Slurm, with a decay), then alternates.
//! - *Weight dividing the whole turn, not the usage alone:* `usage / weight + place` would
//!   still put a tenant's messages one turn apart, so two tenants with backlogs would
//!   alternate one to one and the weight would only change how much of their past counts.
//!   Dividing the place too spaces the turns `1 / weight` apart, which is the proportion
//!   wanted; it is the virtual finish time of weighted fair queuing (and the fair-share
//!   factor's usage over shares), with decayed usage as the tenant's virtual clock.
//! - *Weights in a table, not in each relay's setting:* every relay ranks with the same
//!   weights however the replicas were started; a replica's `FAIR_SHARE_WEIGHTS` is written
//!   at its start-up, as the kind caps are.
//! - *Decay:* without it a tenant that ran a large import last week would still wait behind
//!   everyone today, and a newcomer would be owed a week of work. A half-life of seconds
//!   remembers the burst going on now.
//! - *In the relay, not the worker:* workers take what the broker hands them; reordering there
//!   would need every worker to see every backlog. The relay already reads the backlog, in
//!   Postgres, where ordering by tenant is one query.
//! - *Ranking now and then, not on every look:* a look for room comes every 10 ms while a
//!   backlog waits; ranking 10,000 messages each time starved the workers (bench row 13 at
//!   269 jobs/s against 632). An index per tenant on the outbox made each look cheap but cost
//!   every enqueue an index entry, fair sharing on or off (about 7 % of the noop row). A
//!   ranked order kept by the relay costs nothing when fair sharing is off.
//!
//! # Limits
//! - The broker's ready count does not include messages already pushed to workers and not yet
//!   started: up to `WORKER_PREFETCH − WORKER_CONCURRENCY` per worker (and per lane) run before a
//!   newcomer's first job. Set the prefetch near the concurrency with fair sharing.
//! - The window is one for all the work queues the relay's process declares (the default
//!   queue and its kinds' named ones, both lanes each), not one per queue: a backlog ready in
//!   one queue holds back releases to the others.
//! - A release waits for room: relays in fair mode look every [`FAIR_POLL_INTERVAL`] while a
//!   backlog waits (nothing tells them when a worker takes a message). A relay ranks the whole
//!   backlog (a cost that grows with the backlog, not timed on its own) when new messages arrive and at
//!   least every [`RERANK_AFTER`], and releases from that order in between: a release can
//!   follow an order up to that old. Off by default; with it off nothing of this runs.
//! - Every process that relays (api and workers) must run with the same setting: a relay
//!   without a window publishes the backlog first in, first out, as before.
//! - Weights share releases (messages), not worker time: a tenant whose jobs take ten times
//!   longer still takes ten times the worker time per release. They share only what is
//!   contended: a tenant alone gets every release, and a weight caps nothing.
//! - A newcomer goes first until its usage over its weight reaches the others' turn: a
//!   newcomer of weight `w` behind a tenant at turn `T` is owed about `w·T` releases in a row,
//!   so a heavy newcomer takes a long first run (the decay bounds `T`: with a steady backlog
//!   usage settles near releases per half-life × 1.44).
//! - Weights are read at each ranking of the backlog: a change orders releases from the next
//!   ranking (within [`RERANK_AFTER`]), behind what is already in the window. Replicas started
//!   with different `FAIR_SHARE_WEIGHTS` overwrite each other at start-up (the last one wins);
//!   a tenant dropped from the setting keeps its weight until
//!   [`crate::engine::fair_share_weights::remove_weight`].
//! - Only what goes through the outbox is ordered: retries and jobs parked until a time come
//!   back through the delay queues (`crate::engine::park`, the retry policy), straight to the
//!   work queue.

use std::time::Duration;

use sqlx::PgConnection;

use crate::engine::outbox::PendingMessage;

/// How long a tenant's usage takes to halve, by default.
pub const DEFAULT_HALF_LIFE: Duration = Duration::from_secs(10);

/// How often a relay in fair mode looks for room while a backlog waits in the outbox.
pub const FAIR_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Longest a relay releases from one ranking of the backlog before ranking it again (it also
/// ranks again when new messages arrive): turns move as other relays release.
pub const RERANK_AFTER: Duration = Duration::from_secs(1);

/// The advisory-lock key that lets one relay release at a time: `burrowfs` in ASCII, fixed so
/// every process agrees (advisory locks are per database, so installations sharing a server
/// do not contend).
pub(crate) const RELEASE_LOCK: i64 = 0x6275_7272_6f77_6673;

/// Usage this many half-lives old is below a millionth of what it was: its row is removed.
const FORGOTTEN_AFTER_HALF_LIVES: f64 = 20.0;

/// Fair sharing between tenants, for [`crate::engine::relay::OutboxRelay::with_fair_share`].
///
/// # Example
/// ```
/// use std::time::Duration;
/// use burrow_shared::engine::fair_share::FairShare;
///
/// // At most 64 ready messages in the work queues; the rest wait in the outbox, by turn.
/// let fair = FairShare::new(64).with_half_life(Duration::from_secs(30));
/// assert_eq!(fair.window(), 64);
/// assert_eq!(fair.half_life(), Duration::from_secs(30));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FairShare {
    window: u32,
    half_life: Duration,
}

impl FairShare {
    /// At most `window` messages (at least 1) ready in the work queues at once; the usage
    /// half-life is [`DEFAULT_HALF_LIFE`].
    pub fn new(window: u32) -> Self {
        FairShare {
            window: window.max(1),
            half_life: DEFAULT_HALF_LIFE,
        }
    }

    /// Fair sharing with `window` (the `FAIR_SHARE_WINDOW` setting of the api and the worker),
    /// or `None` (off) for 0.
    pub fn from_window(window: u32) -> Option<Self> {
        (window > 0).then(|| FairShare::new(window))
    }

    /// The same with usage halving every `half_life` (at least 1 ms).
    #[must_use]
    pub fn with_half_life(mut self, half_life: Duration) -> Self {
        self.half_life = half_life.max(Duration::from_millis(1));
        self
    }

    /// The most messages ready in the work queues at once.
    pub fn window(&self) -> u32 {
        self.window
    }

    /// How long a tenant's usage takes to halve.
    pub fn half_life(&self) -> Duration {
        self.half_life
    }
}

/// The ids of the first `limit` pending messages in turn order (see the module docs), without
/// locking them: a relay ranks the backlog now and then ([`RERANK_AFTER`], or when new
/// messages arrive) and releases from that order in between, with [`lock_pending_ids`].
///
/// It ranks every pending row (a window function, so its cost grows with the backlog), which
/// is why it does not run on every look for room. A turn is `(usage + place) / weight`, the
/// weight from `fair_share_weights` (1 without a row).
///
/// # Errors
/// The database error.
pub(crate) async fn turn_order(
    tx: &mut PgConnection,
    limit: i64,
    half_life: Duration,
) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "WITH usage AS ( \
             SELECT tenant, \
                    released * power(0.5, extract(epoch FROM clock_timestamp() - updated_at) / $2) \
                        AS used \
             FROM fair_share_usage \
         ), pending AS ( \
             SELECT o.id, coalesce(j.user_id, '') AS tenant, \
                    coalesce(j.priority, 0) >= 5 AS high \
             FROM outbox o LEFT JOIN jobs j ON j.id = o.job_id \
             WHERE o.published_at IS NULL \
         ), turns AS ( \
             SELECT p.id, p.high, \
                    (coalesce(u.used, 0) + row_number() OVER ( \
                        PARTITION BY p.tenant ORDER BY p.high DESC, p.id)) \
                        / coalesce(w.weight, 1) AS turn \
             FROM pending p LEFT JOIN usage u ON u.tenant = p.tenant \
                  LEFT JOIN fair_share_weights w ON w.tenant = p.tenant \
         ) \
         SELECT id FROM turns ORDER BY high DESC, turn, id LIMIT $1",
    )
    .bind(limit)
    .bind(half_life.as_secs_f64())
    .fetch_all(tx)
    .await
}

/// Locks those of `ids` still pending, skipping rows another transaction holds, in the order
/// of `ids`. The locks last until `tx` ends: publish, stamp, then [`record_released`], then
/// commit.
///
/// # Errors
/// The database error.
pub(crate) async fn lock_pending_ids(
    tx: &mut PgConnection,
    ids: &[i64],
) -> Result<Vec<PendingMessage>, sqlx::Error> {
    let mut rows: Vec<PendingMessage> = sqlx::query_as(
        "SELECT id, job_id, message FROM outbox \
         WHERE id = ANY($1) AND published_at IS NULL \
         FOR UPDATE SKIP LOCKED",
    )
    .bind(ids)
    .fetch_all(tx)
    .await?;
    let place: std::collections::HashMap<i64, usize> =
        ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    rows.sort_by_key(|row| place.get(&row.id).copied().unwrap_or(usize::MAX));
    Ok(rows)
}

/// Adds the released outbox rows `ids` to their tenants' usage (decaying what was there).
/// Call in the transaction that stamps them published.
///
/// # Errors
/// The database error.
pub(crate) async fn record_released(
    tx: &mut PgConnection,
    ids: &[i64],
    half_life: Duration,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO fair_share_usage AS u (tenant, released) \
         SELECT coalesce(j.user_id, ''), count(*) \
         FROM outbox o LEFT JOIN jobs j ON j.id = o.job_id \
         WHERE o.id = ANY($1) \
         GROUP BY 1 \
         ON CONFLICT (tenant) DO UPDATE SET \
             released = u.released \
                 * power(0.5, extract(epoch FROM clock_timestamp() - u.updated_at) / $2) \
                 + excluded.released, \
             updated_at = clock_timestamp()",
    )
    .bind(ids)
    .bind(half_life.as_secs_f64())
    .execute(&mut *tx)
    .await?;
    // Tenants not served for long weigh nothing any more; a table of a few rows stays so.
    sqlx::query(
        "DELETE FROM fair_share_usage \
         WHERE updated_at < clock_timestamp() - make_interval(secs => $1)",
    )
    .bind(half_life.as_secs_f64() * FORGOTTEN_AFTER_HALF_LIVES)
    .execute(tx)
    .await?;
    Ok(())
}

/// Every tenant's usage now (decayed), highest first: what the next turns are computed from,
/// with the tenants' weights ([`crate::engine::fair_share_weights::weights`]).
///
/// # Errors
/// The database error.
///
/// # Example
/// ```no_run
/// # async fn example(db: sqlx::PgPool) -> Result<(), sqlx::Error> {
/// use std::time::Duration;
/// use burrow_shared::engine::fair_share;
/// for (tenant, used) in fair_share::usage(&db, Duration::from_secs(10)).await? {
///     println!("{tenant}: {used:.1} messages released lately");
/// }
/// # Ok(()) }
/// ```
pub async fn usage(
    db: impl sqlx::PgExecutor<'_>,
    half_life: Duration,
) -> Result<Vec<(String, f64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT tenant, \
                released * power(0.5, extract(epoch FROM clock_timestamp() - updated_at) / $1) \
                    AS used \
         FROM fair_share_usage ORDER BY used DESC, tenant",
    )
    .bind(half_life.as_secs_f64())
    .fetch_all(db)
    .await
}

//! Cluster-wide concurrency caps per kind: at most `cap` jobs of a kind run at once across
//! every worker process and host (`export_xlsx` ≤ 2, say), unlike
//! [`crate::handler::JobHandler::MAX_CONCURRENCY`], which bounds one process.
//!
//! # Model
//! - **A cap is `cap` slot rows** (`kind_cap_slots`, migration
//!   `20261206002000_kind_cap_slots.sql`). A claim takes a free one with
//!   `FOR UPDATE SKIP LOCKED`, so claims of a kind take different rows and wait for nobody; a
//!   slot is held by the job it names, so a crashed worker's job keeps its slot while it stays
//!   `processing`, its redelivery takes back that same slot, and the sweeper's requeue (or
//!   burial) lets it go. A crash cannot leak a slot.
//! - **A capped claim rides the group commit** ([`crate::engine::state::batch`]): the lock
//!   session's one statement takes a slot for each capped job it claims. Only a delivery that
//!   finds no slot free claims again alone ([`crate::engine::state::capped`]), to park.
//! - **Slots are taken and freed by the group.** While no one waits for a kind, a group
//!   claim pairs its jobs with free slots in one update, and the worker's batched successes
//!   free all their slots in one update (migration `20261206003500_cap_slots_in_groups.sql`);
//!   with waiters, each slot is taken or handed on one by one, in the waiters' order. Every
//!   other end (failure, retry, sweeper, cancel) goes through the row trigger.
//! - **The cap is one row** of `kind_caps`, read (not locked) by every claim: what a claim
//!   enforces is what the table says, whatever the local configuration of the replica that
//!   claims. Its slot rows follow it ([`declare`], [`remove`]).
//! - **Waiting happens in Postgres, not in the broker.** A delivery that finds its kind full
//!   parks its message in `capped_waiters` (in arrival order) and is acked; the job stays
//!   `queued` (or `retrying`) to observers. When a capped run leaves `processing`, whatever
//!   the transition, a trigger hands its slot to the oldest waiter (or frees it) and puts that
//!   waiter's message in the outbox, in the same transaction. The handed slot stays reserved
//!   for the waiter for 30 s while its message travels, so a newcomer cannot take it. A waiting
//!   job's message therefore goes through the broker once when enqueued and once per release,
//!   never on a timer.
//! - **No lost wake-up.** Ends of runs hold their kind's advisory lock *shared*; a claim parks
//!   only under it *exclusive*, after looking for a slot again. A claim that saw "full" and an
//!   end that saw "no waiter" cannot pass each other (the reasoning is in
//!   [`crate::engine::state::capped`]). Claims that find a slot, and ends, never wait for
//!   each other.
//!
//! # Why this design
//! - *Slot rows, not a count under one lock:* the first model counted the kind's running jobs
//!   under its `kind_caps` row lock on every claim and every end, so every capped claim and
//!   end of the whole cluster ran one after the other, in a transaction of its own: a cap
//!   never reached cost 90 % of the throughput of noop jobs (benchmark 12). Slot rows taken
//!   with `SKIP LOCKED` need no count and no shared row; only parking, which happens when the
//!   kind is full anyway, takes a kind-wide lock.
//! - *Slots named by their job, not permits handed out:* a permit must be given back, and a
//!   crash between the run and the give-back leaks it unless something sweeps it; a slot
//!   naming its job is given back by the transition that moves the job out of `processing`,
//!   which redelivery and the sweeper already guarantee, so the count is right by
//!   construction. The `capped` flag (set by a claim that took a slot) lets the release
//!   trigger skip every other job with a `WHEN` test.
//! - *Waiting in Postgres, not in a delay queue:* a delay queue makes a waiting job cycle
//!   through the broker every second, whatever the cap; a waiter row is written once and read
//!   once, and its release is the commit that frees the slot, so it waits no longer than it must.
//! - *A reservation for a released waiter:* without it, a newcomer arriving between the release
//!   and the waiter's delivery takes the slot, and the waiter parks again at the end of the line:
//!   unbounded publishes and no arrival order. The reservation expires (30 s), so a message lost
//!   on the way holds a slot for a bounded time only.
//! - *An advisory lock shared by ends and exclusive for parks, not a re-check after commit:*
//!   ends happen in many places (the worker's completer, failures, the sweeper, cancels), and
//!   each would need a second transaction after its commit to look for waiters it missed; the
//!   shared lock costs an end nothing while the kind is not full.

//! # Declaring caps, and replicas that disagree
//! Workers write the caps their kinds declare ([`crate::handler::JobHandler::GLOBAL_CONCURRENCY`],
//! or the worker's `KIND_CAPS`) at start-up with [`declare`]: the last replica to start wins,
//! and every replica enforces that one value from the moment it is written. Replicas learn
//! which kinds are capped from the table ([`load`]), at start-up and every few seconds; until a
//! replica has seen a new cap, it claims that kind's jobs uncapped, and those runs do not count
//! against the cap. A replica that declares no cap for a kind removes nothing (another replica
//! may declare it); remove a cap with [`remove`], which lets every waiter of the kind go. A
//! replica that has not yet re-read the table still claims that kind as capped; finding no cap
//! in the table, it claims uncapped.
//!
//! # Limits
//! A capped group claim costs a look for waiters and one update of its slots per kind; a group
//! of capped successes a shared advisory lock, a look for waiters and one update per kind:
//! bench row 12 measured 0.83× and 0.88× the throughput of uncapped noop jobs with a cap never
//! reached (0.59× when each job took and freed its slot alone, 0.09× with the single-row
//! model; the target is 0.8×). Ends other than a batched success still run the trigger's few
//! statements per job. A claim that
//! finds the kind full is a transaction of its own, and parks under the
//! kind's exclusive lock: while a kind is full, its parks and its ends take turns. A cap is
//! `cap` rows, so a cap of millions is a table of millions. A cap lowered below the runs in
//! flight is reached as they end (their slots above it are dropped then). A message lost after
//! its release (broker data loss) keeps its reservation 30 s, then is released again by the
//! next park or end of a run of that kind, or by the sweeper's [`pump_all`]. A claim that took
//! a free slot and then failed leaves no slot held (its transaction rolls back), but a waiter
//! that parked meanwhile waits for the next end or the sweeper's [`pump_all`].

use std::collections::BTreeMap;

use sqlx::{PgExecutor, PgPool};

/// Writes `caps` (kind → most jobs of it running at once, at least 1) for `by` (a worker id),
/// replacing what another replica wrote for the same kinds; other kinds' rows stay.
///
/// # Errors
/// The database error; nothing is written then.
///
/// # Example
/// ```no_run
/// # async fn example(db: sqlx::PgPool) -> Result<(), sqlx::Error> {
/// use std::collections::BTreeMap;
/// use burrow_shared::engine::kind_caps;
/// let caps = BTreeMap::from([("export_xlsx".to_owned(), 2)]);
/// kind_caps::declare(&db, &caps, "host-1:4242").await?;
/// assert_eq!(kind_caps::load(&db).await?.get("export_xlsx"), Some(&2));
/// # Ok(()) }
/// ```
pub async fn declare(
    db: &PgPool,
    caps: &BTreeMap<String, u32>,
    by: &str,
) -> Result<(), sqlx::Error> {
    if caps.is_empty() {
        return Ok(());
    }
    let kinds: Vec<&str> = caps.keys().map(String::as_str).collect();
    let limits: Vec<i32> = caps
        .values()
        .map(|cap| i32::try_from(*cap).unwrap_or(i32::MAX).max(1))
        .collect();
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO kind_caps (kind, cap, updated_by) \
         SELECT k, c, $3 FROM unnest($1::text[], $2::int[]) AS u(k, c) \
         ON CONFLICT (kind) DO UPDATE \
             SET cap = EXCLUDED.cap, updated_at = now(), updated_by = EXCLUDED.updated_by",
    )
    .bind(&kinds)
    .bind(&limits)
    .bind(by)
    .execute(&mut *tx)
    .await?;
    // The kind's slot rows follow the cap, and a cap raised frees slots at once: the pump lets
    // the waiters they now admit go. The kinds are sorted (a BTreeMap), so two replicas
    // starting together take the kinds' exclusive locks in one order.
    sqlx::query(
        "SELECT burrow_cap_resize(k), burrow_pump_capped(k) \
         FROM unnest($1::text[]) WITH ORDINALITY AS u(k, n) ORDER BY n",
    )
    .bind(&kinds)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Removes `kind`'s cap and releases all its waiters into the outbox, in one transaction.
/// Returns whether the kind had a cap. A replica that declares the cap again at its next
/// start-up brings it back.
///
/// # Errors
/// The database error; nothing changed then.
pub async fn remove(db: &PgPool, kind: &str) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    // The kind's exclusive lock first, as declare takes it: claims parking now wait for this
    // transaction, then find no cap and claim uncapped.
    sqlx::query("SELECT burrow_cap_lock($1, true)")
        .bind(kind)
        .execute(&mut *tx)
        .await?;
    let removed = sqlx::query("DELETE FROM kind_caps WHERE kind = $1")
        .bind(kind)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        > 0;
    // Free slots go now; the ones still held go when their runs end.
    sqlx::query("SELECT burrow_cap_resize($1), burrow_pump_capped($1)")
        .bind(kind)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(removed)
}

/// Every cap in force: kind → cap.
///
/// # Errors
/// The database error.
pub async fn load(db: impl PgExecutor<'_>) -> Result<BTreeMap<String, u32>, sqlx::Error> {
    let rows: Vec<(String, i32)> = sqlx::query_as("SELECT kind, cap FROM kind_caps")
        .fetch_all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(kind, cap)| (kind, u32::try_from(cap).unwrap_or(1)))
        .collect())
}

/// Releases, for every capped kind (and every kind with waiters), the waiters its free slots
/// admit. Normally the end of a run does it; this recovers a message lost after its release
/// once its reservation expired, and the waiters of a kind whose cap was removed.
/// One transaction per kind, so no two kind locks are held at once. Returns how many waiters
/// went to the outbox.
///
/// # Errors
/// The database error; kinds pumped before it stay pumped.
pub async fn pump_all(db: &PgPool) -> Result<u64, sqlx::Error> {
    // Kinds with waiters count too: a cap removed while nothing of its kind ran would leave
    // them parked, with no run ending to let them go.
    let kinds: Vec<String> = sqlx::query_scalar(
        "SELECT kind FROM kind_caps UNION SELECT DISTINCT kind FROM capped_waiters ORDER BY 1",
    )
    .fetch_all(db)
    .await?;
    let mut released = 0;
    for kind in kinds {
        let n: i32 = sqlx::query_scalar("SELECT burrow_pump_capped($1)")
            .bind(&kind)
            .fetch_one(db)
            .await?;
        released += u64::try_from(n).unwrap_or(0);
    }
    Ok(released)
}

/// One capped kind as it stands: for `/api/stats` and the worker's gauges.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CapUsage {
    /// The kind.
    pub kind: String,
    /// Most jobs of it running at once.
    pub cap: u32,
    /// Jobs of it `processing` under the cap now (slots held by runs).
    pub running: u32,
    /// Messages parked until a slot frees (released ones on their way included).
    pub waiting: u32,
}

/// Every capped kind's cap, running jobs and waiters, by kind.
///
/// # Errors
/// The database error.
pub async fn usage(db: impl PgExecutor<'_>) -> Result<Vec<CapUsage>, sqlx::Error> {
    let rows: Vec<(String, i32, i64, i64)> = sqlx::query_as(
        "SELECT c.kind, c.cap, \
                (SELECT count(*) FROM kind_cap_slots s \
                 WHERE s.kind = c.kind AND s.job_id IS NOT NULL AND s.reserved_until IS NULL), \
                (SELECT count(*) FROM capped_waiters w WHERE w.kind = c.kind) \
         FROM kind_caps c ORDER BY c.kind",
    )
    .fetch_all(db)
    .await?;
    let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
    Ok(rows
        .into_iter()
        .map(|(kind, cap, running, waiting)| CapUsage {
            kind,
            cap: u32::try_from(cap).unwrap_or(1),
            running: count(running),
            waiting: count(waiting),
        })
        .collect())
}

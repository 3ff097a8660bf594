//! Rate limits with real `burrow-worker` processes: three workers and
//! `KIND_RATE_LIMITS=sleep=10/s` start at most ten `sleep` jobs in any second (start times
//! from the `processing` events), every job succeeds, a waiting job goes through the broker
//! at most twice (its enqueue and its release, both in the outbox; no delay-queue park), and a
//! worker killed while jobs wait leaves nothing behind: the others release its waiters and
//! the rest still run at the limit.

mod support;

use std::time::Duration;

use burrow_shared::enqueue::{enqueue, NewJob};
use burrow_shared::kinds::{Sleep, SleepPayload};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use support::worker_process::{spawn_worker, WorkerProcess};
use support::{all_succeeded, eventually, Stack};
use uuid::Uuid;

/// The limit under test: 10 jobs per second, burst 1.
const RATE: usize = 10;

const NAMES: [&str; 3] = ["rate-a", "rate-b", "rate-c"];

async fn enqueue_sleeps(db: &PgPool, n: usize) -> Vec<Uuid> {
    let mut tx = db.begin().await.expect("tx");
    let mut ids = Vec::new();
    for _ in 0..n {
        let job = NewJob::of::<Sleep>(&SleepPayload { ms: 10 }).expect("job");
        ids.push(enqueue(&mut tx, job).await.expect("enqueue").job.id);
    }
    tx.commit().await.expect("commit");
    ids
}

async fn workers(stack: &Stack) -> Vec<WorkerProcess> {
    let mut workers = Vec::new();
    for name in NAMES {
        let vars = [
            ("KIND_RATE_LIMITS", "sleep=10/s"),
            ("WORKER_ID", name),
            ("WORKER_CONCURRENCY", "8"),
        ];
        workers.push(spawn_worker(stack, &vars).await);
    }
    workers
}

/// Run starts (the `processing` events) or, with `slots`, the reserved slots of the jobs that
/// waited (one per `waiting_for_rate` event; a job that ran at once started at its slot), sorted.
async fn times(db: &PgPool, ids: &[Uuid], slots: bool) -> Vec<DateTime<Utc>> {
    let sql = if slots {
        "SELECT substring(detail FROM 'until (.*)$')::timestamptz FROM job_events \
         WHERE job_id = ANY($1) AND event = 'waiting_for_rate' ORDER BY 1"
    } else {
        "SELECT at FROM job_events WHERE job_id = ANY($1) AND event = 'processing' ORDER BY 1"
    };
    sqlx::query_scalar(sql)
        .bind(ids)
        .fetch_all(db)
        .await
        .expect("times")
}

/// The most of `times` (sorted) in any window of one second (half-open), and the span from
/// the first to the last.
fn busiest_second(times: &[DateTime<Utc>]) -> (usize, Duration) {
    let second = chrono::Duration::seconds(1);
    let most = times
        .iter()
        .enumerate()
        .map(|(i, from)| {
            times[i..]
                .iter()
                .take_while(|at| **at < *from + second)
                .count()
        })
        .max()
        .unwrap_or(0);
    let span = match (times.first(), times.last()) {
        (Some(first), Some(last)) => (*last - *first).to_std().unwrap_or_default(),
        _ => Duration::ZERO,
    };
    (most, span)
}

/// What the limit allows in the starts: the slots hold at most [`RATE`] a second (burst 1),
/// and a start comes no earlier than its slot, at most `late_ms` after it, so a second of
/// starts holds the slots of a window `late_ms` longer: one more per interval of lateness.
/// One more again for the job that ran at once (its slot is not recorded, so its lateness,
/// a fresh worker's first claim, is not in `late_ms`).
fn allowed_starts(late_ms: f64) -> usize {
    let interval_ms = 1_000.0 / RATE as f64;
    RATE + (late_ms / interval_ms).ceil() as usize + 1
}

/// Checks the rate on slots and starts; returns (most slots, most starts, lateness) in a second.
async fn check_rate(db: &PgPool, ids: &[Uuid]) -> (usize, usize, (f64, f64, f64), Duration) {
    let reserved = times(db, ids, true).await;
    let (slots, slot_span) = busiest_second(&reserved);
    // Consecutive slots of one key are one interval apart: n of them span n - 1 intervals.
    let interval = Duration::from_millis(1_000 / RATE as u64);
    let expected = interval * (reserved.len().saturating_sub(1) as u32);
    assert!(
        slot_span + Duration::from_millis(1) >= expected,
        "{} slots span {slot_span:?}",
        reserved.len()
    );
    let (starts, span) = busiest_second(&times(db, ids, false).await);
    let late = lateness_ms(db, ids).await;
    assert!(slots <= RATE, "{slots} slots reserved in one second");
    assert!(late.0 >= 0.0, "a job started before its slot: {late:?}");
    assert!(
        starts <= allowed_starts(late.2),
        "{starts} starts in one second, starts late by at most {} ms",
        late.2
    );
    (slots, starts, late, span)
}

/// How late each waiting job started after its reserved slot (its `waiting_for_rate` event's,
/// against the first start that followed it), in milliseconds: the fastest, the median and
/// the slowest.
async fn lateness_ms(db: &PgPool, ids: &[Uuid]) -> (f64, f64, f64) {
    let row: (Option<f64>, Option<f64>, Option<f64>) = sqlx::query_as(
        "SELECT min(ms), percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), max(ms) FROM ( \
             SELECT (extract(epoch FROM p.at - substring(w.detail FROM 'until (.*)$')::timestamptz) \
                    * 1000)::float8 AS ms \
             FROM job_events w \
             JOIN LATERAL (SELECT min(at) AS at FROM job_events p WHERE p.job_id = w.job_id \
                           AND p.event = 'processing' AND p.at >= w.at) p ON true \
             WHERE w.job_id = ANY($1) AND w.event = 'waiting_for_rate') l",
    )
    .bind(ids)
    .fetch_one(db)
    .await
    .expect("lateness");
    (
        row.0.unwrap_or(0.0),
        row.1.unwrap_or(0.0),
        row.2.unwrap_or(0.0),
    )
}

/// Publishes per job (outbox rows: the enqueue and each release of a rate waiter), and the
/// most `waiting_for_rate` events of one job.
async fn publishes_and_waits(db: &PgPool, ids: &[Uuid]) -> (Vec<i64>, i64) {
    let publishes: Vec<i64> = sqlx::query_scalar(
        "SELECT count(o.id) FROM jobs j LEFT JOIN outbox o ON o.job_id = j.id \
         WHERE j.id = ANY($1) GROUP BY j.id",
    )
    .bind(ids)
    .fetch_all(db)
    .await
    .expect("publishes");
    let waits: Option<i64> = sqlx::query_scalar(
        "SELECT max(n) FROM (SELECT count(*) AS n FROM job_events \
         WHERE job_id = ANY($1) AND event = 'waiting_for_rate' GROUP BY job_id) w",
    )
    .bind(ids)
    .fetch_one(db)
    .await
    .expect("waits");
    (publishes, waits.unwrap_or(0))
}

#[tokio::test]
async fn three_workers_start_at_most_ten_a_second_and_waiting_jobs_do_not_bounce() {
    let stack = Stack::new().await;
    let mut procs = workers(&stack).await;
    let jobs = 50;
    let started = std::time::Instant::now();
    let ids = enqueue_sleeps(&stack.env.db, jobs).await;
    all_succeeded(&stack, &ids).await;
    let took = started.elapsed();
    let (slots, most, late, span) = check_rate(&stack.env.db, &ids).await;
    let (publishes, waits) = publishes_and_waits(&stack.env.db, &ids).await;
    let attempts: Vec<i32> = sqlx::query_scalar("SELECT attempts FROM jobs WHERE id = ANY($1)")
        .bind(&ids)
        .fetch_all(&stack.env.db)
        .await
        .expect("attempts");
    let parks = procs
        .iter()
        .map(WorkerProcess::delay_queue_parks)
        .sum::<usize>();
    let twice = publishes.iter().filter(|n| **n == 2).count();
    eprintln!(
        "10/s, 3 workers, {jobs} jobs: took {took:?}, starts spread over {span:?}, at most \
         {slots} slots and {most} starts in a second, started after the slot by (min, median, \
         max ms) {late:?}, {twice} jobs published twice (waited), most \
         waiting_for_rate events of one job {waits}, {parks} delay-queue parks"
    );
    // The last of 50 slots 100 ms apart is 4.9 s after the first; the first start can be
    // late (a worker's first claim), so the starts span a little less.
    assert!(span >= Duration::from_millis(4_000), "{span:?}");
    assert!(
        publishes.iter().all(|n| (1..=2).contains(n)),
        "each job published at most twice: {publishes:?}"
    );
    assert!(twice >= jobs - 5, "most jobs waited: {twice}");
    assert_eq!(waits, 1, "one wait per job, parked once");
    assert_eq!(parks, 0, "no delivery went through a delay queue");
    assert!(attempts.iter().all(|a| *a == 1), "{attempts:?}");
    for p in &mut procs {
        p.stop().await;
    }
}

#[tokio::test]
async fn a_worker_killed_while_jobs_wait_leaks_nothing() {
    let stack = Stack::new().await;
    let mut procs = workers(&stack).await;
    let ids = enqueue_sleeps(&stack.env.db, 40).await;
    // Kill a worker once jobs wait: the waiters are rows, which the others' pumps release.
    eventually("jobs waiting for their slot", || async {
        let waiting: i64 = sqlx::query_scalar("SELECT count(*) FROM rate_waiters")
            .fetch_one(&stack.env.db)
            .await
            .expect("waiters");
        (waiting >= 10).then_some(())
    })
    .await;
    let (index, victim) = (1, NAMES[1]);
    let waiting_then: i64 = sqlx::query_scalar("SELECT count(*) FROM rate_waiters")
        .fetch_one(&stack.env.db)
        .await
        .expect("waiting");
    let mut killed = procs.remove(index);
    killed.kill().await;
    all_succeeded(&stack, &ids).await;
    let (slots, most, late, span) = check_rate(&stack.env.db, &ids).await;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM rate_waiters")
        .fetch_one(&stack.env.db)
        .await
        .expect("left");
    eprintln!(
        "killed {victim} with {waiting_then} jobs waiting: all 40 succeeded, starts over \
         {span:?}, at most {slots} slots and {most} starts in a second, started after the slot by \
         {late:?} ms, {left} waiters left"
    );
    assert!(waiting_then > 0, "jobs were waiting when the worker died");
    assert_eq!(left, 0);
    for p in &mut procs {
        p.stop().await;
    }
}

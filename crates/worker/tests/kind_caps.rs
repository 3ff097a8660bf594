//! Cluster-wide caps with real `burrow-worker` processes: three workers and `KIND_CAPS=sleep=2`
//! never run more than two `sleep` jobs at once (the count of `processing` rows is sampled all
//! along), a waiting job goes through the broker at most twice (its enqueue and its release,
//! counted in the outbox, through which every publish of a capped waiter goes), and a worker
//! killed while holding a slot gives it back.

mod support;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use burrow_shared::enqueue::{enqueue, NewJob};
use burrow_shared::kinds::{Sleep, SleepPayload};
use burrow_shared::JobStatus;
use sqlx::PgPool;
use support::worker_process::{spawn_worker, WorkerProcess};
use support::{all_succeeded, eventually, Stack};
use uuid::Uuid;

const JOBS: usize = 20;

async fn enqueue_sleeps(db: &PgPool, n: usize, ms: u64) -> Vec<Uuid> {
    let mut tx = db.begin().await.expect("tx");
    let mut ids = Vec::new();
    for _ in 0..n {
        let job = NewJob::of::<Sleep>(&SleepPayload { ms }).expect("job");
        ids.push(enqueue(&mut tx, job).await.expect("enqueue").job.id);
    }
    tx.commit().await.expect("commit");
    ids
}

/// Samples the number of `processing` sleep jobs every 2 ms until stopped; the largest seen.
struct Sampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(i64, u32)>,
}

impl Sampler {
    fn start(db: PgPool) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let most = Arc::new(AtomicI64::new(0));
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut samples = 0;
                while !stop.load(Ordering::Relaxed) {
                    let running: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM jobs WHERE kind = 'sleep' AND status = 'processing'",
                    )
                    .fetch_one(&db)
                    .await
                    .expect("sample");
                    most.fetch_max(running, Ordering::Relaxed);
                    samples += 1;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                (most.load(Ordering::Relaxed), samples)
            }
        });
        Sampler { stop, task }
    }

    async fn finish(self) -> (i64, u32) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("sampler")
    }
}

async fn workers(stack: &Stack, vars: &[(&str, &str)]) -> Vec<WorkerProcess> {
    let mut workers = Vec::new();
    for name in ["cap-a", "cap-b", "cap-c"] {
        let mut all = vec![
            ("KIND_CAPS", "sleep=2"),
            ("WORKER_ID", name),
            ("WORKER_CONCURRENCY", "8"),
        ];
        all.extend_from_slice(vars);
        workers.push(spawn_worker(stack, &all).await);
    }
    workers
}

#[tokio::test]
async fn three_workers_hold_a_cap_of_two_exactly_and_waiting_jobs_do_not_bounce() {
    let stack = Stack::new().await;
    let mut procs = workers(&stack, &[]).await;
    let sampler = Sampler::start(stack.env.db.clone());
    let started = std::time::Instant::now();
    let ids = enqueue_sleeps(&stack.env.db, JOBS, 300).await;
    all_succeeded(&stack, &ids).await;
    let took = started.elapsed();
    let (most, samples) = sampler.finish().await;
    // Every publish of a job goes through the outbox here (a capped waiter is never parked in
    // a delay queue): its enqueue, then one per release.
    let publishes: Vec<i64> = sqlx::query_scalar(
        "SELECT count(o.id) FROM jobs j LEFT JOIN outbox o ON o.job_id = j.id \
         WHERE j.id = ANY($1) GROUP BY j.id",
    )
    .bind(&ids)
    .fetch_all(&stack.env.db)
    .await
    .expect("publishes");
    let waited: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT job_id) FROM job_events WHERE event = 'waiting_for_slot'",
    )
    .fetch_one(&stack.env.db)
    .await
    .expect("events");
    let attempts: Vec<i32> = sqlx::query_scalar("SELECT attempts FROM jobs WHERE id = ANY($1)")
        .bind(&ids)
        .fetch_all(&stack.env.db)
        .await
        .expect("attempts");
    let parks: usize = procs.iter().map(WorkerProcess::delay_queue_parks).sum();
    eprintln!(
        "cap 2, 3 workers, {JOBS} jobs of 300 ms: took {took:?}, max running {most} in {samples} \
         samples, publishes per job {publishes:?}, {waited} jobs waited, {parks} broker parks"
    );
    assert_eq!(most, 2, "never above the cap, and the cap is used");
    assert!(samples > 100, "{samples} samples");
    assert!(
        waited >= (JOBS - 6) as i64,
        "most jobs waited for a slot: {waited}"
    );
    assert!(
        publishes.iter().all(|n| (1..=2).contains(n)),
        "each job published at most twice: {publishes:?}"
    );
    assert_eq!(parks, 0, "no delivery went through a delay queue");
    assert!(attempts.iter().all(|a| *a == 1), "{attempts:?}");
    // 20 jobs × 300 ms two at a time take at least 3 s: a waiter released once a second would
    // have been published several times.
    assert!(took >= Duration::from_secs(3), "{took:?}");
    for p in &mut procs {
        p.stop().await;
    }
}

#[tokio::test]
async fn a_worker_killed_while_holding_a_slot_gives_it_back() {
    let stack = Stack::new().await;
    let mut procs = workers(
        &stack,
        &[("JOB_LEASE_SECS", "2"), ("SWEEP_INTERVAL_SECS", "1")],
    )
    .await;
    let sampler = Sampler::start(stack.env.db.clone());
    let ids = enqueue_sleeps(&stack.env.db, 6, 1_500).await;
    // Wait until some worker runs a job, then kill that worker.
    let (victim_job, victim): (Uuid, String) = eventually("a running sleep job", || async {
        sqlx::query_as(
            "SELECT id, worker FROM jobs WHERE kind = 'sleep' AND status = 'processing' LIMIT 1",
        )
        .fetch_optional(&stack.env.db)
        .await
        .expect("running")
    })
    .await;
    let index = ["cap-a", "cap-b", "cap-c"]
        .iter()
        .position(|name| *name == victim)
        .expect("a known worker");
    let mut killed = procs.remove(index);
    killed.kill().await;
    all_succeeded(&stack, &ids).await;
    let (most, _) = sampler.finish().await;
    let (status, attempts, worker): (String, i32, Option<String>) =
        sqlx::query_as("SELECT status, attempts, worker FROM jobs WHERE id = $1")
            .bind(victim_job)
            .fetch_one(&stack.env.db)
            .await
            .expect("victim");
    eprintln!(
        "killed {victim} running {victim_job}: it ended {status} after {attempts} attempts on \
         {worker:?}; max running {most}"
    );
    assert_eq!(status, JobStatus::Succeeded.as_str());
    assert!(attempts >= 2, "the killed run was run again: {attempts}");
    assert_ne!(worker.as_deref(), Some(victim.as_str()));
    assert!(most <= 2, "{most}");
    // Every worker shows the cluster's view of the cap on its `/metrics` (refreshed every 5 s).
    let page = eventually("the cap gauges", || async {
        let (_, page) = procs[0].get("/metrics").await?;
        // Both at 0 in one page: a page refreshed while the last job still ran shows no
        // waiter but one running, and the next refresh (5 s later) shows the end.
        (page.contains("burrow_kind_cap_waiting{kind=\"sleep\"} 0")
            && page.contains("burrow_kind_cap_running{kind=\"sleep\"} 0"))
        .then_some(page)
    })
    .await;
    assert!(page.contains("burrow_kind_cap{kind=\"sleep\"} 2"), "{page}");
    assert!(
        page.contains("burrow_kind_cap_running{kind=\"sleep\"} 0"),
        "{page}"
    );
    for p in &mut procs {
        p.stop().await;
    }
}

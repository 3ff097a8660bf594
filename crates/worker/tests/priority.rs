//! Priorities end to end: high-priority jobs (5–9) travel through their own work and delay
//! queues, and a worker starts them ahead of a normal backlog.
//!
//! `high_priority_jobs_overtake_a_normal_backlog` also prints the measurement quoted in the
//! README (run it with `--no-capture` under nextest, `-- --nocapture` under cargo test).

mod support;

use std::time::Duration;

use burrow_shared::publish::publish_retry;
use burrow_shared::topology::Lane;
use burrow_shared::{JobMessage, JobStatus};
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::Stack;
use uuid::Uuid;

/// Normal jobs waiting before the worker starts.
const BACKLOG: usize = 300;
/// High-priority jobs enqueued after the backlog.
const HIGH: usize = 10;
/// The normal job (1-based, in start order) every high job must start before.
const OVERTAKE_BEFORE: usize = 50;
/// Jobs the one worker runs at once (its prefetch is twice this, per queue).
const CONCURRENCY: usize = 2;
/// Longest wait for the relay to publish, or for the worker to finish everything.
const DEADLINE: Duration = Duration::from_secs(90);

/// Stores `jobs` in one batch; their ids, in order.
async fn enqueue_batch(stack: &Stack, jobs: Vec<Value>) -> Vec<Uuid> {
    let (status, answer) = stack
        .post_json("/api/jobs/batch", &json!({ "jobs": jobs }))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    answer["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|job| {
            job["id"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .expect("id")
        })
        .collect()
}

/// Polls `queue` until it holds `expected` ready messages, or panics after [`DEADLINE`].
async fn wait_for_ready(stack: &Stack, queue: &str, expected: u32) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let ready = stack.env.ready_messages(queue).await.expect("queue");
        if ready == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{queue}: {ready} ready, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One finished job as the measurement sees it.
#[derive(Debug, sqlx::FromRow)]
struct Run {
    id: Uuid,
    priority: i16,
    status: String,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
}

/// A job's place in start order (0-based) and the job.
type Ranked<'a> = (usize, &'a Run);

impl Run {
    fn started(&self) -> DateTime<Utc> {
        self.started_at.expect("a finished job has started")
    }
}

/// Mean and max of `values`, in milliseconds.
fn mean_max(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let values: Vec<f64> = values.collect();
    let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
    (mean, values.iter().copied().fold(0.0, f64::max))
}

fn millis(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0
}

#[tokio::test]
async fn high_priority_jobs_overtake_a_normal_backlog() {
    let mut stack = Stack::new().await;
    let topology = stack.env.topology.clone();
    let backlog = (0..BACKLOG)
        .map(|i| json!({"kind": "sleep", "payload": {"ms": 10 + i % 11}}))
        .collect();
    assert_eq!(enqueue_batch(&stack, backlog).await.len(), BACKLOG);
    let urgent = (0..HIGH)
        .map(|_| json!({"kind": "sleep", "payload": {"ms": 15}, "priority": 9}))
        .collect();
    let high_ids = enqueue_batch(&stack, urgent).await;
    // Everything is in the broker before any worker runs.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let high_ready = loop {
        let ready = |queue| stack.env.ready_messages(queue);
        let normal_ready = ready(&topology.work_queue).await.expect("queue");
        let high_ready = ready(&topology.high_queue).await.expect("queue");
        if (normal_ready + high_ready) as usize == BACKLOG + HIGH {
            break high_ready;
        }
        assert!(tokio::time::Instant::now() < deadline, "the relay is slow");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let worker_started = Utc::now();
    stack.start_worker("w1", CONCURRENCY, Duration::ZERO);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let ended: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE status IN ('succeeded', 'failed', 'dead', 'cancelled')",
        )
        .fetch_one(&stack.env.db)
        .await
        .expect("count");
        if ended == (BACKLOG + HIGH) as i64 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{ended} of {} jobs ended",
            BACKLOG + HIGH
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stack.stop_workers().await;

    let runs: Vec<Run> = sqlx::query_as(
        "SELECT id, priority, status::text AS status, created_at, started_at FROM jobs \
         ORDER BY started_at",
    )
    .fetch_all(&stack.env.db)
    .await
    .expect("jobs");
    assert!(
        runs.iter()
            .all(|run| run.status == JobStatus::Succeeded.as_str()),
        "every job succeeded"
    );
    let (high, normal): (Vec<Ranked>, Vec<Ranked>) = runs
        .iter()
        .enumerate()
        .partition(|(_, run)| run.priority >= 5);
    assert_eq!((high.len(), normal.len()), (HIGH, BACKLOG));
    assert!(high.iter().all(|(_, run)| high_ids.contains(&run.id)));

    // The assertion is on order, not on time: every high job starts before the 50th normal
    // one, although all 300 normal jobs were in the broker first. (FIFO would start them
    // 301st to 310th.)
    let (_, bar) = normal[OVERTAKE_BEFORE - 1];
    let late: Vec<(usize, Uuid)> = high
        .iter()
        .filter(|(_, run)| run.started() >= bar.started())
        .map(|(rank, run)| (rank + 1, run.id))
        .collect();
    assert!(
        late.is_empty(),
        "high jobs started after normal job #{OVERTAKE_BEFORE} (start rank, id): {late:?}"
    );
    assert_eq!(
        high_ready, HIGH as u32,
        "the high jobs waited in the high queue"
    );

    // The measurement behind the README's figures.
    println!(
        "priority: {BACKLOG} normal sleep jobs (priority 0, 10–20 ms) queued first, then {HIGH} \
         high ones (priority 9, 15 ms); then one worker, concurrency {CONCURRENCY}, prefetch {}",
        CONCURRENCY * 2
    );
    println!(
        "{:<7} {:>5} {:>19} {:>27} {:>33}",
        "lane",
        "jobs",
        "start rank mean/max",
        "queue wait ms mean/max",
        "wait after worker start ms mean/max"
    );
    for (lane, runs) in [("high", &high), ("normal", &normal)] {
        let (rank_mean, rank_max) = mean_max(runs.iter().map(|(rank, _)| (rank + 1) as f64));
        let (wait_mean, wait_max) = mean_max(
            runs.iter()
                .map(|(_, run)| millis(run.created_at, run.started())),
        );
        let (after_mean, after_max) = mean_max(
            runs.iter()
                .map(|(_, run)| millis(worker_started.max(run.created_at), run.started())),
        );
        println!(
            "{lane:<7} {:>5} {:>19} {:>27} {:>33}",
            runs.len(),
            format!("{rank_mean:.1} / {rank_max:.0}"),
            format!("{wait_mean:.0} / {wait_max:.0}"),
            format!("{after_mean:.0} / {after_max:.0}"),
        );
    }
    let first = runs.first().map_or(worker_started, Run::started);
    let last = runs.last().map_or(worker_started, Run::started);
    println!(
        "the first job started {:.0} ms after the worker's start (connecting, declaring), all \
         {} within {:.0} ms",
        millis(worker_started, first),
        runs.len(),
        millis(worker_started, last)
    );
}

#[tokio::test]
async fn a_high_priority_retry_waits_in_its_own_delay_queue_and_comes_back_high() {
    let stack = Stack::new().await;
    let topology = &stack.env.topology;
    let delay = Duration::from_secs(2);
    let channel = stack.confirm_channel().await;
    topology
        .declare_delay_queues(&channel, &[delay])
        .await
        .expect("delay queues");
    stack.env.track_delays(&[delay]);

    let normal = JobMessage::new(Uuid::now_v7(), "noop", Uuid::new_v4());
    let high = JobMessage {
        priority: 7,
        ..JobMessage::new(Uuid::now_v7(), "noop", Uuid::new_v4())
    };
    for message in [&normal, &high] {
        publish_retry(&channel, topology, message, delay, delay)
            .await
            .expect("published");
    }
    // Each waits in its own lane's delay queue, then dead-letters back to its own work queue.
    wait_for_ready(&stack, &topology.delay_queue_for(Lane::High, delay), 1).await;
    wait_for_ready(&stack, &topology.delay_queue_for(Lane::Normal, delay), 1).await;
    wait_for_ready(&stack, &topology.high_queue, 1).await;
    wait_for_ready(&stack, &topology.work_queue, 1).await;
    for (queue, expected) in [
        (&topology.high_queue, &high),
        (&topology.work_queue, &normal),
    ] {
        let got = channel
            .basic_get(queue.as_str().into(), Default::default())
            .await
            .expect("basic.get")
            .expect("a message");
        let message = JobMessage::decode(&got.delivery.data).expect("a job message");
        assert_eq!(message.job_id, expected.job_id, "{queue}");
    }
}

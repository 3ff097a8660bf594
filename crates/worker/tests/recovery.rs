//! Recovery paths against the real services: the stuck-job sweeper and DLQ re-drive.

mod support;

use std::time::Duration;

use burrow_shared::fixtures::mock_file_name;
use burrow_shared::import::ImportOptions;
use burrow_shared::job_lock::JobLock;
use burrow_shared::jobs;
use burrow_shared::leader::Chore;
use burrow_shared::redrive::{redrive, RedriveReport};
use burrow_shared::retry::RetryPolicy;
use burrow_shared::JobStatus;
use burrow_worker::process::JobContext;
use burrow_worker::sweeper::{sweep_once, SweepReport};
use lapin::options::{BasicPublishOptions, QueuePurgeOptions};
use lapin::BasicProperties;
use support::{fixture, Stack};
use uuid::Uuid;

const LEASE: Duration = Duration::from_secs(60);

/// Makes a job look like its worker died `ago` after claiming it, and its message lost.
async fn strand(stack: &Stack, id: Uuid, ago: &str, attempts: i32) {
    sqlx::query(&format!(
        "UPDATE jobs SET status = 'processing', attempts = $2, worker = 'gone', \
                started_at = now() - interval '{ago}' WHERE id = $1"
    ))
    .bind(id)
    .bind(attempts)
    .execute(&stack.env.db)
    .await
    .expect("strand");
}

#[tokio::test]
async fn the_sweeper_requeues_only_jobs_whose_worker_is_gone_past_the_lease() {
    let mut stack = Stack::new().await;
    let mut ids = Vec::new();
    for n in 1..=4 {
        ids.push(
            stack
                .enqueue_upload(&mock_file_name(n), fixture(&mock_file_name(n)))
                .await,
        );
    }
    // Let the relay publish all four, then lose every message.
    stack.wait_for_ready(&stack.upload_queue(), 4).await;
    let channel = stack.env.channel().await.expect("channel");
    channel
        .queue_purge(
            stack.upload_queue().as_str().into(),
            QueuePurgeOptions::default(),
        )
        .await
        .expect("purge");
    let [stuck, recent, running, exhausted] = ids[..] else {
        unreachable!()
    };
    strand(&stack, stuck, "2 hours", 1).await;
    strand(&stack, recent, "10 seconds", 1).await; // inside the lease
    strand(&stack, running, "2 hours", 1).await;
    strand(&stack, exhausted, "2 hours", 5).await; // its last attempt
    let held = JobLock::try_acquire(&stack.env.db, running)
        .await
        .expect("db")
        .expect("free");

    let policy = RetryPolicy::default();
    let report = sweep_once(&stack.env.db, &policy, LEASE)
        .await
        .expect("sweep");
    assert_eq!(
        report,
        SweepReport {
            swept: true,
            requeued: 1,
            buried: 1
        }
    );

    stack.start_worker("w1", 2, Duration::ZERO);
    let done = stack.env.wait_until_ended(stuck).await;
    assert_eq!(done.status, JobStatus::Succeeded, "{:?}", done.message);
    assert_eq!(done.attempts, 2, "the lost attempt counts");
    let dead = jobs::find_job(&stack.env.db, exhausted)
        .await
        .expect("db")
        .expect("job");
    assert_eq!(dead.status, JobStatus::Dead);
    assert!(dead.message.unwrap_or_default().contains("worker was lost"));
    // Each move of the sweeper is in the job's history.
    let db = &stack.env.db;
    let history = |id| async move {
        jobs::list_events(db, id)
            .await
            .expect("events")
            .into_iter()
            .map(|e| e.event)
            .collect::<Vec<_>>()
    };
    assert!(history(stuck).await.contains(&"requeued".to_owned()));
    assert_eq!(
        history(exhausted).await.last().map(String::as_str),
        Some("dead")
    );
    for untouched in [recent, running] {
        let job = jobs::find_job(&stack.env.db, untouched)
            .await
            .expect("db")
            .expect("job");
        assert_eq!(job.status, JobStatus::Processing, "{untouched} left alone");
    }
    held.release().await;
}

#[tokio::test]
async fn only_one_replica_sweeps_at_a_time() {
    let stack = Stack::new().await;
    let mut other = stack.env.db.begin().await.expect("tx");
    let leader: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(Chore::Sweeper.key())
        .fetch_one(&mut *other)
        .await
        .expect("lock");
    assert!(leader);
    let policy = RetryPolicy::default();
    let report = sweep_once(&stack.env.db, &policy, LEASE)
        .await
        .expect("sweep");
    assert!(!report.swept, "another replica holds the sweeper lock");
    other.rollback().await.expect("release");
    let report = sweep_once(&stack.env.db, &policy, LEASE)
        .await
        .expect("sweep");
    assert!(report.swept);
}

#[tokio::test]
async fn redrive_moves_dead_jobs_back_and_leaves_garbage_in_the_dlq() {
    let mut stack = Stack::new().await;
    // A worker for which this file always fails transiently, with one attempt: dead at once.
    stack.start_worker_with(
        JobContext {
            retry: RetryPolicy {
                max_attempts: 1,
                ..RetryPolicy::default()
            },
            always_transient_file: Some("MOCK_DATA_1.xlsx".to_owned()),
            ..JobContext::new(
                stack.env.db.clone(),
                "flaky".to_owned(),
                burrow_shared::kinds::shipped(ImportOptions::default(), Default::default()),
            )
        },
        1,
    );
    let id = stack
        .enqueue_upload("MOCK_DATA_1.xlsx", fixture(&mock_file_name(1)))
        .await;
    let dead = stack.env.wait_until_ended(id).await;
    assert_eq!(dead.status, JobStatus::Dead);
    stack.stop_workers().await;

    let channel = stack.confirm_channel().await;
    channel
        .basic_publish(
            stack.env.topology.dead_letter_exchange.as_str().into(),
            "".into(),
            BasicPublishOptions::default(),
            b"garbage",
            BasicProperties::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert_eq!(
        stack
            .wait_for_ready(&stack.env.topology.dead_letter_queue, 2)
            .await,
        2
    );

    let report = redrive(&stack.env.db, &channel, &stack.env.topology, 100)
        .await
        .expect("redrive");
    assert_eq!(report, RedriveReport { moved: 1, left: 1 });
    let queued = jobs::find_job(&stack.env.db, id)
        .await
        .expect("db")
        .expect("job");
    assert_eq!((queued.status, queued.attempts), (JobStatus::Queued, 0));
    let events = jobs::list_events(&stack.env.db, id).await.expect("events");
    assert_eq!(events.last().map(|e| e.event.as_str()), Some("redriven"));

    stack.start_worker("healthy", 1, Duration::ZERO);
    let done = stack.env.wait_until_ended(id).await;
    assert_eq!(done.status, JobStatus::Succeeded, "{:?}", done.message);
    assert_eq!(done.rows_imported, Some(200));

    // A stale copy of the job's message in the DLQ does not move a job that is not dead.
    let stale =
        burrow_shared::JobMessage::new(id, burrow_shared::KIND_IMPORT_XLSX, done.correlation_id);
    channel
        .basic_publish(
            "".into(),
            stack.env.topology.dead_letter_queue.as_str().into(),
            BasicPublishOptions::default(),
            &stale.encode(),
            BasicProperties::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    stack
        .wait_for_ready(&stack.env.topology.dead_letter_queue, 2)
        .await;
    let report = redrive(&stack.env.db, &channel, &stack.env.topology, 100)
        .await
        .expect("redrive");
    assert_eq!(report, RedriveReport { moved: 0, left: 2 });
    let after = jobs::find_job(&stack.env.db, id)
        .await
        .expect("db")
        .expect("job");
    assert_eq!((after.status, after.attempts), (JobStatus::Succeeded, 1));
    assert_eq!(
        stack
            .wait_for_ready(&stack.env.topology.dead_letter_queue, 2)
            .await,
        2,
        "the garbage and the stale copy stay"
    );
}

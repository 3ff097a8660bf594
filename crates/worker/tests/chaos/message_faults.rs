//! Scenarios where the messages themselves are bad: poison that must end in the DLQ while
//! normal jobs flow (e), and the same job message delivered twice (f).

use std::time::Duration;

use burrow_shared::handler::JobHandler;
use burrow_shared::jobs;
use burrow_shared::kinds::ImportXlsx;
use burrow_shared::publish::{open_confirm_channel, publish_job};
use burrow_shared::retry::RetryPolicy;
use burrow_shared::topology::{Lane, WORK_ROUTING_KEY};
use burrow_shared::{JobMessage, JobStatus, KIND_IMPORT_XLSX};
use chrono::{DateTime, Utc};
use lapin::options::BasicPublishOptions;
use lapin::BasicProperties;
use sqlx::PgPool;
use tokio::time::Instant;
use uuid::Uuid;

use crate::procs::describe;
use crate::rig::{Rig, WorkerSpec, RECOVERY_DEADLINE};
use crate::tally::Row;

/// **e.** Messages that can never run end in the DLQ while normal jobs keep flowing: a body that
/// is not JSON, a job of a kind no worker knows, and a file that always fails transiently, which
/// is retried with exponential backoff (500 ms, then 1000 ms, less up to 20% jitter) and then
/// buried `dead` after its third attempt.
pub async fn poison_messages_end_in_the_dlq() -> Row {
    let mut rig = Rig::new("e-poison").await;
    let api = rig.api("api", &[]).await;
    let policy = RetryPolicy {
        base: Duration::from_millis(500),
        max_attempts: 3,
        ..RetryPolicy::default()
    };
    // Spare slots: a retry must never wait behind the normal imports, or the measured
    // backoff would include that wait.
    let spec = WorkerSpec {
        concurrency: Some(4),
        retry: Some(policy.clone()),
        extra: vec![
            ("WORKER_PREFETCH", "8".to_owned()),
            ("BURROW_FAILPOINT", "transient_import:flaky.xlsx".to_owned()),
        ],
        ..WorkerSpec::default()
    };
    rig.worker("e-w1", &spec);
    let connection = rig.env.amqp.get().await.expect("a broker connection");
    let channel = open_confirm_channel(&connection)
        .await
        .expect("a confirm channel");

    rig.fault();
    // 1. Not JSON at all, straight to the work exchange.
    channel
        .basic_publish(
            rig.env.topology.exchange.as_str().into(),
            WORK_ROUTING_KEY.into(),
            BasicPublishOptions::default(),
            b"{ this is not json",
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    // 2. A job of a kind no worker knows, stored behind the api's back, and its message.
    let (mystery, correlation_id) = (Uuid::now_v7(), Uuid::new_v4());
    sqlx::query(
        "INSERT INTO jobs (id, kind, file_name, correlation_id) \
         VALUES ($1, 'mystery', 'mystery.xlsx', $2)",
    )
    .bind(mystery)
    .bind(correlation_id)
    .execute(&rig.env.db)
    .await
    .expect("the mystery job");
    rig.register_file("mystery.xlsx", Vec::new());
    rig.doom(mystery);
    let message = JobMessage::new(mystery, "mystery", correlation_id);
    publish_job(&channel, &rig.env.topology, &message)
        .await
        .expect("the mystery message");
    // 3. A file that always fails transiently; its attempts are timed from the side.
    let flaky = rig
        .upload_as(&api, "flaky.xlsx", 4)
        .await
        .expect("flaky.xlsx accepted");
    rig.doom(flaky);
    let starts = tokio::spawn(attempt_starts(rig.env.db.clone(), flaky, RECOVERY_DEADLINE));
    rig.upload_many(&api, 5).await;

    let starts = starts.await.expect("the attempt timer");
    let job = rig.job(flaky).await.expect("the flaky job");
    rig.check(
        job.status == JobStatus::Dead && job.attempts == 3,
        format!(
            "flaky.xlsx: {} after {} attempt(s), expected dead after 3",
            job.status, job.attempts
        ),
    );
    let gaps: Vec<i64> = starts
        .windows(2)
        .map(|pair| (pair[1] - pair[0]).num_milliseconds())
        .collect();
    let expected: Vec<i64> = (1..=2)
        .map(|attempt| policy.delay(attempt).as_millis() as i64)
        .collect();
    rig.note(format!(
        "flaky.xlsx waited {gaps:?} ms between attempts (backoff {expected:?} ms)"
    ));
    rig.check(
        gaps.len() == expected.len(),
        format!("saw {} attempt start(s), expected 3", starts.len()),
    );
    for (gap, want) in gaps.iter().zip(&expected) {
        rig.check(
            (gap - want).abs() * 5 <= *want,
            format!("a retry waited {gap} ms, not within 20% of {want} ms"),
        );
    }
    rig.wait_all_ended(RECOVERY_DEADLINE).await;
    let dlq = rig.env.topology.dead_letter_queue.clone();
    let dead = rig.wait_ready(&dlq, 3, Duration::from_secs(10)).await;
    rig.check(
        dead == Some(3),
        format!("{dead:?} messages in the DLQ, expected 3"),
    );
    let _ = channel.close(200, "done".into()).await;
    rig.finish().await
}

/// **f.** The same job message published twice (an at-least-once relay may do that) imports
/// once: the second delivery finds the job locked or ended and is acked without work.
pub async fn duplicate_message_imports_once() -> Row {
    let mut rig = Rig::new("f-duplicate").await;
    let api = rig.api("api", &[]).await;
    let ids = rig.upload_many(&api, 3).await;
    let work = rig
        .env
        .topology
        .work_queue_in(<ImportXlsx as JobHandler>::QUEUE, Lane::Normal)
        .into_owned();
    let ready = rig.wait_ready(&work, 3, Duration::from_secs(10)).await;
    rig.check(
        ready == Some(3),
        format!("{ready:?} messages published, expected 3"),
    );
    let first = rig.job(ids[0]).await.expect("the first job");

    rig.fault();
    let connection = rig.env.amqp.get().await.expect("a broker connection");
    let channel = open_confirm_channel(&connection)
        .await
        .expect("a confirm channel");
    let duplicate =
        JobMessage::new(first.id, KIND_IMPORT_XLSX, first.correlation_id).in_queue(&first.queue);
    publish_job(&channel, &rig.env.topology, &duplicate)
        .await
        .expect("the duplicate");
    let ready = rig.wait_ready(&work, 4, Duration::from_secs(5)).await;
    rig.check(
        ready == Some(4),
        format!("{ready:?} messages queued, expected 4"),
    );

    let worker = rig.worker("f-w1", &WorkerSpec::default());
    rig.wait_all_ended(RECOVERY_DEADLINE).await;
    // Let the duplicate be taken and acked, then drain the worker: nothing may come back.
    let ready = rig.wait_ready(&work, 0, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    rig.proc(worker).sigterm();
    let exit = rig.proc(worker).exit_within(Duration::from_secs(15)).await;
    let left = rig.env.ready_messages(&work).await.ok();
    rig.check(
        ready == Some(0) && left == Some(0) && exit.is_some(),
        format!(
            "work queue: {ready:?} ready, {left:?} after the worker stopped ({})",
            describe(exit)
        ),
    );
    let job = rig.job(first.id).await.expect("the duplicated job");
    rig.check(
        job.status == JobStatus::Succeeded && job.rows_imported == Some(200) && job.attempts == 1,
        format!(
            "duplicated job: {}, {:?} rows, {} attempt(s); expected succeeded, 200, 1",
            job.status, job.rows_imported, job.attempts
        ),
    );
    let _ = channel.close(200, "done".into()).await;
    rig.finish().await
}

/// Every distinct `started_at` of job `id`, one per attempt, polling every 20 ms until the job
/// ends or `within` passes.
async fn attempt_starts(db: PgPool, id: Uuid, within: Duration) -> Vec<DateTime<Utc>> {
    let deadline = Instant::now() + within;
    let mut starts = Vec::new();
    while Instant::now() < deadline {
        if let Ok(Some(job)) = jobs::find_job(&db, id).await {
            if let Some(at) = job.started_at.filter(|at| starts.last() != Some(at)) {
                starts.push(at);
            }
            if job.status.is_terminal() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    starts
}

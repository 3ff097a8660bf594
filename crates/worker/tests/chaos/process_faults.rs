//! Scenarios where a process dies or is stopped: a worker killed mid-import (a), the api
//! crashing between its commit and the publish (b), a worker asked to stop while busy (g).

use std::time::Duration;

use burrow_shared::jobs::JobRow;
use burrow_shared::{outbox, JobStatus};
use chrono::Utc;
use tokio::time::Instant;
use uuid::Uuid;

use crate::procs::describe;
use crate::rig::{paced, Rig, WorkerSpec, RECOVERY_DEADLINE, SETTLE};
use crate::tally::Row;

/// **a.** A worker killed with SIGKILL while it writes rows loses nothing and applies nothing
/// twice: its uncommitted COPY dies with its Postgres session, RabbitMQ redelivers its unacked
/// messages to a replacement process, and the killed job is imported once, on attempt 2.
pub async fn sigkill_worker_mid_import() -> Row {
    let mut rig = Rig::new("a-sigkill-worker").await;
    let api = rig.api("api", &[]).await;
    rig.worker("a-w1", &paced());
    rig.upload_many(&api, 6).await;

    // A job some 300 ms into its ~1 s import: its rows are being written.
    let victim = rig
        .wait_for_job(SETTLE, |job| running_for(job, 300))
        .await
        .expect("a job mid-import");
    let name = victim.worker.clone().expect("the job names its worker");
    let victim_worker = rig
        .proc_named(&name)
        .expect("the worker named in the job is one of ours");
    rig.proc(victim_worker).kill9().await;
    rig.fault();
    let in_flight: Vec<Uuid> = rig
        .jobs()
        .await
        .expect("jobs")
        .into_iter()
        .filter(|job| job.status == JobStatus::Processing && job.worker.as_ref() == Some(&name))
        .map(|job| job.id)
        .collect();
    rig.worker("a-w2", &paced());

    rig.wait_all_ended(RECOVERY_DEADLINE).await;
    rig.note(format!(
        "killed {name} with {} job(s) mid-import",
        in_flight.len()
    ));
    rig.check(in_flight.contains(&victim.id), "the victim was in flight");
    for id in in_flight {
        let job = rig.job(id).await.expect("the killed job");
        rig.check(
            job.status == JobStatus::Succeeded && job.attempts == 2,
            format!(
                "killed job {id}: {} after {} attempt(s), expected succeeded after 2",
                job.status, job.attempts
            ),
        );
    }
    rig.finish().await
}

/// **b.** An api that dies between its database commit and the publish loses no job: the job
/// and its outbox row committed together, nothing was published, and another api process's
/// outbox relay publishes the pending row, so the job still runs, once.
pub async fn api_crash_between_commit_and_publish() -> Row {
    let mut rig = Rig::new("b-api-crash").await;
    // No worker yet: every process runs an outbox relay, so the committed job must wait, unseen
    // by the broker, until some other process starts; the worker started below is that process.
    let failpoint = [("BURROW_FAILPOINT", "api_crash_after_commit".to_owned())];
    let crashing = rig.api("api-crashing", &failpoint).await;

    let name = "b-crash-MOCK_DATA_2.xlsx";
    let answer = rig.upload_as(&crashing, name, 2).await;
    rig.fault();
    rig.check(
        answer.is_err(),
        format!("the crashing api answered the upload: {answer:?} (failpoint not honoured?)"),
    );
    let exit = rig
        .proc(crashing.proc)
        .exit_within(Duration::from_secs(5))
        .await;
    rig.check(
        exit.is_some_and(|status| !status.success()),
        format!("the api did not crash: {}", describe(exit)),
    );
    let Some(stored) = rig
        .wait_for_job(Duration::from_secs(5), |job| {
            job.file_name.as_deref() == Some(name)
        })
        .await
    else {
        rig.check(false, "the crashed upload left no job behind");
        return rig.finish().await;
    };
    rig.accept(stored.id);
    let pending = outbox::pending_count(&rig.env.db).await.ok();
    rig.check(
        stored.status == JobStatus::Queued && pending == Some(1),
        format!(
            "after the crash: job {}, {pending:?} pending outbox row(s); expected queued, 1",
            stored.status
        ),
    );
    // The worker's relay publishes the orphaned outbox row; a fresh api takes more uploads.
    rig.worker("b-w1", &WorkerSpec::default());
    let api = rig.api("api-2", &[]).await;
    rig.upload_many(&api, 2).await;
    rig.wait_all_ended(RECOVERY_DEADLINE).await;
    let job = rig.job(stored.id).await.expect("the crashed upload's job");
    rig.check(
        job.status == JobStatus::Succeeded && job.attempts == 1,
        format!(
            "the crashed upload's job: {} after {} attempt(s)",
            job.status, job.attempts
        ),
    );
    let pending = outbox::pending_count(&rig.env.db).await.ok();
    rig.check(
        pending == Some(0),
        format!("{pending:?} outbox rows still pending"),
    );
    rig.finish().await
}

/// **g.** SIGTERM to a busy worker is a graceful stop: it stops taking deliveries, finishes the
/// jobs it has in flight within its drain timeout, exits 0, and the rest of its prefetched
/// messages go back to the queue for the next worker.
pub async fn sigterm_drains_in_flight_jobs() -> Row {
    const DRAIN: Duration = Duration::from_secs(10);
    const SLACK: Duration = Duration::from_secs(3);
    let mut rig = Rig::new("g-sigterm").await;
    let api = rig.api("api", &[]).await;
    let spec = WorkerSpec {
        concurrency: Some(2),
        extra: vec![("WORKER_DRAIN_TIMEOUT_SECS", DRAIN.as_secs().to_string())],
        ..paced()
    };
    let first = rig.worker("g-w1", &spec);
    rig.upload_many(&api, 6).await;
    let busy = rig.wait_processing(2, SETTLE).await;
    rig.check(busy, "the worker was not running two jobs");
    let in_flight: Vec<Uuid> = rig
        .jobs()
        .await
        .expect("jobs")
        .into_iter()
        .filter(|job| job.status == JobStatus::Processing)
        .map(|job| job.id)
        .collect();

    rig.fault();
    let asked = Instant::now();
    rig.proc(first).sigterm();
    let exit = rig.proc(first).exit_within(DRAIN + SLACK).await;
    let took = asked.elapsed();
    rig.note(format!(
        "g-w1 ended ({}) {:.1} s after SIGTERM with {} job(s) in flight",
        describe(exit),
        took.as_secs_f64(),
        in_flight.len()
    ));
    rig.check(
        exit.is_some_and(|status| status.code() == Some(0)),
        format!(
            "g-w1 did not exit 0 within {:?}: {}",
            DRAIN + SLACK,
            describe(exit)
        ),
    );
    for id in &in_flight {
        let job = rig.job(*id).await.expect("an in-flight job");
        rig.check(
            job.status == JobStatus::Succeeded && job.worker.as_deref() == Some("g-w1"),
            format!(
                "in-flight job {id} was not finished by the draining worker: {} by {:?}",
                job.status, job.worker
            ),
        );
    }
    rig.worker("g-w2", &spec);
    rig.wait_all_ended(RECOVERY_DEADLINE).await;
    rig.finish().await
}

/// Whether `job` is `processing` and started over `min_ms` milliseconds ago.
fn running_for(job: &JobRow, min_ms: i64) -> bool {
    job.status == JobStatus::Processing
        && job
            .started_at
            .is_some_and(|at| (Utc::now() - at).num_milliseconds() >= min_ms)
}

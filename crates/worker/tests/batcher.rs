//! The batcher's lock session against the real Postgres: one delivery of a job runs at a time
//! (whether the other copy asks in the same turn, later, or from another session), a released
//! job is free again, and an ended or unknown job is reported, not claimed.

use std::time::Duration;

use burrow_shared::handler::JobOutput;
use burrow_shared::job_batch::Claim;
use burrow_shared::job_lock::JobLock;
use burrow_shared::testing::TestEnv;
use burrow_shared::JobStatus;
use burrow_shared::{jobs, NewJob};
use burrow_worker::batcher::Batcher;
use uuid::Uuid;

async fn queued_job(env: &TestEnv) -> Uuid {
    env.insert_job(NewJob::new("noop"))
        .await
        .expect("insert")
        .id
}

/// Whether another session can take the job's lock now (and gives it back at once).
async fn lock_is_free(env: &TestEnv, id: Uuid) -> bool {
    match JobLock::try_acquire(&env.db, id).await.expect("db") {
        Some(lock) => {
            lock.release().await;
            true
        }
        None => false,
    }
}

#[tokio::test]
async fn a_job_is_claimed_once_and_free_again_once_released() {
    let env = TestEnv::new().await.expect("test services");
    let id = queued_job(&env).await;
    let batcher = Batcher::start(env.db.clone(), "w1".to_owned());

    // Two copies asking at once: one runs, the other is told the job is busy.
    let (first, second) = tokio::join!(batcher.claim(id, None), batcher.claim(id, None));
    let claims = [first.expect("claim"), second.expect("claim")];
    let claimed = claims
        .iter()
        .filter(|c| matches!(c, Claim::Claimed(_)))
        .count();
    let busy = claims.iter().filter(|c| **c == Claim::Busy).count();
    assert_eq!((claimed, busy), (1, 1), "{claims:?}");
    let Some(Claim::Claimed(job)) = claims.iter().find(|c| matches!(c, Claim::Claimed(_))) else {
        unreachable!()
    };
    assert_eq!(
        (job.job.status, job.job.attempts),
        (JobStatus::Processing, 1)
    );

    // A later copy, and another session, find it locked while it runs.
    assert_eq!(batcher.claim(id, None).await.expect("claim"), Claim::Busy);
    assert!(!lock_is_free(&env, id).await);

    let output = JobOutput {
        message: "Done".to_owned(),
        ..JobOutput::default()
    };
    assert!(batcher
        .succeeded(id, output.clone())
        .await
        .expect("succeeded"));
    batcher.release(id);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !lock_is_free(&env, id).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "lock never released"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let job = jobs::find_job(&env.db, id).await.expect("db").expect("job");
    assert_eq!(
        (job.status, job.message.as_deref()),
        (JobStatus::Succeeded, Some("Done"))
    );

    // Afterwards a duplicate finds the job ended (and leaves no lock behind); a second success
    // changes nothing; an unknown id is missing.
    assert_eq!(
        batcher.claim(id, None).await.expect("claim"),
        Claim::Ended(JobStatus::Succeeded)
    );
    assert!(!batcher.succeeded(id, output).await.expect("succeeded"));
    assert!(lock_is_free(&env, id).await);
    assert_eq!(
        batcher.claim(Uuid::now_v7(), None).await.expect("claim"),
        Claim::Missing
    );
}

#[tokio::test]
async fn a_job_locked_by_another_session_is_busy_until_that_session_lets_go() {
    let env = TestEnv::new().await.expect("test services");
    let id = queued_job(&env).await;
    let held = JobLock::try_acquire(&env.db, id)
        .await
        .expect("db")
        .expect("free");
    let batcher = Batcher::start(env.db.clone(), "w1".to_owned());
    assert_eq!(batcher.claim(id, None).await.expect("claim"), Claim::Busy);
    let job = jobs::find_job(&env.db, id).await.expect("db").expect("job");
    assert_eq!(
        (job.status, job.attempts),
        (JobStatus::Queued, 0),
        "a busy claim must not count an attempt"
    );
    held.release().await;
    assert!(matches!(
        batcher.claim(id, None).await.expect("claim"),
        Claim::Claimed(_)
    ));
}

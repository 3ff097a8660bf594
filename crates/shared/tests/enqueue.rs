//! Enqueueing against the real Postgres: inside the caller's transaction, all or none,
//! idempotent by key, and the relay's `NOTIFY` delivered on commit.

use std::time::Duration;

use burrow_shared::enqueue::{
    enqueue, enqueue_many, requeue, EnqueueError, NewJob, OUTBOX_CHANNEL,
};
use burrow_shared::state::{self, Transition};
use burrow_shared::testing::TestEnv;
use burrow_shared::{jobs, JobMessage, JobStatus};
use sqlx::postgres::PgListener;

async fn count(env: &TestEnv, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&env.db)
        .await
        .expect("count")
}

#[tokio::test]
async fn a_commit_stores_the_job_its_event_file_and_message_and_notifies_the_relay() {
    let env = TestEnv::new().await.expect("test services");
    let mut listener = PgListener::connect_with(&env.db).await.expect("listener");
    listener.listen(OUTBOX_CHANNEL).await.expect("listen");

    let mut tx = env.db.begin().await.expect("begin");
    let job = NewJob::new("noop")
        .priority(7)
        .file("a.xlsx", b"bytes".to_vec());
    let stored = enqueue(&mut tx, job).await.expect("enqueue");
    tx.commit().await.expect("commit");

    assert!(stored.created);
    assert_eq!(stored.job.status, JobStatus::Queued);
    assert_eq!(stored.job.file_name.as_deref(), Some("a.xlsx"));
    let notification = tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .expect("notified on commit")
        .expect("notification");
    assert_eq!(notification.channel(), OUTBOX_CHANNEL);
    for table in ["jobs", "job_events", "job_files", "outbox"] {
        assert_eq!(count(&env, table).await, 1, "{table}");
    }
    let file = jobs::load_file(&env.db, stored.job.id).await.expect("db");
    assert_eq!(file.as_deref(), Some(&b"bytes"[..]));
    let message: Vec<u8> = sqlx::query_scalar("SELECT message FROM outbox")
        .fetch_one(&env.db)
        .await
        .expect("message");
    let message = burrow_shared::JobMessage::decode(&message).expect("a job message");
    assert_eq!((message.job_id, message.priority), (stored.job.id, 7));
}

#[tokio::test]
async fn a_batch_is_all_or_none_and_a_repeated_key_returns_the_first_job() {
    let env = TestEnv::new().await.expect("test services");
    let first = NewJob::new("noop").idempotency_key("k1");
    let mut tx = env.db.begin().await.expect("begin");
    let stored = enqueue_many(&mut tx, vec![first.clone(), NewJob::new("noop")])
        .await
        .expect("enqueue");
    tx.commit().await.expect("commit");
    assert!(stored.iter().all(|e| e.created));

    let again = NewJob::new("noop").idempotency_key("k1");
    let mut conn = env.db.acquire().await.expect("conn");
    let replay = enqueue(&mut conn, again)
        .await
        .expect("outside a transaction");
    assert!(!replay.created);
    assert_eq!(replay.job.id, first.id, "the first job comes back");
    assert_eq!(count(&env, "outbox").await, 2, "no second message");

    // One bad job refuses the whole call before anything is written.
    let bad = NewJob::new("noop").priority(10);
    let refused = enqueue_many(&mut conn, vec![NewJob::new("noop"), bad]).await;
    assert!(
        matches!(refused, Err(EnqueueError::Invalid(_))),
        "{refused:?}"
    );
    // A database error inside the statement rolls back every job of the call.
    let duplicate_id = NewJob {
        id: first.id,
        ..NewJob::new("noop")
    };
    assert!(
        enqueue_many(&mut conn, vec![NewJob::new("noop"), duplicate_id])
            .await
            .is_err()
    );
    assert_eq!(count(&env, "jobs").await, 2, "nothing of the refused calls");
}

#[tokio::test]
async fn requeue_moves_only_from_the_statuses_its_transition_leaves() {
    let env = TestEnv::new().await.expect("test services");
    let job = env.insert_job(NewJob::new("noop")).await.expect("insert");
    let restart = Transition::Restart { why: "asked" };
    let mut conn = env.db.acquire().await.expect("conn");
    assert!(
        !requeue(&mut conn, job.id, restart, 1).await.expect("db"),
        "queued: no"
    );
    assert_eq!(count(&env, "outbox").await, 0);

    assert!(state::apply(&env.db, job.id, Transition::CancelWaiting)
        .await
        .expect("db"));
    assert!(
        requeue(&mut conn, job.id, restart, 1).await.expect("db"),
        "cancelled: yes"
    );
    let row = jobs::find_job(&env.db, job.id)
        .await
        .expect("db")
        .expect("job");
    assert_eq!((row.status, row.attempts), (JobStatus::Queued, 0));
    assert_eq!(count(&env, "outbox").await, 1, "its message");
    let refused = requeue(&mut conn, job.id, Transition::StopRun, 1).await;
    assert!(
        matches!(refused, Err(EnqueueError::Invalid(_))),
        "not a way back to the queue"
    );
}

#[tokio::test]
async fn a_job_keeps_its_queue_from_enqueue_to_every_requeue_and_bad_names_are_refused() {
    let env = TestEnv::new().await.expect("test services");
    let job = env
        .insert_job(NewJob::new("noop").queue("imports"))
        .await
        .expect("insert");
    assert_eq!(job.queue, "imports");
    let default = env.insert_job(NewJob::new("noop")).await.expect("insert");
    assert_eq!(default.queue, "default");

    // Rebuilt from the row (an api retry, a sweeper requeue): back to its queue.
    assert!(state::apply(&env.db, job.id, Transition::CancelWaiting)
        .await
        .expect("db"));
    let mut conn = env.db.acquire().await.expect("conn");
    let restart = Transition::Restart { why: "asked" };
    assert!(requeue(&mut conn, job.id, restart, 1).await.expect("db"));
    let body: Vec<u8> = sqlx::query_scalar("SELECT message FROM outbox WHERE job_id = $1")
        .bind(job.id)
        .fetch_one(&env.db)
        .await
        .expect("its message");
    let message = JobMessage::decode(&body).expect("a job message");
    assert_eq!(message.queue_name(), "imports");

    for bad in ["", "Imports", "a.b", &"q".repeat(33)] {
        let refused = enqueue(&mut conn, NewJob::new("noop").queue(bad)).await;
        assert!(
            matches!(&refused, Err(EnqueueError::Invalid(reason)) if reason.contains("queue name")),
            "{bad:?}: {refused:?}"
        );
    }
    assert_eq!(count(&env, "jobs").await, 2, "nothing of the refused ones");
}

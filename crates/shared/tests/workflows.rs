//! Workflows against the real Postgres: children released exactly once by the commit that ends
//! their last parent, cancelled (in cascade) when a parent fails, batches and their callbacks.
//!
//! Parents are ended as a worker ends them (`state::apply`, `state::batch::succeed_many`), after
//! a claim simulated by setting `processing`: the release is the database's, whoever ends them.

use std::sync::Arc;

use burrow_shared::engine::batches::{enqueue_batch, find_batch, BatchStatus, NewBatch};
use burrow_shared::engine::dependencies;
use burrow_shared::engine::handler::JobOutput;
use burrow_shared::enqueue::{enqueue, enqueue_many, EnqueueError, NewJob};
use burrow_shared::state::{self, Transition};
use burrow_shared::testing::TestEnv;
use burrow_shared::{jobs, JobMessage, JobStatus};
use serde_json::json;
use tokio::sync::Barrier;
use uuid::Uuid;

async fn add(env: &TestEnv, job: NewJob) -> Uuid {
    let mut conn = env.db.acquire().await.expect("connection");
    enqueue(&mut conn, job).await.expect("enqueue").job.id
}

async fn status(env: &TestEnv, id: Uuid) -> JobStatus {
    jobs::find_job(&env.db, id)
        .await
        .expect("db")
        .expect("job")
        .status
}

async fn start(env: &TestEnv, id: Uuid) {
    sqlx::query("UPDATE jobs SET status = 'processing' WHERE id = $1")
        .bind(id)
        .execute(&env.db)
        .await
        .expect("claim");
}

async fn succeed(env: &TestEnv, id: Uuid) {
    start(env, id).await;
    let done = Transition::Succeed {
        message: "ok",
        rows: None,
        output: Some(&json!({ "from": id })),
    };
    assert!(state::apply(&env.db, id, done).await.expect("db"));
}

async fn fail(env: &TestEnv, id: Uuid) {
    start(env, id).await;
    let failed = Transition::Fail { message: "bad" };
    assert!(state::apply(&env.db, id, failed).await.expect("db"));
}

/// Outbox messages per job: how often each was handed to the broker.
async fn outboxed(env: &TestEnv, id: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE job_id = $1")
        .bind(id)
        .fetch_one(&env.db)
        .await
        .expect("db")
}

async fn events(env: &TestEnv, id: Uuid) -> Vec<(String, Option<String>)> {
    jobs::list_events(&env.db, id)
        .await
        .expect("db")
        .into_iter()
        .map(|e| (e.event, e.detail))
        .collect()
}

#[tokio::test]
async fn a_child_waits_for_every_parent_and_is_released_once_with_its_message() {
    let env = TestEnv::new().await.expect("test services");
    let (a, b) = (
        add(&env, NewJob::new("noop")).await,
        add(&env, NewJob::new("noop")).await,
    );
    let child = add(&env, NewJob::new("noop").priority(7).depends_on([a, b])).await;
    assert_eq!(status(&env, child).await, JobStatus::Awaiting);
    assert_eq!(outboxed(&env, child).await, 0, "held back, not published");

    succeed(&env, a).await;
    assert_eq!(
        status(&env, child).await,
        JobStatus::Awaiting,
        "b has not ended"
    );

    // The other path that ends jobs: a worker's group commit.
    start(&env, b).await;
    let output = JobOutput {
        message: "ok".to_owned(),
        output: Some(json!({"n": 2})),
        ..JobOutput::default()
    };
    let changed = state::batch::succeed_many(&env.db, &[(b, output)])
        .await
        .expect("db");
    assert_eq!(changed, [b]);
    assert_eq!(status(&env, child).await, JobStatus::Queued);
    assert_eq!(outboxed(&env, child).await, 1);
    assert_eq!(env.count("held_messages").await, 0);
    let message: Vec<u8> = sqlx::query_scalar("SELECT message FROM outbox WHERE job_id = $1")
        .bind(child)
        .fetch_one(&env.db)
        .await
        .expect("message");
    let message = JobMessage::decode(&message).expect("a job message");
    assert_eq!((message.job_id, message.priority), (child, 7));
    assert_eq!(
        events(&env, child).await,
        [
            ("awaiting".to_owned(), None),
            (
                "queued".to_owned(),
                Some("every parent has ended".to_owned())
            )
        ]
    );

    let parents = dependencies::parents(&env.db, child).await.expect("db");
    let outputs: Vec<_> = parents.iter().map(|p| p.output.clone()).collect();
    let mut expected = vec![Some(json!({ "from": a })), Some(json!({"n": 2}))];
    if a > b {
        expected.reverse();
    }
    assert_eq!(outputs, expected, "ordered by id");
    let children = dependencies::children(&env.db, a, 10).await.expect("db");
    assert_eq!(children.iter().map(|c| c.id).collect::<Vec<_>>(), [child]);
}

#[tokio::test]
async fn a_failed_parent_cancels_its_descendants_but_not_a_run_on_failure_child() {
    let env = TestEnv::new().await.expect("test services");
    let parent = add(&env, NewJob::new("noop")).await;
    let child = add(&env, NewJob::new("noop").depends_on([parent])).await;
    let grandchild = add(&env, NewJob::new("noop").depends_on([child])).await;
    let cleanup = add(
        &env,
        NewJob::new("noop").depends_on([parent]).run_on_failure(),
    )
    .await;

    fail(&env, parent).await;

    assert_eq!(status(&env, child).await, JobStatus::Cancelled);
    assert_eq!(status(&env, grandchild).await, JobStatus::Cancelled);
    assert_eq!(status(&env, cleanup).await, JobStatus::Queued);
    let reason = format!("parent {parent} ended failed");
    assert_eq!(
        events(&env, child).await.last().cloned(),
        Some(("cancelled".to_owned(), Some(reason)))
    );
    let job = jobs::find_job(&env.db, grandchild)
        .await
        .expect("db")
        .expect("job");
    assert_eq!(
        job.message.as_deref(),
        Some(format!("Cancelled: parent {child} ended cancelled").as_str())
    );
    assert_eq!(
        env.count("held_messages").await,
        0,
        "cancelled children keep no message"
    );
    assert_eq!(
        outboxed(&env, child).await + outboxed(&env, grandchild).await,
        0
    );
}

#[tokio::test]
async fn a_parent_that_ended_before_its_child_was_created_resolves_it_at_once() {
    let env = TestEnv::new().await.expect("test services");
    let (good, bad) = (
        add(&env, NewJob::new("noop")).await,
        add(&env, NewJob::new("noop")).await,
    );
    succeed(&env, good).await;
    fail(&env, bad).await;

    let mut conn = env.db.acquire().await.expect("connection");
    let runs = enqueue(&mut conn, NewJob::new("noop").depends_on([good]))
        .await
        .expect("enqueue");
    assert_eq!(
        runs.job.status,
        JobStatus::Queued,
        "returned as it is after the call"
    );
    assert_eq!(outboxed(&env, runs.job.id).await, 1);
    let never = enqueue(&mut conn, NewJob::new("noop").depends_on([good, bad]))
        .await
        .expect("enqueue");
    assert_eq!(never.job.status, JobStatus::Cancelled);
}

#[tokio::test]
async fn unknown_later_or_own_parents_are_refused_and_nothing_is_written() {
    let env = TestEnv::new().await.expect("test services");
    let mut conn = env.db.acquire().await.expect("connection");
    let unknown = enqueue(&mut conn, NewJob::new("noop").depends_on([Uuid::now_v7()])).await;
    assert!(
        matches!(unknown, Err(EnqueueError::Invalid(ref m)) if m.contains("does not exist")),
        "{unknown:?}"
    );

    let first = NewJob::new("noop");
    let later = NewJob::new("noop");
    let before_its_parent = NewJob::new("noop").depends_on([later.id]);
    let refused = enqueue_many(&mut conn, vec![first, before_its_parent, later]).await;
    assert!(
        matches!(refused, Err(EnqueueError::Invalid(ref m)) if m.contains("comes after it")),
        "{refused:?}"
    );

    let own = NewJob::new("noop");
    let own = NewJob {
        depends_on: vec![own.id],
        ..own
    };
    assert!(matches!(
        enqueue(&mut conn, own).await,
        Err(EnqueueError::Invalid(_))
    ));
    for table in ["jobs", "job_dependencies", "held_messages", "outbox"] {
        assert_eq!(env.count(table).await, 0, "{table}");
    }

    // A parent earlier in the same call is fine.
    let parent = NewJob::new("noop");
    let child = NewJob::new("noop").depends_on([parent.id]);
    let stored = enqueue_many(&mut conn, vec![parent, child])
        .await
        .expect("enqueue");
    assert_eq!(stored[1].job.status, JobStatus::Awaiting);
}

/// The checks `enqueue_many` makes per parent in one pass (a set per job, each id's place in
/// the call), and the parents it does not lock because it inserted them itself.
#[tokio::test]
async fn duplicate_parents_are_refused_and_parents_of_the_same_call_are_marked_when_stored() {
    let env = TestEnv::new().await.expect("test services");
    let mut conn = env.db.acquire().await.expect("connection");
    let stored = add(&env, NewJob::new("noop")).await;
    let parent = NewJob::new("noop");
    let twice = NewJob::new("noop").depends_on([parent.id, stored, parent.id]);
    let refused = enqueue_many(&mut conn, vec![parent, twice]).await;
    assert!(
        matches!(refused, Err(EnqueueError::Invalid(ref m)) if m.contains("twice")),
        "{refused:?}"
    );
    let twice_stored = enqueue(&mut conn, NewJob::new("noop").depends_on([stored, stored])).await;
    assert!(
        matches!(twice_stored, Err(EnqueueError::Invalid(ref m)) if m.contains("twice")),
        "{twice_stored:?}"
    );
    assert_eq!(env.count("jobs").await, 1, "only the stored parent");
    assert_eq!(env.count("job_dependencies").await, 0);

    // A parent of the same call that is not stored (its idempotency key exists) is unknown.
    add(&env, NewJob::new("noop").idempotency_key("k")).await;
    let replayed = NewJob::new("noop").idempotency_key("k");
    let child = NewJob::new("noop").depends_on([replayed.id]);
    let refused = enqueue_many(&mut conn, vec![replayed, child]).await;
    assert!(
        matches!(refused, Err(EnqueueError::Invalid(ref m)) if m.contains("does not exist")),
        "{refused:?}"
    );
    assert_eq!(env.count("jobs").await, 2);

    // Parents stored by the call itself carry `has_dependents` from their insert (the release
    // trigger fires only for those), and so does a stored parent; a childless job does not.
    let fresh = NewJob::new("noop");
    let childless = NewJob::new("noop");
    let child = NewJob::new("noop").depends_on([fresh.id, stored]);
    let ids = [fresh.id, childless.id, child.id];
    enqueue_many(&mut conn, vec![fresh, childless, child])
        .await
        .expect("enqueue");
    let marked: Vec<bool> = sqlx::query_scalar(
        "SELECT has_dependents FROM jobs WHERE id = ANY($1) OR id = $2 ORDER BY id",
    )
    .bind(&ids[..])
    .bind(stored)
    .fetch_all(&env.db)
    .await
    .expect("flags");
    // Ids are UUIDv7, so `ORDER BY id` is creation order: stored, fresh, childless, child.
    assert_eq!(marked, [true, true, false, false]);
    succeed(&env, stored).await;
    assert_eq!(status(&env, ids[2]).await, JobStatus::Awaiting);
    succeed(&env, ids[0]).await;
    assert_eq!(status(&env, ids[2]).await, JobStatus::Queued);
}

#[tokio::test]
async fn a_restarted_parent_that_ends_again_is_not_counted_twice() {
    let env = TestEnv::new().await.expect("test services");
    let (a, b) = (
        add(&env, NewJob::new("noop")).await,
        add(&env, NewJob::new("noop")).await,
    );
    let child = add(
        &env,
        NewJob::new("noop").depends_on([a, b]).run_on_failure(),
    )
    .await;
    fail(&env, a).await;
    let restart = Transition::Restart { why: "retry" };
    assert!(state::apply(&env.db, a, restart).await.expect("db"));
    succeed(&env, a).await;
    assert_eq!(
        status(&env, child).await,
        JobStatus::Awaiting,
        "b has not ended"
    );
    succeed(&env, b).await;
    assert_eq!(status(&env, child).await, JobStatus::Queued);
    assert_eq!(outboxed(&env, child).await, 1);
}

#[tokio::test]
async fn cancelling_an_awaiting_job_drops_its_message_and_cancels_its_children() {
    let env = TestEnv::new().await.expect("test services");
    let parent = add(&env, NewJob::new("noop")).await;
    let child = add(&env, NewJob::new("noop").depends_on([parent])).await;
    let grandchild = add(&env, NewJob::new("noop").depends_on([child])).await;
    assert!(state::apply(&env.db, child, Transition::CancelWaiting)
        .await
        .expect("db"));
    assert_eq!(status(&env, grandchild).await, JobStatus::Cancelled);
    assert_eq!(env.count("held_messages").await, 0);
    succeed(&env, parent).await;
    assert_eq!(
        status(&env, child).await,
        JobStatus::Cancelled,
        "stays cancelled"
    );
}

#[tokio::test]
async fn a_failure_cancels_a_long_chain_to_its_end() {
    let env = TestEnv::new().await.expect("test services");
    let head = NewJob::new("noop");
    let mut chain = vec![head];
    for _ in 0..1_000 {
        let parent = chain.last().map(|j| j.id).expect("a parent");
        chain.push(NewJob::new("noop").depends_on([parent]));
    }
    let ids: Vec<Uuid> = chain.iter().map(|j| j.id).collect();
    let mut conn = env.db.acquire().await.expect("connection");
    enqueue_many(&mut conn, chain).await.expect("enqueue");
    fail(&env, ids[0]).await;
    let cancelled: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status = 'cancelled'")
        .fetch_one(&env.db)
        .await
        .expect("db");
    assert_eq!(cancelled, 1_000);
}

#[tokio::test]
async fn members_ending_at_once_release_the_callback_exactly_once_and_a_rollback_releases_nothing()
{
    let env = TestEnv::new().await.expect("test services");
    const MEMBERS: usize = 200;
    let members: Vec<NewJob> = (0..MEMBERS).map(|_| NewJob::new("noop")).collect();
    let ids: Vec<Uuid> = members.iter().map(|m| m.id).collect();
    let batch = NewBatch::of(members)
        .on_complete(NewJob::new("noop"))
        .on_success(NewJob::new("noop"));
    let mut conn = env.db.acquire().await.expect("connection");
    let stored = enqueue_batch(&mut conn, batch).await.expect("batch");
    drop(conn);
    let on_complete = stored.on_complete.expect("on_complete").job.id;
    let on_success = stored.on_success.expect("on_success").job.id;
    for id in &ids {
        start(&env, *id).await;
    }

    // The last member's end rolled back: nothing released.
    let (last, rest) = ids.split_last().expect("members");
    let mut ends = Vec::new();
    let gate = Arc::new(Barrier::new(8));
    for share in rest.chunks(rest.len().div_ceil(8)) {
        let (db, gate, share) = (env.db.clone(), gate.clone(), share.to_vec());
        ends.push(tokio::spawn(async move {
            gate.wait().await;
            for id in share {
                let done = Transition::Succeed {
                    message: "ok",
                    rows: None,
                    output: None,
                };
                assert!(state::apply(&db, id, done).await.expect("db"));
            }
        }));
    }
    for end in ends {
        end.await.expect("task");
    }
    let mut tx = env.db.begin().await.expect("begin");
    let done = Transition::Succeed {
        message: "ok",
        rows: None,
        output: None,
    };
    assert!(state::apply(&mut *tx, *last, done).await.expect("db"));
    tx.rollback().await.expect("rollback");
    assert_eq!(status(&env, on_complete).await, JobStatus::Awaiting);

    let summary = find_batch(&env.db, stored.id)
        .await
        .expect("db")
        .expect("batch");
    assert_eq!(summary.status, BatchStatus::Running);
    assert_eq!(summary.counts.get("succeeded"), Some(&(MEMBERS as i64 - 1)));

    succeed(&env, *last).await;
    for callback in [on_complete, on_success] {
        assert_eq!(status(&env, callback).await, JobStatus::Queued);
        assert_eq!(outboxed(&env, callback).await, 1, "exactly once");
    }
    let summary = find_batch(&env.db, stored.id)
        .await
        .expect("db")
        .expect("batch");
    assert_eq!(summary.status, BatchStatus::Succeeded);
    assert_eq!(summary.members, MEMBERS as i64);
    assert!(summary.completed_at.is_some());
}

#[tokio::test]
async fn a_failed_member_cancels_on_success_and_on_complete_still_runs() {
    let env = TestEnv::new().await.expect("test services");
    let members: Vec<NewJob> = (0..3).map(|_| NewJob::new("noop")).collect();
    let ids: Vec<Uuid> = members.iter().map(|m| m.id).collect();
    let batch = NewBatch::of(members)
        .on_complete(NewJob::new("noop"))
        .on_success(NewJob::new("noop"));
    let mut conn = env.db.acquire().await.expect("connection");
    let stored = enqueue_batch(&mut conn, batch).await.expect("batch");
    let on_success = stored.on_success.expect("on_success").job.id;
    let on_complete = stored.on_complete.expect("on_complete").job.id;

    fail(&env, ids[0]).await;
    assert_eq!(
        status(&env, on_success).await,
        JobStatus::Cancelled,
        "at once"
    );
    assert_eq!(status(&env, on_complete).await, JobStatus::Awaiting);
    succeed(&env, ids[1]).await;
    succeed(&env, ids[2]).await;
    assert_eq!(status(&env, on_complete).await, JobStatus::Queued);
    let summary = find_batch(&env.db, stored.id)
        .await
        .expect("db")
        .expect("batch");
    assert_eq!(summary.status, BatchStatus::Failed);
    assert_eq!(summary.counts.get("failed"), Some(&1));
}

#[tokio::test]
async fn batch_members_take_no_idempotency_key() {
    let env = TestEnv::new().await.expect("test services");
    let mut conn = env.db.acquire().await.expect("connection");
    let batch = NewBatch::of(vec![NewJob::new("noop").idempotency_key("k")]);
    assert!(matches!(
        enqueue_batch(&mut conn, batch).await,
        Err(EnqueueError::Invalid(_))
    ));
    assert_eq!(env.count("batches").await, 0);
}

#[tokio::test]
async fn a_released_child_wakes_the_relays_on_the_outbox_channel() {
    let env = TestEnv::new().await.expect("test services");
    let parent = add(&env, NewJob::new("noop")).await;
    let child = add(&env, NewJob::new("noop").depends_on([parent])).await;
    // The trigger's NOTIFY names the channel in SQL; the relays listen on the Rust constant.
    let mut listener = sqlx::postgres::PgListener::connect_with(&env.db)
        .await
        .expect("listener");
    listener
        .listen(burrow_shared::enqueue::OUTBOX_CHANNEL)
        .await
        .expect("listen");
    succeed(&env, parent).await;
    let woken = tokio::time::timeout(std::time::Duration::from_secs(10), listener.recv()).await;
    assert!(
        matches!(woken, Ok(Ok(_))),
        "a NOTIFY on the relays' channel when {child} was released"
    );
    assert_eq!(outboxed(&env, child).await, 1);
}

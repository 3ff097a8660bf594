//! Cluster-wide caps against the real Postgres: claims take slot rows without waiting for
//! each other; a claim that finds the kind full parks under the kind's exclusive lock, which
//! every end of a capped run holds shared, so whichever order they race in, no waiter is left
//! parked with a slot free. The races are staged with a lock or a transaction held by the test
//! as the barrier, and each contender is seen waiting on it in `pg_stat_activity` before the
//! next starts.

use std::collections::BTreeMap;

use burrow_shared::engine::kind_caps;
use burrow_shared::engine::state::batch::{release_lock_and_claim, succeed_many};
use burrow_shared::engine::state::capped::{claim, CappedClaim};
use burrow_shared::enqueue::{enqueue, NewJob};
use burrow_shared::handler::JobOutput;
use burrow_shared::job_batch::{self, ClaimRequest};
use burrow_shared::state::{self, Transition};
use burrow_shared::testing::TestEnv;
use burrow_shared::{jobs, JobMessage, JobStatus};
use sqlx::PgPool;
use uuid::Uuid;

async fn add(env: &TestEnv) -> Uuid {
    let mut conn = env.db.acquire().await.expect("connection");
    enqueue(&mut conn, NewJob::new("sleep"))
        .await
        .expect("enqueue")
        .job
        .id
}

fn message(id: Uuid) -> Vec<u8> {
    JobMessage::new(id, "sleep", Uuid::new_v4()).encode()
}

async fn cap_sleep(env: &TestEnv, cap: u32) {
    let caps = BTreeMap::from([("sleep".to_owned(), cap)]);
    kind_caps::declare(&env.db, &caps, "test")
        .await
        .expect("caps");
}

async fn status(env: &TestEnv, id: Uuid) -> JobStatus {
    jobs::find_job(&env.db, id)
        .await
        .expect("db")
        .expect("job")
        .status
}

/// Outbox rows of job `id`: its enqueue, then one per release from the waiters.
async fn publishes(env: &TestEnv, id: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE job_id = $1")
        .bind(id)
        .fetch_one(&env.db)
        .await
        .expect("outbox")
}

async fn waiters(env: &TestEnv) -> Vec<(Uuid, bool)> {
    sqlx::query_as("SELECT job_id, released_at IS NOT NULL FROM capped_waiters ORDER BY seq")
        .fetch_all(&env.db)
        .await
        .expect("waiters")
}

fn succeed() -> Transition<'static> {
    Transition::Succeed {
        message: "done",
        rows: None,
        output: None,
    }
}

#[tokio::test]
async fn a_full_kind_parks_in_arrival_order_and_each_end_releases_the_oldest_waiter() {
    let env = TestEnv::new().await.expect("env");
    cap_sleep(&env, 2).await;
    let ids: Vec<Uuid> = futures_ids(&env, 5).await;
    let mut outcomes = Vec::new();
    for id in &ids {
        outcomes.push(
            claim(&env.db, *id, "w", None, &message(*id))
                .await
                .expect("claim"),
        );
    }
    assert!(matches!(outcomes[0], CappedClaim::Claimed(_)));
    assert!(matches!(outcomes[1], CappedClaim::Claimed(_)));
    for outcome in &outcomes[2..] {
        assert_eq!(*outcome, CappedClaim::Waiting { cap: 2, busy: 2 });
    }
    assert_eq!(
        status(&env, ids[2]).await,
        JobStatus::Queued,
        "waiting looks queued"
    );

    // One run ends: exactly the oldest waiter is released (to the outbox), and reserved.
    assert!(state::apply(&env.db, ids[0], succeed()).await.expect("end"));
    assert_eq!(
        waiters(&env).await,
        vec![(ids[2], true), (ids[3], false), (ids[4], false)]
    );
    assert_eq!(publishes(&env, ids[2]).await, 2);
    assert_eq!(publishes(&env, ids[3]).await, 1);
    // A newcomer finds the freed slot reserved for the released waiter, and queues behind.
    let late = add(&env).await;
    assert_eq!(
        claim(&env.db, late, "w", None, &message(late))
            .await
            .expect("claim"),
        CappedClaim::Waiting { cap: 2, busy: 2 }
    );
    // The released waiter's message comes back and takes its reserved slot.
    let back = claim(&env.db, ids[2], "w", None, &message(ids[2]))
        .await
        .expect("claim");
    assert!(matches!(back, CappedClaim::Claimed(_)));
    // A run that fails for now (retrying) frees its slot too.
    let retry = Transition::Retry {
        error: "down",
        next_attempt_at: chrono::Utc::now(),
    };
    assert!(state::apply(&env.db, ids[1], retry).await.expect("retry"));
    assert_eq!(
        waiters(&env).await,
        vec![(ids[3], true), (ids[4], false), (late, false)]
    );
    let running: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE kind = 'sleep' AND status = 'processing'",
    )
    .fetch_one(&env.db)
    .await
    .expect("count");
    assert_eq!(running, 1, "one runs, one slot is reserved");
}

async fn futures_ids(env: &TestEnv, n: usize) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(add(env).await);
    }
    ids
}

/// The race of the brief: a claim that sees the kind full, and the end of the run that fills
/// it, which sees no waiter. Staged in both orders behind a held kind lock.
#[tokio::test]
async fn a_claim_racing_the_end_of_the_run_it_waits_for_never_strands_its_waiter() {
    for claim_first in [true, false] {
        let env = TestEnv::new().await.expect("env");
        cap_sleep(&env, 1).await;
        let running = add(&env).await;
        let arriving = add(&env).await;
        let claimed = claim(&env.db, running, "w", None, &message(running))
            .await
            .expect("claim");
        assert!(matches!(claimed, CappedClaim::Claimed(_)));

        // The barrier: the kind's lock, held exclusive by the test.
        let mut barrier = env.db.begin().await.expect("tx");
        sqlx::query("SELECT burrow_cap_lock('sleep', true)")
            .execute(&mut *barrier)
            .await
            .expect("lock");
        let spawn_claim = |db: PgPool| {
            tokio::spawn(async move {
                claim(&db, arriving, "w", None, &message(arriving))
                    .await
                    .expect("claim")
            })
        };
        let spawn_end = |db: PgPool| {
            tokio::spawn(async move { state::apply(&db, running, succeed()).await.expect("end") })
        };
        let (claimed, ended) = if claim_first {
            let claimed = spawn_claim(env.db.clone());
            env.until_sessions_wait_for_locks(1).await;
            let ended = spawn_end(env.db.clone());
            env.until_sessions_wait_for_locks(2).await;
            (claimed, ended)
        } else {
            let ended = spawn_end(env.db.clone());
            env.until_sessions_wait_for_locks(1).await;
            let claimed = spawn_claim(env.db.clone());
            env.until_sessions_wait_for_locks(2).await;
            (claimed, ended)
        };
        barrier.commit().await.expect("release the barrier");
        let claimed = claimed.await.expect("claim task");
        assert!(ended.await.expect("end task"));

        if claim_first {
            // The claim counted the run still going and parked; the end, after it, saw the
            // waiter and released it into the outbox.
            assert_eq!(claimed, CappedClaim::Waiting { cap: 1, busy: 1 });
            assert_eq!(waiters(&env).await, vec![(arriving, true)]);
            assert_eq!(publishes(&env, arriving).await, 2);
        } else {
            // The end saw no waiter; the claim, after it, saw the slot free.
            assert!(matches!(claimed, CappedClaim::Claimed(_)), "{claimed:?}");
            assert_eq!(status(&env, arriving).await, JobStatus::Processing);
            assert!(waiters(&env).await.is_empty());
        }
    }
}

#[tokio::test]
async fn a_redelivery_after_a_crash_takes_back_its_own_slot() {
    let env = TestEnv::new().await.expect("env");
    cap_sleep(&env, 1).await;
    let crashed = add(&env).await;
    let other = add(&env).await;
    let first = claim(&env.db, crashed, "gone", None, &message(crashed)).await;
    assert!(matches!(first, Ok(CappedClaim::Claimed(_))));
    // Its worker died: the job is still `processing`, and its redelivery claims it again.
    let again = claim(&env.db, crashed, "w2", None, &message(crashed))
        .await
        .expect("claim");
    let CappedClaim::Claimed(run) = again else {
        panic!("{again:?}");
    };
    assert_eq!(
        (run.job.attempts, run.job.worker.as_deref()),
        (2, Some("w2"))
    );
    assert_eq!(
        claim(&env.db, other, "w2", None, &message(other))
            .await
            .expect("claim"),
        CappedClaim::Waiting { cap: 1, busy: 1 }
    );
}

#[tokio::test]
async fn a_waiter_cancelled_after_its_release_hands_its_slot_on_and_removing_the_cap_frees_all() {
    let env = TestEnv::new().await.expect("env");
    cap_sleep(&env, 1).await;
    let ids = futures_ids(&env, 4).await;
    let [running, cancelled, next, last] = ids[..] else {
        unreachable!()
    };
    for id in &ids {
        claim(&env.db, *id, "w", None, &message(*id))
            .await
            .expect("claim");
    }
    assert!(state::apply(&env.db, running, succeed())
        .await
        .expect("end"));
    assert_eq!(waiters(&env).await[0], (cancelled, true));
    // Cancelled while its released message travels: when the message arrives, the job has
    // ended, and the slot reserved for it goes to the next waiter.
    let cancel = Transition::CancelWaiting;
    assert!(state::apply(&env.db, cancelled, cancel)
        .await
        .expect("cancel"));
    assert_eq!(
        claim(&env.db, cancelled, "w", None, &message(cancelled))
            .await
            .expect("claim"),
        CappedClaim::Ended(JobStatus::Cancelled)
    );
    assert_eq!(waiters(&env).await, vec![(next, true), (last, false)]);
    // No cap any more: every waiter goes.
    assert!(kind_caps::remove(&env.db, "sleep").await.expect("remove"));
    assert_eq!(waiters(&env).await, vec![(next, true), (last, true)]);
    assert_eq!(publishes(&env, last).await, 2);
    let claimed = claim(&env.db, last, "w", None, &message(last))
        .await
        .expect("claim");
    assert!(matches!(claimed, CappedClaim::Claimed(_)), "{claimed:?}");
}

/// Slots held, by runs (`reserved_until` NULL) and by released waiters.
async fn slots_held(env: &TestEnv) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM kind_cap_slots WHERE job_id IS NOT NULL")
        .fetch_one(&env.db)
        .await
        .expect("slots")
}

#[tokio::test]
async fn claims_from_many_sessions_at_once_take_exactly_the_cap_and_park_the_rest() {
    let env = TestEnv::new().await.expect("env");
    cap_sleep(&env, 3).await;
    let ids = futures_ids(&env, 8).await;
    // All at once, each on its own connection: they take slot rows with SKIP LOCKED, so none
    // waits for another, and none may take a slot another took.
    let claims: Vec<_> = ids
        .iter()
        .map(|id| {
            let (db, id) = (env.db.clone(), *id);
            tokio::spawn(async move { claim(&db, id, "w", None, &message(id)).await })
        })
        .collect();
    let mut claimed = 0;
    for task in claims {
        match task.await.expect("task").expect("claim") {
            CappedClaim::Claimed(_) => claimed += 1,
            CappedClaim::Waiting { cap: 3, .. } => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(claimed, 3);
    assert_eq!(slots_held(&env).await, 3);
    assert_eq!(waiters(&env).await.len(), 5);
    let running: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE kind = 'sleep' AND status = 'processing' AND capped",
    )
    .fetch_one(&env.db)
    .await
    .expect("count");
    assert_eq!(running, 3);
}

/// The race the slot rows bring: a claim's `SKIP LOCKED` passes over the only slot while the
/// end that frees it has not committed, so the claim sees no slot. It must wait for that end
/// (the kind's exclusive lock against the end's shared one) and take the slot, not park.
#[tokio::test]
async fn a_claim_skipping_a_slot_an_uncommitted_end_frees_waits_for_it_and_takes_it() {
    let env = TestEnv::new().await.expect("env");
    cap_sleep(&env, 1).await;
    let running = add(&env).await;
    let arriving = add(&env).await;
    let first = claim(&env.db, running, "w", None, &message(running)).await;
    assert!(matches!(first, Ok(CappedClaim::Claimed(_))));
    // The end, in a transaction the test holds open: it holds the slot row and the kind's
    // lock (shared) until the test commits.
    let mut end = env.db.begin().await.expect("tx");
    assert!(state::apply(&mut *end, running, succeed())
        .await
        .expect("end"));
    let claimed = tokio::spawn({
        let db = env.db.clone();
        async move { claim(&db, arriving, "w", None, &message(arriving)).await }
    });
    env.until_sessions_wait_for_locks(1).await;
    end.commit().await.expect("commit the end");
    let claimed = claimed.await.expect("task").expect("claim");
    assert!(matches!(claimed, CappedClaim::Claimed(_)), "{claimed:?}");
    assert!(waiters(&env).await.is_empty());
    assert_eq!(slots_held(&env).await, 1);
}

/// Group-claim requests for `ids`, each of a capped kind.
fn capped_requests(ids: &[Uuid]) -> Vec<ClaimRequest> {
    ids.iter()
        .map(|id| ClaimRequest {
            id: *id,
            run: None,
            capped: true,
        })
        .collect()
}

#[tokio::test]
async fn the_group_claim_takes_free_slots_and_leaves_the_rest_locked_for_the_park() {
    let env = TestEnv::new().await.expect("env");
    cap_sleep(&env, 2).await;
    let ids = futures_ids(&env, 4).await;
    let requests = capped_requests(&ids);
    let mut session = job_batch::open_session(&env.db).await.expect("session");
    let turn = release_lock_and_claim(&mut session, &[], &requests, "w")
        .await
        .expect("group claim");
    assert_eq!(turn.locked.len(), 4);
    assert_eq!(turn.claimed.len(), 2);
    assert_eq!(turn.full.len(), 2);
    assert!(turn
        .claimed
        .iter()
        .all(|run| run.job.status == JobStatus::Processing));
    // The full ones park, with their locks still held by the session.
    for id in &turn.full {
        let parked = claim(&env.db, *id, "w", None, &message(*id))
            .await
            .expect("claim");
        assert_eq!(parked, CappedClaim::Waiting { cap: 2, busy: 2 });
    }
    // Both runs end in one batched statement: each slot goes to a waiter, oldest first.
    let done: Vec<(Uuid, JobOutput)> = turn
        .claimed
        .iter()
        .map(|run| (run.job.id, JobOutput::default()))
        .collect();
    let ended = succeed_many(&env.db, &done).await.expect("ends");
    assert_eq!(ended.len(), 2);
    assert_eq!(
        waiters(&env).await,
        vec![(turn.full[0], true), (turn.full[1], true)]
    );
    // Each released waiter's message comes back to the group claim and takes its reserved
    // slot (its locks are still held by the session: release them in the same turn).
    let back = capped_requests(&turn.full);
    let again = release_lock_and_claim(&mut session, &turn.locked, &back, "w")
        .await
        .expect("group claim");
    assert_eq!(again.claimed.len(), 2, "{again:?}");
    assert!(again.full.is_empty());
    assert!(waiters(&env).await.is_empty());
    assert_eq!(slots_held(&env).await, 2);
}

/// Slots held by job `id`.
async fn slots_of(env: &TestEnv, id: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM kind_cap_slots WHERE job_id = $1")
        .bind(id)
        .fetch_one(&env.db)
        .await
        .expect("slots")
}

/// The group paths (`burrow_cap_take_many`, `burrow_cap_let_go_many`): while no one waits, a
/// group claim pairs its fresh jobs with free slots in one statement and a redelivery in the
/// same group takes back its own slot (never a second one); the group's ends free every slot
/// at once, and what they freed is there for the next claim.
#[tokio::test]
async fn a_group_takes_and_frees_slots_at_once_and_a_redelivery_in_it_keeps_its_own_slot() {
    let env = TestEnv::new().await.expect("env");
    cap_sleep(&env, 3).await;
    let ids = futures_ids(&env, 4).await;
    let (a, b, c, d) = (ids[0], ids[1], ids[2], ids[3]);
    let mut crashed = job_batch::open_session(&env.db).await.expect("session");
    let first = release_lock_and_claim(&mut crashed, &[], &capped_requests(&[a, b]), "w1")
        .await
        .expect("group claim");
    assert_eq!(first.claimed.len(), 2);
    // The worker dies: its session's job locks go (let go here by hand, so the next claim
    // does not race the server noticing a closed connection) and its runs stay `processing`.
    // `a` is delivered again, to a worker that also got `c` and `d`.
    job_batch::unlock(&mut crashed, &[a, b])
        .await
        .expect("unlock");
    let mut session = job_batch::open_session(&env.db).await.expect("session");
    let turn = release_lock_and_claim(&mut session, &[], &capped_requests(&[a, c, d]), "w2")
        .await
        .expect("group claim");
    let mut claimed: Vec<Uuid> = turn.claimed.iter().map(|run| run.job.id).collect();
    claimed.sort();
    let mut expected = vec![a, c];
    expected.sort();
    assert_eq!(claimed, expected, "{turn:?}");
    assert_eq!(turn.full, vec![d]);
    assert_eq!(slots_of(&env, a).await, 1, "a redelivery holds one slot");
    assert_eq!(slots_held(&env).await, 3);
    // No one waits (`d` was not parked): the three ends free all three slots in one go and
    // hand nothing out.
    let done: Vec<(Uuid, JobOutput)> = [a, b, c]
        .iter()
        .map(|id| (*id, JobOutput::default()))
        .collect();
    let ended = succeed_many(&env.db, &done).await.expect("ends");
    assert_eq!(ended.len(), 3);
    assert_eq!(slots_held(&env).await, 0);
    assert!(waiters(&env).await.is_empty());
    assert_eq!(publishes(&env, d).await, 1, "only its enqueue");
    let still_capped: i64 =
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE capped AND status <> 'processing'")
            .fetch_one(&env.db)
            .await
            .expect("count");
    assert_eq!(still_capped, 0, "an ended run holds no slot and says so");
    // `d`, still locked by the session, is claimed in the next turn with a freed slot.
    let again = release_lock_and_claim(&mut session, &turn.locked, &capped_requests(&[d]), "w2")
        .await
        .expect("group claim");
    assert_eq!(again.claimed.len(), 1, "{again:?}");
    assert_eq!(slots_of(&env, d).await, 1);
}

//! Rate limits against the real Postgres: reservations per key (two keys each get their own
//! rate), a waiting job parked once however often its message is delivered, and its message
//! released to the outbox once, at its slot, when the job then runs without a new reservation;
//! and the claim that runs a job spends its slot, so its retry reserves a new one.

use std::collections::BTreeMap;
use std::time::Duration;

use burrow_shared::engine::rate_limits::{self, RateLimit, Reservation};
use burrow_shared::enqueue::{enqueue, NewJob};
use burrow_shared::handler::{JobError, JobHandler, JobOutput, Registry, RunContext};
use burrow_shared::testing::{TestEnv, DEADLINE};
use burrow_shared::JobMessage;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A kind whose jobs are rate-limited per `key` of their payload.
struct Keyed;

#[derive(serde::Serialize, serde::Deserialize)]
struct KeyedPayload {
    key: String,
}

impl JobHandler for Keyed {
    const KIND: &'static str = "keyed";
    const RATE_LIMIT: Option<RateLimit> = Some(RateLimit::per_second(2));
    type Payload = KeyedPayload;

    fn rate_key(&self, payload: &KeyedPayload) -> Option<String> {
        Some(payload.key.clone())
    }

    async fn run(&self, _: RunContext<'_>, _: KeyedPayload) -> Result<JobOutput, JobError> {
        Ok(JobOutput::default())
    }
}

async fn add(env: &TestEnv, key: &str) -> Uuid {
    let mut conn = env.db.acquire().await.expect("connection");
    let payload = KeyedPayload {
        key: key.to_owned(),
    };
    let job = NewJob::of::<Keyed>(&payload).expect("job");
    enqueue(&mut conn, job).await.expect("enqueue").job.id
}

/// Declares `Keyed`'s limit, as a worker running it does at start-up; its registry.
async fn limit_keyed(env: &TestEnv) -> Registry {
    let limits = BTreeMap::from([("keyed".to_owned(), Keyed::RATE_LIMIT.expect("a limit"))]);
    rate_limits::declare(&env.db, &limits, "test")
        .await
        .expect("declare");
    Registry::default().register(Keyed)
}

fn message(id: Uuid) -> Vec<u8> {
    JobMessage::new(id, "keyed", Uuid::new_v4()).encode()
}

async fn count(env: &TestEnv, sql: &str, id: Uuid) -> i64 {
    sqlx::query_scalar(sql)
        .bind(id)
        .fetch_one(&env.db)
        .await
        .expect("count")
}

#[tokio::test]
async fn each_key_gets_its_own_rate_and_a_waiting_job_parks_once_and_runs_at_its_slot() {
    let env = TestEnv::new().await.expect("env");
    let registry = limit_keyed(&env).await;

    // Five jobs for each of two keys, reserved in one go, keys interleaved.
    let mut jobs: BTreeMap<&str, Vec<Uuid>> = BTreeMap::new();
    for _ in 0..5 {
        for key in ["a.example", "b.example"] {
            jobs.entry(key).or_default().push(add(&env, key).await);
        }
    }
    let mut untils: BTreeMap<&str, Vec<DateTime<Utc>>> = BTreeMap::new();
    let pairs = jobs["a.example"].iter().zip(&jobs["b.example"]);
    for (i, (a, b)) in pairs.enumerate() {
        for (key, id) in [("a.example", *a), ("b.example", *b)] {
            let got = rate_limits::reserve(&env.db, &registry, id, &message(id))
                .await
                .expect("reserve");
            match (i, got) {
                (0, Reservation::Run) => {}
                (0, other) => panic!("the first job of {key} runs at once: {other:?}"),
                (_, Reservation::Wait { until, key: got }) => {
                    assert_eq!(got, key);
                    untils.entry(key).or_default().push(until);
                }
                (_, other) => panic!("job {i} of {key} did not park: {other:?}"),
            }
        }
    }
    for (key, untils) in &untils {
        // One slot every 500 ms per key, whatever the other key reserved in between.
        for pair in untils.windows(2) {
            let gap = (pair[1] - pair[0]).num_microseconds().expect("gap");
            assert!((499_000..=501_000).contains(&gap), "{key}: {gap} µs");
        }
    }

    // A second delivery of a waiting job finds its slot: no new reservation, one waiter.
    let waiting = jobs["a.example"][4];
    let again = rate_limits::reserve(&env.db, &registry, waiting, &message(waiting))
        .await
        .expect("reserve again");
    assert_eq!(
        again,
        Reservation::Wait {
            until: untils["a.example"][3],
            key: "a.example".to_owned()
        }
    );
    let (status, slot, next): (String, Option<DateTime<Utc>>, Option<DateTime<Utc>>) =
        sqlx::query_as("SELECT status, rate_slot_at, next_attempt_at FROM jobs WHERE id = $1")
            .bind(waiting)
            .fetch_one(&env.db)
            .await
            .expect("job");
    assert_eq!(status, "queued");
    assert_eq!(slot, Some(untils["a.example"][3]));
    assert_eq!(next, slot, "the wait is visible as the next attempt's time");
    let events = "SELECT count(*) FROM job_events WHERE job_id = $1 AND event = 'waiting_for_rate'";
    assert_eq!(count(&env, events, waiting).await, 1);

    // The pump sends each waiter back once, when due (`due_at <= clock_timestamp()`).
    let waiters = 8;
    let mut released = 0;
    let all = tokio::time::timeout(DEADLINE, async {
        while released < waiters {
            released += rate_limits::release_due(&env.db, 100)
                .await
                .expect("release");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(all.is_ok(), "{released} of {waiters} waiters released");
    let publishes = "SELECT count(*) FROM outbox WHERE job_id = $1";
    for id in jobs.values().flatten() {
        let n = count(&env, publishes, *id).await;
        let first = jobs.values().any(|ids| ids[0] == *id);
        assert_eq!(n, if first { 1 } else { 2 }, "enqueue, then one release");
    }
    // The released delivery runs on its reservation (and does not reserve again).
    let tat_before: DateTime<Utc> =
        sqlx::query_scalar("SELECT tat FROM rate_limit_state WHERE key = 'a.example'")
            .fetch_one(&env.db)
            .await
            .expect("tat");
    let got = rate_limits::reserve(&env.db, &registry, waiting, &message(waiting))
        .await
        .expect("reserve at the slot");
    let slot = untils["a.example"][3];
    assert!(
        got == Reservation::Run || got == Reservation::Soon { at: slot },
        "runs at its own slot {slot}: {got:?}"
    );
    let tat_after: DateTime<Utc> =
        sqlx::query_scalar("SELECT tat FROM rate_limit_state WHERE key = 'a.example'")
            .fetch_one(&env.db)
            .await
            .expect("tat");
    assert_eq!(tat_before, tat_after);
    assert_eq!(rate_limits::next_due(&env.db).await.expect("next"), None);
}

#[tokio::test]
async fn the_claim_spends_the_slot_so_a_retry_reserves_a_new_one() {
    use burrow_shared::engine::state::capped::{claim, CappedClaim};
    use burrow_shared::state::{self, Transition};

    let env = TestEnv::new().await.expect("env");
    let registry = limit_keyed(&env).await;
    let (first, second) = (add(&env, "k").await, add(&env, "k").await);
    let reserve = |id: Uuid| {
        let (db, registry) = (env.db.clone(), registry.clone());
        async move {
            rate_limits::reserve(&db, &registry, id, &message(id))
                .await
                .expect("reserve")
        }
    };
    assert_eq!(reserve(first).await, Reservation::Run);
    let Reservation::Wait { until, .. } = reserve(second).await else {
        panic!("the second job of the key waits");
    };
    // The first job runs (no cap on the kind: `claim` claims it as the group claim would) and
    // fails transiently: the claim cleared its slot, so its retry reserves the key's next one,
    // after the second job's.
    let claimed = claim(&env.db, first, "w", None, &message(first))
        .await
        .expect("claim");
    assert!(matches!(claimed, CappedClaim::Claimed(_)), "{claimed:?}");
    let slot: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT rate_slot_at FROM jobs WHERE id = $1")
            .bind(first)
            .fetch_one(&env.db)
            .await
            .expect("slot");
    assert_eq!(slot, None, "the run spent its slot");
    let retry = Transition::Retry {
        error: "boom",
        next_attempt_at: Utc::now(),
    };
    state::apply(&env.db, first, retry).await.expect("retry");
    match reserve(first).await {
        Reservation::Wait { until: again, .. } => {
            let gap = (again - until).num_milliseconds();
            assert!(
                (499..=501).contains(&gap),
                "the retry's slot follows: {gap} ms"
            );
        }
        other => panic!("the retry waits for a new slot: {other:?}"),
    }
    let status: String = sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1")
        .bind(first)
        .fetch_one(&env.db)
        .await
        .expect("status");
    assert_eq!(
        status, "retrying",
        "waiting for a slot keeps the job as it was"
    );
}

/// The state of (`keyed`, `key`): its theoretical arrival time, if it has a row.
async fn tat(env: &TestEnv, key: &str) -> Option<DateTime<Utc>> {
    sqlx::query_scalar("SELECT tat FROM rate_limit_state WHERE kind = 'keyed' AND key = $1")
        .bind(key)
        .fetch_optional(&env.db)
        .await
        .expect("state")
}

/// Keys that went quiet are forgotten (a passed `tat` reserves as no row), keys in use stay;
/// and a prune that deletes a key's row while a reservation of it waits for the row's lock
/// does not lose that reservation: the reservation writes the row back (before, it returned
/// `now` and recorded nothing, so the key's next job would have run at once too).
#[tokio::test]
async fn idle_keys_are_pruned_and_a_prune_racing_a_reservation_loses_no_slot() {
    let env = TestEnv::new().await.expect("env");
    limit_keyed(&env).await;
    for key in ["quiet", "busy", "raced"] {
        sqlx::query("SELECT burrow_rate_reserve('keyed', $1)")
            .bind(key)
            .execute(&env.db)
            .await
            .expect("reserve");
    }
    sqlx::query(
        "UPDATE rate_limit_state SET tat = clock_timestamp() - interval '2 minutes' \
         WHERE key = 'quiet'",
    )
    .execute(&env.db)
    .await
    .expect("age");
    let pruned = rate_limits::prune_idle(&env.db, rate_limits::IDLE_STATE_KEPT)
        .await
        .expect("prune");
    assert_eq!(pruned, 1);
    assert!(tat(&env, "quiet").await.is_none());
    assert!(tat(&env, "busy").await.is_some());

    // The race: the test's transaction holds the key's row lock; the reservation has found
    // the row (its INSERT … ON CONFLICT did nothing) and waits for the lock; the test deletes
    // the row, as a prune would, and commits.
    let mut prune = env.db.begin().await.expect("tx");
    sqlx::query("SELECT 1 FROM rate_limit_state WHERE key = 'raced' FOR UPDATE")
        .execute(&mut *prune)
        .await
        .expect("lock");
    let reservation = tokio::spawn({
        let db = env.db.clone();
        async move {
            sqlx::query_scalar::<_, DateTime<Utc>>("SELECT burrow_rate_reserve('keyed', 'raced')")
                .fetch_one(&db)
                .await
        }
    });
    env.until_sessions_wait_for_locks(1).await;
    sqlx::query("DELETE FROM rate_limit_state WHERE key = 'raced'")
        .execute(&mut *prune)
        .await
        .expect("delete");
    prune.commit().await.expect("commit");
    let slot = reservation.await.expect("task").expect("reserve");
    let recorded = tat(&env, "raced")
        .await
        .expect("the reservation wrote the row back");
    // 2 a second: the next slot is 500 ms after this one.
    assert_eq!(recorded - slot, chrono::Duration::milliseconds(500));
}

//! Scheduled maintenance against a real Postgres: recurring jobs run once per slot across
//! replicas, and retention deletes only what is finished and old enough.

use burrow_shared::testing::TestEnv;
use burrow_shared::NewJob;
use burrow_worker::maintenance::recurring::{enqueue_due, parse_recurring};
use burrow_worker::maintenance::retention::delete_expired;
use chrono::{DateTime, Utc};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .expect("a time")
}

async fn count(env: &TestEnv, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&env.db)
        .await
        .expect("count")
}

#[tokio::test]
async fn a_recurring_slot_is_enqueued_once_however_many_replicas_tick() {
    let env = TestEnv::new().await.expect("services");
    let registry = burrow_shared::kinds::shipped(Default::default(), Default::default());
    let json =
        r#"[{"name": "heartbeat", "cron": "0 * * * * *", "kind": "sleep", "payload": {"ms": 1}}]"#;
    let schedules = parse_recurring(json, &registry).expect("valid");

    // First sight starts the cursor; nothing is due yet.
    assert_eq!(
        enqueue_due(&env.db, &schedules, at("2026-11-21T10:00:30Z"))
            .await
            .expect("tick"),
        0
    );
    // The 10:01 slot: three replicas tick at once, one job results.
    let now = at("2026-11-21T10:01:00.5Z");
    let ticks =
        futures::future::join_all((0..3).map(|_| enqueue_due(&env.db, &schedules, now))).await;
    let total: u32 = ticks.into_iter().map(|t| t.expect("tick")).sum();
    assert_eq!(total, 1);
    // Ticking again within the same minute adds nothing; after a long outage, one catch-up job.
    assert_eq!(
        enqueue_due(&env.db, &schedules, at("2026-11-21T10:01:40Z"))
            .await
            .expect("tick"),
        0
    );
    assert_eq!(
        enqueue_due(&env.db, &schedules, at("2026-11-21T10:09:05Z"))
            .await
            .expect("tick"),
        1
    );

    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM jobs WHERE kind = 'sleep' AND user_id = 'recurring:heartbeat'"
        )
        .await,
        2
    );
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM outbox WHERE published_at IS NULL"
        )
        .await,
        2,
        "messages wait for the relay"
    );
}

#[tokio::test]
async fn retention_deletes_only_old_finished_jobs_with_everything_of_theirs() {
    let env = TestEnv::new().await.expect("services");
    let mut ids = Vec::new();
    for _ in 0..4 {
        let job = NewJob::new("noop").file("f.xlsx", b"bytes".to_vec());
        ids.push(env.insert_job(job).await.expect("insert").id);
    }
    let set = |id, status: &str, days: i32| {
        sqlx::query(
            "UPDATE jobs SET status = $2, completed_at = CASE WHEN $2 = 'processing' THEN NULL \
                    ELSE now() - make_interval(days => $3) END, \
                    started_at = now() - make_interval(days => $3) WHERE id = $1",
        )
        .bind(id)
        .bind(status.to_owned())
        .bind(days)
        .execute(&env.db)
    };
    set(ids[0], "succeeded", 40).await.expect("old succeeded");
    set(ids[1], "dead", 31).await.expect("old dead");
    set(ids[2], "failed", 5).await.expect("recent failed");
    set(ids[3], "processing", 40)
        .await
        .expect("old but running");

    assert_eq!(
        delete_expired(&env.db, 0).await.expect("retention"),
        0,
        "0 keeps everything"
    );
    assert_eq!(delete_expired(&env.db, 30).await.expect("retention"), 2);
    let left: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM jobs ORDER BY id")
        .fetch_all(&env.db)
        .await
        .expect("ids");
    assert_eq!(left, ids[2..].to_vec());
    assert_eq!(
        count(&env, "SELECT count(*) FROM job_files").await,
        2,
        "files went with their jobs"
    );
    assert_eq!(
        count(&env, "SELECT count(*) FROM job_events").await,
        2,
        "history too"
    );
}

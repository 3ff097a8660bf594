//! The app against the real services: a committed signup's job runs exactly once and its
//! e-mail row is there; a rolled-back signup leaves no job, no message and nothing runs.

use std::time::Duration;

use burrow_shared::testing::TestEnv;
use burrow_shared::JobStatus;
use burrow_worker::Worker;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use welcome_email::WelcomeEmail;

/// Longest a worker may take to go idle here.
const DEADLINE: Duration = Duration::from_secs(60);

async fn serve(env: &TestEnv) -> String {
    welcome_email::migrate(&env.db).await.expect("migrations");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = welcome_email::router(env.db.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// Runs the app's worker (its kind only, its own relay) until no job waits or runs.
async fn run_worker_until_idle(env: &TestEnv) {
    let worker = Worker::builder(env.db.clone(), env.amqp_url.clone())
        .register(WelcomeEmail)
        .queue_prefix(env.topology.prefix())
        .stop_when_idle(true)
        .build()
        .await
        .expect("worker");
    tokio::time::timeout(DEADLINE, worker.run(CancellationToken::new()))
        .await
        .expect("the worker went idle in time")
        .expect("the worker ran");
}

async fn count(env: &TestEnv, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&env.db)
        .await
        .expect("count")
}

#[tokio::test]
async fn a_committed_signup_is_welcomed_exactly_once_and_a_rolled_back_one_never() {
    let env = TestEnv::new().await.expect("test services");
    let base = serve(&env).await;
    let client = reqwest::Client::new();
    let post = |email: &str| {
        client
            .post(format!("{base}/signups"))
            .json(&json!({ "email": email }))
            .send()
    };

    let created = post("ada@example.com").await.expect("request");
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.expect("json");
    // The e-mail is taken: the insert fails, the transaction rolls back, with the job in it.
    let refused = post("ada@example.com").await.expect("request");
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert_eq!(
        count(&env, "SELECT count(*) FROM jobs").await,
        1,
        "one job row"
    );
    assert_eq!(
        count(&env, "SELECT count(*) FROM outbox").await,
        1,
        "one message"
    );

    run_worker_until_idle(&env).await;

    let job_id = created["job_id"]
        .as_str()
        .expect("job id")
        .parse()
        .expect("uuid");
    let job = burrow_shared::jobs::find_job(&env.db, job_id)
        .await
        .expect("db")
        .expect("job");
    assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
    assert_eq!(job.attempts, 1, "ran once");
    assert_eq!(job.kind, "welcome_email");
    let bodies: Vec<String> = sqlx::query_scalar("SELECT body FROM welcome_emails")
        .fetch_all(&env.db)
        .await
        .expect("rows");
    assert_eq!(bodies, ["Welcome aboard, ada@example.com!"], "exactly once");
    assert_eq!(
        count(&env, "SELECT count(*) FROM jobs").await,
        1,
        "nothing else ran"
    );
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM outbox WHERE published_at IS NULL"
        )
        .await,
        0,
        "the worker's own relay published the message"
    );
}

#[tokio::test]
async fn a_rollback_in_the_callers_transaction_leaves_nothing() {
    let env = TestEnv::new().await.expect("test services");
    welcome_email::migrate(&env.db).await.expect("migrations");
    let mut tx = env.db.begin().await.expect("begin");
    let (_, job_id) = welcome_email::signup(&mut tx, "grace@example.com")
        .await
        .expect("signup");
    let seen_inside: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE id = $1")
        .bind(job_id)
        .fetch_one(&mut *tx)
        .await
        .expect("count");
    assert_eq!(seen_inside, 1, "the job exists inside the transaction");
    tx.rollback().await.expect("rollback");

    for table in ["signups", "jobs", "job_events", "outbox"] {
        let rows = count(&env, &format!("SELECT count(*) FROM {table}")).await;
        assert_eq!(rows, 0, "{table} after the rollback");
    }
    // A worker finds nothing to do and stops at once: nothing was published, nothing runs.
    run_worker_until_idle(&env).await;
    assert_eq!(count(&env, "SELECT count(*) FROM welcome_emails").await, 0);
    let ready = env
        .ready_messages(&env.topology.work_queue)
        .await
        .expect("queue");
    assert_eq!(ready, 0, "no message reached the work queue");
}

//! The api against the real Postgres and RabbitMQ: status codes, what is stored, what is
//! published. No worker runs here, so every published message stays ready in the work queue.
//!
//! The outbox relay publishes asynchronously, so tests poll for its effects with a bounded
//! deadline and make no timing assertions.

mod support;

use std::time::Duration;

use burrow_api::state::AppState;
use burrow_shared::fixtures::{mock_file_name, people_xlsx, BadFixture, Person};
use burrow_shared::relay::OutboxRelay;
use burrow_shared::JobMessage;
use clap::Parser as _;
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use support::{content_type, eventually, TestApi};
use tokio_util::sync::CancellationToken;

// Helpers of this binary only: uploads, and what the api stored.
async fn upload(api: &TestApi, file_name: &str, bytes: Vec<u8>) -> reqwest::Response {
    let form = Form::new()
        .text("user_id", "alice")
        .part("file", Part::bytes(bytes).file_name(file_name.to_owned()));
    api.request(Method::POST, "/api/jobs")
        .multipart(form)
        .send()
        .await
        .expect("request")
}

async fn stored_jobs(api: &TestApi) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(&api.env.db)
        .await
        .expect("count")
}

async fn stored_files(api: &TestApi) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM job_files")
        .fetch_one(&api.env.db)
        .await
        .expect("count")
}

/// Outbox rows: (all, pending).
async fn outbox_rows(api: &TestApi) -> (i64, i64) {
    sqlx::query_as("SELECT count(*), count(*) FILTER (WHERE published_at IS NULL) FROM outbox")
        .fetch_one(&api.env.db)
        .await
        .expect("count")
}

/// Polls `/readyz`, asserting 200 each time, until it reports RabbitMQ up (the relay
/// connects in the background); the report.
async fn readyz_once_rabbitmq_is_up(api: &TestApi) -> Value {
    eventually("/readyz to report rabbitmq up", || async {
        let (status, body) = api.get("/readyz").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (body["rabbitmq"] == "up").then_some(body)
    })
    .await
}

fn mock_1() -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../fixtures/{}",
        env!("CARGO_MANIFEST_DIR"),
        mock_file_name(1)
    ))
    .expect("fixture")
}

#[tokio::test]
async fn an_upload_is_accepted_stored_and_published_once() {
    let api = TestApi::spawn().await;
    let response = upload(&api, "MOCK_DATA_1.xlsx", mock_1()).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let job: Value = response.json().await.expect("json");
    let id = job["id"].as_str().expect("id");
    assert_eq!(location, format!("/api/jobs/{id}"));
    assert_eq!(job["status"], "queued");
    assert_eq!(job["file_name"], "MOCK_DATA_1.xlsx");
    assert_eq!(job["user_id"], "alice");
    assert_eq!(job["attempts"], 0);

    assert_eq!(stored_files(&api).await, 1);
    let stored: Vec<u8> = sqlx::query_scalar("SELECT content FROM job_files")
        .fetch_one(&api.env.db)
        .await
        .expect("file");
    assert_eq!(stored, mock_1(), "the bytes are stored as uploaded");

    // The relay publishes asynchronously: wait for the message, then for the stamp.
    let channel = api.env.channel().await.expect("channel");
    let message = eventually("the relay to publish the job", || async {
        channel
            .basic_get(api.upload_queue().as_str().into(), Default::default())
            .await
            .expect("basic.get")
    })
    .await;
    let decoded = JobMessage::decode(&message.delivery.data).expect("a job message");
    assert_eq!(decoded.job_id.to_string(), id);
    assert_eq!(decoded.attempt, 1);
    assert_eq!(
        message.delivery.properties.delivery_mode(),
        &Some(2),
        "persistent"
    );
    assert_eq!(message.message_count, 0, "exactly one message");
    eventually("the outbox row to be stamped published", || async {
        (outbox_rows(&api).await == (1, 0)).then_some(())
    })
    .await;
    assert_eq!(
        api.ready_in_work_queue().await,
        0,
        "published once, not again"
    );

    let (status, fetched) = api.get(&location).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched["id"], id);
    assert!(
        fetched["created_at"]
            .as_str()
            .is_some_and(|t| t.contains('T')),
        "RFC 3339"
    );
}

#[tokio::test]
async fn a_body_without_a_file_field_is_400_and_leaves_no_trace() {
    let api = TestApi::spawn().await;
    let form = Form::new().text("user_id", "alice");
    let response = api
        .request(Method::POST, "/api/jobs")
        .multipart(form)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("json error");
    assert_eq!(body["error"], "bad_request");
    assert!(body["message"]
        .as_str()
        .is_some_and(|m| m.contains("`file`")));
    api.assert_nothing_stored_or_published("a body without a file")
        .await;
}

#[tokio::test]
async fn content_that_is_no_spreadsheet_is_415_whatever_its_name() {
    let api = TestApi::spawn().await;
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    let truncated = BadFixture::Truncated.bytes();
    for (name, bytes) in [
        ("people.xlsx", png),
        ("truncated.xlsx", truncated),
        ("empty.xlsx", Vec::new()),
    ] {
        let response = upload(&api, name, bytes).await;
        assert_eq!(
            response.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{name}"
        );
        let body: Value = response.json().await.expect("json error");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("the file is")),
            "{name}: {body}"
        );
    }
    let response = api
        .request(Method::POST, "/api/jobs")
        .header("content-type", "text/csv")
        .body("Id,FirstName\n1,Ann\n")
        .send()
        .await
        .expect("request");
    assert_eq!(
        response.status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "neither multipart nor JSON"
    );
    api.assert_nothing_stored_or_published("uploads that are no spreadsheet")
        .await;
}

#[tokio::test]
async fn an_upload_over_the_limit_is_413_and_leaves_no_trace() {
    let limit = 16 * 1024;
    let api = TestApi::spawn_with(|state| AppState {
        upload_max_bytes: limit,
        ..state
    })
    .await;
    // A real workbook just over the limit, and one far over it (past the body limit too).
    let people: Vec<Person> = burrow_shared::fixtures::people(7, 1, 300).collect();
    let big = people_xlsx(people).expect("xlsx");
    assert!(
        big.len() > limit && big.len() < limit + 64 * 1024,
        "{} bytes",
        big.len()
    );
    let response = upload(&api, "big.xlsx", big).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.expect("json error");
    assert_eq!(body["error"], "payload_too_large");

    let huge = [b"PK\x03\x04".to_vec(), vec![0u8; 512 * 1024]].concat();
    let response = upload(&api, "huge.xlsx", huge).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    api.assert_nothing_stored_or_published("uploads over the limit")
        .await;
}

#[tokio::test]
async fn an_upload_is_checked_against_the_configured_import_limits() {
    // Built from its configuration, as `burrow-api serve` is: the IMPORT_* settings reach the
    // package check. MOCK_DATA_1.xlsx inflates to some 30 KB, within the defaults.
    let env = burrow_shared::testing::TestEnv::new()
        .await
        .expect("test services");
    let config = burrow_api::config::ApiConfig::parse_from([
        "burrow-api",
        "--database-url",
        &env.database_url,
        "--amqp-url",
        &env.amqp_url,
        "--queue-prefix",
        env.topology.prefix(),
        "--bind-addr",
        "127.0.0.1:0",
        "--auth-mode",
        "off",
        "--import-max-uncompressed-bytes",
        "4096",
    ]);
    assert_eq!(config.import_limits().max_uncompressed_bytes, 4096);
    let app = burrow_api::Application::build(
        &config,
        burrow_shared::kinds::shipped(Default::default(), Default::default()),
    )
    .await
    .expect("the api");
    let url = format!("http://127.0.0.1:{}/api/jobs", app.port());
    let stop = CancellationToken::new();
    let served = tokio::spawn(app.run_until_stopped(stop.clone()));

    let form = Form::new().part("file", Part::bytes(mock_1()).file_name("MOCK_DATA_1.xlsx"));
    let response = reqwest::Client::new()
        .post(&url)
        .multipart(form)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.expect("json error");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("(limit 4096)"), "{body}");
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(&env.db)
        .await
        .expect("count");
    assert_eq!(jobs, 0, "nothing stored");
    stop.cancel();
    served.await.expect("joined").expect("served");
}

#[tokio::test]
async fn with_rabbitmq_unreachable_uploads_are_accepted_and_wait_in_the_outbox() {
    let api = TestApi::spawn_without_broker().await;
    let response = upload(&api, "MOCK_DATA_1.xlsx", mock_1()).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let job: Value = response.json().await.expect("json");
    assert_eq!(job["status"], "queued");

    assert_eq!(stored_jobs(&api).await, 1);
    assert_eq!(stored_files(&api).await, 1);
    assert_eq!(outbox_rows(&api).await, (1, 1), "one pending outbox row");
    assert_eq!(
        api.ready_in_work_queue().await,
        0,
        "nothing reached the work queue"
    );

    let (status, body) = api.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["postgres"], "up");
    assert_eq!(body["rabbitmq"], "down");
    assert_eq!(body["outbox_pending"], 1);
}

#[tokio::test]
async fn pending_outbox_rows_are_published_once_the_broker_is_reachable() {
    let api = TestApi::spawn_without_broker().await;
    let response = upload(&api, "MOCK_DATA_1.xlsx", mock_1()).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let job: Value = response.json().await.expect("json");
    assert_eq!(outbox_rows(&api).await, (1, 1));

    // The broker "comes back": a relay with a working pool runs on the same database, like a
    // second api replica (the first api's relay keeps failing meanwhile).
    let stop = CancellationToken::new();
    let relay = OutboxRelay::new(
        api.env.db.clone(),
        api.env.amqp.clone(),
        api.env.topology.clone(),
    );
    let relay = tokio::spawn(relay.run(stop.clone()));

    eventually("the pending row to be stamped published", || async {
        (outbox_rows(&api).await == (1, 0)).then_some(())
    })
    .await;
    // Stamped means confirmed, so the message is in the queue now; give the relay time for a
    // few more polls to show it does not publish the row again.
    api.wait_ready_in_work_queue(1).await;
    tokio::time::sleep(burrow_shared::relay::POLL_INTERVAL * 2).await;
    stop.cancel();
    relay.await.expect("the relay stops cleanly");

    let channel = api.env.channel().await.expect("channel");
    let message = channel
        .basic_get(api.upload_queue().as_str().into(), Default::default())
        .await
        .expect("basic.get")
        .expect("the message");
    let decoded = JobMessage::decode(&message.delivery.data).expect("a job message");
    assert_eq!(
        Some(decoded.job_id.to_string().as_str()),
        job["id"].as_str()
    );
    assert_eq!(message.message_count, 0, "exactly once");
}

#[tokio::test]
async fn readiness_is_503_when_postgres_is_down() {
    let unreachable_db = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(1))
        .connect_lazy("postgres://postgres@127.0.0.1:1/burrow")
        .expect("a lazy pool");
    let api = TestApi::spawn_with(|state| AppState {
        db: unreachable_db,
        upload_max_bytes: 1024,
        ..state
    })
    .await;

    let response = api.get_response("/readyz").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["postgres"], "down");
}

#[tokio::test]
async fn job_ids_are_checked_malformed_is_400_unknown_is_404() {
    let api = TestApi::spawn().await;
    let (status, body) = api.get("/api/jobs/not-a-uuid").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "bad_request");
    let (status, body) = api
        .get(&format!("/api/jobs/{}", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
}

#[tokio::test]
async fn the_job_list_pages_newest_first_and_filters() {
    let api = TestApi::spawn().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let job: Value = upload(&api, "MOCK_DATA_1.xlsx", mock_1())
            .await
            .json()
            .await
            .expect("json");
        ids.push(job["id"].as_str().expect("id").to_owned());
    }
    ids.reverse(); // newest first

    let mut seen = Vec::new();
    let mut path = "/api/jobs?limit=2".to_owned();
    loop {
        let (status, page) = api.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let jobs = page["jobs"].as_array().expect("jobs");
        assert!(jobs.len() <= 2);
        seen.extend(
            jobs.iter()
                .map(|j| j["id"].as_str().expect("id").to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/jobs?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ids, "every job once, newest first");

    let (_, queued) = api.get("/api/jobs?status=queued&user_id=alice").await;
    assert_eq!(queued["jobs"].as_array().map(Vec::len), Some(5));
    let (_, done) = api.get("/api/jobs?status=succeeded").await;
    assert_eq!(done["jobs"].as_array().map(Vec::len), Some(0));
    let (_, other) = api.get("/api/jobs?user_id=bob").await;
    assert_eq!(other["jobs"].as_array().map(Vec::len), Some(0));

    for bad in [
        "status=done",
        "limit=0",
        "limit=201",
        "limit=x",
        "cursor=zzz",
    ] {
        let (status, body) = api.get(&format!("/api/jobs?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
}

#[tokio::test]
async fn simulate_enqueues_the_five_fixture_files() {
    let api = TestApi::spawn().await;
    let (status, body) = api.post("/api/simulate").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let names: Vec<&str> = body["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["file_name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, (1..=5).map(mock_file_name).collect::<Vec<_>>());
    assert_eq!(stored_jobs(&api).await, 5);
    // The relay publishes asynchronously.
    api.wait_ready_in_work_queue(5).await;
    eventually("all five outbox rows to be stamped", || async {
        (outbox_rows(&api).await == (5, 0)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let api = TestApi::spawn().await;
    let (status, body) = api.get("/healthz").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    // The relay connects in the background; until then the api is "degraded", not unready.
    let body = readyz_once_rabbitmq_is_up(&api).await;
    assert_eq!(body["status"], "ready");
    assert_eq!(body["postgres"], "up");
    let (status, body) = api.get("/nope").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
}

#[tokio::test]
async fn redrive_moves_a_dead_job_back_to_the_work_queue() {
    let api = TestApi::spawn().await;
    let job: Value = upload(&api, "MOCK_DATA_1.xlsx", mock_1())
        .await
        .json()
        .await
        .expect("json");
    let id = job["id"].as_str().expect("id").to_owned();
    api.wait_ready_in_work_queue(1).await;
    // Bury it by hand: take its message off the work queue into the DLQ, mark the job dead.
    let env = &api.env;
    let channel = env.channel().await.expect("channel");
    let got = channel
        .basic_get(api.upload_queue().as_str().into(), Default::default())
        .await
        .expect("basic.get")
        .expect("the job message");
    let confirm =
        burrow_shared::publish::open_confirm_channel(&env.amqp.get().await.expect("conn"))
            .await
            .expect("confirm channel");
    let dead = burrow_shared::publish::DeadLetter {
        body: &got.delivery.data,
        reason: "test",
        attempts: 5,
    };
    burrow_shared::publish::publish_dead_letter(&confirm, &env.topology, &dead)
        .await
        .expect("to the DLQ");
    got.delivery.ack(Default::default()).await.expect("ack");
    sqlx::query("UPDATE jobs SET status = 'dead', attempts = 5 WHERE id = $1::uuid")
        .bind(&id)
        .execute(&env.db)
        .await
        .expect("bury");

    assert_eq!(
        api.post("/api/dead-letters/redrive?limit=0").await.0,
        StatusCode::BAD_REQUEST
    );
    let (status, report) = api.post("/api/dead-letters/redrive").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (report["moved"].as_u64(), report["left"].as_u64()),
        (Some(1), Some(0))
    );

    let (_, job) = api.get(&format!("/api/jobs/{id}")).await;
    assert_eq!(
        (job["status"].as_str(), job["attempts"].as_i64()),
        (Some("queued"), Some(0))
    );
    assert_eq!(job["message"], "Re-driven from the DLQ");
    assert_eq!(api.ready_in_work_queue().await, 1, "back in the work queue");
    assert_eq!(
        env.ready_messages(&env.topology.dead_letter_queue)
            .await
            .ok(),
        Some(0)
    );
}

/// `GET /metrics`: the status, the content type and the page.
async fn scrape(api: &TestApi) -> (StatusCode, String, String) {
    let response = api.get_response("/metrics").await;
    let (status, content_type) = (response.status(), content_type(&response));
    (status, content_type, response.text().await.expect("body"))
}

/// The value of `series` (name and labels, exactly as rendered) on a Prometheus text page.
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_answer_200_text_plain_and_count_enqueued_and_published_jobs() {
    // Without a recorder (the default state) the page is empty, but well-formed.
    let bare = TestApi::spawn().await;
    let (status, content_type, _) = scrape(&bare).await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/plain"), "{content_type}");

    // With the process's recorder. Under `cargo test` other tests of this binary record too,
    // so counts are lower bounds here.
    let api = TestApi::spawn_with(|state| AppState {
        metrics: Some(burrow_api::metrics::install()),
        ..state
    })
    .await;
    api.create_job().await;
    let page = eventually(
        "the relay to publish and the metrics to show it",
        || async {
            let (status, content_type, page) = scrape(&api).await;
            assert_eq!(status, StatusCode::OK);
            assert!(content_type.starts_with("text/plain"), "{content_type}");
            sample(&page, "burrow_outbox_published_total")
                .is_some_and(|n| n >= 1.0)
                .then_some(page)
        },
    )
    .await;
    let enqueued = sample(&page, r#"burrow_jobs_enqueued_total{kind="noop"}"#);
    assert!(enqueued.is_some_and(|n| n >= 1.0), "{page}");
    assert!(
        page.contains("# TYPE burrow_outbox_pending gauge"),
        "{page}"
    );
}

#[tokio::test]
async fn readyz_is_degraded_when_queued_jobs_pass_the_backlog_threshold() {
    let api = TestApi::spawn_with(|state| AppState {
        readiness: burrow_shared::readiness::ReadinessRules::new(1, 10),
        ..state
    })
    .await;
    for _ in 0..2 {
        api.create_job().await;
    }
    // No worker runs here: both jobs stay queued, over the threshold of 1.
    let body = readyz_once_rabbitmq_is_up(&api).await;
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["jobs_waiting"], 2, "{body}");
    let reasons = body["reasons"].as_array().expect("reasons");
    assert_eq!(reasons.len(), 1, "{body}");
    assert!(
        reasons[0]
            .as_str()
            .is_some_and(|r| r.starts_with("backlog")),
        "{body}"
    );
}

#[tokio::test]
async fn a_user_id_filter_with_a_nul_is_400_not_500() {
    let api = TestApi::spawn().await;
    let (status, body) = api.get("/api/jobs?user_id=a%00b").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("`user_id`: ")),
        "{body}"
    );
    let (status, _) = api.get("/api/jobs?user_id=%20alice%20").await;
    assert_eq!(status, StatusCode::OK);
}

//! The job platform end to end: JSON and batch jobs, validation, idempotency keys, cancel,
//! retry, history, results, progress over SSE, and `run_at`.

mod support;

use std::io::Cursor;
use std::time::Duration;

use burrow_shared::fixtures::{mock_data, mock_file_name, BadFixture};
use burrow_shared::JobStatus;
use calamine::{Data, Reader, Xlsx};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{fixture, Stack};
use uuid::Uuid;

/// POSTs `body` as JSON to `path`, with an `Idempotency-Key` header when `key` is given; the
/// status, the JSON answer and the headers.
async fn post_keyed(
    stack: &Stack,
    path: &str,
    body: &Value,
    key: Option<&str>,
) -> (StatusCode, Value, HeaderMap) {
    let mut request = stack.request(Method::POST, path).json(body);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await.expect("request");
    let (status, headers) = (response.status(), response.headers().clone());
    (status, response.json().await.unwrap_or_default(), headers)
}

fn id_of(job: &Value) -> Uuid {
    job["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("a job id")
}

#[tokio::test]
async fn json_jobs_run_and_invalid_ones_are_422_with_nothing_stored() {
    let mut stack = Stack::new().await;
    let invalid = [
        (
            json!({"kind": "nope"}),
            "unknown job kind \"nope\" (known: export_xlsx, import_xlsx, noop, sleep, webhook)",
        ),
        (
            json!({"kind": "sleep", "payload": {"ms": "x"}}),
            "invalid payload",
        ),
        (
            json!({"kind": "sleep", "payload": {"ms": 99_999_999}}),
            "`ms` must be at most",
        ),
        (
            json!({"kind": "sleep", "payload": {"ms": 1, "extra": 1}}),
            "invalid payload",
        ),
        (
            json!({"kind": "import_xlsx"}),
            "created by uploading a file",
        ),
        (
            json!({"kind": "noop", "priority": 10}),
            "`priority` must be 0 to 9",
        ),
        (json!({"payload": {}}), "kind"),
    ];
    for (body, expected) in invalid {
        let (status, answer) = stack.post_json("/api/jobs", &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{body}: {message}");
    }
    assert_eq!(stack.env.count("jobs").await, 0, "nothing stored");

    stack.start_worker("w1", 2, Duration::ZERO);
    let noop = json!({"kind": "noop", "priority": 5});
    let (status, job, headers) = post_keyed(&stack, "/api/jobs", &noop, None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        headers["location"].to_str().ok(),
        Some(format!("/api/jobs/{}", id_of(&job)).as_str())
    );
    assert_eq!(
        (job["kind"].as_str(), job["priority"].as_i64()),
        (Some("noop"), Some(5))
    );
    let done = stack.env.wait_until_ended(id_of(&job)).await;
    assert_eq!(
        (done.status, done.message.as_deref()),
        (JobStatus::Succeeded, Some("Done"))
    );
}

#[tokio::test]
async fn a_batch_is_stored_whole_or_not_at_all() {
    let mut stack = Stack::new().await;
    let mut jobs: Vec<Value> = (0..3).map(|_| json!({"kind": "noop"})).collect();
    jobs.push(json!({"kind": "sleep", "payload": {}}));
    let (status, answer) = stack
        .post_json("/api/jobs/batch", &json!({ "jobs": jobs }))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        answer["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("jobs[3]: "),
        "{answer}"
    );
    assert_eq!(stack.env.count("jobs").await, 0);

    let jobs: Vec<Value> = (0..20)
        .map(|ms| json!({"kind": "sleep", "payload": {"ms": ms}}))
        .collect();
    let (status, answer) = stack
        .post_json("/api/jobs/batch", &json!({ "jobs": jobs }))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let ids: Vec<Uuid> = answer["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(ids.len(), 20);
    stack.start_worker("w1", 4, Duration::ZERO);
    for id in ids {
        assert_eq!(
            stack.env.wait_until_ended(id).await.status,
            JobStatus::Succeeded
        );
    }
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_same_job() {
    let stack = Stack::new().await;
    let body = json!({"kind": "noop", "user_id": "alice"});
    let (first, job, headers) = post_keyed(&stack, "/api/jobs", &body, Some("order-42")).await;
    assert_eq!(first, StatusCode::ACCEPTED);
    assert!(headers.get("idempotent-replayed").is_none());
    let (again, same, headers) = post_keyed(&stack, "/api/jobs", &body, Some("order-42")).await;
    assert_eq!(again, StatusCode::ACCEPTED);
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(id_of(&same), id_of(&job));
    // Keys are scoped by owner tag: bob's "order-42" is another job.
    let bob = json!({"kind": "noop", "user_id": "bob"});
    let (_, other, _) = post_keyed(&stack, "/api/jobs", &bob, Some("order-42")).await;
    assert_ne!(id_of(&other), id_of(&job));
    assert_eq!(stack.env.count("jobs").await, 2);
    assert_eq!(
        stack
            .wait_for_ready(&stack.env.topology.work_queue, 2)
            .await,
        2,
        "one message per job"
    );
}

#[tokio::test]
async fn cancel_stops_queued_jobs_at_once_and_running_ones_at_their_next_step() {
    let mut stack = Stack::new().await;
    let (_, queued) = stack.post_json("/api/jobs", &json!({"kind": "noop"})).await;
    let (status, cancelled) = stack
        .post(&format!("/api/jobs/{}/cancel", id_of(&queued)))
        .await;
    assert_eq!(
        (status, cancelled["status"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );

    stack.start_worker("w1", 2, Duration::ZERO);
    let (_, long) = stack
        .post_json(
            "/api/jobs",
            &json!({"kind": "sleep", "payload": {"ms": 30_000}}),
        )
        .await;
    let id = id_of(&long);
    stack
        .env
        .wait_for_job(id, "processing", |j| j.status == JobStatus::Processing)
        .await;
    let (status, asked) = stack.post(&format!("/api/jobs/{id}/cancel")).await;
    assert_eq!(
        (status, asked["cancel_requested"].as_bool()),
        (StatusCode::ACCEPTED, Some(true))
    );
    let ended = stack.env.wait_until_ended(id).await;
    assert_eq!(ended.status, JobStatus::Cancelled);

    let detail: Value = stack
        .get_response(&format!("/api/jobs/{id}"))
        .await
        .json()
        .await
        .expect("json");
    let events: Vec<&str> = detail["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert_eq!(
        events,
        ["queued", "processing", "cancel_requested", "cancelled"]
    );
    let (status, _) = stack.post(&format!("/api/jobs/{id}/cancel")).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "an ended job cannot be cancelled"
    );

    // The queued job's message was consumed and acked without running it.
    stack.stop_workers().await;
    assert_eq!(
        stack
            .env
            .ready_messages(&stack.env.topology.work_queue)
            .await
            .ok(),
        Some(0)
    );
    let first = stack.env.wait_until_ended(id_of(&queued)).await;
    assert_eq!((first.status, first.attempts), (JobStatus::Cancelled, 0));
}

#[tokio::test]
async fn retry_runs_a_failed_job_again_and_keeps_its_history() {
    let mut stack = Stack::new().await;
    stack.start_worker("w1", 1, Duration::ZERO);
    let id = stack
        .enqueue_upload("bad.xlsx", BadFixture::NonNumericId.bytes())
        .await;
    assert_eq!(
        stack.env.wait_until_ended(id).await.status,
        JobStatus::Failed
    );
    let (status, job) = stack.post(&format!("/api/jobs/{id}/retry")).await;
    assert_eq!(
        (status, job["status"].as_str()),
        (StatusCode::ACCEPTED, Some("queued"))
    );
    let again = stack.env.wait_until_ended(id).await;
    assert_eq!((again.status, again.attempts), (JobStatus::Failed, 1));
    let detail: Value = stack
        .get_response(&format!("/api/jobs/{id}"))
        .await
        .json()
        .await
        .expect("json");
    let events: Vec<&str> = detail["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert_eq!(
        events,
        [
            "queued",
            "processing",
            "failed",
            "queued",
            "processing",
            "failed"
        ]
    );
    let failed = &detail["events"][2];
    assert!(failed["detail"]
        .as_str()
        .unwrap_or_default()
        .starts_with("row 7, column Id"));
    assert_eq!(
        (failed["worker"].as_str(), failed["attempt"].as_i64()),
        (Some("w1"), Some(1))
    );

    let ok = stack
        .enqueue_upload(&mock_file_name(2), fixture(&mock_file_name(2)))
        .await;
    stack.env.wait_until_ended(ok).await;
    let (status, _) = stack.post(&format!("/api/jobs/{ok}/retry")).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a succeeded job is not retried"
    );
}

#[tokio::test]
async fn an_export_writes_the_filtered_rows_as_a_downloadable_xlsx() {
    let mut stack = Stack::new().await;
    stack.start_worker("w1", 2, Duration::ZERO);
    let source = stack
        .enqueue_upload(&mock_file_name(1), fixture(&mock_file_name(1)))
        .await;
    let response = stack
        .get_response(&format!("/api/jobs/{source}/result"))
        .await;
    assert!(matches!(
        response.status(),
        StatusCode::CONFLICT | StatusCode::NOT_FOUND
    ));
    stack.env.wait_until_ended(source).await;
    assert_eq!(
        stack
            .get_response(&format!("/api/jobs/{source}/result"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    let body =
        json!({"kind": "export_xlsx", "payload": {"source_job_id": source, "gender": "female"}});
    let (_, export) = stack.post_json("/api/jobs", &body).await;
    let export = stack.env.wait_until_ended(id_of(&export)).await;
    assert_eq!(export.status, JobStatus::Succeeded, "{:?}", export.message);
    let expected: Vec<_> = mock_data(1)
        .into_iter()
        .filter(|p| p.gender == "Female")
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(export.rows_imported, Some(expected.len() as i64));

    let response = stack
        .get_response(&format!("/api/jobs/{}/result", export.id))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-disposition"]
        .to_str()
        .unwrap_or_default()
        .contains(".xlsx"));
    let bytes = response.bytes().await.expect("body").to_vec();
    let mut workbook = Xlsx::new(Cursor::new(bytes)).expect("an xlsx");
    let range = workbook.worksheet_range("Data").expect("sheet Data");
    let emails: Vec<String> = range.rows().skip(1).map(|r| r[3].to_string()).collect();
    assert_eq!(
        emails,
        expected.iter().map(|p| p.email.clone()).collect::<Vec<_>>()
    );
    assert!(
        matches!(range.rows().nth(1).map(|r| &r[0]), Some(Data::Float(_))),
        "ids are numbers"
    );
}

#[tokio::test]
async fn job_events_stream_progress_until_the_job_ends() {
    let mut stack = Stack::new().await;
    stack.start_worker("w1", 1, Duration::ZERO);
    let (_, job) = stack
        .post_json(
            "/api/jobs",
            &json!({"kind": "sleep", "payload": {"ms": 1500}}),
        )
        .await;
    let mut response = stack
        .get_response(&format!("/api/jobs/{}/events", id_of(&job)))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .starts_with("text/event-stream"));
    let mut text = String::new();
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(chunk) = response.chunk().await.expect("chunk") {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    });
    read.await.expect("the stream ends with the job");
    let updates: Vec<Value> = text
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .filter_map(|data| serde_json::from_str(data.trim()).ok())
        .collect();
    let statuses: Vec<&str> = updates
        .iter()
        .filter_map(|u| u["status"].as_str())
        .collect();
    assert_eq!(statuses.last(), Some(&"succeeded"), "{statuses:?}");
    assert!(statuses.contains(&"processing"));
    let partial = updates.iter().any(|u| {
        u["status"] == "processing"
            && u["progress_done"]
                .as_i64()
                .is_some_and(|d| d > 0 && d < 1500)
            && u["progress_total"].as_i64() == Some(1500)
    });
    assert!(partial, "a progress update mid-run: {updates:?}");

    // The finished job keeps its final figures; its live row is gone.
    let finished: Value = stack
        .get_response(&format!("/api/jobs/{}", id_of(&job)))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        (
            finished["progress_done"].as_i64(),
            finished["progress_total"].as_i64()
        ),
        (Some(1500), Some(1500)),
        "{finished}"
    );
    let live: i64 = sqlx::query_scalar("SELECT count(*) FROM job_progress WHERE job_id = $1")
        .bind(id_of(&job))
        .fetch_one(&stack.env.db)
        .await
        .expect("count");
    assert_eq!(live, 0);
}

#[tokio::test]
async fn run_at_holds_a_job_until_its_time() {
    let mut stack = Stack::new().await;
    stack.start_worker("w1", 1, Duration::ZERO);
    let run_at = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let (status, job) = stack
        .post_json("/api/jobs", &json!({"kind": "noop", "run_at": run_at}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let done = stack.env.wait_until_ended(id_of(&job)).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    let started = done.started_at.expect("started");
    assert!(
        started >= run_at - chrono::Duration::milliseconds(50),
        "ran at {started}, due {run_at}"
    );
    assert_eq!(done.attempts, 1, "parking is not an attempt");
}

//! Workflows end to end, through the api and a real worker: an export that waits for its
//! import and takes its rows from it, a failed parent cancelling its child, a batch whose
//! callback runs once, and the same at the largest batch there is (10,000 members).

mod support;

use std::time::Duration;

use burrow_shared::engine::batches::{BatchStatus, MAX_MEMBERS};
use burrow_shared::fixtures::{mock_data, mock_file_name};
use burrow_shared::testing::batch_checks::{runs_of, wait_for_batch_end, Runs};
use burrow_shared::JobStatus;
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{fixture, Stack};
use tokio::time::Instant;
use uuid::Uuid;

/// Longest a 10,000-member batch may take from its request to its last callback ending: about
/// ten times what two debug-build workers need on 2 shared cores.
const LARGEST_BATCH_DEADLINE: Duration = Duration::from_secs(180);

fn id_of(job: &Value) -> Uuid {
    job["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("a job id in {job}"))
}

#[tokio::test]
async fn an_export_waits_for_its_import_and_reads_its_rows_and_output() {
    let mut stack = Stack::new().await;
    let import = stack
        .enqueue_upload(&mock_file_name(1), fixture(&mock_file_name(1)))
        .await;
    let body =
        json!({"kind": "export_xlsx", "payload": {"gender": "female"}, "depends_on": [import]});
    let (status, export) = stack.post_json("/api/jobs", &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{export}");
    let export = id_of(&export);
    // No worker yet: the export cannot have run before its import.
    let (_, page) = stack.get(&format!("/api/jobs/{export}")).await;
    assert_eq!(page["status"], "awaiting");
    assert_eq!(page["parents"][0]["id"], import.to_string());

    stack.start_worker("w1", 2, Duration::ZERO);
    let export = stack.env.wait_until_ended(export).await;
    assert_eq!(export.status, JobStatus::Succeeded, "{:?}", export.message);
    let females = mock_data(1)
        .into_iter()
        .filter(|p| p.gender == "Female")
        .count();
    assert_eq!(export.rows_imported, Some(females as i64));
    assert_eq!(
        export.output,
        Some(json!({"rows": females, "source_job_id": import}))
    );
    let (_, page) = stack.get(&format!("/api/jobs/{import}")).await;
    assert_eq!(page["output"]["rows"], json!(mock_data(1).len()));
    assert_eq!(page["children"][0]["id"], export.id.to_string());
}

#[tokio::test]
async fn a_child_of_a_failed_job_is_cancelled_with_the_reason_and_unknown_parents_are_422() {
    let mut stack = Stack::new().await;
    stack.start_worker("w1", 2, Duration::ZERO);
    let (status, refused) = stack
        .post_json(
            "/api/jobs",
            &json!({"kind": "noop", "depends_on": [Uuid::now_v7()]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");

    // An export of a job that is not an import fails for good.
    let (_, parent) = stack
        .post_json(
            "/api/jobs",
            &json!({"kind": "export_xlsx", "payload": {"source_job_id": Uuid::now_v7()}}),
        )
        .await;
    let parent = id_of(&parent);
    let (_, child) = stack
        .post_json(
            "/api/jobs",
            &json!({"kind": "noop", "depends_on": [parent]}),
        )
        .await;
    let child = stack.env.wait_until_ended(id_of(&child)).await;
    assert_eq!(child.status, JobStatus::Cancelled);
    assert_eq!(
        child.message,
        Some(format!("Cancelled: parent {parent} ended failed"))
    );
}

#[tokio::test]
async fn a_batch_runs_its_members_then_its_callback_once() {
    let mut stack = Stack::new().await;
    stack.start_worker("w1", 4, Duration::ZERO);
    let members: Vec<Value> = (0..50).map(|_| json!({"kind": "noop"})).collect();
    let body = json!({
        "jobs": members,
        "on_complete": {"kind": "noop"},
        "on_success": {"kind": "noop"},
        "description": "fifty noops",
    });
    let (status, created) = stack.post_json("/api/batches", &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let batch = created["batch"]["id"]
        .as_str()
        .expect("batch id")
        .to_owned();
    assert_eq!(created["job_ids"].as_array().map(Vec::len), Some(50));
    let on_complete: Uuid = created["batch"]["on_complete"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("on_complete");
    let callback = stack.env.wait_until_ended(on_complete).await;
    assert_eq!(callback.status, JobStatus::Succeeded);
    let (_, summary) = stack.get(&format!("/api/batches/{batch}")).await;
    assert_eq!(summary["status"], "succeeded", "{summary}");
    assert_eq!(summary["counts"]["succeeded"], 50);
    assert_eq!(summary["description"], "fifty noops");
    let runs: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM job_events WHERE job_id = $1 AND event = 'processing'",
    )
    .bind(on_complete)
    .fetch_one(&stack.env.db)
    .await
    .expect("db");
    assert_eq!(runs, 1, "the callback ran once");

    let (status, refused) = stack
        .post_json(
            "/api/batches",
            &json!({"jobs": [{"kind": "noop", "idempotency_key": "k"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or_default()
            .contains("jobs[0]: "),
        "{refused}"
    );
    let (status, _) = stack.get(&format!("/api/batches/{}", Uuid::now_v7())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The largest batch: 10,000 noop members end on two workers (so members end at the same
/// moment in two processes' transactions, each reaching the callbacks' rows), and each callback
/// is released by exactly one of them: one outbox message, one `queued` event, one claim, one
/// attempt, after the last member ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_ten_thousand_members_releases_each_callback_exactly_once() {
    let mut stack = Stack::new().await;
    stack.start_worker("w1", 16, Duration::ZERO);
    stack.start_worker("w2", 16, Duration::ZERO);
    let members: Vec<Value> = (0..MAX_MEMBERS).map(|_| json!({"kind": "noop"})).collect();
    let body = json!({
        "jobs": members,
        "on_complete": {"kind": "noop"},
        "on_success": {"kind": "noop"},
    });
    let started = Instant::now();
    let (status, created) = stack.post_json("/api/batches", &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let enqueued = started.elapsed();
    let batch: Uuid = created["batch"]["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("batch id");

    let (summary, ended) = wait_for_batch_end(&stack.env.db, batch, LARGEST_BATCH_DEADLINE).await;
    let summary = summary.expect("the batch's summary");
    assert!(
        ended,
        "not ended after {LARGEST_BATCH_DEADLINE:?}: {:?}",
        summary.counts
    );
    eprintln!(
        "10,000-member batch: stored in {:.1} s, ended after {:.1} s",
        enqueued.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(summary.status, BatchStatus::Succeeded, "{summary:?}");
    assert_eq!(summary.members, MAX_MEMBERS as i64);
    assert_eq!(
        summary.counts.get("succeeded").copied(),
        Some(MAX_MEMBERS as i64),
        "{:?}",
        summary.counts
    );
    let last_member_ended = summary.completed_at.expect("completed_at");
    let callbacks = [summary.on_success, summary.on_complete];
    for id in callbacks.into_iter().map(|id| id.expect("both callbacks")) {
        let callback = stack.env.wait_until_ended(id).await;
        assert_eq!(callback.status, JobStatus::Succeeded, "{callback:?}");
        assert!(
            callback
                .started_at
                .is_some_and(|at| at >= last_member_ended),
            "callback {id} started {:?}, before the last member ended at {last_member_ended}",
            callback.started_at
        );
        let runs = runs_of(&stack.env.db, id).await.expect("runs");
        assert_eq!(runs, Runs::ONCE, "callback {id}");
    }
    // No member ran twice either: one claim each (the workers were never interrupted).
    let claims: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM job_events e JOIN jobs j ON j.id = e.job_id \
         WHERE j.batch_id = $1 AND e.event = 'processing'",
    )
    .bind(batch)
    .fetch_one(&stack.env.db)
    .await
    .expect("db");
    assert_eq!(claims, MAX_MEMBERS as i64);
    stack.stop().await;
}

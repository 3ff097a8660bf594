//! Workflows end to end, through the api and a real worker: an export that waits for its
//! import and takes its rows from it, a failed parent cancelling its child, and a batch whose
//! callback runs once.

mod support;

use std::time::Duration;

use burrow_shared::fixtures::{mock_data, mock_file_name};
use burrow_shared::JobStatus;
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{fixture, Stack};
use uuid::Uuid;

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

//! A batch followed from outside: its event stream (`GET /api/batches/{id}/events`) from
//! queued to settled, and its members listed with `GET /api/jobs?batch_id=`.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::Stack;
use uuid::Uuid;

/// The `data` of each event of an SSE body.
fn events(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .filter_map(|data| serde_json::from_str(data.trim()).ok())
        .collect()
}

#[tokio::test]
async fn a_batch_streams_its_counts_until_its_callback_ended_and_lists_its_members() {
    let mut stack = Stack::new().await;
    let body = json!({
        "jobs": (0..3).map(|_| json!({"kind": "noop"})).collect::<Vec<_>>(),
        "on_complete": {"kind": "noop"},
    });
    let (status, created) = stack.post_json("/api/batches", &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let batch = created["batch"]["id"]
        .as_str()
        .expect("batch id")
        .to_owned();

    // The stream opens before any worker runs, so its first event is the batch untouched.
    let mut response = stack
        .get_response(&format!("/api/batches/{batch}/events"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    stack.start_worker("w1", 2, Duration::ZERO);
    let mut text = String::new();
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(chunk) = response.chunk().await.expect("chunk") {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    });
    read.await.expect("the stream ends once the batch settled");
    assert!(text.contains("event: batch"), "{text}");
    let updates = events(&text);
    let first = updates.first().expect("a first event");
    assert_eq!(first["status"], "running", "{first}");
    assert_eq!(first["counts"]["queued"], 3, "{first}");
    assert_eq!(first["on_complete_status"], "awaiting", "{first}");
    let last = updates.last().expect("a last event");
    assert_eq!(last["status"], "succeeded", "{last}");
    assert_eq!(last["counts"], json!({"succeeded": 3}), "{last}");
    assert_eq!(last["on_complete_status"], "succeeded", "{last}");
    assert!(
        updates.windows(2).all(|pair| pair[0] != pair[1]),
        "an event per change only: {updates:?}"
    );

    // A settled batch's stream is one event, then the end.
    let settled = stack
        .get_response(&format!("/api/batches/{batch}/events"))
        .await
        .text()
        .await
        .expect("body");
    assert_eq!(events(&settled), vec![last.clone()]);

    let (status, page) = stack.get(&format!("/api/jobs?batch_id={batch}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let mut listed: Vec<String> = page["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|job| job["id"].as_str().expect("id").to_owned())
        .collect();
    let mut members: Vec<String> = created["job_ids"]
        .as_array()
        .expect("job_ids")
        .iter()
        .map(|id| id.as_str().expect("id").to_owned())
        .collect();
    listed.sort();
    members.sort();
    assert_eq!(listed, members, "the members, not the callback");

    let (status, _) = stack.get("/api/jobs?batch_id=not-a-uuid").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let unknown = Uuid::now_v7();
    let (status, _) = stack.get(&format!("/api/batches/{unknown}/events")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

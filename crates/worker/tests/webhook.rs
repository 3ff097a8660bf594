//! The `webhook` kind end to end: a job submitted to the api, run by a real `burrow-worker`
//! process configured by its `WEBHOOK_*` variables, POSTing to a receiver on loopback.

mod support;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use burrow_shared::kinds::webhook::{verify, AllowedHosts, WebhookSecret};
use burrow_shared::kinds::WebhookConfig;
use burrow_shared::JobStatus;
use serde_json::{json, Value};
use support::worker_process::spawn_worker;
use support::{AppState, Stack};
use uuid::Uuid;

/// What the receiver got, and the status it answers with.
#[derive(Clone)]
struct Receiver {
    status: StatusCode,
    received: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
}

async fn record(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    receiver
        .received
        .lock()
        .expect("lock")
        .push((headers, body));
    receiver.status
}

/// A receiver on 127.0.0.1 answering `status` at `/hook`: its URL and what it got.
async fn receiver(status: StatusCode) -> (String, Arc<Mutex<Vec<(HeaderMap, Bytes)>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .route("/hook", post(record))
        .with_state(Receiver {
            status,
            received: received.clone(),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

/// An api that accepts webhooks to loopback (as `WEBHOOK_ALLOWED_HOSTS=127.0.0.1` would), and
/// a worker process with that list and `secret`.
async fn stack_and_worker(secret: &str) -> (Stack, support::worker_process::WorkerProcess) {
    let stack = Stack::new_with(|state| AppState {
        registry: burrow_shared::kinds::shipped(
            Default::default(),
            WebhookConfig {
                allowed_hosts: AllowedHosts::parse("127.0.0.1").expect("hosts"),
                ..WebhookConfig::default()
            },
        ),
        ..state
    })
    .await;
    let worker = spawn_worker(
        &stack,
        &[
            ("WEBHOOK_ALLOWED_HOSTS", "127.0.0.1"),
            ("WEBHOOK_SECRET", secret),
            ("WEBHOOK_TIMEOUT_SECS", "5"),
        ],
    )
    .await;
    (stack, worker)
}

async fn submit(stack: &Stack, payload: Value) -> Uuid {
    let (status, job) = stack
        .post_json(
            "/api/jobs",
            &json!({ "kind": "webhook", "payload": payload }),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{job}");
    job["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("job id")
}

#[tokio::test]
async fn a_worker_posts_one_signed_webhook_and_the_job_succeeds() {
    let secret = WebhookSecret::from_key(vec![42; 32]).expect("key").encode();
    let (stack, _worker) = stack_and_worker(&secret).await;
    let (url, received) = receiver(StatusCode::NO_CONTENT).await;

    let id = submit(&stack, json!({ "url": url, "body": {"batch": "done"} })).await;
    let job = stack.env.wait_until_ended(id).await;

    assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.message);
    assert_eq!(job.message.as_deref(), Some(&*format!("POST {url} → 204")));
    let received = received.lock().expect("lock").clone();
    assert_eq!(received.len(), 1);
    let (headers, body) = &received[0];
    let header = |name: &str| headers[name].to_str().expect("ascii").to_owned();
    assert_eq!(header("webhook-id"), id.to_string());
    assert_eq!(
        serde_json::from_slice::<Value>(body).expect("JSON"),
        json!({"batch": "done"})
    );
    assert!(verify(
        &secret,
        &header("webhook-id"),
        &header("webhook-timestamp"),
        body,
        &header("webhook-signature"),
    ));
}

#[tokio::test]
async fn a_404_fails_the_job_without_a_retry() {
    let secret = WebhookSecret::from_key(vec![7; 32]).expect("key").encode();
    let (stack, _worker) = stack_and_worker(&secret).await;
    let (url, received) = receiver(StatusCode::NOT_FOUND).await;

    let id = submit(&stack, json!({ "url": url })).await;
    let job = stack.env.wait_until_ended(id).await;

    assert_eq!(job.status, JobStatus::Failed, "{:?}", job.message);
    assert_eq!(job.attempts, 1);
    let message = job.message.unwrap_or_default();
    assert!(message.contains("404 Not Found"), "{message}");
    assert_eq!(received.lock().expect("lock").len(), 1);
}

#[tokio::test]
async fn the_api_refuses_a_webhook_to_a_host_not_allowed() {
    let stack = Stack::new().await;
    let (status, answer) = stack
        .post_json(
            "/api/jobs",
            &json!({ "kind": "webhook", "payload": { "url": "http://127.0.0.1:9/hook" } }),
        )
        .await;
    assert_eq!(
        status,
        reqwest::StatusCode::UNPROCESSABLE_ENTITY,
        "{answer}"
    );
    assert!(
        answer.to_string().contains("WEBHOOK_ALLOWED_HOSTS"),
        "{answer}"
    );
}

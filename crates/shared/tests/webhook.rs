//! The `webhook` kind against a real HTTP receiver on loopback (axum on 127.0.0.1:0) that
//! records each request and answers as the test scripts it. Each run gets a real job row and
//! run transaction from its own database ([`TestEnv`]), as the worker would give it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use burrow_shared::handler::{JobError, JobHandler, JobOutput, RunContext, RunTx};
use burrow_shared::kinds::webhook::{verify, AllowedHosts, WebhookSecret};
use burrow_shared::kinds::{Webhook, WebhookConfig, WebhookPayload};
use burrow_shared::progress::Progress;
use burrow_shared::testing::TestEnv;
use burrow_shared::{jobs, NewJob};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// The timestamp the tests sign with.
const NOW: i64 = 1_767_225_600;

/// One request as the receiver got it.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// How the receiver answers: a status, headers, a body, after a delay.
#[derive(Clone)]
struct Script {
    status: StatusCode,
    headers: Vec<(&'static str, &'static str)>,
    body: &'static str,
    delay: Duration,
}

impl Script {
    fn status(code: u16) -> Script {
        Script {
            status: StatusCode::from_u16(code).expect("status"),
            headers: Vec::new(),
            body: "",
            delay: Duration::ZERO,
        }
    }
}

#[derive(Clone)]
struct Receiver {
    script: Script,
    received: Arc<Mutex<Vec<Received>>>,
}

async fn record(
    State(receiver): State<Receiver>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    receiver.received.lock().expect("lock").push(Received {
        path: uri.path().to_owned(),
        headers,
        body,
    });
    let script = receiver.script;
    tokio::time::sleep(script.delay).await;
    let mut response = (script.status, script.body).into_response();
    for (name, value) in script.headers {
        response
            .headers_mut()
            .insert(name, value.parse().expect("header value"));
    }
    response
}

/// A receiver on loopback answering `script`; its address and what it got.
async fn receiver(script: Script) -> (String, Arc<Mutex<Vec<Received>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .route("/{*path}", post(record))
        .with_state(Receiver {
            script,
            received: received.clone(),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (address, received)
}

fn secret() -> WebhookSecret {
    WebhookSecret::from_key((0u8..32).collect()).expect("key")
}

/// The kind, allowed to call `hosts`, with the test secret and clock.
fn webhook(hosts: &str, timeout: Duration) -> Webhook {
    Webhook::new(WebhookConfig {
        allowed_hosts: AllowedHosts::parse(hosts).expect("hosts"),
        secret: Some(secret()),
        timeout,
    })
    .with_clock(|| NOW)
}

/// Stores a webhook job with `payload` and runs `handler` on it once, as the worker would.
async fn run(
    env: &TestEnv,
    handler: &Webhook,
    payload: Value,
) -> (uuid::Uuid, Result<JobOutput, JobError>) {
    let job = env
        .insert_job(NewJob {
            payload: payload.clone(),
            ..NewJob::new(Webhook::KIND)
        })
        .await
        .expect("job");
    let result = run_stored(env, handler, &job).await;
    (job.id, result)
}

/// Runs `handler` once on the stored webhook job `job`, as the worker would.
async fn run_stored(
    env: &TestEnv,
    handler: &Webhook,
    job: &jobs::JobRow,
) -> Result<JobOutput, JobError> {
    let payload: WebhookPayload = serde_json::from_value(job.payload.clone()).expect("payload");
    let mut slot = None;
    let ctx = RunContext {
        job,
        tx: RunTx::new(&env.db, &mut slot),
        cancel: CancellationToken::new(),
        progress: Progress::default(),
    };
    handler.run(ctx, payload).await
}

fn requests(received: &Mutex<Vec<Received>>) -> Vec<Received> {
    received.lock().expect("lock").clone()
}

#[tokio::test]
async fn a_2xx_succeeds_and_the_request_is_signed_as_standard_webhooks_say() {
    let env = TestEnv::new().await.expect("services");
    let (address, received) = receiver(Script::status(204)).await;
    let handler = webhook("127.0.0.1", Duration::from_secs(5));
    let url = format!("http://{address}/hooks/done");
    let (id, result) = run(
        &env,
        &handler,
        json!({"url": url, "body": {"event": "done", "n": 3}}),
    )
    .await;

    let output = result.expect("success");
    assert_eq!(output.message, format!("POST {url} → 204"));
    let requests = requests(&received);
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.path, "/hooks/done");
    let header = |name: &str| request.headers[name].to_str().expect("ascii").to_owned();
    assert_eq!(header("content-type"), "application/json");
    assert_eq!(header("webhook-id"), id.to_string());
    assert_eq!(header("webhook-timestamp"), NOW.to_string());
    assert!(header("webhook-signature").starts_with("v1,"));
    let body: Value = serde_json::from_slice(&request.body).expect("JSON body");
    assert_eq!(body, json!({"event": "done", "n": 3}));
    assert!(verify(
        &secret().encode(),
        &header("webhook-id"),
        &header("webhook-timestamp"),
        &request.body,
        &header("webhook-signature"),
    ));
    let other = WebhookSecret::from_key(vec![0; 32]).expect("key").encode();
    assert!(!verify(
        &other,
        &header("webhook-id"),
        &header("webhook-timestamp"),
        &request.body,
        &header("webhook-signature"),
    ));
}

#[tokio::test]
async fn without_a_body_the_default_body_is_sent() {
    let env = TestEnv::new().await.expect("services");
    let (address, received) = receiver(Script::status(200)).await;
    let handler = webhook(&address, Duration::from_secs(5));
    let (job, result) = run(
        &env,
        &handler,
        json!({"url": format!("http://{address}/x")}),
    )
    .await;

    let job = result.map(|_| job);
    let requests = requests(&received);
    assert_eq!(requests.len(), 1);
    let body: Value = serde_json::from_slice(&requests[0].body).expect("JSON");
    assert_eq!(
        body,
        json!({"job_id": job.expect("success"), "parents": [], "batch": null})
    );
}

#[tokio::test]
async fn a_batch_callback_reports_its_batch_and_parents_by_default() {
    use burrow_shared::engine::batches::{enqueue_batch, NewBatch};
    use burrow_shared::state::{self, Transition};

    let env = TestEnv::new().await.expect("services");
    let (address, received) = receiver(Script::status(204)).await;
    let handler = webhook(&address, Duration::from_secs(5));
    let payload = json!({"url": format!("http://{address}/done")});
    let member = NewJob::new("noop");
    let callback = NewJob {
        payload: payload.clone(),
        ..NewJob::new(Webhook::KIND)
    };
    let mut conn = env.db.acquire().await.expect("connection");
    let batch = enqueue_batch(&mut conn, NewBatch::of(vec![member]).on_complete(callback))
        .await
        .expect("batch");
    let member = batch.members[0].job.id;
    sqlx::query("UPDATE jobs SET status = 'processing' WHERE id = $1")
        .bind(member)
        .execute(&env.db)
        .await
        .expect("claim");
    let done = Transition::Succeed {
        message: "ok",
        rows: None,
        output: Some(&json!({"n": 1})),
    };
    assert!(state::apply(&env.db, member, done).await.expect("db"));

    let callback = jobs::find_job(&env.db, batch.on_complete.expect("callback").job.id)
        .await
        .expect("db")
        .expect("job");
    run_stored(&env, &handler, &callback)
        .await
        .expect("success");
    let requests = requests(&received);
    let body: Value = serde_json::from_slice(&requests[0].body).expect("JSON");
    assert_eq!(body["job_id"], json!(callback.id));
    assert_eq!(body["parents"][0]["id"], json!(member));
    assert_eq!(body["parents"][0]["output"], json!({"n": 1}));
    assert_eq!(body["batch"]["id"], json!(batch.id));
    assert_eq!(body["batch"]["status"], "succeeded");
    assert_eq!(body["batch"]["counts"]["succeeded"], 1);
}

/// One run against a receiver answering `script`, loopback allowed, with `timeout`: the result
/// and the requests the receiver got.
async fn exchange(
    script: Script,
    timeout: Duration,
) -> (Result<JobOutput, JobError>, Vec<Received>) {
    let env = TestEnv::new().await.expect("services");
    let (address, received) = receiver(script).await;
    let handler = webhook("127.0.0.1", timeout);
    let (_, result) = run(
        &env,
        &handler,
        json!({"url": format!("http://{address}/x")}),
    )
    .await;
    (result, requests(&received))
}

#[tokio::test]
async fn a_500_is_retryable() {
    let (result, requests) = exchange(Script::status(500), Duration::from_secs(5)).await;

    let Err(JobError::Retryable(reason)) = result else {
        panic!("500 should be retryable: {result:?}");
    };
    assert!(reason.contains("500 Internal Server Error"), "{reason}");
    assert_eq!(requests.len(), 1);
}

#[tokio::test]
async fn a_503_with_retry_after_waits_that_long() {
    let script = Script {
        headers: vec![("retry-after", "7")],
        ..Script::status(503)
    };
    let (result, _) = exchange(script, Duration::from_secs(5)).await;

    let Err(JobError::RetryAfter { after, .. }) = result else {
        panic!("503 with Retry-After: {result:?}");
    };
    assert_eq!(after, Duration::from_secs(7));
}

#[tokio::test]
async fn a_404_fails_with_the_status_and_a_clipped_excerpt_of_the_answer() {
    let script = Script {
        body: "no such hook ".repeat(100).leak(),
        ..Script::status(404)
    };
    let (result, requests) = exchange(script, Duration::from_secs(5)).await;

    let Err(JobError::Permanent(reason)) = result else {
        panic!("404 should be permanent: {result:?}");
    };
    assert!(
        reason.contains("→ 404 Not Found: no such hook no such"),
        "{reason}"
    );
    let excerpt = reason.split_once(": ").expect("excerpt").1;
    assert!(excerpt.chars().count() <= 501, "{}", excerpt.len());
    assert!(excerpt.ends_with('…'), "{excerpt}");
    assert_eq!(requests.len(), 1);
}

#[tokio::test]
async fn a_302_fails_and_is_not_followed() {
    let script = Script {
        headers: vec![("location", "/elsewhere")],
        ..Script::status(302)
    };
    let (result, requests) = exchange(script, Duration::from_secs(5)).await;

    let Err(JobError::Permanent(reason)) = result else {
        panic!("302 should be permanent: {result:?}");
    };
    assert!(reason.contains("302 Found"), "{reason}");
    assert!(reason.contains("not followed"), "{reason}");
    let paths: Vec<String> = requests.into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/x"]);
}

#[tokio::test]
async fn a_receiver_slower_than_the_timeout_is_retryable() {
    let script = Script {
        delay: Duration::from_secs(5),
        ..Script::status(204)
    };
    let (result, requests) = exchange(script, Duration::from_millis(300)).await;

    let Err(JobError::Retryable(reason)) = result else {
        panic!("a timeout is retryable: {result:?}");
    };
    assert!(reason.contains("no answer within 0.3 s"), "{reason}");
    assert_eq!(requests.len(), 1);
}

#[tokio::test]
async fn a_host_outside_the_allow_list_fails_without_a_request() {
    let env = TestEnv::new().await.expect("services");
    let (address, received) = receiver(Script::status(204)).await;
    let port = address.rsplit_once(':').expect("port").1;
    // Same machine, another name: the list is of exact hosts.
    let handler = webhook("127.0.0.1", Duration::from_secs(5));
    let url = format!("http://localhost:{port}/x");

    assert!(handler
        .check(&serde_json::from_value(json!({ "url": url })).expect("payload"))
        .is_err());
    let (_, result) = run(&env, &handler, json!({ "url": url })).await;
    let Err(JobError::Permanent(reason)) = result else {
        panic!("a host not allowed is permanent: {result:?}");
    };
    assert!(reason.contains("WEBHOOK_ALLOWED_HOSTS"), "{reason}");
    assert!(requests(&received).is_empty());

    // Allowed on another port only: refused as well.
    let handler = webhook("127.0.0.1:1", Duration::from_secs(5));
    let (_, result) = run(
        &env,
        &handler,
        json!({"url": format!("http://{address}/x")}),
    )
    .await;
    assert!(matches!(result, Err(JobError::Permanent(_))), "{result:?}");
    assert!(requests(&received).is_empty());
}

#[tokio::test]
async fn without_a_secret_nothing_is_sent_and_the_job_fails() {
    let env = TestEnv::new().await.expect("services");
    let (address, received) = receiver(Script::status(204)).await;
    let handler = Webhook::new(WebhookConfig {
        allowed_hosts: AllowedHosts::parse("127.0.0.1").expect("hosts"),
        ..WebhookConfig::default()
    });
    let (_, result) = run(
        &env,
        &handler,
        json!({"url": format!("http://{address}/x")}),
    )
    .await;

    let Err(JobError::Permanent(reason)) = result else {
        panic!("no secret is permanent: {result:?}");
    };
    assert!(reason.contains("WEBHOOK_SECRET"), "{reason}");
    assert!(requests(&received).is_empty());
}

#[tokio::test]
async fn a_refused_connection_is_retryable() {
    let env = TestEnv::new().await.expect("services");
    // A port that was free a moment ago: nothing listens there now.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    let handler = webhook("127.0.0.1", Duration::from_secs(5));
    let (_, result) = run(
        &env,
        &handler,
        json!({"url": format!("http://{address}/x")}),
    )
    .await;

    assert!(matches!(result, Err(JobError::Retryable(_))), "{result:?}");
}

#[test]
fn the_api_check_refuses_bad_urls_and_other_schemes() {
    let handler = webhook("example.com", Duration::from_secs(5));
    let check = |url: &str| {
        handler.check(&WebhookPayload {
            url: url.to_owned(),
            body: None,
        })
    };
    assert!(check("https://example.com/hook").is_ok());
    assert!(check("not a url")
        .expect_err("refused")
        .contains("does not parse"));
    assert!(check("ftp://example.com/")
        .expect_err("refused")
        .contains("only http and https"));
    let unconfigured = Webhook::default();
    let error = unconfigured
        .check(&WebhookPayload {
            url: "https://example.com/".to_owned(),
            body: None,
        })
        .expect_err("refused");
    assert!(error.contains("WEBHOOK_ALLOWED_HOSTS is empty"), "{error}");
}

#[test]
fn a_rate_limit_on_webhooks_counts_per_target_host() {
    let handler = webhook("hooks.example.com", Duration::from_secs(1));
    let key = |url: &str| {
        let payload = json!({ "url": url });
        burrow_shared::handler::ErasedHandler::rate_key(&handler, &payload)
    };
    // One key per host, whatever the path, scheme or port; the parser lower-cases the host.
    assert_eq!(
        key("https://Hooks.Example.com/a").as_deref(),
        Some("hooks.example.com")
    );
    assert_eq!(
        key("http://hooks.example.com:8080/b"),
        key("https://hooks.example.com/c")
    );
    assert_ne!(key("https://a.example/x"), key("https://b.example/x"));
    // A payload without a parseable URL counts in the kind's one bucket (its run fails anyway).
    assert_eq!(key("not a url"), None);
    assert_eq!(
        burrow_shared::handler::ErasedHandler::rate_key(&handler, &json!({})),
        None
    );
}

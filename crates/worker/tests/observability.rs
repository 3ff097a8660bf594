//! The worker's observability, end to end: a real `burrow-worker` process (its own metrics
//! recorder, its own HTTP port) runs jobs from an in-process api, and its `/metrics`,
//! `/healthz` and `/readyz` tell the truth about them.

mod support;

use std::time::Duration;

use burrow_shared::JobStatus;
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::worker_process::spawn_worker;
use support::{fixture, Stack};
use uuid::Uuid;

/// Longest wait for the worker's HTTP port to answer, or for metrics to show up (the queue
/// gauges refresh every 5 s).
const DEADLINE: Duration = Duration::from_secs(30);

/// Polls `probe` until it returns `Some`, failing after [`DEADLINE`] with `what`.
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of `series` (name and labels, exactly as rendered) on a Prometheus text page.
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Creates a JSON job of `kind` with `payload`; its id.
async fn enqueue_json(stack: &Stack, kind: &str, payload: Value) -> Uuid {
    let (status, job) = stack
        .post_json("/api/jobs", &json!({ "kind": kind, "payload": payload }))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    job["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("job id")
}

#[tokio::test]
async fn a_worker_process_counts_its_jobs_in_metrics_and_answers_its_probes() {
    let stack = Stack::new().await;
    let mut worker = spawn_worker(&stack, &[("WORKER_CONCURRENCY", "2")]).await;

    let mut noops = Vec::new();
    for _ in 0..3 {
        noops.push(enqueue_json(&stack, "noop", json!({})).await);
    }
    let bad = stack
        .enqueue_upload(
            "bad_non_numeric_id.xlsx",
            fixture("bad_non_numeric_id.xlsx"),
        )
        .await;
    let good = stack
        .enqueue_upload("MOCK_DATA_1.xlsx", fixture("MOCK_DATA_1.xlsx"))
        .await;
    for id in &noops {
        assert_eq!(
            stack.env.wait_until_ended(*id).await.status,
            JobStatus::Succeeded
        );
    }
    assert_eq!(
        stack.env.wait_until_ended(bad).await.status,
        JobStatus::Failed
    );
    assert_eq!(
        stack.env.wait_until_ended(good).await.status,
        JobStatus::Succeeded
    );

    let work_queue = &stack.env.topology.work_queue;
    let dead_letters = &stack.env.topology.dead_letter_queue;
    let expected = [
        (r#"burrow_jobs_started_total{kind="noop"}"#.to_owned(), 3.0),
        (
            r#"burrow_jobs_succeeded_total{kind="noop"}"#.to_owned(),
            3.0,
        ),
        (
            r#"burrow_jobs_started_total{kind="import_xlsx"}"#.to_owned(),
            2.0,
        ),
        (
            r#"burrow_jobs_succeeded_total{kind="import_xlsx"}"#.to_owned(),
            1.0,
        ),
        (
            r#"burrow_jobs_failed_total{kind="import_xlsx"}"#.to_owned(),
            1.0,
        ),
        (
            r#"burrow_job_duration_seconds_count{kind="noop",outcome="succeeded"}"#.to_owned(),
            3.0,
        ),
        (
            r#"burrow_job_duration_seconds_count{kind="import_xlsx",outcome="failed"}"#.to_owned(),
            1.0,
        ),
        (
            r#"burrow_job_rows_total{kind="import_xlsx"}"#.to_owned(),
            200.0,
        ),
        ("burrow_jobs_in_flight".to_owned(), 0.0),
        (
            format!(r#"burrow_queue_messages{{queue="{work_queue}"}}"#),
            0.0,
        ),
        (
            format!(r#"burrow_queue_consumers{{queue="{work_queue}"}}"#),
            1.0,
        ),
        (
            format!(r#"burrow_queue_messages{{queue="{dead_letters}"}}"#),
            0.0,
        ),
    ];
    let page = eventually("every expected sample on /metrics", || async {
        let (status, page) = worker.get("/metrics").await?;
        assert_eq!(status, StatusCode::OK);
        expected
            .iter()
            .all(|(series, value)| sample(&page, series) == Some(*value))
            .then_some(page)
    })
    .await;
    // Nothing was retried, dead-lettered or cancelled: those counters stay at 0 (they are on
    // the page from start-up).
    for counter in [
        "burrow_jobs_retried_total",
        "burrow_jobs_dead_lettered_total",
        "burrow_jobs_cancelled_total",
    ] {
        for kind in ["noop", "import_xlsx"] {
            let series = format!(r#"{counter}{{kind="{kind}"}}"#);
            assert_eq!(sample(&page, &series), Some(0.0), "{series} in {page}");
        }
    }
    assert!(
        page.contains("# TYPE burrow_job_duration_seconds histogram"),
        "{page}"
    );
    let response = reqwest::get(format!("{}/metrics", worker.base))
        .await
        .expect("scrape");
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(content_type.starts_with("text/plain"), "{content_type}");

    let (status, health) = worker.get_json("/healthz").await;
    assert_eq!((status, &health["status"]), (StatusCode::OK, &json!("ok")));
    let (status, ready) = worker.get_json("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(
        (&ready["status"], &ready["postgres"], &ready["consumer"]),
        (&json!("ready"), &json!("up"), &json!("connected")),
        "{ready}"
    );

    worker.stop().await;
    let finished = worker.log_lines("job finished");
    assert_eq!(finished.len(), 5, "one end line per job: {finished:?}");
    for line in &finished {
        let fields = &line["fields"];
        assert!(
            fields["queue_wait_ms"].is_i64() && fields["run_ms"].is_u64(),
            "{line}"
        );
        assert!(
            fields["outcome"] == "succeeded" || fields["outcome"] == "failed",
            "{line}"
        );
    }
}

#[tokio::test]
async fn readyz_is_degraded_while_the_backlog_passes_the_threshold() {
    let stack = Stack::new().await;
    let worker = spawn_worker(
        &stack,
        &[
            ("WORKER_CONCURRENCY", "1"),
            ("WORKER_PREFETCH", "1"),
            ("READY_BACKLOG_THRESHOLD", "1"),
        ],
    )
    .await;
    // One long job holds the only slot; the two behind it stay ready in the work queue.
    let sleeper = enqueue_json(&stack, "sleep", json!({ "ms": 60_000 })).await;
    stack
        .env
        .wait_for_job(sleeper, "the sleeper to start", |job| {
            job.status == JobStatus::Processing
        })
        .await;
    for _ in 0..2 {
        enqueue_json(&stack, "noop", json!({})).await;
    }
    let ready = eventually("/readyz to report the backlog", || async {
        let (status, ready) = worker.get_json("/readyz").await;
        assert_eq!(status, StatusCode::OK, "{ready}");
        (ready["status"] == "degraded").then_some(ready)
    })
    .await;
    assert_eq!(ready["queue_ready"], 2, "{ready}");
    let reasons = ready["reasons"].as_array().expect("reasons");
    assert!(
        reasons
            .iter()
            .any(|r| r.as_str().is_some_and(|r| r.starts_with("backlog"))),
        "{ready}"
    );
}

#[tokio::test]
async fn a_fresh_worker_shows_every_counter_at_zero_before_any_job() {
    let stack = Stack::new().await;
    let worker = spawn_worker(&stack, &[]).await;

    let (status, page) = worker.get("/metrics").await.expect("the worker answers");
    assert_eq!(status, StatusCode::OK);
    let mut series = vec![r#"burrow_jobs_dead_lettered_total{kind="unknown"}"#.to_owned()];
    let counters = [
        "burrow_jobs_started_total",
        "burrow_jobs_succeeded_total",
        "burrow_jobs_failed_total",
        "burrow_jobs_retried_total",
        "burrow_jobs_dead_lettered_total",
        "burrow_jobs_cancelled_total",
        "burrow_job_rows_total",
    ];
    for kind in ["export_xlsx", "import_xlsx", "noop", "sleep", "webhook"] {
        for counter in counters {
            series.push(format!(r#"{counter}{{kind="{kind}"}}"#));
        }
    }
    let missing: Vec<_> = series
        .iter()
        .filter(|series| sample(&page, series) != Some(0.0))
        .collect();
    assert!(missing.is_empty(), "not at 0: {missing:#?}\n{page}");
}

#[tokio::test]
async fn a_worker_process_shows_each_tenants_backlog_and_zeroes_it_when_the_work_is_gone() {
    let stack = Stack::new().await;
    // Scheduled an hour ahead: queued for the whole test, whatever the worker does.
    let run_at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let mut jobs = Vec::new();
    for user_id in [Some("acme"), Some("acme"), None] {
        let (status, job) = stack
            .post_json(
                "/api/jobs",
                &json!({"kind": "noop", "run_at": run_at, "user_id": user_id}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{job}");
        jobs.push(job["id"].as_str().expect("job id").to_owned());
    }
    let worker = spawn_worker(&stack, &[]).await;

    let expected = [
        (r#"burrow_tenant_backlog{tenant="acme"}"#, 2.0),
        (r#"burrow_tenant_running{tenant="acme"}"#, 0.0),
        (r#"burrow_tenant_backlog{tenant="(none)"}"#, 1.0),
        (r#"burrow_tenant_backlog{tenant="(other)"}"#, 0.0),
    ];
    let page = eventually("the tenant gauges", || async {
        let (_, page) = worker.get("/metrics").await?;
        expected
            .iter()
            .all(|(series, value)| sample(&page, series) == Some(*value))
            .then_some(page)
    })
    .await;
    assert!(
        page.contains("# TYPE burrow_tenant_backlog gauge"),
        "{page}"
    );

    // The work gone, an owner's series stays, at 0, rather than claim a backlog that is gone.
    for id in &jobs {
        let (status, body) = stack
            .post_json(&format!("/api/jobs/{id}/cancel"), &json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    eventually("the tenant gauges at 0", || async {
        let (_, page) = worker.get("/metrics").await?;
        [
            r#"burrow_tenant_backlog{tenant="acme"}"#,
            r#"burrow_tenant_backlog{tenant="(none)"}"#,
        ]
        .iter()
        .all(|series| sample(&page, series) == Some(0.0))
        .then_some(())
    })
    .await;
}

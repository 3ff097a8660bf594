//! The endpoints behind the web dashboard, against the real Postgres and RabbitMQ:
//! `GET /api/stats`, `GET /api/failures`, `POST /api/jobs/retry`, and the page itself at `/`.
//!
//! No worker runs here: jobs are put into the states a test needs with SQL, and published
//! messages stay ready in the work queue.

mod support;

use lapin::options::BasicConsumeOptions;
use lapin::types::FieldTable;
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::TestApi;

/// The import error of `bad_non_numeric_id.xlsx`, as the worker records it.
const ROW_7_ERROR: &str = r#"row 7, column Id (cell A7): expected a whole number, found "abc""#;

// Helpers of this binary only: jobs put into the states a test needs.
/// Puts a job into `status` as a worker would have left it, ended `ago_secs` seconds ago.
async fn set_state(api: &TestApi, id: &str, status: &str, message: &str, ago_secs: i32) {
    sqlx::query(
        "UPDATE jobs SET status = $2, message = $3, attempts = 1, \
                started_at = now() - make_interval(secs => $4 + 1), \
                completed_at = CASE WHEN $2 IN ('queued', 'processing') THEN NULL \
                                    ELSE now() - make_interval(secs => $4) END \
         WHERE id = $1::uuid",
    )
    .bind(id)
    .bind(status)
    .bind(message)
    .bind(ago_secs)
    .execute(&api.env.db)
    .await
    .expect("set state");
}

#[tokio::test]
async fn stats_report_queues_jobs_by_status_in_flight_and_throughput() {
    let api = TestApi::spawn().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(api.create_job().await);
    }
    api.wait_ready_in_work_queue(5).await;
    set_state(&api, &ids[0], "processing", "", 0).await;
    set_state(&api, &ids[1], "succeeded", "Done", 0).await;
    set_state(&api, &ids[2], "failed", ROW_7_ERROR, 0).await;
    // Ended long before the window: not in the throughput.
    set_state(&api, &ids[3], "succeeded", "Done", 3600).await;
    // A consumer on the DLQ, to see it counted (kept alive: dropping it cancels it).
    let channel = api.env.channel().await.expect("channel");
    let _consumer = channel
        .basic_consume(
            api.env.topology.dead_letter_queue.as_str().into(),
            "dashboard-test".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume the DLQ");

    let (status, stats) = api.get("/api/stats").await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(stats["rabbitmq"], "up");
    assert_eq!(
        stats["work_queue"],
        json!({"name": api.env.topology.work_queue, "messages": 5, "consumers": 0})
    );
    assert_eq!(
        stats["dead_letter_queue"],
        json!({"name": api.env.topology.dead_letter_queue, "messages": 0, "consumers": 1})
    );
    // The `imports` queue's (the uploads'), normal then high: none here.
    let imports: Vec<Value> = api
        .env
        .topology
        .work_queues()
        .into_iter()
        .filter(|name| name.contains(".q.imports"))
        .map(|name| json!({"name": name, "messages": 0, "consumers": 0}))
        .collect();
    assert_eq!(imports.len(), 2);
    assert_eq!(stats["named_queues"], Value::Array(imports));
    assert_eq!(
        stats["jobs_by_status"],
        json!({"awaiting": 0, "queued": 1, "processing": 1, "retrying": 0, "succeeded": 2, "failed": 1,
               "dead": 0, "cancelled": 0})
    );
    assert_eq!(stats["in_flight"], 1);
    assert_eq!(stats["outbox_pending"], 0);

    let throughput = &stats["throughput"];
    assert_eq!(throughput["window_minutes"], 15);
    let minutes = throughput["per_minute"].as_array().expect("per_minute");
    assert_eq!(minutes.len(), 15, "one entry per minute, empty ones too");
    let total = |field: &str| {
        minutes
            .iter()
            .map(|m| m[field].as_i64().unwrap_or(0))
            .sum::<i64>()
    };
    assert_eq!(
        (total("completed"), total("succeeded"), total("failed")),
        (2, 1, 1),
        "the two jobs that ended just now, not the one an hour ago: {minutes:?}"
    );
    let starts: Vec<&str> = minutes
        .iter()
        .map(|m| m["minute"].as_str().expect("minute"))
        .collect();
    assert!(
        starts.windows(2).all(|w| w[0] < w[1]),
        "oldest first: {starts:?}"
    );
    channel.close(200, "done".into()).await.expect("close");
}

#[tokio::test]
async fn stats_report_null_queues_while_rabbitmq_is_down() {
    let api = TestApi::spawn_without_broker().await;
    let id = api.create_job().await;
    set_state(&api, &id, "succeeded", "Done", 0).await;
    api.create_job().await;

    let (status, stats) = api.get("/api/stats").await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(stats["rabbitmq"], "down");
    assert_eq!(stats["work_queue"], Value::Null);
    assert_eq!(stats["dead_letter_queue"], Value::Null);
    assert_eq!(stats["jobs_by_status"]["queued"], 1);
    assert_eq!(stats["jobs_by_status"]["succeeded"], 1);
    assert_eq!(
        stats["outbox_pending"], 2,
        "both messages wait in the outbox"
    );
}

#[tokio::test]
async fn failures_are_grouped_by_normalised_error_largest_group_first() {
    let api = TestApi::spawn().await;
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(api.create_job().await);
    }
    // The same error in other rows and cells: one group. Newest completion first.
    set_state(&api, &ids[0], "failed", ROW_7_ERROR, 30).await;
    set_state(
        &api,
        &ids[1],
        "failed",
        r#"row 12, column Id (cell A12): expected a whole number, found "x1""#,
        20,
    )
    .await;
    set_state(
        &api,
        &ids[2],
        "failed",
        r#"row 3, column Id (cell A3): expected a whole number, found "?""#,
        10,
    )
    .await;
    set_state(
        &api,
        &ids[3],
        "dead",
        "attempt 5 of 5 failed: connection refused",
        5,
    )
    .await;
    set_state(&api, &ids[4], "failed", "missing column Email", 5).await;
    set_state(&api, &ids[5], "succeeded", "Done", 5).await;

    let (status, body) = api.get("/api/failures").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 5);
    let groups = body["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 3, "{groups:#?}");
    assert_eq!(
        groups[0],
        json!({
            "error": r#"row #, column Id (cell A#): expected a whole number, found "…""#,
            "example": r#"row 3, column Id (cell A3): expected a whole number, found "?""#,
            "status": "failed",
            "count": 3,
            "job_ids": [ids[2], ids[1], ids[0]],
            "last_at": groups[0]["last_at"],
        })
    );
    let rest: Vec<(&str, &str, i64)> = groups[1..]
        .iter()
        .map(|g| {
            (
                g["status"].as_str().expect("status"),
                g["error"].as_str().expect("error"),
                g["count"].as_i64().expect("count"),
            )
        })
        .collect();
    assert!(rest.contains(&("dead", "attempt # of # failed: connection refused", 1)));
    assert!(rest.contains(&("failed", "missing column Email", 1)));
}

#[tokio::test]
async fn a_failure_group_lists_its_newest_hundred_jobs_and_counts_them_all() {
    let api = TestApi::spawn().await;
    sqlx::query(
        "INSERT INTO jobs (id, kind, status, message, correlation_id, completed_at) \
         SELECT gen_random_uuid(), 'noop', 'failed', 'boom ' || n, gen_random_uuid(), \
                now() - make_interval(secs => n) \
         FROM generate_series(1, 105) AS n",
    )
    .execute(&api.env.db)
    .await
    .expect("insert");
    let (status, body) = api.get("/api/failures").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 105);
    let group = &body["groups"][0];
    assert_eq!(
        (&group["error"], &group["count"]),
        (&json!("boom #"), &json!(105))
    );
    assert_eq!(group["job_ids"].as_array().map(Vec::len), Some(100));
    assert_eq!(group["example"], "boom 1", "the newest one");
}

#[tokio::test]
async fn bulk_retry_requeues_failed_dead_and_cancelled_jobs_and_reports_each_id() {
    let api = TestApi::spawn().await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(api.create_job().await);
    }
    api.wait_ready_in_work_queue(4).await;
    set_state(&api, &ids[0], "failed", ROW_7_ERROR, 0).await;
    set_state(&api, &ids[1], "dead", "attempt 5 of 5 failed: timeout", 0).await;
    set_state(&api, &ids[2], "cancelled", "Cancelled", 0).await;
    set_state(&api, &ids[3], "succeeded", "Done", 0).await;
    let unknown = uuid::Uuid::now_v7().to_string();

    let (status, body) = api
        .post_json(
            "/api/jobs/retry",
            &json!({"ids": [ids[0], ids[1], ids[2], ids[3], unknown, "nope"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["retried"], 3);
    let results = body["results"].as_array().expect("results");
    let summary: Vec<(&str, bool, Option<&str>, Option<&str>)> = results
        .iter()
        .map(|r| {
            (
                r["id"].as_str().expect("id"),
                r["retried"].as_bool().expect("retried"),
                r["status"].as_str(),
                r["error"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (ids[0].as_str(), true, Some("queued"), None),
            (ids[1].as_str(), true, Some("queued"), None),
            (ids[2].as_str(), true, Some("queued"), None),
            (ids[3].as_str(), false, None, Some("conflict")),
            (unknown.as_str(), false, None, Some("not_found")),
            ("nope", false, None, Some("bad_request")),
        ]
    );
    assert!(results[3]["message"]
        .as_str()
        .is_some_and(|m| m.contains("succeeded")));

    for id in &ids[..3] {
        let (_, job) = api.get(&format!("/api/jobs/{id}")).await;
        assert_eq!(
            (job["status"].as_str(), job["attempts"].as_i64()),
            (Some("queued"), Some(0))
        );
        assert_eq!(job["message"], "Retried on request");
    }
    // The 3 retried jobs' messages are published again.
    api.wait_ready_in_work_queue(7).await;

    // Retrying them again is refused per id (they are queued now), and nothing is published.
    let (_, again) = api
        .post_json("/api/jobs/retry", &json!({"ids": [ids[0]]}))
        .await;
    assert_eq!(
        (&again["retried"], &again["results"][0]["error"]),
        (&json!(0), &json!("conflict"))
    );
}

#[tokio::test]
async fn bulk_retry_rejects_a_malformed_body() {
    let api = TestApi::spawn().await;
    for body in [
        json!({"ids": []}),
        json!({"ids": "not a list"}),
        json!({"jobs": []}),
    ] {
        let (status, answer) = api.post_json("/api/jobs/retry", &body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body} → {answer}"
        );
        assert_eq!(answer["error"], "unprocessable");
    }
    let too_many: Vec<String> = (0..1001)
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    let (status, _) = api
        .post_json("/api/jobs/retry", &json!({ "ids": too_many }))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn the_dashboard_page_and_its_assets_are_served_from_the_binary() {
    let api = TestApi::spawn().await;
    let page = api.get_response("/").await;
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let csp = headers["content-security-policy"].to_str().expect("ascii");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = page.text().await.expect("body");
    assert!(html.contains(r#"<script type="module" src="/dashboard/app.js"></script>"#));
    assert!(html.contains(r#"href="/dashboard/style.css""#));

    for (path, content_type) in [
        ("/dashboard/app.js", "text/javascript; charset=utf-8"),
        ("/dashboard/style.css", "text/css; charset=utf-8"),
        ("/dashboard/favicon.svg", "image/svg+xml"),
    ] {
        let asset = api.get_response(path).await;
        assert_eq!(asset.status(), StatusCode::OK, "{path}");
        assert_eq!(asset.headers()["content-type"], content_type, "{path}");
        assert_eq!(asset.headers()["cache-control"], "no-cache", "{path}");
        assert!(!asset.bytes().await.expect("body").is_empty(), "{path}");
    }
    let missing = api.get_response("/dashboard/secrets.txt").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let missing: Value = missing.json().await.expect("json");
    assert_eq!(missing["error"], "not_found");
}

#[tokio::test]
async fn stats_show_each_capped_kind_running_against_its_cap_and_its_waiting_jobs() {
    use burrow_shared::engine::kind_caps;
    use burrow_shared::engine::state::capped::{claim, CappedClaim};
    use burrow_shared::JobMessage;

    let api = TestApi::spawn().await;
    let (_, before) = api.get("/api/stats").await;
    assert_eq!(before["kind_caps"], json!([]));
    let caps = std::collections::BTreeMap::from([("noop".to_owned(), 1)]);
    kind_caps::declare(&api.env.db, &caps, "test")
        .await
        .expect("caps");
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let id: uuid::Uuid = api.create_job().await.parse().expect("uuid");
        let message = JobMessage::new(id, "noop", uuid::Uuid::new_v4()).encode();
        outcomes.push(
            claim(&api.env.db, id, "w", None, &message)
                .await
                .expect("claim"),
        );
    }
    assert!(matches!(outcomes[0], CappedClaim::Claimed(_)));

    let (status, stats) = api.get("/api/stats").await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(
        stats["kind_caps"],
        json!([{"kind": "noop", "cap": 1, "running": 1, "waiting": 2}])
    );
    assert_eq!(
        stats["jobs_by_status"]["queued"], 2,
        "waiting jobs look queued"
    );
}

/// Creates a `noop` job owned by `user_id` (none when `None`); its id.
async fn create_owned_job(api: &TestApi, user_id: Option<&str>) -> uuid::Uuid {
    let (status, job) = api
        .post_json("/api/jobs", &json!({"kind": "noop", "user_id": user_id}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    job["id"].as_str().expect("id").parse().expect("uuid")
}

#[tokio::test]
async fn stats_show_each_rate_limited_kind_with_its_waiting_jobs_and_throttled_keys() {
    use burrow_shared::engine::rate_limits::{self, RateLimit};
    use burrow_shared::JobMessage;

    let api = TestApi::spawn().await;
    let (_, before) = api.get("/api/stats").await;
    assert_eq!(before["rate_limits"], json!([]));
    let limits = std::collections::BTreeMap::from([(
        "noop".to_owned(),
        RateLimit::per_minute(1).with_burst(2),
    )]);
    rate_limits::declare(&api.env.db, &limits, "test")
        .await
        .expect("limits");
    // Three jobs of one key: the burst of two runs at once, the third waits for its slot.
    let mut decisions = Vec::new();
    for _ in 0..3 {
        let id = create_owned_job(&api, None).await;
        let message = JobMessage::new(id, "noop", uuid::Uuid::new_v4()).encode();
        let decision: String = sqlx::query_scalar(
            "SELECT decision FROM burrow_rate_reserve_job($1, 'noop', 'host-a', $2, interval '0')",
        )
        .bind(id)
        .bind(&message)
        .fetch_one(&api.env.db)
        .await
        .expect("reserve");
        decisions.push(decision);
    }
    assert_eq!(decisions, ["run", "run", "wait"]);

    let (status, stats) = api.get("/api/stats").await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(
        stats["rate_limits"],
        json!([{"kind": "noop", "rate": 1, "period_ms": 60_000, "burst": 2, "waiting": 1,
                "keys_throttled": 1}])
    );
}

#[tokio::test]
async fn stats_show_the_backlog_running_jobs_and_weight_of_each_tenant_largest_first() {
    use burrow_shared::engine::tenant_backlog::{self, OtherTenants};

    let api = TestApi::spawn().await;
    let (_, before) = api.get("/api/stats").await;
    assert_eq!(
        before["tenants"],
        json!({"top": [], "others": {"tenants": 0, "backlog": 0, "running": 0}})
    );
    for _ in 0..3 {
        create_owned_job(&api, Some("acme")).await;
    }
    let ended = create_owned_job(&api, Some("acme")).await;
    let running = create_owned_job(&api, Some("globex")).await;
    let retrying = create_owned_job(&api, None).await;
    create_owned_job(&api, None).await;
    set_state(&api, &ended.to_string(), "succeeded", "Done", 0).await;
    set_state(&api, &running.to_string(), "processing", "", 0).await;
    set_state(&api, &retrying.to_string(), "retrying", "", 0).await;
    // acme's fair-sharing weight shows beside its counts; owners without one weigh 1.
    let weights = std::collections::BTreeMap::from([("acme".to_owned(), 3.0)]);
    burrow_shared::engine::fair_share_weights::set_weights(&api.env.db, &weights, "test")
        .await
        .expect("weights");

    let (status, stats) = api.get("/api/stats").await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(
        stats["tenants"],
        json!({
            "top": [
                {"user_id": "acme", "backlog": 3, "running": 0, "weight": 3.0},
                {"user_id": null, "backlog": 2, "running": 0, "weight": 1.0},
                {"user_id": "globex", "backlog": 0, "running": 1, "weight": 1.0},
            ],
            "others": {"tenants": 0, "backlog": 0, "running": 0},
        })
    );

    // Past the listed ones, the others are summed, not named.
    let top_one = tenant_backlog::backlog(&api.env.db, 1)
        .await
        .expect("backlog");
    assert_eq!(
        top_one
            .top
            .iter()
            .map(|t| t.user_id.as_deref())
            .collect::<Vec<_>>(),
        [Some("acme")]
    );
    assert_eq!(
        top_one.others,
        OtherTenants {
            tenants: 2,
            backlog: 2,
            running: 1
        }
    );
}

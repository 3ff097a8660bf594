//! Authentication against the real services: API keys, owner isolation, admin endpoints,
//! revocation and the per-key rate limit.

mod support;

use burrow_api::auth::{Auth, AuthMode};
use burrow_api::state::AppState;
use burrow_shared::api_keys;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::TestApi;

/// Serves the api with `auth` in place of the default (off).
async fn spawn(auth: Auth) -> TestApi {
    TestApi::spawn_with(|state| AppState { auth, ..state }).await
}

// Helpers of this binary only: keys, and requests that carry one.
async fn create_key(api: &TestApi, user: &str, admin: bool) -> String {
    api_keys::create_key(&api.env.db, user, user, admin)
        .await
        .expect("key")
}

/// An api with keys required (and a rate limit no test reaches), and keys for the tenants
/// `alice` and `bob` and the admin `ops`.
async fn spawn_with_alice_bob_and_admin() -> (TestApi, String, String, String) {
    let api = spawn(Auth::new(AuthMode::Keys, 1000, 1000)).await;
    let alice = create_key(&api, "alice", false).await;
    let bob = create_key(&api, "bob", false).await;
    let admin = create_key(&api, "ops", true).await;
    (api, alice, bob, admin)
}

async fn call(
    api: &TestApi,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let method = match method {
        "POST" => Method::POST,
        _ => Method::GET,
    };
    let mut request = api.request(method, path);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn keys_are_required_and_each_user_sees_only_its_own_jobs() {
    let (api, alice, bob, admin) = spawn_with_alice_bob_and_admin().await;

    let response = api.get_response("/api/jobs").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        call(&api, "GET", "/api/jobs", Some("bk_not_a_key"), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    for public in ["/healthz", "/metrics"] {
        assert_eq!(
            call(&api, "GET", public, None, None).await.0,
            StatusCode::OK,
            "{public}"
        );
    }

    // The owner tag comes from the key, not from the body.
    let body = json!({"kind": "noop", "user_id": "mallory"});
    let (status, job) = call(&api, "POST", "/api/jobs", Some(&alice), Some(body)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(job["user_id"], "alice");
    let id = job["id"].as_str().expect("id").to_owned();

    let path = format!("/api/jobs/{id}");
    assert_eq!(
        call(&api, "GET", &path, Some(&alice), None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&api, "GET", &path, Some(&bob), None).await.0,
        StatusCode::NOT_FOUND,
        "not 403"
    );
    assert_eq!(
        call(&api, "POST", &format!("{path}/cancel"), Some(&bob), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&api, "GET", &format!("{path}/events"), Some(&bob), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&api, "GET", &path, Some(&admin), None).await.0,
        StatusCode::OK
    );

    let count = |page: Value| page["jobs"].as_array().map(Vec::len);
    assert_eq!(
        count(call(&api, "GET", "/api/jobs", Some(&alice), None).await.1),
        Some(1)
    );
    assert_eq!(
        count(
            call(&api, "GET", "/api/jobs?user_id=alice", Some(&bob), None)
                .await
                .1
        ),
        Some(0)
    );
    assert_eq!(
        count(
            call(&api, "GET", "/api/jobs?user_id=alice", Some(&admin), None)
                .await
                .1
        ),
        Some(1)
    );

    // Another owner's job cannot be a parent: it reads as no job at all.
    let body = json!({"kind": "noop", "depends_on": [id]});
    let (status, refused) = call(&api, "POST", "/api/jobs", Some(&bob), Some(body.clone())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["message"], format!("`depends_on`: no job {id}"));
    let (status, child) = call(&api, "POST", "/api/jobs", Some(&alice), Some(body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{child}");
    assert_eq!(child["status"], "awaiting");

    // A batch is its owner's, like a job: another key sees neither it, its stream nor its
    // members.
    let body = json!({"jobs": [{"kind": "noop"}], "user_id": "mallory"});
    let (status, created) = call(&api, "POST", "/api/batches", Some(&alice), Some(body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    assert_eq!(created["batch"]["user_id"], "alice");
    let batch = created["batch"]["id"].as_str().expect("id").to_owned();
    for path in [
        format!("/api/batches/{batch}"),
        format!("/api/batches/{batch}/events"),
    ] {
        assert_eq!(
            call(&api, "GET", &path, Some(&bob), None).await.0,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    let members = format!("/api/jobs?batch_id={batch}");
    assert_eq!(
        count(call(&api, "GET", &members, Some(&bob), None).await.1),
        Some(0)
    );
    assert_eq!(
        count(call(&api, "GET", &members, Some(&alice), None).await.1),
        Some(1)
    );
    assert_eq!(
        call(
            &api,
            "GET",
            &format!("/api/batches/{batch}"),
            Some(&admin),
            None
        )
        .await
        .0,
        StatusCode::OK
    );

    // Admin endpoints.
    assert_eq!(
        call(&api, "GET", "/api/stats", Some(&alice), None).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(&api, "GET", "/api/stats", Some(&admin), None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&api, "POST", "/api/dead-letters/redrive", Some(&bob), None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );

    // Revocation.
    assert_eq!(
        api_keys::revoke_keys(&api.env.db, &alice[..11])
            .await
            .expect("revoke"),
        1
    );
    assert_eq!(
        call(&api, "GET", &path, Some(&alice), None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_key_over_its_rate_gets_429_with_retry_after() {
    let api = spawn(Auth::new(AuthMode::Keys, 1, 2)).await;
    let key = create_key(&api, "alice", false).await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..4 {
        let response = api
            .request(Method::GET, "/api/jobs")
            .bearer_auth(&key)
            .send()
            .await
            .expect("request");
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
        }
        statuses.push(response.status());
    }
    assert_eq!(
        &statuses[..2],
        [StatusCode::OK, StatusCode::OK],
        "the burst passes"
    );
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    assert!(retry_after.is_some_and(|s| s.parse::<u64>().is_ok_and(|secs| secs >= 1)));
    // Another key has its own budget.
    let other = create_key(&api, "bob", false).await;
    assert_eq!(
        call(&api, "GET", "/api/jobs", Some(&other), None).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_unset_auth_mode_checks_keys_unless_the_api_listens_on_loopback() {
    use burrow_api::config::ApiConfig;
    use clap::Parser as _;
    let on = |bind: &str, mode: Option<&str>| {
        let mut args = vec!["burrow-api".to_owned(), format!("--bind-addr={bind}")];
        if let Some(mode) = mode {
            args.push(format!("--auth-mode={mode}"));
        }
        ApiConfig::try_parse_from(args)
            .expect("config")
            .auth()
            .map(|a| a.mode)
    };
    assert_eq!(on("127.0.0.1:8080", None).ok(), Some(AuthMode::Off));
    assert_eq!(on("0.0.0.0:8080", None).ok(), Some(AuthMode::Keys));
    assert_eq!(on("0.0.0.0:8080", Some("off")).ok(), Some(AuthMode::Off));
    assert_eq!(
        on("127.0.0.1:8080", Some("keys")).ok(),
        Some(AuthMode::Keys)
    );
    assert!(on("127.0.0.1:8080", Some("maybe")).is_err());
}

#[tokio::test]
async fn only_an_admin_sees_the_backlog_of_each_tenant() {
    let (api, alice, bob, admin) = spawn_with_alice_bob_and_admin().await;
    let noop = json!({"kind": "noop"});
    let (status, _) = call(&api, "POST", "/api/jobs", Some(&bob), Some(noop)).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // A tenant's key learns nothing of the others: not their names, not their counts.
    let (status, refused) = call(&api, "GET", "/api/stats", Some(&alice), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!refused.to_string().contains("bob"), "{refused}");
    assert!(refused.get("tenants").is_none(), "{refused}");

    let (status, stats) = call(&api, "GET", "/api/stats", Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(
        stats["tenants"]["top"],
        json!([{"user_id": "bob", "backlog": 1, "running": 0, "weight": 1.0}])
    );
}

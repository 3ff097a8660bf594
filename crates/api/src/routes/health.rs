//! `GET /healthz` (the process is alive) and `GET /readyz` (the api can accept jobs).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use burrow_shared::{outbox, readiness};
use serde_json::{json, Value};

use crate::state::AppState;

/// Longest wait for Postgres before `/readyz` calls it down.
const POSTGRES_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Always 200 while the process serves requests.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    security(),
    responses(
        (status = 200, description = "The process serves requests", body = super::schemas::Health),
    )
)]
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Whether the api can accept jobs.
///
/// - Postgres down: 503 `{"status":"unavailable","postgres":"down","rabbitmq":…}`: no job can
///   be stored.
/// - Otherwise 200 `{"status":"ready"|"degraded","postgres":"up","rabbitmq":"up"|"down",
///   "outbox_pending":N,"jobs_waiting":N,"reasons":[…]}`. `degraded` means RabbitMQ is
///   unreachable (as last seen by the outbox relay): jobs are still accepted and wait in the
///   outbox (`outbox_pending` of them, across replicas) until it is back; or more than
///   `READY_BACKLOG_THRESHOLD` jobs are queued and due (`jobs_waiting`); or jobs have waited
///   `READY_STALL_MINUTES` while none finished (workers gone or stuck). `reasons` says which.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    security(),
    responses(
        (status = 200, description = "`ready`, or `degraded` with `reasons` (jobs are still accepted)", body = super::schemas::Readiness),
        (status = 503, description = "`unavailable`: Postgres is down, no job can be stored", body = super::schemas::Readiness),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let rabbitmq = if state.publisher.broker_health().reachable {
        "up"
    } else {
        "down"
    };
    let checks = tokio::time::timeout(POSTGRES_CHECK_TIMEOUT, async {
        let pending = outbox::pending_count(&state.db).await?;
        let backlog = readiness::job_backlog(&state.db).await?;
        Ok::<_, sqlx::Error>((pending, backlog))
    })
    .await;
    match checks {
        Ok(Ok((pending, backlog))) => {
            let waiting = u64::try_from(backlog.waiting).unwrap_or(0);
            let quiet_for = backlog.quiet_for(chrono::Utc::now());
            let mut reasons = state.readiness.degraded_reasons(waiting, quiet_for);
            if rabbitmq == "down" {
                reasons.insert(
                    0,
                    "rabbitmq: unreachable; jobs wait in the outbox".to_owned(),
                );
            }
            (
                StatusCode::OK,
                Json(json!({
                    "status": if reasons.is_empty() { "ready" } else { "degraded" },
                    "postgres": "up",
                    "rabbitmq": rabbitmq,
                    "outbox_pending": pending,
                    "jobs_waiting": waiting,
                    "reasons": reasons,
                })),
            )
        }
        failed => {
            match failed {
                Ok(Err(e)) => tracing::debug!(error = %e, "readiness: Postgres is down"),
                _ => tracing::debug!("readiness: Postgres did not answer in time"),
            }
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({
                    "status": "unavailable",
                    "postgres": "down",
                    "rabbitmq": rabbitmq,
                })),
            )
        }
    }
}

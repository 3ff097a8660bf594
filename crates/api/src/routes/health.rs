//! `GET /healthz` (the process is alive) and `GET /readyz` (the api can accept jobs).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use burrow_shared::outbox;
use serde_json::{json, Value};

use crate::state::AppState;

/// Longest wait for Postgres before `/readyz` calls it down.
const POSTGRES_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Always 200 while the process serves requests.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Whether the api can accept jobs.
///
/// - Postgres down: 503 `{"status":"unavailable","postgres":"down","rabbitmq":…}`: no job can
///   be stored.
/// - Otherwise 200 `{"status":"ready"|"degraded","postgres":"up","rabbitmq":"up"|"down",
///   "outbox_pending":N}`. `degraded` means RabbitMQ is unreachable (as last seen by the outbox
///   relay): jobs are still accepted and wait in the outbox (`outbox_pending` of them, across
///   replicas) until it is back.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let rabbitmq = if state.publisher.broker_health().reachable {
        "up"
    } else {
        "down"
    };
    let pending =
        tokio::time::timeout(POSTGRES_CHECK_TIMEOUT, outbox::pending_count(&state.db)).await;
    match pending {
        Ok(Ok(pending)) => (
            StatusCode::OK,
            Json(json!({
                "status": if rabbitmq == "up" { "ready" } else { "degraded" },
                "postgres": "up",
                "rabbitmq": rabbitmq,
                "outbox_pending": pending,
            })),
        ),
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

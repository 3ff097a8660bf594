//! `POST /api/dead-letters/redrive?limit=N`: moves job messages from the DLQ back to the work
//! queue (the same operation as `burrow-worker redrive`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use burrow_shared::publish::open_confirm_channel;
use burrow_shared::redrive::{redrive, RedriveError};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Messages moved per call when `limit` is not given.
const DEFAULT_LIMIT: u32 = 100;
/// Most messages moved per call.
const MAX_LIMIT: u32 = 10_000;

/// Query of a re-drive.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RedriveQuery {
    /// Most messages to move, 1 to 10,000 (default 100).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
}

/// Re-drives up to `limit` (1–10,000, default 100) dead-lettered job messages; their jobs go
/// back to `queued` ("Re-driven from the DLQ"). Answers `{"moved": n, "left": m}`, where `left`
/// counts messages that stay in the DLQ (not job messages, or naming no job). 503 when
/// RabbitMQ is unreachable.
#[utoipa::path(
    post,
    path = "/api/dead-letters/redrive",
    tag = "operations",
    params(RedriveQuery),
    responses(
        (status = 200, description = "Messages moved back to the work queue, and those left in the DLQ", body = burrow_shared::redrive::RedriveReport),
        (status = 400, description = "`limit` out of range", body = ApiError),
        (status = 403, description = "The key is not an admin key", body = ApiError),
        (status = 500, description = "Database error", body = ApiError),
        (status = 503, description = "RabbitMQ is unreachable", body = ApiError),
    )
)]
pub async fn redrive_dead_letters(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<RedriveQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "`limit` must be between 1 and {MAX_LIMIT}"
        )));
    }
    let unavailable = |e: &dyn std::fmt::Display| {
        tracing::warn!(error = %e, "re-drive failed");
        ApiError::BrokerUnavailable
    };
    let connection = state
        .publisher
        .pool()
        .get()
        .await
        .map_err(|e| unavailable(&e))?;
    let channel = open_confirm_channel(&connection)
        .await
        .map_err(|e| unavailable(&e))?;
    let topology = state.publisher.topology();
    let report = redrive(&state.db, &channel, topology, limit)
        .await
        .map_err(|e| match e {
            RedriveError::Database(e) => ApiError::from(e),
            other => unavailable(&other),
        })?;
    let _ = channel.close(200, "redrive done".into()).await;
    tracing::info!(
        moved = report.moved,
        left = report.left,
        "re-drove dead letters"
    );
    Ok(Json(json!({ "moved": report.moved, "left": report.left })))
}

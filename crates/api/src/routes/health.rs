//! `GET /healthz` (the process is alive) and `GET /readyz` (Postgres and RabbitMQ answer).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::state::AppState;

/// Always 200 while the process serves requests.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// 200 when Postgres answers a query and a broker connection can be had; 503 with the failing
/// dependency otherwise.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let postgres = sqlx::query("SELECT 1").execute(&state.db).await.is_ok();
    let rabbitmq = state.publisher.pool().get().await.is_ok();
    let status = if postgres && rabbitmq {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let label = |up: bool| if up { "up" } else { "down" };
    (
        status,
        Json(json!({
            "status": if status == StatusCode::OK { "ready" } else { "unavailable" },
            "postgres": label(postgres),
            "rabbitmq": label(rabbitmq),
        })),
    )
}

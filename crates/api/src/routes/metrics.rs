//! `GET /metrics`: the api's metrics in the Prometheus text format ([`crate::metrics`] lists
//! them).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::metrics::CONTENT_TYPE;
use crate::state::AppState;

/// The current metrics; an empty page when no recorder is installed.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    security(),
    responses(
        (status = 200, description = "The api's metrics in the Prometheus text format", content_type = "text/plain; version=0.0.4", body = String),
    )
)]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let page = state
        .metrics
        .as_ref()
        .map(|handle| handle.render())
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], page)
}

//! `GET /metrics`: the api's metrics in the Prometheus text format ([`crate::metrics`] lists
//! them).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::metrics::CONTENT_TYPE;
use crate::state::AppState;

/// The current metrics; an empty page when no recorder is installed.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let page = state
        .metrics
        .as_ref()
        .map(|handle| handle.render())
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], page)
}

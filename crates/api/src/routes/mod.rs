//! The HTTP routes, one file each, and the router that mounts them.

mod batch_events;
mod batches;
mod bulk_retry;
mod control;
mod create;
mod dashboard;
mod dead_letters;
mod events;
mod failures;
mod health;
mod import_preview;
mod import_profiles;
mod job_request;
mod jobs;
mod metrics;
mod openapi;
mod openapi_kinds;
mod polled_stream;
mod result;
mod schemas;
mod simulate;
mod stats;
mod upload;
mod upload_form;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::state::AppState;

pub use openapi::{document, ApiDoc};

/// Every (method, path) [`router`] serves, in router order: the one list kept next to the
/// router. `tests/openapi.rs` checks that the OpenAPI document ([`ApiDoc`]) has exactly these
/// operations (the dashboard, `/` and `/dashboard/{file}`, aside) and that the router answers
/// each of them and no other method on their paths: add a route here when you add one below.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/jobs"),
    ("GET", "/api/jobs"),
    ("POST", "/api/jobs/batch"),
    ("POST", "/api/batches"),
    ("GET", "/api/batches/{id}"),
    ("GET", "/api/batches/{id}/events"),
    ("GET", "/api/jobs/{id}"),
    ("GET", "/api/jobs/{id}/events"),
    ("GET", "/api/jobs/{id}/result"),
    ("POST", "/api/jobs/{id}/cancel"),
    ("POST", "/api/jobs/{id}/retry"),
    ("POST", "/api/simulate"),
    ("POST", "/api/imports/preview"),
    ("GET", "/api/import-profiles"),
    ("POST", "/api/dead-letters/redrive"),
    ("POST", "/api/jobs/retry"),
    ("GET", "/api/failures"),
    ("GET", "/api/stats"),
    ("GET", "/api/openapi.json"),
    ("GET", "/"),
    ("GET", "/dashboard/{file}"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
];

/// Longest a request may take to get its response (uploads included), in seconds.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Largest JSON body of the routes other than `POST /api/jobs` (which takes the upload limit),
/// in bytes: axum's default, set here so that the 413 names it.
pub const JSON_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// Room for multipart boundaries and small fields around the file, in bytes.
const MULTIPART_OVERHEAD_BYTES: usize = 64 * 1024;

/// All routes, with `state`. Registers the api's counters at 0 for the kinds of
/// `state.registry` ([`crate::metrics::zero_known`]), so `/metrics` shows them from the start.
pub fn router(state: AppState) -> Router {
    crate::metrics::zero_known(state.registry.kinds());
    let upload_body_limit =
        DefaultBodyLimit::max(state.upload_max_bytes + MULTIPART_OVERHEAD_BYTES);
    Router::new()
        .route(
            "/api/jobs",
            post(create::create_job)
                .layer(upload_body_limit)
                .get(jobs::list_jobs),
        )
        .route("/api/jobs/batch", post(create::create_batch))
        .route("/api/batches", post(batches::create_workflow_batch))
        .route("/api/batches/{id}", get(batches::get_workflow_batch))
        .route("/api/batches/{id}/events", get(batch_events::batch_events))
        .route("/api/jobs/{id}", get(jobs::get_job))
        .route("/api/jobs/{id}/events", get(events::job_events))
        .route("/api/jobs/{id}/result", get(result::job_result))
        .route("/api/jobs/{id}/cancel", post(control::cancel_job))
        .route("/api/jobs/{id}/retry", post(control::retry_job))
        .route("/api/simulate", post(simulate::simulate))
        .route(
            "/api/imports/preview",
            post(import_preview::preview_import).layer(upload_body_limit),
        )
        .route("/api/import-profiles", get(import_profiles::list_profiles))
        .route(
            "/api/dead-letters/redrive",
            post(dead_letters::redrive_dead_letters),
        )
        .route("/api/jobs/retry", post(bulk_retry::retry_jobs))
        .route("/api/failures", get(failures::failures))
        .route("/api/stats", get(stats::stats))
        .route("/api/openapi.json", get(openapi::openapi_json))
        .route("/", get(dashboard::index))
        .route("/dashboard/{file}", get(dashboard::asset))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .fallback(|| async { ApiError::NotFound("no such route".to_owned()) })
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        // Producing a response may take this long (an SSE stream's body is not limited; an
        // upload's body is read inside it, so the limit bounds slow uploads too): then 408.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(crate::request_span::request_span)
                .on_response(crate::request_span::record_status),
        )
        .with_state(state)
}

//! The worker's small HTTP server (`WORKER_HTTP_ADDR`, default `127.0.0.1:9090`), for probes
//! and scrapes; it serves no jobs.
//!
//! - `GET /healthz`: `200 {"status":"ok"}` while the process serves (liveness).
//! - `GET /readyz`: `503` while Postgres does not answer or the consumer is not connected to
//!   the work queues; else `200` with `ready`, or `degraded` and `reasons` when the work
//!   queues' backlog (normal and high priority together) passes `READY_BACKLOG_THRESHOLD` or nothing has finished for `READY_STALL_MINUTES`
//!   while messages wait (see [`burrow_shared::readiness`]).
//! - `GET /metrics`: the Prometheus text format ([`crate::metrics`] lists the metrics).

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use burrow_shared::readiness::ReadinessRules;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::health::WorkerHealth;

/// Longest wait for Postgres before `/readyz` calls it down.
const POSTGRES_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The Prometheus text exposition format, version 0.0.4.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the handlers read; cheap to clone.
#[derive(Clone)]
pub struct HttpState {
    /// Checked by `/readyz`: the worker cannot run jobs without it.
    pub db: PgPool,
    /// Written by the consumer and the queue gauges.
    pub health: WorkerHealth,
    /// When a ready worker says `degraded`.
    pub rules: ReadinessRules,
    /// Renders `/metrics`; `None` serves an empty page (no recorder installed).
    pub metrics: Option<PrometheusHandle>,
}

/// The three routes, with `state`.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Binds `addr` and serves until `shutdown`. The server is for observability only: if the
/// address is taken (several workers on one host with the default) the worker warns and runs
/// without it.
pub async fn run_http(addr: SocketAddr, state: HttpState, shutdown: CancellationToken) {
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::warn!(%addr, error = %e, "cannot bind WORKER_HTTP_ADDR; no /healthz, /readyz or /metrics");
            return;
        }
    };
    if let Err(e) = serve(listener, state, shutdown).await {
        tracing::warn!(error = %e, "the worker's HTTP server failed");
    }
}

/// Serves on `listener` until `shutdown` (tests bind port 0).
///
/// # Errors
/// If the server fails.
pub async fn serve(
    listener: TcpListener,
    state: HttpState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "worker HTTP listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<HttpState>) -> (StatusCode, Json<Value>) {
    let postgres = tokio::time::timeout(
        POSTGRES_CHECK_TIMEOUT,
        sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&state.db),
    )
    .await;
    let postgres_up = matches!(postgres, Ok(Ok(_)));
    let health = state.health.snapshot();
    let consumer = if health.consumer_connected {
        "connected"
    } else {
        "disconnected"
    };
    let mut body = json!({
        "postgres": if postgres_up { "up" } else { "down" },
        "consumer": consumer,
        "queue_ready": health.ready,
    });
    if !postgres_up || !health.consumer_connected {
        body["status"] = json!("unavailable");
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body));
    }
    let waiting = u64::from(health.ready.unwrap_or(0));
    let reasons = state.rules.degraded_reasons(waiting, health.quiet_for);
    body["status"] = json!(if reasons.is_empty() {
        "ready"
    } else {
        "degraded"
    });
    body["reasons"] = json!(reasons);
    (StatusCode::OK, Json(body))
}

async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    let page = state
        .metrics
        .as_ref()
        .map(PrometheusHandle::render)
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], page)
}

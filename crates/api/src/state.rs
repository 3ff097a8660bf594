//! What every request handler and the outbox relay share.

use burrow_shared::handler::Registry;
use burrow_shared::import::ImportOptions;
use burrow_shared::readiness::ReadinessRules;
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;

use crate::auth::Auth;
use crate::publisher::Publisher;

/// Shared handler state: cheap to clone (pools are reference-counted).
#[derive(Clone)]
pub struct AppState {
    /// The job store.
    pub db: PgPool,
    /// Where job messages go: wakes the outbox relay after a commit and holds its view of the
    /// broker (for `/readyz`) and the test-only failpoint.
    pub publisher: Publisher,
    /// Largest accepted upload, in bytes.
    pub upload_max_bytes: usize,
    /// The job kinds, to validate kinds and payloads (422) before anything is stored.
    pub registry: Registry,
    /// When `/readyz` says `degraded` (backlog, stall); the defaults unless configured.
    pub readiness: ReadinessRules,
    /// Renders `GET /metrics`; `None` (the default) serves an empty page.
    pub metrics: Option<PrometheusHandle>,
    /// API keys and rate limits; off by default (tests, development).
    pub auth: Auth,
}

impl AppState {
    /// State over these pools, with the shipped job kinds.
    pub fn new(db: PgPool, publisher: Publisher, upload_max_bytes: usize) -> Self {
        let registry = burrow_shared::kinds::registry(ImportOptions::default());
        AppState {
            db,
            publisher,
            upload_max_bytes,
            registry,
            readiness: ReadinessRules::default(),
            metrics: None,
            auth: Auth::off(),
        }
    }
}

//! What every request handler and the outbox relay share.

use axum::extract::FromRef;
use burrow_shared::handler::Registry;
use burrow_shared::import::{ImportLimits, Profiles};
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
    /// What an upload's package is checked against before it is stored (422 beyond).
    pub import_limits: ImportLimits,
    /// The import profiles an upload may name (`people` only unless configured); the workers
    /// must know the same ones.
    pub profiles: Profiles,
    /// The job kinds, to validate kinds and payloads (422) before anything is stored.
    pub registry: Registry,
    /// When `/readyz` says `degraded` (backlog, stall); the defaults unless configured.
    pub readiness: ReadinessRules,
    /// Renders `GET /metrics`; `None` (the default) serves an empty page.
    pub metrics: Option<PrometheusHandle>,
    /// API keys and rate limits; off by default (tests, development).
    pub auth: Auth,
}

impl FromRef<AppState> for Auth {
    fn from_ref(state: &AppState) -> Auth {
        state.auth.clone()
    }
}

impl FromRef<AppState> for PgPool {
    fn from_ref(state: &AppState) -> PgPool {
        state.db.clone()
    }
}

impl AppState {
    /// State over these pools, accepting the kinds of `registry`.
    pub fn new(
        db: PgPool,
        publisher: Publisher,
        upload_max_bytes: usize,
        registry: Registry,
    ) -> Self {
        AppState {
            db,
            publisher,
            upload_max_bytes,
            import_limits: ImportLimits::default(),
            profiles: Profiles::default(),
            registry,
            readiness: ReadinessRules::default(),
            metrics: None,
            auth: Auth::off(),
        }
    }
}

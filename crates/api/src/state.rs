//! What every request handler and the outbox relay share.

use sqlx::PgPool;

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
}

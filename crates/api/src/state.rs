//! What every request handler shares.

use sqlx::PgPool;

use crate::publisher::Publisher;

/// Shared handler state: cheap to clone (pools are reference-counted).
#[derive(Clone)]
pub struct AppState {
    /// The job store.
    pub db: PgPool,
    /// Publishes job messages.
    pub publisher: Publisher,
    /// Largest accepted upload, in bytes.
    pub upload_max_bytes: usize,
}

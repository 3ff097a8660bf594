//! `GET /api/failures`: failed and dead jobs grouped by their (normalised) error, the largest
//! groups first, so one bad input or one outage shows as one line with a count.

use axum::extract::State;
use axum::Json;
use burrow_shared::job_stats::{self, FailureGroup};
use serde::Serialize;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// The answer of `GET /api/failures`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Failures {
    /// Failed and dead jobs in all (also those in groups beyond the first hundred).
    pub total: i64,
    /// At most 100 groups; each lists its newest 100 job ids.
    pub groups: Vec<FailureGroup>,
}

/// The failure groups (see [`job_stats::failure_groups`] for how errors are normalised).
#[utoipa::path(
    get,
    path = "/api/failures",
    tag = "operations",
    responses(
        (status = 200, description = "Failed and dead jobs grouped by error, largest groups first", body = Failures),
        (status = 403, description = "The key is not an admin key", body = ApiError),
        (status = 500, description = "Database error", body = ApiError),
    )
)]
pub async fn failures(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Failures>, ApiError> {
    caller.require_admin()?;
    let (groups, total) = tokio::join!(
        job_stats::failure_groups(&state.db),
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM jobs WHERE status IN ('failed', 'dead')"
        )
        .fetch_one(&state.db),
    );
    Ok(Json(Failures {
        total: total?,
        groups: groups?,
    }))
}

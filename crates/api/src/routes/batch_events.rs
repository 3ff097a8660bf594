//! `GET /api/batches/{id}/events`: a batch's progress as Server-Sent Events.
//!
//! Each change of the batch's counts, status or callbacks is one `event: batch` whose data is
//! the batch JSON (as `GET /api/batches/{id}` answers); the stream ends once the batch is
//! settled: every member ended, and so did its callbacks. The api polls every 500 ms, not
//! 250 ms as for a job, because a batch's counts read up to 10,000 member rows.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, Sse};
use burrow_shared::engine::batches::{find_batch, BatchSummary};
use futures::Stream;

use super::batches::find_visible_batch;
use super::jobs::parse_id;
use super::polled_stream::{polled_sse, Polled};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// How often the batch is read.
const POLL: Duration = Duration::from_millis(500);

/// The SSE stream of one batch. 400 for a malformed id, 404 for an unknown batch or another
/// owner's.
#[utoipa::path(
    get,
    path = "/api/batches/{id}/events",
    tag = "jobs",
    params(("id" = Uuid, Path, description = "The batch's id")),
    responses(
        (status = 200, description = "Server-Sent Events: an `event: batch` whose data is the batch JSON (`BatchSummary`) on every change of its counts, status or callbacks; the stream ends once every member and callback has ended",
            content_type = "text/event-stream", body = super::schemas::BatchStreamEvent),
        (status = 400, description = "The id is not a UUID", body = ApiError),
        (status = 404, description = "No such batch", body = ApiError),
        (status = 500, description = "Database error", body = ApiError),
    )
)]
pub async fn batch_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = parse_id(&id)?;
    let first = find_visible_batch(&state, &caller, id).await?;
    let polled = Polled {
        event: "batch",
        every: POLL,
        fetch: move || {
            let db = state.db.clone();
            async move { find_batch(&db, id).await.ok().flatten() }
        },
        // Counts, status and callbacks are all of it: any difference is news.
        key: BatchSummary::clone,
        is_last: BatchSummary::is_settled,
    };
    Ok(polled_sse(first, polled))
}

//! `GET /api/jobs/{id}/events`: the job's status and progress as Server-Sent Events.
//!
//! Each change of status, attempt or progress is one `event: job` whose data is the job JSON;
//! the stream ends after the job's final state. The api polls the job row every 250 ms (the
//! pace at which workers flush progress).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, Sse};
use burrow_shared::jobs::{self, JobRow};
use futures::Stream;

use super::jobs::{find_visible, parse_id};
use super::polled_stream::{polled_sse, Polled};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// How often the job row is read.
const POLL: Duration = Duration::from_millis(250);

/// The SSE stream of one job. 400 for a malformed id, 404 for an unknown one.
#[utoipa::path(
    get,
    path = "/api/jobs/{id}/events",
    tag = "jobs",
    params(("id" = Uuid, Path, description = "The job's id")),
    responses(
        (status = 200, description = "Server-Sent Events: an `event: job` whose data is the job JSON (`JobRow`) on every change of status, attempt or progress; the stream ends after the job's final state",
            content_type = "text/event-stream", body = super::schemas::JobStreamEvent),
        (status = 400, description = "The id is not a UUID", body = ApiError),
        (status = 404, description = "No such job", body = ApiError),
        (status = 500, description = "Database error", body = ApiError),
    )
)]
pub async fn job_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = parse_id(&id)?;
    let first = find_visible(&state, &caller, id).await?;
    let polled = Polled {
        event: "job",
        every: POLL,
        fetch: move || {
            let db = state.db.clone();
            async move { jobs::find_job(&db, id).await.ok().flatten() }
        },
        key: |job: &JobRow| {
            (
                job.status,
                job.attempts,
                job.progress_done,
                job.progress_total,
            )
        },
        is_last: |job: &JobRow| job.status.is_terminal(),
    };
    Ok(polled_sse(first, polled))
}

//! `POST /api/simulate`: enqueues the five fixture workbooks, like the reference demo.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use burrow_shared::enqueue::NewJob;
use burrow_shared::KIND_IMPORT_XLSX;

use crate::auth::Caller;
use crate::enqueue::enqueue_all;
use crate::error::ApiError;
use crate::state::AppState;

/// The fixture files, built into the binary so the api needs no file system access.
const FIXTURES: [(&str, &[u8]); 5] = [
    (
        "MOCK_DATA_1.xlsx",
        include_bytes!("../../../../fixtures/MOCK_DATA_1.xlsx"),
    ),
    (
        "MOCK_DATA_2.xlsx",
        include_bytes!("../../../../fixtures/MOCK_DATA_2.xlsx"),
    ),
    (
        "MOCK_DATA_3.xlsx",
        include_bytes!("../../../../fixtures/MOCK_DATA_3.xlsx"),
    ),
    (
        "MOCK_DATA_4.xlsx",
        include_bytes!("../../../../fixtures/MOCK_DATA_4.xlsx"),
    ),
    (
        "MOCK_DATA_5.xlsx",
        include_bytes!("../../../../fixtures/MOCK_DATA_5.xlsx"),
    ),
];

/// Enqueues MOCK_DATA_1..5.xlsx (200 rows each) as user `simulate`; answers 202 with the jobs.
#[utoipa::path(
    post,
    path = "/api/simulate",
    tag = "operations",
    responses(
        (status = 202, description = "The five fixture imports, accepted", body = super::schemas::JobList),
        (status = 500, description = "Database error", body = ApiError),
    )
)]
pub async fn simulate(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let requests = FIXTURES
        .iter()
        .map(|(file_name, bytes)| NewJob {
            user_id: caller.owner_tag(Some("simulate".to_owned())),
            ..NewJob::new(KIND_IMPORT_XLSX).file(*file_name, bytes.to_vec())
        })
        .collect();
    let jobs: Vec<_> = enqueue_all(&state, requests)
        .await?
        .into_iter()
        .map(|e| e.job)
        .collect();
    Ok((StatusCode::ACCEPTED, Json(json!({ "jobs": jobs }))))
}

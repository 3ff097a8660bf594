//! `POST /api/simulate`: enqueues the five fixture workbooks, like the reference demo.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::enqueue::{enqueue_import, Upload};
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
pub async fn simulate(
    State(state): State<AppState>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut jobs = Vec::with_capacity(FIXTURES.len());
    for (file_name, bytes) in FIXTURES {
        let upload = Upload {
            file_name: file_name.to_owned(),
            user_id: Some("simulate".to_owned()),
            bytes: bytes.to_vec(),
        };
        jobs.push(enqueue_import(&state, upload).await?);
    }
    Ok((StatusCode::ACCEPTED, Json(json!({ "jobs": jobs }))))
}

//! `POST /api/jobs`: multipart upload of one .xlsx (field `file`, optional `user_id`).

use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use burrow_shared::import::{check_package, sniff_xlsx, ImportLimits, OnError};
use burrow_shared::kinds::ImportPayload;

use burrow_shared::jobs::NewJob;
use burrow_shared::KIND_IMPORT_XLSX;

use super::create::{accepted, idempotency_key};
use crate::auth::Caller;
use crate::enqueue::{enqueue, JobRequest};
use crate::error::ApiError;
use crate::state::AppState;

/// Longest accepted `user_id`, in characters.
const MAX_USER_ID_CHARS: usize = 128;
/// Longest kept file name, in characters.
const MAX_FILE_NAME_CHARS: usize = 255;

/// Accepts the upload and answers `202 Accepted`, `Location: /api/jobs/{id}` and the job (an
/// `Idempotency-Key` seen before answers with the earlier job instead).
///
/// 400 without a `file` field, 413 over `UPLOAD_MAX_BYTES` (counted while streaming, before
/// anything is stored), 415 if the body is not multipart or the file is not an .xlsx by content.
pub async fn create_upload_job(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let mut multipart = multipart.map_err(|e| {
        ApiError::UnsupportedMediaType(format!("expected a multipart/form-data body: {e}"))
    })?;
    let limit = state.upload_max_bytes;
    let mut file = None;
    let mut user_id = None;
    let mut on_error = OnError::default();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(e, limit))?
    {
        match field.name() {
            Some("file") if file.is_some() => {
                return Err(ApiError::BadRequest(
                    "send exactly one `file` field".to_owned(),
                ))
            }
            Some("file") => {
                let name = display_name(field.file_name());
                file = Some((name, read_limited(field, limit).await?));
            }
            Some("user_id") => {
                let text = field.text().await.map_err(|e| multipart_error(e, limit))?;
                user_id = parse_user_id(&text)?;
            }
            Some("on_error") => {
                let text = field.text().await.map_err(|e| multipart_error(e, limit))?;
                on_error = match text.trim() {
                    "reject" => OnError::Reject,
                    "skip" => OnError::Skip,
                    other => {
                        return Err(ApiError::BadRequest(format!(
                            "`on_error` is `reject` or `skip`, not {other:?}"
                        )))
                    }
                };
            }
            // Unknown fields are skipped (their bytes still count toward the body limit).
            _ => {}
        }
    }
    let Some((file_name, bytes)) = file else {
        return Err(ApiError::BadRequest(
            "the multipart body has no `file` field".to_owned(),
        ));
    };
    sniff_xlsx(&bytes).map_err(|e| ApiError::UnsupportedMediaType(e.to_string()))?;
    // Refuse zip bombs and oversized packages before any work is spent on them.
    check_package(&bytes, &ImportLimits::default())
        .map_err(|e| ApiError::Unprocessable(e.to_string()))?;

    let job = NewJob {
        user_id: caller.owner_tag(user_id),
        file_name: Some(file_name),
        idempotency_key: idempotency_key(&headers)?,
        payload: serde_json::to_value(ImportPayload { on_error }).unwrap_or_default(),
        ..NewJob::new(KIND_IMPORT_XLSX)
    };
    let enqueued = enqueue(
        &state,
        JobRequest {
            job,
            file: Some(bytes),
        },
    )
    .await?;
    Ok(accepted(enqueued))
}

/// Reads a field's bytes, failing with 413 as soon as they pass `limit`.
async fn read_limited(mut field: Field<'_>, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, limit))? {
        if bytes.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit_bytes: limit });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

fn multipart_error(e: MultipartError, limit: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge { limit_bytes: limit }
    } else {
        ApiError::BadRequest(format!("malformed multipart body: {}", e.body_text()))
    }
}

/// The client's file name as display text: no directories, no control characters, bounded.
fn display_name(raw: Option<&str>) -> String {
    let base = raw
        .unwrap_or_default()
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default();
    let clean: String = base
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_FILE_NAME_CHARS)
        .collect();
    let clean = clean.trim();
    if clean.is_empty() {
        "upload.xlsx".to_owned()
    } else {
        clean.to_owned()
    }
}

fn parse_user_id(text: &str) -> Result<Option<String>, ApiError> {
    let text = text.trim();
    if text.chars().count() > MAX_USER_ID_CHARS || text.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "`user_id` must be at most {MAX_USER_ID_CHARS} printable characters"
        )));
    }
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_lose_directories_and_control_characters() {
        assert_eq!(display_name(Some("../../etc/passwd")), "passwd");
        assert_eq!(display_name(Some("C:\\Users\\me\\data.xlsx")), "data.xlsx");
        assert_eq!(display_name(Some("a\u{0}b\nc.xlsx")), "abc.xlsx");
        assert_eq!(display_name(None), "upload.xlsx");
        assert_eq!(
            display_name(Some(&"x".repeat(300))).len(),
            MAX_FILE_NAME_CHARS
        );
    }

    #[test]
    fn user_ids_are_trimmed_and_bounded() {
        assert_eq!(
            parse_user_id(" alice ").ok(),
            Some(Some("alice".to_owned()))
        );
        assert_eq!(parse_user_id("").ok(), Some(None));
        assert!(parse_user_id(&"u".repeat(129)).is_err());
        assert!(parse_user_id("a\tb").is_err());
    }
}

//! What every route that creates jobs shares: the owner tag, the `Idempotency-Key` header,
//! and the `202 Accepted` answer.

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use burrow_shared::enqueue::Enqueued;

use crate::error::ApiError;

/// Longest accepted `Idempotency-Key`, in bytes.
const MAX_IDEMPOTENCY_KEY: usize = 255;
/// Header set on a response that returns an earlier job for a repeated `Idempotency-Key`.
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Longest owner tag (`user_id`), in characters.
pub const MAX_USER_ID_CHARS: usize = 128;

/// An owner tag as sent (JSON field or form field): at most [`MAX_USER_ID_CHARS`] characters
/// and no control character, counted before trimming, so the rule is the document's
/// `maxLength` and `pattern`; then trimmed, and blank means none.
///
/// # Errors
/// The reason, for a 400 or 422.
pub fn owner_tag(raw: Option<&str>) -> Result<Option<String>, String> {
    let Some(raw) = raw else { return Ok(None) };
    if raw.chars().count() > MAX_USER_ID_CHARS || raw.chars().any(char::is_control) {
        return Err(format!(
            "`user_id` must be at most {MAX_USER_ID_CHARS} printable characters"
        ));
    }
    let trimmed = raw.trim();
    Ok((!trimmed.is_empty()).then(|| trimmed.to_owned()))
}

/// The `Idempotency-Key` header, if present and well-formed.
///
/// # Errors
/// 400 when it is empty, longer than 255 bytes or not visible ASCII.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().map_err(|_| bad_key())?.to_owned();
    check_idempotency_key(Some(&key)).map_err(|_| bad_key())?;
    Ok(Some(key))
}

pub(super) fn check_idempotency_key(key: Option<&str>) -> Result<(), ApiError> {
    match key {
        Some(k)
            if k.is_empty()
                || k.len() > MAX_IDEMPOTENCY_KEY
                || !k.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Err(ApiError::Unprocessable(format!(
                "an idempotency key is 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
            )))
        }
        _ => Ok(()),
    }
}

fn bad_key() -> ApiError {
    ApiError::BadRequest(format!(
        "`Idempotency-Key` must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
    ))
}

/// `202 Accepted`, `Location: /api/jobs/{id}` and the job; a replayed `Idempotency-Key` also
/// gets `Idempotent-Replayed: true`.
pub fn accepted(enqueued: Enqueued) -> Response {
    let location = format!("/api/jobs/{}", enqueued.job.id);
    let mut response = (
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(enqueued.job),
    )
        .into_response();
    if !enqueued.created {
        response
            .headers_mut()
            .insert(REPLAYED, HeaderValue::from_static("true"));
    }
    response
}

//! The multipart form of an upload (`POST /api/jobs`) and of a preview
//! (`POST /api/imports/preview`): one `file`, and optional `profile`, `sheet`, `header_row`,
//! `on_error` and `user_id` fields; any other field is refused (400).

use axum::extract::multipart::{Field, MultipartError};
use axum::extract::Multipart;
use axum::http::StatusCode;
use burrow_shared::import::{
    check_package, detect_format, OnError, Profile, SheetChoice, SheetFormat, PEOPLE,
};

use super::job_request::owner_tag;
use crate::error::ApiError;
use crate::state::AppState;

/// Longest kept file name, in characters.
const MAX_FILE_NAME_CHARS: usize = 255;

/// A read and checked upload form.
pub struct UploadForm {
    /// The client's file name, cleaned for display.
    pub file_name: String,
    /// The file.
    pub bytes: Vec<u8>,
    /// The profile named (`people` when absent), known to this api.
    pub profile: Profile,
    /// The sheet asked for.
    pub sheet: Option<SheetChoice>,
    /// The header row asked for (1-based).
    pub header_row: Option<u32>,
    /// What to do with invalid rows.
    pub on_error: OnError,
    /// The owner tag.
    pub user_id: Option<String>,
}

impl UploadForm {
    /// Reads the form, counting the file against `state.upload_max_bytes` while it streams.
    ///
    /// # Errors
    /// 400 for a missing or repeated `file`, an unknown field or a bad value; 413 over the
    /// upload limit; 415 when the file is no format burrow reads (by content); 422 for an
    /// unknown profile or a package beyond the import limits.
    pub async fn read(state: &AppState, mut multipart: Multipart) -> Result<UploadForm, ApiError> {
        let limit = state.upload_max_bytes;
        let mut file = None;
        let mut user_id = None;
        let mut on_error = OnError::default();
        let mut profile = None;
        let mut sheet = None;
        let mut header_row = None;
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| multipart_error(e, limit))?
        {
            let name = field.name().map(str::to_owned);
            if name.as_deref() == Some("file") {
                if file.is_some() {
                    return Err(ApiError::BadRequest(
                        "send exactly one `file` field".to_owned(),
                    ));
                }
                let file_name = display_name(field.file_name());
                file = Some((file_name, read_limited(field, limit).await?));
                continue;
            }
            let text = field.text().await.map_err(|e| multipart_error(e, limit))?;
            match name.as_deref() {
                Some("user_id") => {
                    user_id = owner_tag(Some(&text)).map_err(ApiError::BadRequest)?;
                }
                Some("on_error") => {
                    on_error = match text.as_str() {
                        "reject" => OnError::Reject,
                        "skip" => OnError::Skip,
                        other => {
                            return Err(ApiError::BadRequest(format!(
                                "`on_error` is `reject` or `skip`, not {other:?}"
                            )))
                        }
                    };
                }
                Some("profile") => profile = Some(text),
                Some("sheet") if text.trim().is_empty() => {
                    return Err(ApiError::BadRequest(
                        "`sheet` is a sheet name or a 0-based index, not blank".to_owned(),
                    ))
                }
                Some("sheet") => sheet = Some(SheetChoice::parse(&text)),
                Some("header_row") => {
                    header_row = match text.trim().parse::<u32>() {
                        Ok(row) if row >= 1 => Some(row),
                        _ => {
                            return Err(ApiError::BadRequest(format!(
                                "`header_row` is a row number from 1, not {text:?}"
                            )))
                        }
                    };
                }
                // As the JSON bodies refuse unknown fields, so does the form (the document
                // says `additionalProperties: false`).
                other => {
                    return Err(ApiError::BadRequest(format!(
                        "unknown field {:?}: the form takes `file`, `profile`, `sheet`, \
                         `header_row`, `on_error` and `user_id`",
                        other.unwrap_or_default()
                    )))
                }
            }
        }
        let Some((file_name, bytes)) = file else {
            return Err(ApiError::BadRequest(
                "the multipart body has no `file` field".to_owned(),
            ));
        };
        let profile_name = profile.unwrap_or_else(|| PEOPLE.to_owned());
        let profile = state.profiles.get(&profile_name).cloned().ok_or_else(|| {
            ApiError::Unprocessable(format!(
                "no import profile {profile_name:?}; the profiles are {}",
                state.profiles.names()
            ))
        })?;
        let format =
            detect_format(&bytes).map_err(|e| ApiError::UnsupportedMediaType(e.to_string()))?;
        if matches!(
            format,
            SheetFormat::Xlsx | SheetFormat::Xlsm | SheetFormat::Xlsb | SheetFormat::Ods
        ) {
            // Refuse zip bombs and oversized packages before any work is spent on them.
            check_package(&bytes, &state.import_limits)
                .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
        }
        Ok(UploadForm {
            file_name,
            bytes,
            profile,
            sheet,
            header_row,
            on_error,
            user_id,
        })
    }
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
        "upload".to_owned()
    } else {
        clean.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_lose_directories_and_control_characters() {
        assert_eq!(display_name(Some("../../etc/passwd")), "passwd");
        assert_eq!(display_name(Some("C:\\Users\\me\\data.xlsx")), "data.xlsx");
        assert_eq!(display_name(Some("a\u{0}b\nc.xlsx")), "abc.xlsx");
        assert_eq!(display_name(None), "upload");
        assert_eq!(
            display_name(Some(&"x".repeat(300))).len(),
            MAX_FILE_NAME_CHARS
        );
    }

    #[test]
    fn user_ids_are_bounded_as_sent_then_trimmed() {
        let tag = |raw: &str| owner_tag(Some(raw));
        assert_eq!(tag(" alice ").ok(), Some(Some("alice".to_owned())));
        assert_eq!(tag("").ok(), Some(None));
        assert!(tag(&"u".repeat(129)).is_err());
        // Counted before trimming, as the document's maxLength counts.
        assert!(tag(&" ".repeat(129)).is_err());
        assert!(tag("a\tb").is_err());
        assert!(tag("a\u{85}b").is_err());
    }
}

//! `ApiError`: every error the api answers with, as JSON `{"error": code, "message": text}`.
//!
//! Client errors carry a clear reason. Database errors become 500, are logged once here, and
//! their text never reaches the client. Broker errors never reach a request: handlers only
//! write the outbox (see [`burrow_shared::relay`]).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// An error response.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed (missing field, bad id, bad query).
    #[error("{0}")]
    BadRequest(String),
    /// 401: no API key, or not a valid one.
    #[error("a valid API key is required (Authorization: Bearer <key>)")]
    Unauthorized,
    /// 403: the key may not use this endpoint.
    #[error("{0}")]
    Forbidden(String),
    /// 429: the key sent too many requests; try again after `retry_after_secs`.
    #[error("too many requests; retry after {retry_after_secs} s")]
    TooManyRequests {
        /// Seconds to wait (also the `Retry-After` header).
        retry_after_secs: u64,
    },
    /// 404: no such job or route.
    #[error("{0}")]
    NotFound(String),
    /// 413: the upload (or another body) is larger than the limit.
    #[error("the upload is larger than the limit of {limit_bytes} bytes")]
    PayloadTooLarge {
        /// The limit, in bytes.
        limit_bytes: usize,
    },
    /// 415: the body or the file is not of a type the api accepts.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 503: RabbitMQ is unreachable for an operation that needs it now (not for uploads: those
    /// wait in the outbox).
    #[error("RabbitMQ is unavailable; try again")]
    BrokerUnavailable,
    /// 409: the job is not in a state that allows this (e.g. cancelling a finished job).
    #[error("{0}")]
    Conflict(String),
    /// 422: the request is well-formed but its content is invalid (unknown kind, bad payload).
    #[error("{0}")]
    Unprocessable(String),
    /// 500: an unexpected failure (database errors and the like).
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::TooManyRequests { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_requests")
            }
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            ApiError::BrokerUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "broker_unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl ApiError {
    /// A JSON body axum could not read: 413 when it is larger than `limit_bytes` (the route's
    /// body limit), else 422 with axum's reason.
    pub fn from_json_rejection(
        rejection: axum::extract::rejection::JsonRejection,
        limit_bytes: usize,
    ) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge { limit_bytes }
        } else {
            ApiError::Unprocessable(rejection.body_text())
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Internal(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = format!("{e:#}"), "request failed");
        }
        let mut response = (
            status,
            Json(json!({ "error": code, "message": self.to_string() })),
        )
            .into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::TooManyRequests { retry_after_secs } => {
                if let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                    headers.insert(header::RETRY_AFTER, value);
                }
            }
            _ => {}
        }
        response
    }
}

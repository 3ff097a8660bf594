//! `GET /` and `GET /dashboard/{file}`: the web dashboard, plain HTML, CSS and JavaScript from
//! `crates/api/dashboard/`, compiled into the binary (no second server, no build step).
//!
//! The page only calls the public JSON api, so everything it shows can be scripted too.

use axum::extract::Path;
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Content Security Policy of the page: its own scripts, styles and api only, no inline code,
/// no framing.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The page.
const INDEX_HTML: &str = include_str!("../../dashboard/index.html");

/// The assets under `/dashboard/`: name, content type, bytes.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../dashboard/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../dashboard/style.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../../dashboard/favicon.svg"),
    ),
];

/// The dashboard page.
pub async fn index() -> Response {
    let mut response = asset_response("text/html; charset=utf-8", INDEX_HTML);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// One of the page's assets; 404 for any other name.
pub async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|(asset, _, _)| *asset == name)
        .map(|(_, content_type, body)| asset_response(content_type, body))
        .ok_or_else(|| ApiError::NotFound(format!("no dashboard asset {name:?}")))
}

/// `body` with its type; `no-cache` so a new binary's page is picked up at once (the files are
/// small and served from memory).
fn asset_response(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

//! `webhook`: POSTs a JSON body to a URL, signed as the Standard Webhooks specification says
//! (<https://www.standardwebhooks.com/>). The standard callback: enqueue one after a job or a
//! batch to tell another system it is done.
//!
//! # Request
//! `POST {url}` with `content-type: application/json`, the body the payload gives (else
//! [`default_body`]), and three headers:
//! - `webhook-id`: the job's id, the same on every attempt (receivers deduplicate on it);
//! - `webhook-timestamp`: when this attempt was signed, in unix seconds;
//! - `webhook-signature`: `v1,<base64(HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}"))>`,
//!   the key being the bytes of `WEBHOOK_SECRET` (`whsec_<base64>`). Receivers check it with
//!   [`verify`] or any Standard Webhooks library.
//!
//! # Outcomes
//! | answer | outcome |
//! |---|---|
//! | 2xx | success: "POST {url} → {status}" |
//! | 408, 429, 5xx; no connection; the timeout (`WEBHOOK_TIMEOUT_SECS`) | retried with the job's backoff |
//! | 429 or 503 with `Retry-After: <seconds>` | retried after that long (at most [`MAX_RETRY_AFTER`]) |
//! | 3xx | failed: redirects are not followed (the signature is for this URL) |
//! | other 4xx | failed, with the status and the start of the answer's body |
//!
//! # Hosts
//! The URL's scheme must be http or https and its host on `WEBHOOK_ALLOWED_HOSTS` (exact match,
//! see [`AllowedHosts`]); otherwise the job fails without a request. The api checks the same
//! list when the job is submitted (422), from its own `WEBHOOK_ALLOWED_HOSTS`, and the worker
//! checks it again before each request. Without `WEBHOOK_SECRET` the worker sends nothing and
//! the job fails.

mod config;
mod signature;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use reqwest::{redirect, StatusCode};
use serde::{Deserialize, Serialize};
use url::Url;

#[cfg(feature = "cli")]
pub use config::WebhookArgs;
pub use config::{AllowedHosts, WebhookConfig, ALLOWED_HOSTS_VAR, DEFAULT_TIMEOUT, SECRET_VAR};
pub use signature::{verify, SecretError, WebhookSecret};

use crate::handler::{JobError, JobHandler, JobOutput, RunContext};

/// Longest wait a `Retry-After` may ask for; a longer one is cut to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// Characters of a refused answer's body kept in the job's message.
pub const BODY_EXCERPT_CHARS: usize = 500;
/// Bytes of a refused answer's body read at most (for the excerpt).
const BODY_READ_LIMIT: usize = 4 * BODY_EXCERPT_CHARS;

/// The current time in unix seconds; injected so tests sign with a known timestamp.
type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// `{"url": "https://hooks.example.com/burrow", "body": {"any": "json"}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookPayload {
    /// Where to POST: http or https, its host on `WEBHOOK_ALLOWED_HOSTS`.
    pub url: String,
    /// The JSON to send; absent or null: [`default_body`].
    #[serde(default)]
    pub body: Option<serde_json::Value>,
}

/// The webhook kind. Built once per process ([`Webhook::new`]); holds the HTTP client.
pub struct Webhook {
    /// Shared connection pool; no redirects, the configured timeout. `Err`: it could not be
    /// built (the TLS set-up failed), said on each job.
    client: Result<reqwest::Client, String>,
    /// Hosts jobs may call.
    allowed_hosts: AllowedHosts,
    /// Signs each request; `None`: nothing is sent.
    secret: Option<WebhookSecret>,
    /// Longest one request may take.
    timeout: Duration,
    /// The signature's timestamp.
    clock: Clock,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("allowed_hosts", &self.allowed_hosts)
            .field("secret", &self.secret)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Default for Webhook {
    /// No host allowed, no secret: refuses every job (what the api gets without configuration).
    fn default() -> Self {
        Webhook::new(WebhookConfig::default())
    }
}

impl Webhook {
    /// The kind with this configuration, signing with the system clock.
    pub fn new(config: WebhookConfig) -> Webhook {
        let client = reqwest::Client::builder()
            .redirect(redirect::Policy::none())
            .timeout(config.timeout)
            .user_agent(concat!("burrow-webhook/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("the webhook HTTP client could not be built: {e}"));
        Webhook {
            client,
            allowed_hosts: config.allowed_hosts,
            secret: config.secret,
            timeout: config.timeout,
            clock: Arc::new(unix_now),
        }
    }

    /// The same kind, signing with `clock` (unix seconds) instead of the system clock.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Webhook {
        self.clock = Arc::new(clock);
        self
    }

    /// The payload's URL, parsed and checked against the scheme and the allow-list.
    fn target(&self, payload: &WebhookPayload) -> Result<Url, String> {
        let url = Url::parse(&payload.url)
            .map_err(|e| format!("the webhook URL {:?} does not parse: {e}", payload.url))?;
        self.allowed_hosts.check(&url)?;
        Ok(url)
    }
}

/// The JSON sent when the payload has no `body`: what the job reports on.
///
/// `{"job_id", "parents": [{"id", "kind", "status", "message", "output"}], "batch": null |
/// {"id", "status", "members", "counts", …}}`: its parent jobs (`depends_on`), and the batch
/// it is a callback of (`on_success` / `on_complete`), as `GET /api/batches/{id}` shows it.
///
/// # Errors
/// [`JobError::Retryable`] when the database cannot be read.
pub async fn default_body(ctx: &mut RunContext<'_>) -> Result<serde_json::Value, JobError> {
    let parents = ctx.parents().await?;
    let batch = ctx.batch_called_back().await?;
    Ok(serde_json::json!({
        "job_id": ctx.job.id,
        "parents": parents,
        "batch": batch,
    }))
}

impl JobHandler for Webhook {
    const KIND: &'static str = "webhook";
    type Payload = WebhookPayload;

    fn check(&self, payload: &WebhookPayload) -> Result<(), String> {
        self.target(payload).map(|_| ())
    }

    /// The target's host (lower case, as the URL parser writes it): a rate limit on `webhook`
    /// (`KIND_RATE_LIMITS=webhook=10/s`) is per receiving host, whatever the path.
    fn rate_key(&self, payload: &WebhookPayload) -> Option<String> {
        url::Url::parse(&payload.url)
            .ok()?
            .host_str()
            .map(str::to_owned)
    }

    async fn run(
        &self,
        mut ctx: RunContext<'_>,
        payload: WebhookPayload,
    ) -> Result<JobOutput, JobError> {
        let url = self.target(&payload).map_err(JobError::Permanent)?;
        let Some(secret) = &self.secret else {
            return Err(JobError::Permanent(format!(
                "{SECRET_VAR} is not set on the worker: webhooks are not sent unsigned"
            )));
        };
        let client = self
            .client
            .as_ref()
            .map_err(|e| JobError::Permanent(e.clone()))?;
        let body = match payload.body {
            Some(body) if !body.is_null() => body,
            _ => default_body(&mut ctx).await?,
        };
        let body = serde_json::to_vec(&body)
            .map_err(|e| JobError::Permanent(format!("the webhook body: {e}")))?;
        let id = ctx.job.id.to_string();
        let timestamp = (self.clock)();
        let signature = secret.sign(&id, timestamp, &body);
        let request = client
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body);
        let what = format!("POST {}", without_credentials(&url));
        let exchange = async {
            let response = request.send().await?;
            let status = response.status();
            let headers = response.headers().clone();
            let excerpt = if status.is_client_error() {
                read_excerpt(response).await
            } else {
                String::new()
            };
            Ok::<_, reqwest::Error>((status, headers, excerpt))
        };
        let answer = tokio::select! {
            _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
            answer = exchange => answer,
        };
        match answer {
            Ok((status, headers, excerpt)) => outcome(&what, status, &headers, &excerpt),
            Err(e) => Err(transport_error(&what, e, self.timeout)),
        }
    }
}

/// What an answer means for the job ([the module's table](self#outcomes)). Pure: no I/O.
///
/// # Errors
/// The [`JobError`] of every status but 2xx.
pub fn outcome(
    what: &str,
    status: StatusCode,
    headers: &HeaderMap,
    excerpt: &str,
) -> Result<JobOutput, JobError> {
    let code = status.as_u16();
    if status.is_success() {
        return Ok(JobOutput {
            message: format!("{what} → {code}"),
            ..JobOutput::default()
        });
    }
    let reason = format!("{what} → {status}");
    if matches!(code, 429 | 503) {
        if let Some(after) = retry_after(headers) {
            return Err(JobError::RetryAfter { reason, after });
        }
    }
    if code == 408 || code == 429 || status.is_server_error() {
        return Err(JobError::Retryable(reason));
    }
    if status.is_redirection() {
        let location = headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|l| format!(" to {}", clip(l, 200)))
            .unwrap_or_default();
        return Err(JobError::Permanent(format!(
            "{reason}: a redirect{location}, not followed (POST to the final URL instead)"
        )));
    }
    if excerpt.is_empty() {
        Err(JobError::Permanent(reason))
    } else {
        Err(JobError::Permanent(format!("{reason}: {excerpt}")))
    }
}

/// `Retry-After` in seconds (RFC 9110 §10.2.3), capped at [`MAX_RETRY_AFTER`]; `None` when it
/// is absent or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

/// A request that got no answer: a timeout, no connection, a broken answer. All retryable:
/// the receiver may be back later.
fn transport_error(what: &str, e: reqwest::Error, timeout: Duration) -> JobError {
    // The URL is in `what` already, without credentials.
    let e = e.without_url();
    if e.is_timeout() {
        return JobError::Retryable(format!(
            "{what}: no answer within {} s",
            timeout.as_secs_f64()
        ));
    }
    if e.is_builder() {
        return JobError::Permanent(format!("{what}: {}", chain(&e)));
    }
    JobError::Retryable(format!("{what}: {}", chain(&e)))
}

/// An error and its causes, `: `-separated (reqwest's own message says little).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The start of a refused answer's body: at most [`BODY_READ_LIMIT`] bytes read, as text, at
/// most [`BODY_EXCERPT_CHARS`] characters, whitespace folded. Empty if it cannot be read.
async fn read_excerpt(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < BODY_READ_LIMIT {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let folded = text.split_whitespace().collect::<Vec<_>>().join(" ");
    clip(&folded, BODY_EXCERPT_CHARS)
}

/// `text` cut to `max` characters, with `…` when cut.
fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// `url` as shown in the job's message: without a user name or password.
fn without_credentials(url: &Url) -> Url {
    let mut shown = url.clone();
    // Only URLs that cannot have credentials refuse these, and they have none.
    let _ = shown.set_password(None);
    let _ = shown.set_username("");
    shown
}

/// Seconds since the unix epoch, by the system clock.
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn answer(
        code: u16,
        headers: &[(&'static str, &str)],
        excerpt: &str,
    ) -> Result<JobOutput, JobError> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_str(value).expect("header"));
        }
        let status = StatusCode::from_u16(code).expect("status");
        outcome("POST https://h/p", status, &map, excerpt)
    }

    #[test]
    fn a_2xx_succeeds_with_the_status_in_the_message() {
        let output = answer(204, &[], "").expect("success");
        assert_eq!(output.message, "POST https://h/p → 204");
    }

    #[test]
    fn timeouts_throttling_and_server_errors_are_retried() {
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(
                matches!(answer(code, &[], ""), Err(JobError::Retryable(_))),
                "{code}"
            );
        }
    }

    #[test]
    fn retry_after_seconds_on_429_and_503_set_the_wait_capped_at_an_hour() {
        let Err(JobError::RetryAfter { after, .. }) = answer(503, &[("retry-after", "7")], "")
        else {
            panic!("503 with Retry-After");
        };
        assert_eq!(after, Duration::from_secs(7));
        let Err(JobError::RetryAfter { after, .. }) = answer(429, &[("retry-after", "99999")], "")
        else {
            panic!("429 with Retry-After");
        };
        assert_eq!(after, MAX_RETRY_AFTER);
        // An HTTP date, or a Retry-After on another status: the job's own backoff.
        let date = [("retry-after", "Wed, 21 Oct 2026 07:28:00 GMT")];
        assert!(matches!(
            answer(503, &date, ""),
            Err(JobError::Retryable(_))
        ));
        assert!(matches!(
            answer(500, &[("retry-after", "7")], ""),
            Err(JobError::Retryable(_))
        ));
    }

    #[test]
    fn other_4xx_fail_with_the_status_and_the_answers_start() {
        let Err(JobError::Permanent(message)) = answer(404, &[], "no such hook") else {
            panic!("404 is permanent");
        };
        assert_eq!(message, "POST https://h/p → 404 Not Found: no such hook");
    }

    #[test]
    fn a_redirect_fails_and_says_it_was_not_followed() {
        let Err(JobError::Permanent(message)) = answer(302, &[("location", "https://x/y")], "")
        else {
            panic!("302 is permanent");
        };
        assert!(message.contains("302 Found"), "{message}");
        assert!(
            message.contains("to https://x/y, not followed"),
            "{message}"
        );
    }

    #[test]
    fn clip_counts_characters_not_bytes() {
        assert_eq!(clip("ééé", 2), "éé…");
        assert_eq!(clip("ab", 2), "ab");
    }
}

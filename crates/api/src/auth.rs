//! Authentication: who is calling, as an axum extractor, and the per-key rate limit.
//!
//! A handler that takes a [`Caller`] needs a valid API key (`Authorization: Bearer bk_…` or
//! `X-Api-Key: bk_…`) when keys are on; handlers without one (health, readiness, metrics, the
//! OpenAPI document, the dashboard's static files) stay public. A non-admin caller owns the jobs
//! it creates and sees only those: someone else's job answers 404, as if it did not exist.
//!
//! Modes (`AUTH_MODE`): `keys` checks keys (the default whenever the api listens beyond
//! loopback); `off` treats every request as an admin (development: the default on a loopback
//! address, so `just demo` and the tests need no key).

use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use burrow_shared::api_keys;
use burrow_shared::jobs::JobRow;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use sqlx::PgPool;

use crate::error::ApiError;

/// Whether API keys are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Every request is an admin (development).
    Off,
    /// Every `/api` request needs a valid key.
    Keys,
}

/// Authentication settings and the rate limiter, shared by all requests.
#[derive(Clone)]
pub struct Auth {
    /// The mode.
    pub mode: AuthMode,
    limiter: Arc<DefaultKeyedRateLimiter<Vec<u8>>>,
}

impl Auth {
    /// Keys off (development).
    pub fn off() -> Self {
        Auth::new(AuthMode::Off, DEFAULT_RATE_PER_SECOND, DEFAULT_RATE_BURST)
    }

    /// `mode`, limiting each key to `per_second` requests with bursts of `burst`.
    pub fn new(mode: AuthMode, per_second: u32, burst: u32) -> Self {
        let per_second = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(per_second);
        let quota = Quota::per_second(per_second).allow_burst(burst);
        Auth {
            mode,
            limiter: Arc::new(RateLimiter::keyed(quota)),
        }
    }
}

/// Default requests per second per key.
pub const DEFAULT_RATE_PER_SECOND: u32 = 50;
/// Default burst per key.
pub const DEFAULT_RATE_BURST: u32 = 100;

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key's owner tag (`None` with auth off).
    pub user_id: Option<String>,
    /// Whether it sees and controls every job.
    pub admin: bool,
}

impl Caller {
    /// Whether the caller may see this job (others' jobs answer 404).
    pub fn can_see(&self, job: &JobRow) -> bool {
        self.can_see_owned_by(job.user_id.as_deref())
    }

    /// Whether this caller may see what the owner tag `owner` owns (a job, a batch): an admin
    /// sees everything, anyone else only its own.
    pub fn can_see_owned_by(&self, owner: Option<&str>) -> bool {
        self.admin || (self.user_id.is_some() && owner == self.user_id.as_deref())
    }

    /// The owner tag of a job this caller creates: its own, unless an admin names another.
    pub fn owner_tag(&self, requested: Option<String>) -> Option<String> {
        if self.admin {
            requested.or_else(|| self.user_id.clone())
        } else {
            self.user_id.clone()
        }
    }

    /// 403 unless the caller is an admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "this endpoint needs an admin key".to_owned(),
            ))
        }
    }
}

/// Any state that holds the key settings and the database (the api's `AppState`) can
/// authenticate callers.
impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    Auth: FromRef<S>,
    PgPool: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = Auth::from_ref(state);
        if auth.mode == AuthMode::Off {
            return Ok(Caller {
                user_id: None,
                admin: true,
            });
        }
        let key = presented_key(parts).ok_or(ApiError::Unauthorized)?;
        let owner = api_keys::find_owner(&PgPool::from_ref(state), key)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        if let Err(not_until) = auth.limiter.check_key(&api_keys::hash_key(key)) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return Err(ApiError::TooManyRequests {
                retry_after_secs: wait.as_secs().max(1),
            });
        }
        Ok(Caller {
            user_id: Some(owner.user_id),
            admin: owner.is_admin,
        })
    }
}

/// The key from `Authorization: Bearer …` or `X-Api-Key: …`.
fn presented_key(parts: &Parts) -> Option<&str> {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    header("authorization")
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| header("x-api-key"))
        .map(str::trim)
        .filter(|key| !key.is_empty())
}

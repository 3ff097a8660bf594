//! API keys: creating them (shown once), finding the caller of a request, revoking them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgExecutor;
use uuid::Uuid;

/// Every key starts with this, so it is recognisable in logs and secret scanners.
pub const KEY_PREFIX: &str = "bk_";
/// Characters of a key kept (as `prefix`) to recognise it later.
const SHOWN_CHARS: usize = 11;

/// Who a key belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct KeyOwner {
    /// The owner tag of the caller's jobs.
    pub user_id: String,
    /// Whether the caller may see and control every job.
    pub is_admin: bool,
}

/// A key as listed (never the key itself).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct KeyInfo {
    /// The key's id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its owner tag.
    pub user_id: String,
    /// Whether it is an admin key.
    pub is_admin: bool,
    /// Its first characters.
    pub prefix: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A new random key: `bk_` and 64 hex digits (244 random bits from the OS generator, through
/// two UUIDv4s).
pub fn generate_key() -> String {
    format!(
        "{KEY_PREFIX}{}{}",
        Uuid::new_v4().simple(),
        Uuid::new_v4().simple()
    )
}

/// The stored form of a key: its SHA-256.
pub fn hash_key(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// Stores a new key for `user_id` and returns it: the only time it is ever shown.
///
/// # Errors
/// The database error.
pub async fn create_key(
    db: impl PgExecutor<'_>,
    name: &str,
    user_id: &str,
    is_admin: bool,
) -> Result<String, sqlx::Error> {
    let key = generate_key();
    sqlx::query(
        "INSERT INTO api_keys (id, name, user_id, is_admin, key_hash, prefix) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(Uuid::now_v7())
    .bind(name)
    .bind(user_id)
    .bind(is_admin)
    .bind(hash_key(&key))
    .bind(&key[..SHOWN_CHARS])
    .execute(db)
    .await?;
    Ok(key)
}

/// The owner of an unrevoked key, if it is one.
///
/// # Errors
/// The database error.
pub async fn find_owner(
    db: impl PgExecutor<'_>,
    key: &str,
) -> Result<Option<KeyOwner>, sqlx::Error> {
    sqlx::query_as(
        "SELECT user_id, is_admin FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
    )
    .bind(hash_key(key))
    .fetch_optional(db)
    .await
}

/// Revokes the keys starting with `prefix` (at least [`KEY_PREFIX`] and 8 more characters);
/// returns how many.
///
/// # Errors
/// The database error.
pub async fn revoke_keys(db: impl PgExecutor<'_>, prefix: &str) -> Result<u64, sqlx::Error> {
    if prefix.len() < SHOWN_CHARS {
        return Ok(0);
    }
    let shown = &prefix[..SHOWN_CHARS];
    Ok(sqlx::query(
        "UPDATE api_keys SET revoked_at = now() WHERE prefix = $1 AND revoked_at IS NULL",
    )
    .bind(shown)
    .execute(db)
    .await?
    .rows_affected())
}

/// Every key, newest first.
///
/// # Errors
/// The database error.
pub async fn list_keys(db: impl PgExecutor<'_>) -> Result<Vec<KeyInfo>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, name, user_id, is_admin, prefix, created_at, revoked_at FROM api_keys \
         ORDER BY created_at DESC",
    )
    .fetch_all(db)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_hashed() {
        let (a, b) = (generate_key(), generate_key());
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX) && a.len() == 67, "{a}");
        assert_eq!(hash_key(&a).len(), 32);
        assert_ne!(hash_key(&a), hash_key(&b));
    }
}

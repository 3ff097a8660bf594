//! Weights per tenant for fair sharing ([`crate::engine::fair_share`]): a tenant of weight 3
//! is served three releases for each one of a tenant of weight 1 while both have a backlog.
//!
//! # Where the weights live
//! One row per tenant in `fair_share_weights` (migration
//! `20261206003000_fair_share_weights.sql`); a tenant without a row weighs 1. Every ranking of
//! the backlog reads the table, so every relay orders by the same weights whatever its own
//! configuration. The api and the worker write their `FAIR_SHARE_WEIGHTS` setting
//! ([`parse_weights`]) with [`set_weights`] at start-up: as with the kind caps
//! (`KIND_CAPS`), the last replica to start wins, and a replica that names no weight for a
//! tenant removes nothing (remove one with [`remove_weight`]).
//!
//! The tenant is a job's owner tag (`jobs.user_id`); jobs without one share the tenant `""`,
//! which [`set_weights`] accepts but `FAIR_SHARE_WEIGHTS` does not name (an empty name there
//! is more likely a typo than a choice).

use std::collections::BTreeMap;

use sqlx::{PgExecutor, PgPool};

/// The setting read by the api and the worker: `tenant=weight` entries separated by commas.
pub const WEIGHTS_VAR: &str = "FAIR_SHARE_WEIGHTS";

/// The lightest weight a tenant may have: one millionth of the default.
pub const MIN_WEIGHT: f64 = 1e-6;

/// The heaviest weight a tenant may have: a million times the default.
pub const MAX_WEIGHT: f64 = 1e6;

/// A weight that cannot be one: not a number from [`MIN_WEIGHT`] to [`MAX_WEIGHT`] (0, a
/// negative number, NaN, an infinity, or one so far from 1 that a turn divided by it could
/// overflow and stop every ranking of the backlog).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "the weight of tenant {tenant:?} must be a number from {MIN_WEIGHT} to {MAX_WEIGHT}, not {weight}"
)]
pub struct InvalidWeight {
    /// The tenant it was given for.
    pub tenant: String,
    /// The weight refused.
    pub weight: f64,
}

/// Why [`set_weights`] wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum SetWeightsError {
    /// One of the weights is out of range ([`InvalidWeight`]); checked before anything is
    /// written.
    #[error(transparent)]
    Invalid(#[from] InvalidWeight),
    /// Postgres failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Why [`parse_weights`] refused a `FAIR_SHARE_WEIGHTS` text; the message names the entry.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseWeightsError {
    /// An entry without `=`.
    #[error("{WEIGHTS_VAR} entry {0:?} is not tenant=weight")]
    NotAPair(String),
    /// An entry with nothing before `=`.
    #[error("{WEIGHTS_VAR} entry {0:?} names no tenant")]
    NoTenant(String),
    /// A weight that is not a number.
    #[error("{WEIGHTS_VAR} entry {0:?}: the weight is not a number")]
    NotANumber(String),
    /// A number out of range ([`InvalidWeight`]).
    #[error("{WEIGHTS_VAR}: {0}")]
    Invalid(InvalidWeight),
    /// A tenant named twice (which one was meant?).
    #[error("{WEIGHTS_VAR} names the tenant {0:?} twice")]
    Duplicate(String),
}

/// Checks that `weight` can be `tenant`'s: from [`MIN_WEIGHT`] to [`MAX_WEIGHT`].
///
/// # Errors
/// [`InvalidWeight`] for 0, a negative number, NaN, an infinity, or a number out of range.
///
/// # Example
/// ```
/// use burrow_shared::engine::fair_share_weights::check_weight;
/// assert!(check_weight("acme", 0.5).is_ok());
/// assert!(check_weight("acme", 0.0).is_err());
/// assert!(check_weight("acme", f64::NAN).is_err());
/// ```
pub fn check_weight(tenant: &str, weight: f64) -> Result<(), InvalidWeight> {
    // NaN fails both comparisons.
    if (MIN_WEIGHT..=MAX_WEIGHT).contains(&weight) {
        Ok(())
    } else {
        Err(InvalidWeight {
            tenant: tenant.to_owned(),
            weight,
        })
    }
}

/// Parses `FAIR_SHARE_WEIGHTS`: `tenant=weight` entries separated by commas, blanks around
/// them ignored; an empty text sets no weight. A weight is a decimal number from
/// [`MIN_WEIGHT`] to [`MAX_WEIGHT`] (`3`, `0.5`); a tenant of weight 3 is served three times as often as one of weight 1 while both
/// have a backlog.
///
/// # Errors
/// [`ParseWeightsError`]: an entry without `=`, an empty tenant, a weight that is not a
/// number or is out of range ([`check_weight`]), or a tenant named twice.
///
/// # Example
/// ```
/// use burrow_shared::engine::fair_share_weights::parse_weights;
/// let weights = parse_weights("acme=3, globex=0.5").unwrap();
/// assert_eq!(weights.get("acme"), Some(&3.0));
/// assert_eq!(weights.get("globex"), Some(&0.5));
/// assert!(parse_weights("").unwrap().is_empty());
/// assert!(parse_weights("acme=0").is_err());
/// assert!(parse_weights("acme").is_err());
/// ```
pub fn parse_weights(text: &str) -> Result<BTreeMap<String, f64>, ParseWeightsError> {
    let mut weights = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (tenant, weight) = entry
            .split_once('=')
            .ok_or_else(|| ParseWeightsError::NotAPair(entry.to_owned()))?;
        let tenant = tenant.trim();
        if tenant.is_empty() {
            return Err(ParseWeightsError::NoTenant(entry.to_owned()));
        }
        let weight: f64 = weight
            .trim()
            .parse()
            .map_err(|_| ParseWeightsError::NotANumber(entry.to_owned()))?;
        check_weight(tenant, weight).map_err(ParseWeightsError::Invalid)?;
        if weights.insert(tenant.to_owned(), weight).is_some() {
            return Err(ParseWeightsError::Duplicate(tenant.to_owned()));
        }
    }
    Ok(weights)
}

/// Writes `weights` (tenant → weight, from [`MIN_WEIGHT`] to [`MAX_WEIGHT`]) for `by` (who set them: a
/// worker id, an api's host), replacing what another replica wrote for the same tenants;
/// other tenants' rows stay. The next ranking of the backlog orders by them.
///
/// # Errors
/// [`SetWeightsError::Invalid`] if any weight is out of range ([`check_weight`]), and the
/// database error: nothing is written then.
///
/// # Example
/// ```no_run
/// # async fn example(db: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
/// use std::collections::BTreeMap;
/// use burrow_shared::engine::fair_share_weights;
/// let weights = BTreeMap::from([("acme".to_owned(), 3.0), ("globex".to_owned(), 0.5)]);
/// fair_share_weights::set_weights(&db, &weights, "host-1:4242").await?;
/// assert_eq!(fair_share_weights::weights(&db).await?, weights);
/// # Ok(()) }
/// ```
pub async fn set_weights(
    db: &PgPool,
    weights: &BTreeMap<String, f64>,
    by: &str,
) -> Result<(), SetWeightsError> {
    for (tenant, weight) in weights {
        check_weight(tenant, *weight)?;
    }
    if weights.is_empty() {
        return Ok(());
    }
    let tenants: Vec<&str> = weights.keys().map(String::as_str).collect();
    let values: Vec<f64> = weights.values().copied().collect();
    // One statement: all the weights or none.
    sqlx::query(
        "INSERT INTO fair_share_weights (tenant, weight, updated_by) \
         SELECT t, w, $3 FROM unnest($1::text[], $2::float8[]) AS u(t, w) \
         ON CONFLICT (tenant) DO UPDATE \
             SET weight = EXCLUDED.weight, updated_at = now(), \
                 updated_by = EXCLUDED.updated_by",
    )
    .bind(&tenants)
    .bind(&values)
    .bind(by)
    .execute(db)
    .await?;
    Ok(())
}

/// Removes `tenant`'s weight: it weighs 1 again from the next ranking of the backlog. Returns
/// whether it had one. A replica that names the tenant in `FAIR_SHARE_WEIGHTS` writes it back
/// at its next start-up.
///
/// # Errors
/// The database error.
///
/// # Example
/// ```no_run
/// # async fn example(db: sqlx::PgPool) -> Result<(), sqlx::Error> {
/// use burrow_shared::engine::fair_share_weights;
/// if fair_share_weights::remove_weight(&db, "acme").await? {
///     println!("acme weighs 1 again");
/// }
/// # Ok(()) }
/// ```
pub async fn remove_weight(db: impl PgExecutor<'_>, tenant: &str) -> Result<bool, sqlx::Error> {
    let removed = sqlx::query("DELETE FROM fair_share_weights WHERE tenant = $1")
        .bind(tenant)
        .execute(db)
        .await?
        .rows_affected();
    Ok(removed > 0)
}

/// Every tenant with a weight, tenant → weight; tenants not listed weigh 1.
///
/// # Errors
/// The database error.
///
/// # Example
/// ```no_run
/// # async fn example(db: sqlx::PgPool) -> Result<(), sqlx::Error> {
/// use burrow_shared::engine::fair_share_weights;
/// for (tenant, weight) in fair_share_weights::weights(&db).await? {
///     println!("{tenant:?} weighs {weight}");
/// }
/// # Ok(()) }
/// ```
pub async fn weights(db: impl PgExecutor<'_>) -> Result<BTreeMap<String, f64>, sqlx::Error> {
    let rows: Vec<(String, f64)> =
        sqlx::query_as("SELECT tenant, weight FROM fair_share_weights ORDER BY tenant")
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_parse_from_tenant_equals_weight_entries() {
        let weights = parse_weights(" acme=3 ,globex = 0.5,, initech=1e1 ").expect("valid");
        assert_eq!(
            weights,
            BTreeMap::from([
                ("acme".to_owned(), 3.0),
                ("globex".to_owned(), 0.5),
                ("initech".to_owned(), 10.0),
            ])
        );
        assert!(parse_weights("").expect("empty").is_empty());
        assert!(parse_weights(" , ").expect("blank").is_empty());
    }

    #[test]
    fn bad_weights_are_refused_naming_the_entry() {
        let refused = |text: &str| parse_weights(text).expect_err(text);
        assert_eq!(refused("acme"), ParseWeightsError::NotAPair("acme".into()));
        assert_eq!(refused("=3"), ParseWeightsError::NoTenant("=3".into()));
        assert_eq!(refused(" =3"), ParseWeightsError::NoTenant("=3".into()));
        assert_eq!(
            refused("acme=three"),
            ParseWeightsError::NotANumber("acme=three".into())
        );
        assert_eq!(
            refused("acme="),
            ParseWeightsError::NotANumber("acme=".into())
        );
        for bad in [
            "0", "-1", "-0", "NaN", "inf", "-inf", "1e400", "1e-7", "2e6",
        ] {
            let error = refused(&format!("acme={bad}"));
            assert!(
                matches!(&error, ParseWeightsError::Invalid(InvalidWeight { tenant, .. }) if tenant == "acme"),
                "{bad}: {error:?}"
            );
        }
        assert_eq!(
            refused("acme=1,acme=2"),
            ParseWeightsError::Duplicate("acme".into())
        );
        // A bad entry anywhere refuses the whole text.
        assert!(parse_weights("acme=3,globex=0").is_err());
        assert!(refused("acme")
            .to_string()
            .contains("FAIR_SHARE_WEIGHTS entry \"acme\""));
    }

    #[test]
    fn only_weights_from_a_millionth_to_a_million_pass_the_check() {
        for good in [MIN_WEIGHT, 0.001, 1.0, 3.0, MAX_WEIGHT] {
            assert!(check_weight("a", good).is_ok(), "{good}");
        }
        let tiny = f64::MIN_POSITIVE / 2.0;
        for bad in [0.0, -0.0, -2.0, tiny, 1e-7, 1e7, 1e300] {
            assert!(check_weight("a", bad).is_err(), "{bad}");
        }
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(check_weight("a", bad).is_err(), "{bad}");
        }
    }
}

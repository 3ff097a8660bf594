//! Work not ended, per tenant (the owner tag `jobs.user_id`, set from the API key): how many
//! jobs each owner has waiting to run and running, for `/api/stats` and the worker's gauges.
//!
//! # What counts
//! - **Backlog**: jobs `queued` or `retrying` ([`BACKLOG_STATUSES`]): accepted and not running,
//!   whether due now, scheduled for later (`run_at`), waiting on a cap or a rate limit, or
//!   between attempts. Jobs `awaiting` their parents are left out: they cannot run yet.
//! - **Running**: jobs `processing`.
//! - **Weight**: the owner's fair-sharing weight ([`crate::engine::fair_share_weights`]), 1
//!   unless set, so that a backlog can be read against the share it is served.
//!
//! # Limits
//! Only the `top` owners with the largest backlog are named (ties: more running first, then
//! by name, jobs without owner first); every other owner is summed into [`OtherTenants`], so
//! the answer's size (and a gauge's label set) stays bounded however many tenants there are.
//! The query groups every job not ended, on `jobs_status_newest_idx`: its cost grows with the
//! backlog, not with the jobs' history.

use sqlx::PgExecutor;

use crate::status::JobStatus;

/// The statuses counted as backlog: accepted, not running, able to run (now or later).
pub const BACKLOG_STATUSES: [JobStatus; 2] = [JobStatus::Queued, JobStatus::Retrying];

/// One owner's work not ended.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantLoad {
    /// The owner tag; `null` for jobs created without one (auth off and no `user_id` given).
    pub user_id: Option<String>,
    /// Its jobs `queued` or `retrying`.
    pub backlog: u64,
    /// Its jobs `processing`.
    pub running: u64,
    /// Its weight in fair sharing ([`crate::engine::fair_share_weights`]; 1 unless set): while
    /// tenants have backlogs, each is released messages in proportion to its weight. Jobs
    /// without an owner weigh as the tenant `""`.
    pub weight: f64,
}

/// The owners left out of the top, summed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OtherTenants {
    /// How many owners with work not ended were left out.
    pub tenants: u64,
    /// Their jobs `queued` or `retrying`, together.
    pub backlog: u64,
    /// Their jobs `processing`, together.
    pub running: u64,
}

/// Work not ended per owner: the largest backlogs by name, the rest summed.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantBacklog {
    /// At most `top` owners (see [`backlog`]), the largest backlog first.
    pub top: Vec<TenantLoad>,
    /// Everyone else; all zero when `top` lists every owner with work not ended.
    pub others: OtherTenants,
}

/// Owners with jobs queued, retrying or processing: the `top` largest backlogs by name (0
/// lists none), the rest summed in [`TenantBacklog::others`]. Owners whose jobs have all
/// ended do not appear.
///
/// # Errors
/// The database error.
///
/// # Example
/// ```no_run
/// # async fn example(db: sqlx::PgPool) -> Result<(), sqlx::Error> {
/// use burrow_shared::engine::tenant_backlog;
/// let tenants = tenant_backlog::backlog(&db, 20).await?;
/// for tenant in &tenants.top {
///     println!(
///         "{:?}: {} waiting, {} running, weight {}",
///         tenant.user_id, tenant.backlog, tenant.running, tenant.weight
///     );
/// }
/// println!("{} more tenants", tenants.others.tenants);
/// # Ok(()) }
/// ```
pub async fn backlog(db: impl PgExecutor<'_>, top: u32) -> Result<TenantBacklog, sqlx::Error> {
    let backlog_statuses: Vec<&str> = BACKLOG_STATUSES.iter().map(|s| s.as_str()).collect();
    // One row per listed owner, and one (listed = false) summing the others; the ranking and
    // the sums happen in Postgres so that many tenants do not mean many rows sent.
    let rows: Vec<(Option<String>, bool, i64, i64, i64, f64)> = sqlx::query_as(
        "WITH per_owner AS ( \
             SELECT user_id, \
                    count(*) FILTER (WHERE status = ANY($1)) AS backlog, \
                    count(*) FILTER (WHERE status = $2) AS running \
             FROM jobs WHERE status = ANY($1) OR status = $2 \
             GROUP BY user_id), \
         ranked AS ( \
             SELECT *, row_number() OVER ( \
                 ORDER BY backlog DESC, running DESC, user_id NULLS FIRST) <= $3 AS listed \
             FROM per_owner) \
         SELECT CASE WHEN listed THEN user_id END, listed, \
                sum(backlog)::bigint, sum(running)::bigint, count(*), \
                max(coalesce(w.weight, 1)) \
         FROM ranked r LEFT JOIN fair_share_weights w ON w.tenant = coalesce(r.user_id, '') \
         GROUP BY 1, 2",
    )
    .bind(&backlog_statuses)
    .bind(JobStatus::Processing.as_str())
    .bind(i64::from(top))
    .fetch_all(db)
    .await?;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    let mut tenants = TenantBacklog::default();
    for (user_id, listed, backlog, running, owners, weight) in rows {
        if listed {
            // A listed row is one owner: its weight (the others' is left out).
            tenants.top.push(TenantLoad {
                user_id,
                backlog: count(backlog),
                running: count(running),
                weight,
            });
        } else {
            tenants.others = OtherTenants {
                tenants: count(owners),
                backlog: count(backlog),
                running: count(running),
            };
        }
    }
    tenants.top.sort_by(|a, b| {
        (b.backlog, b.running)
            .cmp(&(a.backlog, a.running))
            .then_with(|| a.user_id.cmp(&b.user_id))
    });
    Ok(tenants)
}

//! The tenant gauges: every [`REFRESH`], the backlog and running jobs per owner tag
//! ([`burrow_shared::engine::tenant_backlog`]) into `burrow_tenant_backlog{tenant}` and
//! `burrow_tenant_running{tenant}`, the label bounded to the [`TENANTS_LABELLED`] largest
//! backlogs, [`metrics::TENANT_NONE`] and [`metrics::TENANT_OTHER`].

use std::collections::BTreeSet;
use std::time::Duration;

use burrow_shared::engine::tenant_backlog::{self, TenantBacklog};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::metrics;

/// How often the tenants' backlog is read.
pub const REFRESH: Duration = Duration::from_secs(5);
/// Most owners named by the `tenant` label; the others are summed under
/// [`metrics::TENANT_OTHER`]. Small, because every name is a series on every worker.
pub const TENANTS_LABELLED: u32 = 10;

/// Refreshes the tenant gauges every [`REFRESH`] until `shutdown`. A database error is logged
/// at debug level and the gauges keep their last values.
pub async fn run_tenant_stats(db: PgPool, shutdown: CancellationToken) {
    let mut labelled = BTreeSet::new();
    loop {
        match tenant_backlog::backlog(&db, TENANTS_LABELLED).await {
            Ok(tenants) => labelled = record(&tenants, &labelled),
            Err(e) => tracing::debug!(error = %e, "could not read the tenants' backlog"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(REFRESH) => {}
        }
    }
}

/// Sets the gauges of `tenants`, and 0 for the labels of `before` it no longer has (a gauge
/// left at its last value would claim a backlog that is gone). Returns the labels set.
fn record(tenants: &TenantBacklog, before: &BTreeSet<String>) -> BTreeSet<String> {
    let mut now = BTreeSet::new();
    for tenant in &tenants.top {
        let label = tenant.user_id.as_deref().unwrap_or(metrics::TENANT_NONE);
        metrics::record_tenant(label, tenant.backlog, tenant.running);
        now.insert(label.to_owned());
    }
    // "(other)" is always set, at 0 when nobody is left out, so its series never goes stale.
    metrics::record_tenant(
        metrics::TENANT_OTHER,
        tenants.others.backlog,
        tenants.others.running,
    );
    for gone in before.difference(&now) {
        metrics::record_tenant(gone, 0, 0);
    }
    now.extend(before.iter().cloned());
    now
}

#[cfg(test)]
mod tests {
    use burrow_shared::engine::tenant_backlog::{OtherTenants, TenantLoad};

    use super::*;

    fn load(user_id: Option<&str>, backlog: u64) -> TenantLoad {
        TenantLoad {
            user_id: user_id.map(str::to_owned),
            backlog,
            running: 0,
            weight: 1.0,
        }
    }

    #[test]
    fn labels_are_the_top_owners_and_those_seen_before() {
        let first = TenantBacklog {
            top: vec![load(Some("acme"), 5), load(None, 2)],
            others: OtherTenants::default(),
        };
        let labels = record(&first, &BTreeSet::new());
        assert_eq!(
            labels,
            BTreeSet::from(["acme".to_owned(), metrics::TENANT_NONE.to_owned()])
        );
        let second = TenantBacklog {
            top: vec![load(Some("globex"), 1)],
            others: OtherTenants::default(),
        };
        let labels = record(&second, &labels);
        assert_eq!(
            labels,
            BTreeSet::from([
                "acme".to_owned(),
                "globex".to_owned(),
                metrics::TENANT_NONE.to_owned()
            ]),
            "owners no longer listed keep their (zeroed) label"
        );
    }
}

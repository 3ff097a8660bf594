//! Scheduled maintenance inside the worker: the stuck-job sweeper (with the capped waiters
//! it releases and the idle rate-limit keys it forgets), retention and recurring jobs. Every
//! replica runs the loop; each task takes its own advisory lock, so exactly one replica does
//! each at a time.

pub mod recurring;
pub mod retention;

use std::time::Duration;

use burrow_shared::engine::rate_limits;
use burrow_shared::retry::RetryPolicy;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::sweeper::sweep_once;
use recurring::Recurring;

/// How often recurring schedules are checked: cron slots have one-second resolution.
pub const RECURRING_TICK: Duration = Duration::from_secs(1);

/// What maintenance needs.
pub struct Maintenance {
    /// The job store.
    pub db: PgPool,
    /// Attempts budget (the sweeper buries jobs that used it up).
    pub retry: RetryPolicy,
    /// A `processing` job with no live worker this long is stuck.
    pub lease: Duration,
    /// How often the sweeper and retention run.
    pub interval: Duration,
    /// Finished jobs are deleted after this many days (0: never).
    pub retention_days: u32,
    /// Recurring jobs.
    pub recurring: Vec<Recurring>,
}

impl Maintenance {
    /// Runs until `shutdown`: recurring jobs every [`RECURRING_TICK`], the sweeper and
    /// retention every `interval`. Errors are logged and retried next time.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut recurring_tick = tokio::time::interval(RECURRING_TICK);
        let mut sweep_tick = tokio::time::interval(self.interval);
        recurring_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        sweep_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        // The first tick of an interval is immediate; let the worker settle first.
        sweep_tick.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = recurring_tick.tick() => {
                    if let Err(e) = recurring::enqueue_due(&self.db, &self.recurring, chrono::Utc::now()).await {
                        warn!(error = format!("{e:#}"), "recurring jobs: tick failed");
                    }
                }
                _ = sweep_tick.tick() => self.sweep_and_expire().await,
            }
        }
    }

    async fn sweep_and_expire(&self) {
        match sweep_once(&self.db, &self.retry, self.lease).await {
            Ok(report) => {
                if report.requeued + report.buried > 0 {
                    info!(
                        requeued = report.requeued,
                        buried = report.buried,
                        "swept stuck jobs"
                    );
                }
                // The sweeper's replica also lets go the capped waiters whose released
                // message was lost (their reservation expired) when nothing else would.
                if report.swept {
                    match burrow_shared::engine::kind_caps::pump_all(&self.db).await {
                        Ok(0) => {}
                        Ok(released) => info!(released, "released capped waiters"),
                        Err(e) => warn!(error = %e, "releasing capped waiters failed"),
                    }
                    // And forgets the rate-limit keys that went quiet.
                    match rate_limits::prune_idle(&self.db, rate_limits::IDLE_STATE_KEPT).await {
                        Ok(0) => {}
                        Ok(deleted) => info!(deleted, "forgot idle rate-limit keys"),
                        Err(e) => warn!(error = %e, "pruning rate-limit keys failed"),
                    }
                }
            }
            Err(e) => warn!(
                error = format!("{e:#}"),
                "sweep failed; trying again next interval"
            ),
        }
        match retention::delete_expired(&self.db, self.retention_days).await {
            Ok(0) => {}
            Ok(deleted) => info!(deleted, days = self.retention_days, "deleted expired jobs"),
            Err(e) => warn!(error = %e, "retention failed; trying again next interval"),
        }
    }
}

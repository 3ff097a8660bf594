//! Readiness beyond "the services answer": is work piling up, or has it stopped moving? The
//! rules behind the `degraded` answers of the api's and the worker's `GET /readyz`.
//!
//! Both are warnings, not failures: a degraded process still answers 200, so a load balancer
//! keeps it in rotation, while the reasons tell an operator (or an alert) what to look at.
//!
//! - **backlog**: more than [`ReadinessRules::backlog_threshold`] jobs wait
//!   (`READY_BACKLOG_THRESHOLD`, default [`DEFAULT_BACKLOG_THRESHOLD`]). Add workers.
//! - **stall**: jobs wait, yet nothing has finished for [`ReadinessRules::stall`]
//!   (`READY_STALL_MINUTES`, default [`DEFAULT_STALL_MINUTES`]) and they have waited that
//!   long. Workers are gone, stuck, or cannot reach a service.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

/// Default backlog threshold: 10,000 waiting jobs.
pub const DEFAULT_BACKLOG_THRESHOLD: u64 = 10_000;
/// Default stall window: 10 minutes.
pub const DEFAULT_STALL_MINUTES: u64 = 10;

/// When a ready process reports itself `degraded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadinessRules {
    /// More waiting jobs than this is a backlog (jobs).
    pub backlog_threshold: u64,
    /// Waiting this long with nothing finished is a stall.
    pub stall: Duration,
}

impl Default for ReadinessRules {
    fn default() -> Self {
        ReadinessRules::new(DEFAULT_BACKLOG_THRESHOLD, DEFAULT_STALL_MINUTES)
    }
}

impl ReadinessRules {
    /// Rules from the two settings: a threshold in jobs and a window in minutes.
    pub fn new(backlog_threshold: u64, stall_minutes: u64) -> Self {
        ReadinessRules {
            backlog_threshold,
            stall: Duration::from_secs(stall_minutes.saturating_mul(60)),
        }
    }

    /// The reasons to report `degraded` (empty: ready), given `waiting` jobs and how long they
    /// have waited with nothing finishing (`quiet_for`: the shorter of "since the last job
    /// finished" and "since jobs started waiting").
    pub fn degraded_reasons(&self, waiting: u64, quiet_for: Duration) -> Vec<String> {
        let mut reasons = Vec::new();
        if waiting > self.backlog_threshold {
            reasons.push(format!(
                "backlog: {waiting} jobs waiting (threshold {})",
                self.backlog_threshold
            ));
        }
        if waiting > 0 && quiet_for >= self.stall {
            reasons.push(format!(
                "stalled: no job finished for {} s while {waiting} wait (limit {} s)",
                quiet_for.as_secs(),
                self.stall.as_secs()
            ));
        }
        reasons
    }
}

/// The job table's view of the backlog, for the api's `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct JobBacklog {
    /// Jobs `queued` and due (`run_at` unset or past).
    pub waiting: i64,
    /// When the oldest of them was created.
    pub oldest_waiting_at: Option<DateTime<Utc>>,
    /// When the latest job ended (any final status).
    pub last_completed_at: Option<DateTime<Utc>>,
}

impl JobBacklog {
    /// How long jobs have waited with nothing finishing, as of `now`: the shorter of the time
    /// since the last completion (if any) and the age of the oldest waiting job. Zero when
    /// nothing waits.
    pub fn quiet_for(&self, now: DateTime<Utc>) -> Duration {
        let Some(oldest) = self.oldest_waiting_at else {
            return Duration::ZERO;
        };
        let since = self
            .last_completed_at
            .map_or(oldest, |done| done.max(oldest));
        (now - since).to_std().unwrap_or(Duration::ZERO)
    }
}

/// Reads the backlog: two index scans (`jobs_status_newest_idx`, `jobs_completed_idx`).
///
/// # Errors
/// The database error.
pub async fn job_backlog(db: impl PgExecutor<'_>) -> Result<JobBacklog, sqlx::Error> {
    sqlx::query_as(
        "SELECT w.waiting, w.oldest_waiting_at, \
                (SELECT max(completed_at) FROM jobs) AS last_completed_at \
         FROM (SELECT count(*) AS waiting, min(created_at) AS oldest_waiting_at FROM jobs \
               WHERE status = 'queued' AND (run_at IS NULL OR run_at <= now())) w",
    )
    .fetch_one(db)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn a_backlog_over_the_threshold_is_degraded() {
        let rules = ReadinessRules::new(100, 10);
        assert!(rules.degraded_reasons(100, Duration::ZERO).is_empty());
        let reasons = rules.degraded_reasons(101, Duration::ZERO);
        assert_eq!(reasons.len(), 1);
        assert!(reasons[0].starts_with("backlog: 101 jobs"), "{reasons:?}");
    }

    #[test]
    fn waiting_jobs_with_nothing_finished_for_the_window_are_a_stall() {
        let rules = ReadinessRules::new(100, 10);
        assert!(rules.degraded_reasons(3, 9 * MINUTE).is_empty());
        let reasons = rules.degraded_reasons(3, 10 * MINUTE);
        assert_eq!(reasons.len(), 1);
        assert!(reasons[0].starts_with("stalled"), "{reasons:?}");
        assert!(
            rules.degraded_reasons(0, 60 * MINUTE).is_empty(),
            "an idle system is not stalled"
        );
    }

    #[test]
    fn quiet_time_starts_at_the_later_of_last_completion_and_oldest_wait() {
        let now = Utc::now();
        let ago = |minutes: i64| Some(now - chrono::Duration::minutes(minutes));
        let idle_then_new_job = JobBacklog {
            waiting: 1,
            oldest_waiting_at: ago(1),
            last_completed_at: ago(60),
        };
        assert_eq!(idle_then_new_job.quiet_for(now).as_secs() / 60, 1);
        let stuck = JobBacklog {
            waiting: 5,
            oldest_waiting_at: ago(30),
            last_completed_at: ago(20),
        };
        assert_eq!(stuck.quiet_for(now).as_secs() / 60, 20);
        let never_finished = JobBacklog {
            waiting: 5,
            oldest_waiting_at: ago(15),
            last_completed_at: None,
        };
        assert_eq!(never_finished.quiet_for(now).as_secs() / 60, 15);
        let nothing_waits = JobBacklog {
            waiting: 0,
            oldest_waiting_at: None,
            last_completed_at: ago(60),
        };
        assert_eq!(nothing_waits.quiet_for(now), Duration::ZERO);
    }
}

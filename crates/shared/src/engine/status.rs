//! The job status model: the states a job moves through and their wire names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a job is in its life:
/// `queued → processing → succeeded | failed`, with `processing → retrying → processing` on a
/// transient error and `→ dead` once retries are exhausted. A job with parents starts
/// `awaiting → queued` (or `awaiting → cancelled` when a parent fails).
///
/// Stored in `jobs.status` and shown by the api as the lower-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Created with parents (`depends_on`) not all ended: its message is held back until the
    /// last one ends.
    Awaiting,
    /// Accepted and published; waiting for a worker.
    Queued,
    /// A worker has claimed the latest delivery and is running it.
    Processing,
    /// A transient error; the next attempt waits in a delay queue until `next_attempt_at`.
    Retrying,
    /// Finished; its effect (the imported rows) is committed.
    Succeeded,
    /// Finished without effect; `message` says why (for imports: row and column).
    Failed,
    /// Retries exhausted, or the message could not be run: it rests in the DLQ.
    Dead,
    /// Stopped on request; nothing of it was committed.
    Cancelled,
}

impl JobStatus {
    /// Every status, in life-cycle order.
    pub const ALL: [JobStatus; 8] = [
        JobStatus::Awaiting,
        JobStatus::Queued,
        JobStatus::Processing,
        JobStatus::Retrying,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Dead,
        JobStatus::Cancelled,
    ];

    /// The name stored in Postgres and shown by the api.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Awaiting => "awaiting",
            JobStatus::Queued => "queued",
            JobStatus::Processing => "processing",
            JobStatus::Retrying => "retrying",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Dead => "dead",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// The statuses of a job that has ended: the one definition of the terminal set. Only an
    /// explicit restart ([`crate::engine::state::Transition::Restart`], re-drive) moves a job out
    /// of one.
    pub const TERMINAL: [JobStatus; 4] = [
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Dead,
        JobStatus::Cancelled,
    ];

    /// Whether the job has ended: nothing will change it any more.
    pub fn is_terminal(self) -> bool {
        JobStatus::TERMINAL.contains(&self)
    }

    /// `statuses` as an SQL list of string literals, `'succeeded', 'failed'`, for `IN (…)`.
    /// The names are this enum's own constants, never input.
    pub fn sql_list(statuses: &[JobStatus]) -> String {
        statuses
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not one of [`JobStatus::ALL`]'s names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown job status {0:?} (expected one of awaiting, queued, processing, retrying, succeeded, failed, dead, cancelled)")]
pub struct UnknownStatus(pub String);

impl FromStr for JobStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

impl TryFrom<String> for JobStatus {
    type Error = UnknownStatus;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_through_its_name() {
        for status in JobStatus::ALL {
            assert_eq!(status.as_str().parse::<JobStatus>(), Ok(status));
            assert_eq!(
                serde_json::to_string(&status).ok(),
                Some(format!("\"{status}\""))
            );
        }
    }

    #[test]
    fn only_ended_states_are_terminal() {
        let terminal: Vec<JobStatus> = JobStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(terminal, JobStatus::TERMINAL);
        assert!(!JobStatus::Queued.is_terminal() && !JobStatus::Processing.is_terminal());
    }

    #[test]
    fn sql_lists_quote_each_name() {
        assert_eq!(
            JobStatus::sql_list(&JobStatus::TERMINAL),
            "'succeeded', 'failed', 'dead', 'cancelled'"
        );
    }

    #[test]
    fn unknown_names_are_rejected() {
        assert!("done".parse::<JobStatus>().is_err());
        assert!("Queued".parse::<JobStatus>().is_err());
    }
}

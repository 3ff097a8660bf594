//! Failpoints: deliberate crashes at chosen points, for the fault-injection test suite only.
//!
//! A failpoint is armed with the `BURROW_FAILPOINT` environment variable, read once at start-up
//! (see [`crate::config`]). Production deployments never set it. Names meant for another binary
//! (the worker has its own) are ignored here, so one variable can be set for a whole stack.

/// A point where the api crashes on purpose when armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failpoint {
    /// `api_crash_after_commit`: abort the process right after a job and its outbox row are
    /// committed, before the relay is woken. Proves that a committed job is still published
    /// (by the relay's poll, here or in another replica) after a crash.
    ApiCrashAfterCommit,
}

impl Failpoint {
    /// The failpoint called `name`, or `None` if the api has no failpoint of that name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim() {
            "api_crash_after_commit" => Some(Failpoint::ApiCrashAfterCommit),
            _ => None,
        }
    }

    /// The name `BURROW_FAILPOINT` uses for this failpoint.
    pub fn name(self) -> &'static str {
        match self {
            Failpoint::ApiCrashAfterCommit => "api_crash_after_commit",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_apis_own_failpoints_are_recognised() {
        assert_eq!(
            Failpoint::from_name("api_crash_after_commit"),
            Some(Failpoint::ApiCrashAfterCommit)
        );
        assert_eq!(
            Failpoint::ApiCrashAfterCommit.name(),
            "api_crash_after_commit"
        );
        assert_eq!(Failpoint::from_name("worker_crash_after_import"), None);
        assert_eq!(Failpoint::from_name(""), None);
    }
}

//! `sleep`: waits `ms` milliseconds (an I/O-bound job for demos, load and scale-out tests).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::handler::{JobError, JobHandler, JobOutput, RunContext};

/// Longest accepted sleep: one hour.
pub const MAX_SLEEP_MS: u64 = 3_600_000;
/// Progress and cancellation are checked this often.
const STEP: Duration = Duration::from_millis(100);

/// The sleep kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sleep;

/// `{"ms": 50}`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SleepPayload {
    /// Milliseconds to sleep, at most [`MAX_SLEEP_MS`].
    pub ms: u64,
}

impl JobHandler for Sleep {
    const KIND: &'static str = "sleep";
    type Payload = SleepPayload;

    fn check(&self, payload: &SleepPayload) -> Result<(), String> {
        if payload.ms > MAX_SLEEP_MS {
            return Err(format!("`ms` must be at most {MAX_SLEEP_MS}"));
        }
        Ok(())
    }

    async fn run(&self, ctx: RunContext<'_>, payload: SleepPayload) -> Result<JobOutput, JobError> {
        let total = Duration::from_millis(payload.ms);
        let deadline = Instant::now() + total;
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let elapsed = total - (deadline - now);
            ctx.progress.set(elapsed.as_millis() as u64, payload.ms);
            tokio::select! {
                _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
                _ = tokio::time::sleep((deadline - now).min(STEP)) => {}
            }
        }
        ctx.progress.set(payload.ms, payload.ms);
        Ok(JobOutput {
            message: format!("Slept {} ms", payload.ms),
            ..JobOutput::default()
        })
    }
}

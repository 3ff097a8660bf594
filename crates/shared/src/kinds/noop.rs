//! `noop`: does nothing and succeeds; measures the system's per-job overhead.

use serde::{Deserialize, Serialize};

use crate::handler::{JobError, JobHandler, JobOutput, RunContext};

/// The no-op kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct Noop;

/// Any object; its fields are ignored.
#[derive(Debug, Serialize, Deserialize)]
pub struct NoopPayload {}

impl JobHandler for Noop {
    const KIND: &'static str = "noop";
    type Payload = NoopPayload;

    async fn run(
        &self,
        _ctx: RunContext<'_>,
        _payload: NoopPayload,
    ) -> Result<JobOutput, JobError> {
        Ok(JobOutput {
            message: "Done".to_owned(),
            ..JobOutput::default()
        })
    }
}

//! `import_xlsx`: the uploaded workbook's people sheet into `imported_rows`.
//!
//! Created only by uploading a file (`POST /api/jobs`, multipart); its payload is empty.

use serde::Deserialize;

use crate::handler::{JobError, JobHandler, JobOutput, RunContext};
use crate::import::{import_people, ImportError, ImportOptions};
use crate::jobs;

/// The import kind.
#[derive(Debug, Clone, Default)]
pub struct ImportXlsx {
    /// Import settings (demo pacing).
    pub options: ImportOptions,
}

/// No parameters: the file is the job's upload.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportPayload {}

impl JobHandler for ImportXlsx {
    const KIND: &'static str = crate::message::KIND_IMPORT_XLSX;
    const NEEDS_UPLOAD: bool = true;
    type Payload = ImportPayload;

    async fn run(
        &self,
        ctx: RunContext<'_>,
        _payload: ImportPayload,
    ) -> Result<JobOutput, JobError> {
        let id = ctx.job.id;
        let file = jobs::load_file(&mut *ctx.tx, id)
            .await
            .map_err(|e| JobError::Retryable(format!("loading the file: {e}")))?
            .ok_or_else(|| JobError::Permanent("the job has no uploaded file".to_owned()))?;
        let rows = import_people(ctx.tx, id, file, &self.options, &ctx.progress, &ctx.cancel)
            .await
            .map_err(|e| match e {
                ImportError::Cancelled => JobError::Cancelled,
                e if e.is_permanent() => JobError::Permanent(e.to_string()),
                e => JobError::Retryable(e.to_string()),
            })?;
        Ok(JobOutput {
            message: format!("Imported {rows} rows"),
            rows: Some(rows),
            result: None,
        })
    }
}

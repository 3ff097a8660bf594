//! `import_xlsx`: the uploaded workbook's people sheet into `imported_rows`.
//!
//! Created only by uploading a file (`POST /api/jobs`, multipart, with an optional `on_error`
//! field: `reject`, the default, or `skip`).

use serde::{Deserialize, Serialize};

use crate::handler::{JobError, JobHandler, JobOutput, ResultFile, RunContext};
use crate::import::{import_people, rejection_report, ImportError, ImportOptions, OnError};
use crate::jobs;
use crate::kinds::export_xlsx::XLSX_CONTENT_TYPE;

/// The import kind.
#[derive(Debug, Clone, Default)]
pub struct ImportXlsx {
    /// Import settings (limits, demo pacing).
    pub options: ImportOptions,
}

/// `{"on_error": "skip"}`; the file is the job's upload.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportPayload {
    /// What to do with invalid rows.
    #[serde(default)]
    pub on_error: OnError,
}

impl JobHandler for ImportXlsx {
    const KIND: &'static str = crate::message::KIND_IMPORT_XLSX;
    const NEEDS_UPLOAD: bool = true;
    /// About 150 MiB and one core each (the parser thread), so two per worker process.
    const MAX_CONCURRENCY: Option<usize> = Some(2);
    type Payload = ImportPayload;

    async fn run(
        &self,
        mut ctx: RunContext<'_>,
        payload: ImportPayload,
    ) -> Result<JobOutput, JobError> {
        let id = ctx.job.id;
        let file = jobs::load_file(ctx.tx.conn().await?, id)
            .await
            .map_err(|e| JobError::Retryable(format!("loading the file: {e}")))?
            .ok_or_else(|| JobError::Permanent("the job has no uploaded file".to_owned()))?;
        let options = ImportOptions {
            on_error: payload.on_error,
            ..self.options.clone()
        };
        let report = import_people(
            ctx.tx.conn().await?,
            id,
            file,
            &options,
            &ctx.progress,
            &ctx.cancel,
        )
        .await
        .map_err(|e| match e {
            ImportError::Cancelled => JobError::Cancelled,
            e if e.is_permanent() => JobError::Permanent(e.to_string()),
            e => JobError::Retryable(e.to_string()),
        })?;
        let rows = report.rows;
        if report.rejected_total == 0 {
            return Ok(JobOutput {
                message: format!("Imported {rows} rows"),
                rows: Some(rows),
                result: None,
            });
        }
        let bytes = rejection_report(&report.rejected, report.rejected_total)
            .map_err(|e| JobError::Permanent(format!("writing the error report: {e}")))?;
        Ok(JobOutput {
            message: format!(
                "Imported {rows} rows; skipped {} invalid rows (the error report is the result file)",
                report.rejected_total
            ),
            rows: Some(rows),
            result: Some(ResultFile {
                file_name: format!("rejected-rows-{id}.xlsx"),
                content_type: XLSX_CONTENT_TYPE.to_owned(),
                bytes,
            }),
        })
    }
}

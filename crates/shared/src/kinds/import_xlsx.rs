//! `import_xlsx`: an uploaded spreadsheet (any format the import reads; the kind keeps its
//! first name) into the table of an import profile, `people` by default.
//!
//! Created only by uploading a file (`POST /api/jobs`, multipart, with optional `profile`,
//! `sheet`, `header_row` and `on_error` fields).

use serde::{Deserialize, Serialize};
use tracing::Instrument as _;

use crate::handler::{JobError, JobHandler, JobOutput, ResultFile, RunContext};
use crate::import::{
    import_file, rejection_report, ImportError, ImportOptions, ImportRequest, OnError, SheetChoice,
    PEOPLE,
};
use crate::jobs;
use crate::kinds::export_xlsx::XLSX_CONTENT_TYPE;

/// The import kind.
#[derive(Debug, Clone, Default)]
pub struct ImportXlsx {
    /// Import settings (limits, demo pacing).
    pub options: ImportOptions,
}

/// `{"profile": "people", "on_error": "skip"}`; the file is the job's upload.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportPayload {
    /// The import profile (see `crate::import::Profiles`); `people` when absent.
    #[serde(default = "people")]
    pub profile: String,
    /// The sheet, by name or 0-based index; default: the profile's choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sheet: Option<SheetChoice>,
    /// The header's row (1-based); default: the profile's, else found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_row: Option<u32>,
    /// What to do with invalid rows.
    #[serde(default)]
    pub on_error: OnError,
}

impl Default for ImportPayload {
    fn default() -> ImportPayload {
        ImportPayload {
            profile: people(),
            sheet: None,
            header_row: None,
            on_error: OnError::default(),
        }
    }
}

fn people() -> String {
    PEOPLE.to_owned()
}

impl JobHandler for ImportXlsx {
    const KIND: &'static str = "import_xlsx";
    const NEEDS_UPLOAD: bool = true;
    /// About 150 MiB and one core each (the parser thread), so two per worker process.
    const MAX_CONCURRENCY: Option<usize> = Some(2);
    /// Imports travel apart from small jobs, so they can run on workers of their own
    /// (`WORKER_QUEUES=imports`) and a burst of them never holds up the default queue.
    const QUEUE: &'static str = "imports";
    type Payload = ImportPayload;

    async fn run(
        &self,
        mut ctx: RunContext<'_>,
        payload: ImportPayload,
    ) -> Result<JobOutput, JobError> {
        let id = ctx.job.id;
        let file = jobs::load_file(ctx.tx.conn().await?, id)
            .instrument(tracing::info_span!("import read"))
            .await
            .map_err(|e| JobError::Retryable(format!("loading the file: {e}")))?
            .ok_or_else(|| JobError::Permanent("the job has no uploaded file".to_owned()))?;
        // The api checks the name; a worker whose IMPORT_PROFILES_DIR differs finds out here.
        let profile = self.options.profiles.get(&payload.profile).ok_or_else(|| {
            JobError::Permanent(format!(
                "no import profile {:?} on this worker (it has {})",
                payload.profile,
                self.options.profiles.names()
            ))
        })?;
        let request = ImportRequest {
            profile,
            sheet: payload.sheet.as_ref(),
            header_row: payload.header_row,
        };
        let options = ImportOptions {
            on_error: payload.on_error,
            ..self.options.clone()
        };
        let report = import_file(
            ctx.tx.conn().await?,
            id,
            file,
            request,
            &options,
            &ctx.progress,
            &ctx.cancel,
        )
        .instrument(tracing::info_span!("import parse and copy", profile = %payload.profile))
        .await
        .map_err(|e| match e {
            ImportError::Cancelled => JobError::Cancelled,
            ImportError::InvalidRows {
                total,
                ref rejected,
                ref header,
            } => match rejection_report(header, rejected, total) {
                Ok(bytes) => JobError::PermanentWithResult {
                    reason: format!("{e} (the error report is the result file)"),
                    result: report_file(id, bytes),
                },
                Err(report) => {
                    JobError::Permanent(format!("{e} (writing the error report failed: {report})"))
                }
            },
            e if e.is_permanent() => JobError::Permanent(e.to_string()),
            e => JobError::Retryable(e.to_string()),
        })?;
        let rows = report.rows;
        let imported = if report.written == rows {
            format!("Imported {rows} rows")
        } else {
            format!(
                "Imported {rows} rows ({} new; the others' keys existed)",
                report.written
            )
        };
        // What a following job (an export, a webhook) may want to know.
        let output = serde_json::json!({
            "rows": rows,
            "written": report.written,
            "rejected": report.rejected_total,
            "profile": payload.profile,
            "sheet": report.sheet,
        });
        if report.rejected_total == 0 {
            return Ok(JobOutput {
                message: imported,
                rows: Some(rows),
                result: None,
                output: Some(output),
            });
        }
        let bytes = rejection_report(&report.header, &report.rejected, report.rejected_total)
            .map_err(|e| JobError::Permanent(format!("writing the error report: {e}")))?;
        Ok(JobOutput {
            message: format!(
                "{imported}; skipped {} invalid rows (the error report is the result file)",
                report.rejected_total
            ),
            rows: Some(rows),
            result: Some(report_file(id, bytes)),
            output: Some(output),
        })
    }
}

/// The error report of job `id` as its result file.
fn report_file(id: uuid::Uuid, bytes: Vec<u8>) -> ResultFile {
    ResultFile {
        file_name: format!("rejected-rows-{id}.xlsx"),
        content_type: XLSX_CONTENT_TYPE.to_owned(),
        bytes,
    }
}

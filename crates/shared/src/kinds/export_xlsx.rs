//! `export_xlsx`: writes the rows of a finished import, or a filter over them, to a new .xlsx,
//! downloadable as the job's result.

use futures::TryStreamExt as _;
use rust_xlsxwriter::Workbook;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::handler::{JobError, JobHandler, JobOutput, ResultFile, RunContext};
use crate::people_sheet::{add_data_sheet, write_person, write_strings, Person, HEADER};

/// MIME type of .xlsx files.
pub const XLSX_CONTENT_TYPE: &str =
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
/// Rows between cancellation checks and progress reports.
const CHECK_EVERY: u64 = 10_000;

/// The export kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExportXlsx;

/// `{"source_job_id": "…", "gender": "Female", "email_domain": "example.com"}`; the filters are
/// optional and case-insensitive. Without `source_job_id`, the source is the job's parent of
/// kind `import_xlsx` (an export created with `depends_on: [import]`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportPayload {
    /// The `import_xlsx` job whose rows to export; default: the job's `import_xlsx` parent.
    #[serde(default)]
    pub source_job_id: Option<Uuid>,
    /// Only rows with this gender.
    pub gender: Option<String>,
    /// Only rows whose email is at this domain.
    pub email_domain: Option<String>,
}

impl JobHandler for ExportXlsx {
    const KIND: &'static str = "export_xlsx";
    /// The workbook is built in memory (rust_xlsxwriter), so two per worker process.
    const MAX_CONCURRENCY: Option<usize> = Some(2);
    type Payload = ExportPayload;

    async fn run(
        &self,
        mut ctx: RunContext<'_>,
        payload: ExportPayload,
    ) -> Result<JobOutput, JobError> {
        let retryable = |e: sqlx::Error| JobError::Retryable(format!("reading rows: {e}"));
        let source_job_id = match payload.source_job_id {
            Some(id) => id,
            None => source_parent(&ctx).await?,
        };
        let source: Option<(String, Option<i64>)> =
            sqlx::query_as("SELECT status, rows_imported FROM jobs WHERE id = $1")
                .bind(source_job_id)
                .fetch_optional(ctx.tx.conn().await?)
                .await
                .map_err(retryable)?;
        let total = match source {
            Some((status, rows)) if status == "succeeded" => rows.unwrap_or(0).max(0) as u64,
            Some((status, _)) => {
                return Err(JobError::Permanent(format!(
                    "job {source_job_id} is {status}; only a succeeded import can be exported"
                )))
            }
            None => return Err(JobError::Permanent(format!("no job {source_job_id}"))),
        };

        let mut workbook = Workbook::new();
        let sheet = add_data_sheet(&mut workbook).map_err(xlsx_error)?;
        write_strings(sheet, 0, 0, &HEADER).map_err(xlsx_error)?;
        let conn = ctx.tx.conn().await?;
        let mut rows = sqlx::query_as::<_, (i64, String, String, String, String, String)>(
            "SELECT id, coalesce(first_name, ''), coalesce(last_name, ''), coalesce(email, ''), \
                    coalesce(gender, ''), coalesce(ip_address, '') \
             FROM imported_rows WHERE job_id = $1 \
               AND ($2::text IS NULL OR lower(gender) = lower($2)) \
               AND ($3::text IS NULL OR lower(email) LIKE '%@' || lower($3)) \
             ORDER BY row_number",
        )
        .bind(source_job_id)
        .bind(&payload.gender)
        .bind(&payload.email_domain)
        .fetch(conn);
        let mut written: u64 = 0;
        while let Some((id, first_name, last_name, email, gender, ip_address)) =
            rows.try_next().await.map_err(retryable)?
        {
            let person = Person {
                id,
                first_name,
                last_name,
                email,
                gender,
                ip_address,
            };
            written += 1;
            write_person(sheet, written as u32, &person).map_err(xlsx_error)?;
            if written.is_multiple_of(CHECK_EVERY) {
                if ctx.cancel.is_cancelled() {
                    return Err(JobError::Cancelled);
                }
                ctx.progress.set(written, total);
            }
        }
        drop(rows);
        let bytes = workbook.save_to_buffer().map_err(xlsx_error)?;
        ctx.progress.set(written, written);
        Ok(JobOutput {
            message: format!("Exported {written} rows"),
            rows: Some(written),
            result: Some(ResultFile {
                file_name: format!("export-{source_job_id}.xlsx"),
                content_type: XLSX_CONTENT_TYPE.to_owned(),
                bytes,
            }),
            output: Some(serde_json::json!({
                "rows": written,
                "source_job_id": source_job_id,
            })),
        })
    }
}

/// The job's one `import_xlsx` parent, for an export created to follow an import.
async fn source_parent(ctx: &RunContext<'_>) -> Result<Uuid, JobError> {
    let imports: Vec<Uuid> = ctx
        .parents()
        .await?
        .into_iter()
        .filter(|parent| parent.kind == crate::kinds::KIND_IMPORT_XLSX)
        .map(|parent| parent.id)
        .collect();
    match imports[..] {
        [id] => Ok(id),
        [] => Err(JobError::Permanent(
            "no `source_job_id`, and the job has no import_xlsx parent to export".to_owned(),
        )),
        _ => Err(JobError::Permanent(format!(
            "no `source_job_id`, and the job has {} import_xlsx parents: name one",
            imports.len()
        ))),
    }
}

fn xlsx_error(e: rust_xlsxwriter::XlsxError) -> JobError {
    JobError::Permanent(format!("writing the .xlsx: {e}"))
}

//! The import processor against a real Postgres: streaming in chunks, replacing on re-run,
//! header flexibility, and all-or-nothing on errors.

use burrow_shared::fixtures::{people, people_xlsx, Person};
use std::io::Cursor;

use burrow_shared::import::{
    import_people, rejection_report, ImportError, ImportOptions, ImportReport, OnError,
};
use burrow_shared::people_sheet::HEADER;
use burrow_shared::progress::Progress;
use burrow_shared::testing::TestEnv;
use burrow_shared::{NewJob, KIND_IMPORT_XLSX};
use calamine::{Reader, Xlsx};
use rust_xlsxwriter::Workbook;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

async fn new_job(env: &TestEnv) -> Uuid {
    let job = NewJob::new(KIND_IMPORT_XLSX).file("people.xlsx", b"unused".to_vec());
    env.insert_job(job).await.expect("job").id
}

/// Imports in a transaction, committing only on success (as the worker does).
async fn import(env: &TestEnv, job: Uuid, file: Vec<u8>) -> Result<u64, ImportError> {
    import_with(env, job, file, OnError::Reject)
        .await
        .map(|report| report.rows)
}

async fn import_with(
    env: &TestEnv,
    job: Uuid,
    file: Vec<u8>,
    on_error: OnError,
) -> Result<ImportReport, ImportError> {
    let mut tx = env.db.begin().await?;
    let (progress, cancel) = (Progress::default(), CancellationToken::new());
    let options = ImportOptions {
        on_error,
        ..ImportOptions::default()
    };
    let report = import_people(&mut tx, job, file, &options, &progress, &cancel).await?;
    tx.commit().await?;
    Ok(report)
}

async fn stored(env: &TestEnv, job: Uuid) -> Vec<(i32, i64, Option<String>)> {
    sqlx::query_as(
        "SELECT row_number, id, email FROM imported_rows WHERE job_id = $1 ORDER BY row_number",
    )
    .bind(job)
    .fetch_all(&env.db)
    .await
    .expect("rows")
}

#[tokio::test]
async fn a_large_file_streams_through_many_copy_chunks() {
    let env = TestEnv::new().await.expect("services");
    let job = new_job(&env).await;
    let people: Vec<Person> = people(11, 1, 20_000).collect();
    let file = people_xlsx(people.clone()).expect("xlsx");
    assert_eq!(import(&env, job, file).await.expect("imports"), 20_000);
    let rows = stored(&env, job).await;
    assert_eq!(rows.len(), 20_000);
    let last = rows.last().expect("rows");
    assert_eq!(
        (last.0, last.1, last.2.as_deref()),
        (20_001, 20_000, Some(people[19_999].email.as_str()))
    );
}

#[tokio::test]
async fn importing_the_same_job_again_replaces_its_rows() {
    let env = TestEnv::new().await.expect("services");
    let job = new_job(&env).await;
    let file = people_xlsx(people(3, 1, 50)).expect("xlsx");
    assert_eq!(import(&env, job, file.clone()).await.expect("first"), 50);
    assert_eq!(import(&env, job, file).await.expect("second"), 50);
    assert_eq!(stored(&env, job).await.len(), 50, "replaced, not appended");
}

#[tokio::test]
async fn a_bad_cell_deep_in_the_file_commits_nothing() {
    let env = TestEnv::new().await.expect("services");
    let job = new_job(&env).await;
    // 15,000 good rows (several chunks already sent to COPY), then a bad Id.
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet().set_name("Data").expect("name");
    for (column, name) in burrow_shared::fixtures::HEADER.iter().enumerate() {
        sheet.write(0, column as u16, *name).expect("header");
    }
    for (row, person) in (1u32..).zip(people(5, 1, 15_000)) {
        sheet.write(row, 0, person.id as f64).expect("id");
        sheet.write(row, 3, person.email.as_str()).expect("email");
        sheet.write(row, 5, person.ip_address.as_str()).expect("ip");
    }
    sheet.write(15_001, 0, "12x").expect("bad id");
    let file = workbook.save_to_buffer().expect("xlsx");

    let err = import(&env, job, file).await.expect_err("fails");
    assert_eq!(
        err.to_string(),
        "row 15002, column Id (cell A15002): expected a whole number, found \"12x\""
    );
    assert!(err.is_permanent());
    assert!(
        stored(&env, job).await.is_empty(),
        "the transaction rolled back"
    );
}

#[tokio::test]
async fn columns_may_come_in_any_order_with_extras_and_blank_rows() {
    let env = TestEnv::new().await.expect("services");
    let job = new_job(&env).await;
    let mut workbook = Workbook::new();
    workbook
        .add_worksheet()
        .set_name("Notes")
        .expect("name")
        .write(0, 0, "ignored")
        .expect("cell");
    let sheet = workbook.add_worksheet().set_name("DATA").expect("name");
    let header = [
        "ipaddress",
        "Comment",
        "EMAIL",
        "gender",
        "lastname",
        "firstname",
        "ID",
    ];
    for (column, name) in header.iter().enumerate() {
        sheet.write(1, column as u16, *name).expect("header"); // header on row 2, row 1 blank
    }
    sheet.write(2, 6, 42).expect("id");
    sheet.write(2, 2, "ann@example.com").expect("email");
    sheet.write(2, 0, "10.0.0.1").expect("ip");
    sheet.write(4, 2, "bob@example.com").expect("email");
    sheet.write(4, 0, "::1").expect("ip");
    sheet.write(4, 6, "43").expect("id as text"); // row 4 blank
    let file = workbook.save_to_buffer().expect("xlsx");

    assert_eq!(import(&env, job, file).await.expect("imports"), 2);
    assert_eq!(
        stored(&env, job).await,
        vec![
            (3, 42, Some("ann@example.com".to_owned())),
            (5, 43, Some("bob@example.com".to_owned()))
        ]
    );
}

#[tokio::test]
async fn hostile_files_fail_with_a_clear_error_and_commit_nothing() {
    use burrow_shared::fixtures::HostileFixture;
    let env = TestEnv::new().await.expect("services");
    let expectations = [
        (
            HostileFixture::ZipBomb,
            "the file exceeds a limit: entry xl/worksheets/sheet1.xml inflates",
        ),
        (
            HostileFixture::EntityBomb,
            "the file cannot be read as a spreadsheet",
        ),
        (
            HostileFixture::HugeDimension,
            "the file exceeds a limit: cell XFD2 is beyond column 256",
        ),
        (
            HostileFixture::HugeCell,
            "row 2, column FirstName (cell B2): the text is longer than 32767 characters",
        ),
        (
            HostileFixture::InvalidUtf8,
            "the file cannot be read as a spreadsheet",
        ),
    ];
    for (hostile, expected) in expectations {
        let job = new_job(&env).await;
        let file = hostile.bytes().expect("hostile file");
        let err = import(&env, job, file)
            .await
            .expect_err(hostile.file_name());
        assert!(
            err.to_string().starts_with(expected),
            "{}: {err}",
            hostile.file_name()
        );
        assert!(err.is_permanent(), "{}", hostile.file_name());
        assert!(stored(&env, job).await.is_empty());
    }
}

/// Six people, with a bad email in row 3, a bad IP in row 5 and a repeated Id in row 6.
fn file_with_invalid_rows() -> Vec<u8> {
    let mut people: Vec<Person> = people(9, 1, 6).collect();
    people[1].email = "not-an-email".to_owned();
    people[3].ip_address = "999.1.1.1".to_owned();
    people[4].id = people[0].id;
    people_xlsx(people).expect("xlsx")
}

#[tokio::test]
async fn invalid_rows_reject_the_file_and_are_listed() {
    let env = TestEnv::new().await.expect("services");
    let job = new_job(&env).await;
    let err = import(&env, job, file_with_invalid_rows())
        .await
        .expect_err("rejected");
    assert_eq!(
        err.to_string(),
        "3 rows are invalid; the first 3: \
         row 3, column Email (cell D3): \"not-an-email\" is not an email address; \
         row 5, column IpAddress (cell F5): \"999.1.1.1\" is not an IPv4 or IPv6 address; \
         row 6, column Id (cell A6): Id 1 appears again (first in row 2)"
    );
    assert!(stored(&env, job).await.is_empty());
}

#[tokio::test]
async fn with_on_error_skip_the_valid_rows_are_imported_and_the_rest_reported() {
    let env = TestEnv::new().await.expect("services");
    let job = new_job(&env).await;
    let report = import_with(&env, job, file_with_invalid_rows(), OnError::Skip)
        .await
        .expect("imports");
    assert_eq!((report.rows, report.rejected_total), (3, 3));
    let rows: Vec<i32> = stored(&env, job)
        .await
        .into_iter()
        .map(|(row, _, _)| row)
        .collect();
    assert_eq!(rows, [2, 4, 7]);
    let listed: Vec<(u32, &str)> = report
        .rejected
        .iter()
        .map(|r| (r.row, r.column.as_str()))
        .collect();
    assert_eq!(listed, [(3, "Email"), (5, "IpAddress"), (6, "Id")]);
    assert_eq!(report.rejected[1].value, "\"999.1.1.1\"");

    let xlsx =
        rejection_report(&report.header, &report.rejected, report.rejected_total).expect("report");
    let lines = report_lines(xlsx);
    // The upload's own header, then the two columns the report adds.
    let titles: Vec<&str> = HEADER
        .iter()
        .copied()
        .chain(["Source row", "Rejected because"])
        .collect();
    assert_eq!(lines[0], titles);
    assert_eq!(lines.len(), 4, "the header and the three rejected rows");
    assert_eq!(
        (&lines[1][3], &lines[1][6], &lines[1][7]),
        (
            &"not-an-email".to_owned(),
            &"3".to_owned(),
            &"column Email (cell D3): \"not-an-email\" is not an email address".to_owned()
        )
    );
    assert_eq!(
        (&lines[2][5], &lines[2][6]),
        (&"999.1.1.1".to_owned(), &"5".to_owned())
    );
    assert_eq!(
        (&lines[3][0], &lines[3][6]),
        (&"1".to_owned(), &"6".to_owned())
    );
}

/// A report's cells as text, line by line (numbers as Excel shows whole numbers).
fn report_lines(xlsx: Vec<u8>) -> Vec<Vec<String>> {
    let mut book: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(xlsx)).expect("xlsx");
    let range = book.worksheet_range("Rejected rows").expect("the sheet");
    range
        .rows()
        .map(|row| row.iter().map(ToString::to_string).collect())
        .collect()
}

#[tokio::test]
async fn a_rejected_file_keeps_every_invalid_row_with_its_values_for_the_report() {
    let env = TestEnv::new().await.expect("services");
    let job = new_job(&env).await;
    // 30 invalid rows among 60: the message lists 20, the report needs all 30.
    let mut people: Vec<Person> = people(11, 1, 60).collect();
    for person in people.iter_mut().skip(1).step_by(2) {
        person.email = format!("{}-at-nowhere", person.first_name);
    }
    let err = import(&env, job, people_xlsx(people.clone()).expect("xlsx"))
        .await
        .expect_err("rejected");
    let ImportError::InvalidRows {
        total,
        ref rejected,
        ref header,
    } = err
    else {
        panic!("{err}");
    };
    assert_eq!((total, rejected.len()), (30, 30));
    assert!(err
        .to_string()
        .starts_with("30 rows are invalid; the first 20: row 3,"));
    let lines = report_lines(rejection_report(header, rejected, total).expect("report"));
    assert_eq!(lines.len(), 31);
    let last = &lines[30];
    let person = &people[59];
    assert_eq!(
        last[..6],
        [
            person.id.to_string(),
            person.first_name.clone(),
            person.last_name.clone(),
            person.email.clone(),
            person.gender.clone(),
            person.ip_address.clone()
        ]
    );
    assert_eq!(last[6], "61");
    assert!(stored(&env, job).await.is_empty(), "nothing written");
}

async fn row_count(env: &TestEnv, job: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM imported_rows WHERE job_id = $1")
        .bind(job)
        .fetch_one(&env.db)
        .await
        .expect("count")
}

#[tokio::test]
async fn deleting_a_job_deletes_its_imported_rows_and_no_others() {
    let env = TestEnv::new().await.expect("services");
    let (gone, kept) = (new_job(&env).await, new_job(&env).await);
    let file = people_xlsx(people(5, 1, 30)).expect("xlsx");
    import(&env, gone, file.clone()).await.expect("imports");
    import(&env, kept, file).await.expect("imports");

    burrow_shared::jobs::delete_job(&env.db, gone)
        .await
        .expect("deleted");

    assert_eq!(row_count(&env, gone).await, 0, "rows went with their job");
    assert_eq!(row_count(&env, kept).await, 30, "another job's rows stay");
}

#[tokio::test]
async fn a_job_is_not_deleted_under_its_running_import_nor_imported_once_gone() {
    let env = TestEnv::new().await.expect("services");
    let job = new_job(&env).await;
    let file = people_xlsx(people(6, 1, 40)).expect("xlsx");

    // An import in progress: its rows written, its transaction open.
    let mut running = env.db.begin().await.expect("tx");
    let options = ImportOptions::default();
    let (progress, cancel) = (Progress::default(), CancellationToken::new());
    import_people(
        &mut running,
        job,
        file.clone(),
        &options,
        &progress,
        &cancel,
    )
    .await
    .expect("imports");

    // A DELETE of the job waits for the import (refused here by a lock timeout, which proves
    // the wait without sleeping) instead of leaving its rows behind.
    let mut deleter = env.db.begin().await.expect("tx");
    sqlx::query("SET LOCAL lock_timeout = '200ms'")
        .execute(&mut *deleter)
        .await
        .expect("timeout");
    let refused = sqlx::query("DELETE FROM jobs WHERE id = $1")
        .bind(job)
        .execute(&mut *deleter)
        .await
        .expect_err("the import holds the job");
    assert_eq!(
        refused
            .as_database_error()
            .and_then(|e| e.code())
            .as_deref(),
        Some("55P03"),
        "lock_not_available, got {refused}"
    );
    deleter.rollback().await.expect("rollback");

    running.commit().await.expect("commit");
    assert_eq!(row_count(&env, job).await, 40);
    burrow_shared::jobs::delete_job(&env.db, job)
        .await
        .expect("deleted after the import");
    assert_eq!(row_count(&env, job).await, 0, "and its rows with it");

    // The job is gone: a late import of it writes nothing.
    let late = import(&env, job, file).await;
    assert!(late.is_err(), "imported rows of a deleted job: {late:?}");
    assert_eq!(row_count(&env, job).await, 0);
}

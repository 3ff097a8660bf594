//! The count that ends every scenario: what it expected of its jobs ([`Expected`]), what the
//! database holds at the end ([`count`]), and the table line both become ([`Row`]).
//!
//! - **lost**: a job the system took responsibility for (a 202, or a commit before a crash)
//!   that did not end `succeeded`;
//! - **applied twice**: a job whose `imported_rows` count differs from its file's row count
//!   (0 for a job that did not succeed), or that holds one person id twice;
//! - every succeeded job's rows must equal its file, cell by cell; a job without a file (a
//!   `sleep` or `noop` member of a batch, a callback) must have imported none.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use burrow_api::testing::imported_people;
use burrow_shared::fixtures::Person;
use burrow_shared::jobs::{self, JobFilter, JobRow};
use burrow_shared::JobStatus;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// One line of the final table.
#[derive(Debug, Clone)]
pub struct Row {
    /// The scenario, as printed.
    pub scenario: String,
    /// Jobs in the scenario's database at the end.
    pub jobs: usize,
    /// Accepted jobs that did not end `succeeded`.
    pub lost: usize,
    /// Jobs whose imported rows are not exactly one copy of their file.
    pub applied_twice: usize,
    /// From the fault to the last job ending.
    pub recovery: Option<Duration>,
    /// Checks that failed (empty: the scenario passed).
    pub failures: Vec<String>,
    /// What was measured on the way, for the report.
    pub notes: Vec<String>,
}

impl Row {
    /// A scenario that did not get as far as counting (a panic or its time budget).
    pub fn aborted(scenario: &str, why: String) -> Row {
        Row {
            scenario: scenario.to_owned(),
            jobs: 0,
            lost: 0,
            applied_twice: 0,
            recovery: None,
            failures: vec![why],
            notes: Vec::new(),
        }
    }

    /// Nothing lost, nothing applied twice, every check held.
    pub fn passed(&self) -> bool {
        self.lost == 0 && self.applied_twice == 0 && self.failures.is_empty()
    }
}

/// What a scenario expects of its jobs.
#[derive(Debug, Default)]
pub struct Expected {
    /// Every file name the scenario uploaded or stored → the people it holds.
    files: HashMap<String, Vec<Person>>,
    /// Jobs the system took responsibility for: each must end `succeeded`.
    accepted: BTreeSet<Uuid>,
    /// Jobs meant to end `dead` (poison): not lost, and they import nothing.
    doomed: BTreeSet<Uuid>,
}

impl Expected {
    /// Records that the file `name` holds `people`.
    pub fn file(&mut self, name: &str, people: Vec<Person>) {
        self.files.insert(name.to_owned(), people);
    }

    /// Job `id` must end `succeeded`.
    pub fn accept(&mut self, id: Uuid) {
        self.accepted.insert(id);
    }

    /// Job `id` must end `dead`.
    pub fn doom(&mut self, id: Uuid) {
        self.accepted.remove(&id);
        self.doomed.insert(id);
    }
}

/// What [`count`] found.
#[derive(Debug, Default)]
pub struct Count {
    /// Jobs in the database.
    pub jobs: usize,
    /// Accepted jobs not `succeeded`.
    pub lost: usize,
    /// Jobs whose rows are not one copy of their file.
    pub applied_twice: usize,
    /// When the last job ended.
    pub last_end: Option<DateTime<Utc>>,
    /// Every discrepancy, in words.
    pub failures: Vec<String>,
    /// Facts worth reporting that are not failures.
    pub notes: Vec<String>,
}

/// Counts the scenario's database against `expected`; see the module docs.
///
/// # Panics
/// If Postgres does not answer.
pub async fn count(db: &PgPool, expected: &Expected) -> Count {
    let filter = JobFilter {
        limit: 10_000,
        ..JobFilter::default()
    };
    let jobs = jobs::list_jobs(db, &filter)
        .await
        .expect("the scenario's jobs");
    let rows: Vec<(Uuid, i64, i64)> = sqlx::query_as(
        "SELECT job_id, count(*), count(DISTINCT id) FROM imported_rows GROUP BY job_id",
    )
    .fetch_all(db)
    .await
    .expect("row counts");
    let rows: BTreeMap<Uuid, (i64, i64)> = rows
        .into_iter()
        .map(|(id, rows, ids)| (id, (rows, ids)))
        .collect();

    let mut count = Count {
        jobs: jobs.len(),
        last_end: jobs.iter().filter_map(|job| job.completed_at).max(),
        ..Count::default()
    };
    for job in &jobs {
        check_rows(db, job, expected, &rows, &mut count).await;
    }
    for id in &expected.accepted {
        let job = jobs.iter().find(|job| job.id == *id);
        if job.is_none_or(|job| job.status != JobStatus::Succeeded) {
            count.lost += 1;
            let state = job.map_or_else(
                || "missing".to_owned(),
                |job| format!("{}: {:?}", job.status, job.message),
            );
            count.failures.push(format!("lost job {id} ({state})"));
        }
    }
    for id in &expected.doomed {
        if !jobs
            .iter()
            .any(|job| job.id == *id && job.status == JobStatus::Dead)
        {
            count
                .failures
                .push(format!("poison job {id} did not end dead"));
        }
    }
    let untracked = jobs
        .iter()
        .filter(|job| !expected.accepted.contains(&job.id) && !expected.doomed.contains(&job.id))
        .count();
    if untracked > 0 {
        count.notes.push(format!(
            "{untracked} job(s) stored without a 202 (their rows are checked, they are not lost)"
        ));
    }
    count
}

/// Checks one job's rows: as many as its file holds if it succeeded (none otherwise), no
/// person twice, and the same values as the file.
async fn check_rows(
    db: &PgPool,
    job: &JobRow,
    expected: &Expected,
    rows: &BTreeMap<Uuid, (i64, i64)>,
    count: &mut Count,
) {
    let Some(file_name) = &job.file_name else {
        if let Some((found, _)) = rows.get(&job.id) {
            count.applied_twice += 1;
            count.failures.push(format!(
                "job {} ({}) has no file but {found} imported rows",
                job.id, job.kind
            ));
        }
        return;
    };
    let label = file_name.clone();
    let Some(people) = expected.files.get(file_name) else {
        count
            .failures
            .push(format!("job {label} has a file this scenario never made"));
        return;
    };
    let want = if job.status == JobStatus::Succeeded {
        people.len() as i64
    } else {
        0
    };
    let (found, ids) = rows.get(&job.id).copied().unwrap_or((0, 0));
    if found != want || ids != found {
        count.applied_twice += 1;
        count.failures.push(format!(
            "{label} ({}): {found} rows with {ids} distinct ids, expected {want}",
            job.status
        ));
    } else if want > 0 {
        let file: Vec<(i32, Person)> = (2..).zip(people.iter().cloned()).collect();
        if imported_people(db, job.id).await != file {
            count
                .failures
                .push(format!("{label}: the rows differ from the file"));
        }
    }
}

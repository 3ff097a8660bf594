//! Real-world spreadsheets (`../shared/corpus/`, files written by people and programs outside
//! this project; `MANIFEST.tsv` names the writer of each) through upload and import, api and
//! worker against the real services.
//!
//! People-shaped files (the first row of the first sheet holds the six people columns, in any
//! spelling: `id, first_name, …` from Mockaroo) must import with the `people` profile, every
//! row accounted for: rows imported plus rows skipped (`on_error=skip`) equal the non-blank rows
//! under the header, counted here independently with calamine. Every other file must end in a
//! clear 4xx or a `failed` job with a message — never a 5xx, a retry, a dead letter or a hang.
//! The table (file, writer, outcome) is printed.
//!
//! Skipped, with a note, when the corpus is not beside the checkout.

mod support;

use std::io::Cursor;
use std::path::PathBuf;
use std::time::Duration;

use burrow_shared::import::normalize_header;
use burrow_shared::status::JobStatus;
use calamine::{open_workbook_auto_from_rs, Data, Reader};
use reqwest::StatusCode;
use serde_json::Value;
use support::Stack;
use uuid::Uuid;

const PEOPLE_COLUMNS: [&str; 6] = [
    "id",
    "firstname",
    "lastname",
    "email",
    "gender",
    "ipaddress",
];

struct Entry {
    path: String,
    writer: String,
    first_row: String,
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
}

fn manifest() -> Option<Vec<Entry>> {
    let text = std::fs::read_to_string(corpus_dir().join("MANIFEST.tsv")).ok()?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next()?.split('\t').collect();
    let at = |name: &str| header.iter().position(|h| *h == name).expect(name);
    let (path, writer, first_row) = (at("path"), at("writer"), at("first_row_first_sheet"));
    Some(
        lines
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                let fields: Vec<&str> = line.split('\t').collect();
                let field = |i: usize| fields.get(i).copied().unwrap_or_default().to_owned();
                Entry {
                    path: field(path),
                    writer: field(writer).chars().take(40).collect(),
                    first_row: field(first_row),
                }
            })
            .collect(),
    )
}

/// Whether the manifest's first row names the six people columns (any spelling).
fn people_shaped(first_row: &str) -> bool {
    let cells: Vec<String> = first_row
        .trim_start_matches(|c: char| c != ':')
        .trim_start_matches(':')
        .split('|')
        .map(normalize_header)
        .collect();
    PEOPLE_COLUMNS
        .iter()
        .all(|column| cells.iter().any(|cell| cell == column))
}

/// Non-blank rows under row 1 of the first sheet, counted with calamine alone.
fn data_rows(bytes: &[u8]) -> Option<u64> {
    let mut workbook = open_workbook_auto_from_rs(Cursor::new(bytes.to_vec())).ok()?;
    let first = workbook.sheet_names().first()?.clone();
    let range = workbook.worksheet_range(&first).ok()?;
    let blank = |cell: &Data| match cell {
        Data::Empty => true,
        Data::String(s) => s.trim().is_empty(),
        _ => false,
    };
    Some(
        range
            .rows()
            .skip(1)
            .filter(|row| !row.iter().all(blank))
            .count() as u64,
    )
}

fn skipped(message: &str) -> u64 {
    message
        .split("skipped ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_corpus_file_imports_or_fails_clearly() {
    let Some(entries) = manifest() else {
        eprintln!("corpus: {} not found; skipped", corpus_dir().display());
        return;
    };
    let mut stack = Stack::new().await;
    stack.start_worker("corpus", 2, Duration::ZERO);
    let mut table = vec![format!("{:<58} {:<40} outcome", "file", "writer")];
    let mut problems = Vec::new();
    let (mut imported, mut people) = (0, 0);
    for entry in &entries {
        let bytes = std::fs::read(corpus_dir().join(&entry.path)).expect("corpus file");
        let shaped = people_shaped(&entry.first_row);
        people += usize::from(shaped);
        let name = entry.path.rsplit('/').next().unwrap_or_default().to_owned();
        let response = stack
            .upload(&name, bytes.clone(), &[("on_error", "skip")])
            .await;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let outcome = if status == StatusCode::ACCEPTED {
            let id: Uuid = body["id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("id");
            let job = stack.env.wait_until_ended(id).await;
            let message = job.message.clone().unwrap_or_default();
            if job.attempts != 1 {
                problems.push(format!("{}: {} attempts", entry.path, job.attempts));
            }
            match job.status {
                JobStatus::Succeeded => {
                    imported += 1;
                    let rows = job.rows_imported.unwrap_or(0) as u64;
                    let accounted = rows + skipped(&message);
                    if shaped {
                        match data_rows(&bytes) {
                            Some(expected) if expected == accounted => {}
                            expected => problems.push(format!(
                                "{}: {accounted} rows accounted for, calamine counts {expected:?}",
                                entry.path
                            )),
                        }
                    }
                    format!("succeeded: {message}")
                }
                JobStatus::Failed if !message.is_empty() => {
                    if shaped {
                        problems.push(format!(
                            "{}: people-shaped but failed: {message}",
                            entry.path
                        ));
                    }
                    format!("failed: {message}")
                }
                other => {
                    problems.push(format!("{}: ended {other}: {message}", entry.path));
                    format!("{other}: {message}")
                }
            }
        } else if status.is_client_error() {
            if shaped {
                problems.push(format!(
                    "{}: people-shaped but refused {status}: {body}",
                    entry.path
                ));
            }
            format!(
                "{}: {}",
                status.as_u16(),
                body["message"].as_str().unwrap_or_default()
            )
        } else {
            problems.push(format!("{}: answered {status}: {body}", entry.path));
            format!("{status}: {body}")
        };
        let short: String = outcome.chars().take(110).collect();
        table.push(format!("{:<58} {:<40} {short}", entry.path, entry.writer));
    }
    println!("{}", table.join("\n"));
    println!(
        "corpus: {} files, {people} people-shaped, {imported} imported",
        entries.len()
    );
    assert_eq!(
        stack
            .wait_for_ready(&stack.env.topology.dead_letter_queue, 0)
            .await,
        0,
        "nothing dead-lettered"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

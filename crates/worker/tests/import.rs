//! End to end: api → RabbitMQ → worker → Postgres, against the real services.
//!
//! Workers run in-process (the library's consumer loop) or as real `burrow-worker` processes.

mod support;

use std::process::Stdio;
use std::time::Duration;

use burrow_shared::fixtures::{mock_data, mock_file_name, BadFixture, Person};
use burrow_shared::import::ImportOptions;
use burrow_shared::publish::{headers, publish_job};
use burrow_shared::retry::RetryPolicy;
use burrow_shared::{jobs, NewJob};
use burrow_shared::{JobMessage, JobStatus, KIND_IMPORT_XLSX};
use burrow_worker::process::JobContext;
use lapin::options::BasicPublishOptions;
use lapin::BasicProperties;
use reqwest::StatusCode;
use support::{fixture, imported_people, Stack, DEADLINE};

#[tokio::test]
async fn a_rejected_upload_fails_with_its_error_report_as_the_result_until_retried() {
    let mut stack = Stack::new().await;
    stack.start_worker("w1", 1, Duration::ZERO);
    let id = stack
        .enqueue_upload("bad.xlsx", BadFixture::NonNumericId.bytes())
        .await;
    let job = stack.env.wait_until_ended(id).await;
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(
        job.message.as_deref(),
        Some(
            "row 7, column Id (cell A7): expected a whole number, found \"abc\" \
             (the error report is the result file)"
        )
    );
    assert_eq!(
        job.result_file_name,
        Some(format!("rejected-rows-{id}.xlsx"))
    );
    let response = stack.get_response(&format!("/api/jobs/{id}/result")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.bytes().await.expect("the report").to_vec();
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).expect("an xlsx");
    let range = calamine::Reader::worksheet_range(&mut book, "Rejected rows").expect("sheet");
    let lines: Vec<Vec<String>> = range
        .rows()
        .map(|row| row.iter().map(ToString::to_string).collect())
        .collect();
    assert_eq!(
        lines.len(),
        2,
        "the header and the one rejected row: {lines:?}"
    );
    assert_eq!(lines[0][0], "Id");
    assert_eq!(
        (&lines[1][0], &lines[1][6], &lines[1][7]),
        (
            &"abc".to_owned(),
            &"7".to_owned(),
            &"column Id (cell A7): expected a whole number, found \"abc\"".to_owned()
        )
    );

    // A retry starts the job afresh: the report of the last run goes with it.
    stack.stop_workers().await;
    let (status, _) = stack.post(&format!("/api/jobs/{id}/retry")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = stack.get(&format!("/api/jobs/{id}/result")).await;
    assert_eq!(status, StatusCode::CONFLICT, "queued again: no result yet");
    let result: Option<String> =
        sqlx::query_scalar("SELECT file_name FROM job_results WHERE job_id = $1")
            .bind(id)
            .fetch_optional(&stack.env.db)
            .await
            .expect("query");
    assert_eq!(result, None);
}

#[tokio::test]
async fn mock_data_1_imports_exactly_its_200_rows() {
    let mut stack = Stack::new().await;
    stack.start_worker("w1", 2, Duration::ZERO);
    let id = stack
        .enqueue_upload("MOCK_DATA_1.xlsx", fixture(&mock_file_name(1)))
        .await;
    let job = stack.env.wait_until_ended(id).await;

    assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.message);
    assert_eq!(job.message.as_deref(), Some("Imported 200 rows"));
    assert_eq!(job.rows_imported, Some(200));
    assert_eq!(job.attempts, 1);
    assert_eq!(job.worker.as_deref(), Some("w1"));
    assert!(job.started_at.is_some() && job.completed_at >= job.started_at);

    let imported = imported_people(&stack.env.db, id).await;
    let expected: Vec<(i32, Person)> = (2..).zip(mock_data(1)).collect();
    assert_eq!(imported.len(), 200);
    assert_eq!(
        imported, expected,
        "every value equal, spreadsheet rows 2..=201"
    );
    stack.stop().await;
    assert_eq!(
        stack.env.ready_messages(&stack.upload_queue()).await.ok(),
        Some(0),
        "acked, not requeued"
    );
}

#[tokio::test]
async fn five_uploads_with_two_worker_processes_all_succeed_and_overlap() {
    let stack = Stack::new().await;
    let mut workers = Vec::new();
    for name in ["proc-1", "proc-2"] {
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_burrow-worker"))
            .env("DATABASE_URL", &stack.env.database_url)
            .env("AMQP_URL", &stack.env.amqp_url)
            .env(
                "BURROW_QUEUE_PREFIX",
                stack.env.topology.exchange.trim_end_matches(".jobs"),
            )
            .env("WORKER_ID", name)
            .env("WORKER_CONCURRENCY", "1")
            .env("WORKER_PREFETCH", "1")
            // 3 ms per row: each job takes ~0.6 s, long enough that the two processes overlap.
            .env("IMPORT_ROW_DELAY_MS", "3")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn burrow-worker");
        workers.push(child);
    }

    let mut ids = Vec::new();
    for n in 1..=5 {
        ids.push(
            stack
                .enqueue_upload(&mock_file_name(n), fixture(&mock_file_name(n)))
                .await,
        );
    }
    let mut jobs = Vec::new();
    for id in &ids {
        jobs.push(stack.env.wait_until_ended(*id).await);
    }
    for (n, job) in (1..=5).zip(&jobs) {
        assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.message);
        let expected: Vec<(i32, Person)> = (2..).zip(mock_data(n)).collect();
        assert_eq!(
            imported_people(&stack.env.db, job.id).await,
            expected,
            "file {n}"
        );
    }
    assert_eq!(stack.env.count("imported_rows").await, 1000);

    let ran_by: std::collections::BTreeSet<_> =
        jobs.iter().filter_map(|j| j.worker.clone()).collect();
    assert_eq!(
        ran_by.into_iter().collect::<Vec<_>>(),
        ["proc-1", "proc-2"],
        "both processes worked"
    );
    let overlap = jobs.iter().any(|a| {
        jobs.iter()
            .any(|b| a.id != b.id && a.started_at < b.completed_at && b.started_at < a.completed_at)
    });
    assert!(overlap, "two jobs ran at the same time");

    // SIGTERM: each process drains and exits 0.
    for mut child in workers {
        let pid = child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .expect("exits")
            .expect("status");
        assert!(exit.success(), "graceful exit, got {exit}");
    }
}

#[tokio::test]
async fn every_bad_fixture_fails_with_its_message_and_no_rows() {
    let mut stack = Stack::new().await;
    stack.start_worker("w1", 2, Duration::ZERO);
    let expectations = [
        (
            BadFixture::CorruptZip,
            "the file cannot be read as a spreadsheet",
        ),
        (
            BadFixture::MissingColumn,
            "row 1: the header row is missing column Email",
        ),
        (
            BadFixture::NonNumericId,
            "row 7, column Id (cell A7): expected a whole number, found \"abc\"",
        ),
        (BadFixture::EmptySheet, "sheet \"Data\" is empty"),
    ];
    for (bad, expected) in expectations {
        let committed = fixture(bad.file_name());
        assert_eq!(committed, bad.bytes(), "{} is up to date", bad.file_name());
        let id = stack.enqueue_upload(bad.file_name(), committed).await;
        let job = stack.env.wait_until_ended(id).await;
        assert_eq!(job.status, JobStatus::Failed, "{}", bad.file_name());
        let message = job.message.unwrap_or_default();
        assert!(
            message.starts_with(expected),
            "{}: {message}",
            bad.file_name()
        );
        assert_eq!(job.rows_imported, Some(0));
        assert!(
            imported_people(&stack.env.db, id).await.is_empty(),
            "{}: no rows committed",
            bad.file_name()
        );
    }
    // A truncated file is not even accepted.
    let response = stack
        .upload("bad_truncated.xlsx", BadFixture::Truncated.bytes(), &[])
        .await;
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(stack.env.count("imported_rows").await, 0);
    assert_eq!(
        stack
            .wait_for_ready(&stack.env.topology.dead_letter_queue, 0)
            .await,
        0,
        "failed jobs are acked, not dead-lettered"
    );
}

#[tokio::test]
async fn a_file_the_api_never_checked_fails_cleanly_in_the_worker() {
    let mut stack = Stack::new().await;
    stack.start_worker("w1", 1, Duration::ZERO);
    // The worker must not trust the api: store a truncated file directly and publish it.
    let job = NewJob::new(KIND_IMPORT_XLSX).file("truncated.xlsx", BadFixture::Truncated.bytes());
    let job = stack.env.insert_job(job).await.expect("insert");
    let channel = stack.confirm_channel().await;
    publish_job(
        &channel,
        &stack.env.topology,
        &JobMessage::new(job.id, KIND_IMPORT_XLSX, job.correlation_id),
    )
    .await
    .expect("published");

    let ended = stack.env.wait_until_ended(job.id).await;
    assert_eq!(ended.status, JobStatus::Failed);
    let message = ended.message.unwrap_or_default();
    assert!(
        message.starts_with("the file is a damaged zip archive"),
        "{message}"
    );
}

#[tokio::test]
async fn an_undecodable_message_goes_to_the_dlq_and_the_worker_keeps_going() {
    let mut stack = Stack::new().await;
    stack.start_worker("w1", 1, Duration::ZERO);
    let channel = stack.confirm_channel().await;
    for garbage in [&b"not json at all"[..], br#"{"v":99,"job_id":"x"}"#] {
        channel
            .basic_publish(
                stack.env.topology.exchange.as_str().into(),
                burrow_shared::topology::WORK_ROUTING_KEY.into(),
                BasicPublishOptions::default(),
                garbage,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
    }
    let id = stack
        .enqueue_upload("MOCK_DATA_2.xlsx", fixture(&mock_file_name(2)))
        .await;
    let job = stack.env.wait_until_ended(id).await;
    assert_eq!(job.status, JobStatus::Succeeded, "the worker kept going");
    assert_eq!(
        stack
            .wait_for_ready(&stack.env.topology.dead_letter_queue, 2)
            .await,
        2,
        "both in the DLQ"
    );
    assert_eq!(stack.wait_for_ready(&stack.upload_queue(), 0).await, 0);
}

#[tokio::test]
async fn a_duplicate_message_imports_once() {
    let mut stack = Stack::new().await;
    let id = stack
        .enqueue_upload("MOCK_DATA_3.xlsx", fixture(&mock_file_name(3)))
        .await;
    // Publish the same job message a second time before any worker runs.
    let job = jobs::find_job(&stack.env.db, id)
        .await
        .expect("query")
        .expect("job");
    let channel = stack.confirm_channel().await;
    publish_job(
        &channel,
        &stack.env.topology,
        &JobMessage::new(id, KIND_IMPORT_XLSX, job.correlation_id).in_queue(&job.queue),
    )
    .await
    .expect("published");
    assert_eq!(stack.wait_for_ready(&stack.upload_queue(), 2).await, 2);

    stack.start_worker("w1", 2, Duration::ZERO);
    let job = stack.env.wait_until_ended(id).await;
    assert_eq!(job.status, JobStatus::Succeeded);
    // Wait until the second delivery was taken too, then drain the worker.
    assert_eq!(stack.wait_for_ready(&stack.upload_queue(), 0).await, 0);
    stack.stop().await;
    assert_eq!(
        stack.env.ready_messages(&stack.upload_queue()).await.ok(),
        Some(0),
        "both acked"
    );
    assert_eq!(
        stack.env.count("imported_rows").await,
        200,
        "imported once, not twice"
    );
    let job = jobs::find_job(&stack.env.db, id)
        .await
        .expect("query")
        .expect("job");
    assert_eq!(
        (job.status, job.rows_imported),
        (JobStatus::Succeeded, Some(200))
    );
    assert_eq!(
        job.attempts, 1,
        "the duplicate was acked without running the job again"
    );
}

#[tokio::test]
async fn transient_failures_back_off_then_dead_letter_while_other_jobs_flow() {
    let mut stack = Stack::new().await;
    let policy = RetryPolicy {
        base: Duration::from_millis(300),
        cap: Duration::from_secs(2),
        max_attempts: 3,
        ..RetryPolicy::default()
    };
    stack.start_worker_with(
        JobContext {
            retry: policy.clone(),
            always_transient_file: Some("flaky.xlsx".to_owned()),
            ..JobContext::new(
                stack.env.db.clone(),
                "w1".to_owned(),
                burrow_shared::kinds::shipped(ImportOptions::default(), Default::default()),
            )
        },
        2,
    );
    let started = tokio::time::Instant::now();
    let flaky = stack
        .enqueue_upload("flaky.xlsx", fixture(&mock_file_name(4)))
        .await;
    let good = stack
        .enqueue_upload("MOCK_DATA_5.xlsx", fixture(&mock_file_name(5)))
        .await;

    let mut seen_retrying = false;
    let dead = loop {
        let job = jobs::find_job(&stack.env.db, flaky)
            .await
            .expect("query")
            .expect("job");
        if job.status == JobStatus::Retrying {
            seen_retrying = true;
            assert!(
                job.next_attempt_at.is_some() && job.last_error.is_some(),
                "{job:?}"
            );
        }
        if job.status.is_terminal() {
            break job;
        }
        assert!(started.elapsed() < DEADLINE, "still {}", job.status);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let elapsed = started.elapsed();
    assert!(seen_retrying, "the job showed `retrying` between attempts");
    assert_eq!(dead.status, JobStatus::Dead);
    assert_eq!(dead.attempts, 3, "attempts counted once each");
    let reason = dead.message.clone().unwrap_or_default();
    assert!(
        reason.starts_with("attempt 3 of 3 failed: failpoint"),
        "{reason}"
    );
    // Two waits of 300 ms and 600 ms, each less at most 20% jitter.
    let least = policy.jittered(1, 1.0) + policy.jittered(2, 1.0);
    assert!(elapsed >= least, "retries waited: {elapsed:?} < {least:?}");

    let good = stack.env.wait_until_ended(good).await;
    assert_eq!(good.status, JobStatus::Succeeded, "other jobs kept flowing");

    assert_eq!(
        stack
            .wait_for_ready(&stack.env.topology.dead_letter_queue, 1)
            .await,
        1
    );
    let channel = stack.env.channel().await.expect("channel");
    let message = channel
        .basic_get(
            stack.env.topology.dead_letter_queue.as_str().into(),
            Default::default(),
        )
        .await
        .expect("basic.get")
        .expect("the dead letter");
    let decoded = JobMessage::decode(&message.delivery.data).expect("the original job message");
    assert_eq!((decoded.job_id, decoded.attempt), (flaky, 3));
    let headers = message
        .delivery
        .properties
        .headers()
        .clone()
        .expect("headers");
    let header = |name: &str| headers.inner().get(name).cloned();
    assert_eq!(
        header(headers::ATTEMPTS),
        Some(lapin::types::AMQPValue::LongLongInt(3))
    );
    assert!(
        matches!(header(headers::REASON), Some(lapin::types::AMQPValue::LongString(r)) if r.to_string() == reason)
    );
}

#[tokio::test]
async fn hostile_files_fail_cleanly_and_the_worker_keeps_consuming() {
    use burrow_shared::fixtures::HostileFixture;
    let mut stack = Stack::new().await;
    stack.start_worker("w1", 2, Duration::ZERO);
    // The api refuses a zip bomb before storing anything.
    let bomb = HostileFixture::ZipBomb.bytes().expect("bomb");
    let response = stack.upload("bomb.xlsx", bomb, &[]).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // The worker does not trust the api: the same files stored directly still fail cleanly.
    let channel = stack.confirm_channel().await;
    let mut hostile = Vec::new();
    for fixture in HostileFixture::ALL {
        let job =
            NewJob::new(KIND_IMPORT_XLSX).file(fixture.file_name(), fixture.bytes().expect("file"));
        let job = stack.env.insert_job(job).await.expect("insert");
        let message = JobMessage::new(job.id, KIND_IMPORT_XLSX, job.correlation_id);
        publish_job(&channel, &stack.env.topology, &message)
            .await
            .expect("published");
        hostile.push((fixture, job.id));
    }
    let good = stack
        .enqueue_upload("MOCK_DATA_1.xlsx", fixture(&mock_file_name(1)))
        .await;
    for (fixture, id) in hostile {
        let job = stack.env.wait_until_ended(id).await;
        assert_eq!(
            job.status,
            JobStatus::Failed,
            "{}: {:?}",
            fixture.file_name(),
            job.message
        );
    }
    assert_eq!(
        stack.env.wait_until_ended(good).await.status,
        JobStatus::Succeeded,
        "still consuming"
    );
    assert_eq!(stack.env.count("imported_rows").await, 200);
}

//! A scenario where workers die while a batch completes (h): its members are redelivered and
//! rerun, and its callbacks are still enqueued, delivered and run exactly once.

use std::time::Duration;

use burrow_shared::engine::batches::{find_batch, BatchStatus};
use burrow_shared::testing::batch_checks::{runs_of, wait_for_batch_end, Runs};
use burrow_shared::JobStatus;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::time::Instant;
use uuid::Uuid;

use crate::rig::{ProcId, Rig, WorkerSpec, RECOVERY_DEADLINE, SETTLE};
use crate::tally::Row;

/// Members of the batch.
const MEMBERS: usize = 1_000;
/// What each member sleeps, in milliseconds: long enough that a killed worker always has
/// members running, short enough that the batch ends in seconds.
const MEMBER_MS: u64 = 20;
/// Worker processes alive at any moment.
const WORKERS: usize = 3;
/// Members one worker runs at once.
const CONCURRENCY: u32 = 4;
/// Time between two kills (each followed at once by a replacement's start).
const KILL_EVERY: Duration = Duration::from_millis(400);
/// No kill once this few members are left unended. The last kill's signal then lands at least
/// `KILL_FLOOR × MEMBER_MS / (WORKERS × CONCURRENCY)` (about 170 ms) before the last member can
/// end, so before the callbacks are even released: a callback is never in flight in a killed
/// worker, and "claimed once" is what must hold, not a race.
const KILL_FLOOR: i64 = 100;
/// Fewest kills for the scenario to have tested anything.
const MIN_KILLS: u32 = 3;

/// **h.** Workers killed with SIGKILL, one after another and each replaced at once, while a
/// 1,000-member batch ends: every member ends `succeeded` (those that were running in a killed
/// worker are redelivered and run again), and each callback (`on_success`, `on_complete`) is
/// released by exactly one member's transaction and run once: one outbox message, one `queued`
/// event, one claim, attempts 1, started after the last member ended.
pub async fn sigkill_workers_while_a_batch_ends() -> Row {
    let mut rig = Rig::new("h-batch-sigkill").await;
    let api = rig.api("api", &[]).await;
    let spec = WorkerSpec {
        concurrency: Some(CONCURRENCY),
        // A small prefetch spreads the members over every worker, so each kill interrupts
        // running members rather than mostly returning prefetched messages.
        extra: vec![("WORKER_PREFETCH", (2 * CONCURRENCY).to_string())],
        ..WorkerSpec::default()
    };
    let mut live: Vec<ProcId> = (1..=WORKERS)
        .map(|slot| rig.worker(&format!("h-w{slot}"), &spec))
        .collect();

    let members: Vec<Value> = (0..MEMBERS)
        .map(|_| json!({"kind": "sleep", "payload": {"ms": MEMBER_MS}}))
        .collect();
    let body = json!({
        "jobs": members,
        "on_success": {"kind": "noop"},
        "on_complete": {"kind": "noop"},
        "description": "h: members under SIGKILL",
    });
    let (status, created) = api.client.post_json("/api/batches", &body).await;
    if status != StatusCode::ACCEPTED {
        rig.check(false, format!("the batch was refused: {status} {created}"));
        return rig.finish().await;
    }
    let ids = |value: &Value| -> Vec<Uuid> {
        value
            .as_array()
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| id.as_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    for id in ids(&created["job_ids"]) {
        rig.accept(id);
    }
    let batch: Uuid = created["batch"]["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("the batch's id");
    let callbacks: Vec<Uuid> = ["on_success", "on_complete"]
        .iter()
        .filter_map(|name| created["batch"][name].as_str()?.parse().ok())
        .collect();
    rig.check(
        callbacks.len() == 2,
        format!("callbacks missing: {created}"),
    );
    for id in &callbacks {
        rig.accept(*id);
    }

    let busy = rig.wait_processing(WORKERS, SETTLE).await;
    rig.check(busy, "the workers did not start on the members");
    let kills = kill_while_members_run(&mut rig, &mut live, batch, &spec).await;
    rig.check(
        kills >= MIN_KILLS,
        format!("only {kills} kill(s) before {KILL_FLOOR} members were left"),
    );

    let (summary, ended) = wait_for_batch_end(&rig.env.db, batch, RECOVERY_DEADLINE).await;
    rig.check(
        ended,
        format!("the batch had not ended after {RECOVERY_DEADLINE:?}: {summary:?}"),
    );
    if let Some(summary) = &summary {
        rig.check(
            summary.status == BatchStatus::Succeeded
                && summary.counts.get("succeeded") == Some(&(MEMBERS as i64)),
            format!("batch {:?} with {:?}", summary.status, summary.counts),
        );
    }
    let last_member_ended = summary.and_then(|s| s.completed_at);
    for id in callbacks {
        let runs = runs_of(&rig.env.db, id).await;
        rig.check(
            runs.as_ref().is_ok_and(|runs| *runs == Runs::ONCE),
            format!("callback {id} ran other than once: {runs:?}"),
        );
        let job = rig.job(id).await;
        rig.check(
            job.as_ref().is_some_and(|job| {
                job.status == JobStatus::Succeeded
                    && matches!((job.started_at, last_member_ended),
                                (Some(started), Some(ended)) if started >= ended)
            }),
            format!(
                "callback {id}: {:?}, started {:?}, last member ended {last_member_ended:?}",
                job.as_ref().map(|job| job.status),
                job.as_ref().and_then(|job| job.started_at)
            ),
        );
    }
    let rerun = members_run_twice(&rig.env.db, batch).await;
    rig.note(format!(
        "{kills} SIGKILLs, one every {} ms while more than {KILL_FLOOR} members were open; \
         {rerun} member(s) redelivered and run again",
        KILL_EVERY.as_millis()
    ));
    // A kill that interrupted no running member would leave nothing to recover from.
    rig.check(rerun > 0, "no kill interrupted a running member");
    rig.wait_all_ended(RECOVERY_DEADLINE).await;
    rig.finish().await
}

/// Kills the `live` workers in turn with SIGKILL, one every [`KILL_EVERY`], each replaced at
/// once by a fresh process, until no more than [`KILL_FLOOR`] members of `batch` are open (or
/// [`RECOVERY_DEADLINE`] passes); the number of kills. The first kill is the rig's fault time.
async fn kill_while_members_run(
    rig: &mut Rig,
    live: &mut [ProcId],
    batch: Uuid,
    spec: &WorkerSpec,
) -> u32 {
    let deadline = Instant::now() + RECOVERY_DEADLINE;
    let mut kills = 0;
    while Instant::now() < deadline {
        tokio::time::sleep(KILL_EVERY).await;
        // While Postgres does not answer, the count is unknown: do not kill blind.
        let Some(open) = open_members(&rig.env.db, batch).await else {
            continue;
        };
        if open <= KILL_FLOOR {
            break;
        }
        let slot = kills as usize % live.len();
        rig.proc(live[slot]).kill9().await;
        if kills == 0 {
            rig.fault();
        }
        kills += 1;
        live[slot] = rig.worker(&format!("h-w{}-{}", slot + 1, kills + 1), spec);
    }
    kills
}

/// Members of `batch` not yet ended, or `None` if Postgres does not answer.
async fn open_members(db: &PgPool, batch: Uuid) -> Option<i64> {
    let summary = find_batch(db, batch).await.ok().flatten()?;
    Some(
        summary
            .counts
            .iter()
            .filter(|(status, _)| {
                !status
                    .parse::<JobStatus>()
                    .is_ok_and(JobStatus::is_terminal)
            })
            .map(|(_, count)| count)
            .sum(),
    )
}

/// Members of `batch` claimed more than once (a killed worker's running members, rerun).
async fn members_run_twice(db: &PgPool, batch: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM jobs WHERE batch_id = $1 AND attempts > 1")
        .bind(batch)
        .fetch_one(db)
        .await
        .unwrap_or(-1)
}

//! Recurring jobs: kinds enqueued on cron schedules declared in config (`RECURRING_JOBS`).
//!
//! Each tick, under a transaction-level advisory lock (one replica at a time), every schedule's
//! cursor (`recurring_schedules.last_slot`) is compared with the clock. The latest slot that has
//! come due is enqueued as a job (row and outbox message, published by any process's relay, the worker's own included) and the
//! cursor moves to it, in one transaction: each slot runs exactly once, and a worker fleet that
//! was down for a while enqueues one catch-up job per schedule, not one per missed slot.

use std::str::FromStr as _;

use anyhow::Context as _;
use burrow_shared::handler::Registry;
use burrow_shared::leader::{try_lead, Chore};
use burrow_shared::{enqueue, telemetry, NewJob};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::PgPool;
use tracing::Instrument as _;

/// One recurring job as configured:
/// `{"name": "nightly-export", "cron": "0 0 3 * * *", "kind": "noop", "payload": {}}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecurringSpec {
    /// Unique name; its cursor is kept under it.
    pub name: String,
    /// Cron expression with seconds: `sec min hour day-of-month month day-of-week [year]`, UTC.
    pub cron: String,
    /// The job kind.
    pub kind: String,
    /// The kind's payload.
    #[serde(default = "empty_object")]
    pub payload: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

/// A validated schedule.
#[derive(Debug, Clone)]
pub struct Recurring {
    spec: RecurringSpec,
    schedule: cron::Schedule,
    /// Its kind's queue ([`burrow_shared::handler::JobHandler::QUEUE`]).
    queue: &'static str,
}

/// Parses `RECURRING_JOBS` (a JSON array of [`RecurringSpec`]) and checks every cron
/// expression, kind and payload against `registry`.
///
/// # Errors
/// A message naming the bad entry.
pub fn parse_recurring(json: &str, registry: &Registry) -> anyhow::Result<Vec<Recurring>> {
    let specs: Vec<RecurringSpec> = serde_json::from_str(json)
        .context("RECURRING_JOBS is not a JSON array of {name, cron, kind, payload}")?;
    let mut seen = std::collections::BTreeSet::new();
    specs
        .into_iter()
        .map(|spec| {
            anyhow::ensure!(
                seen.insert(spec.name.clone()),
                "recurring job {:?} is declared twice",
                spec.name
            );
            let schedule = cron::Schedule::from_str(&spec.cron).with_context(|| {
                format!(
                    "recurring job {:?}: bad cron expression {:?}",
                    spec.name, spec.cron
                )
            })?;
            let handler = registry.get(&spec.kind).with_context(|| {
                format!(
                    "recurring job {:?}: unknown kind {:?}",
                    spec.name, spec.kind
                )
            })?;
            anyhow::ensure!(
                !handler.needs_upload(),
                "recurring job {:?}: kind {} needs an upload",
                spec.name,
                spec.kind
            );
            handler
                .validate(&spec.payload)
                .map_err(|e| anyhow::anyhow!("recurring job {:?}: {e}", spec.name))?;
            Ok(Recurring {
                spec,
                schedule,
                queue: handler.queue(),
            })
        })
        .collect()
}

impl Recurring {
    /// The latest slot after `last` that is due at `now`, if any.
    pub fn due_slot(&self, last: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule
            .after(&last)
            .take_while(|slot| *slot <= now)
            .last()
    }

    /// The schedule's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }
}

/// Enqueues the due slot of every schedule, once; returns how many jobs it enqueued (0 when
/// another replica holds the lock).
///
/// # Errors
/// The database error; nothing of this tick is committed then.
pub async fn enqueue_due(
    db: &PgPool,
    schedules: &[Recurring],
    now: DateTime<Utc>,
) -> anyhow::Result<u32> {
    if schedules.is_empty() {
        return Ok(0);
    }
    let mut tx = db.begin().await?;
    if !try_lead(&mut tx, Chore::Recurring).await? {
        return Ok(0);
    }
    let mut enqueued = 0;
    for recurring in schedules {
        // First sight: start the cursor now (no backfill of slots before the schedule existed).
        let last: DateTime<Utc> = sqlx::query_scalar(
            "INSERT INTO recurring_schedules (name, last_slot) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING last_slot",
        )
        .bind(recurring.name())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let Some(slot) = recurring.due_slot(last, now) else {
            continue;
        };
        sqlx::query("UPDATE recurring_schedules SET last_slot = $2 WHERE name = $1")
            .bind(recurring.name())
            .bind(slot)
            .execute(&mut *tx)
            .await?;
        let job = NewJob {
            payload: recurring.spec.payload.clone(),
            queue: recurring.queue.to_owned(),
            ..NewJob::new(&recurring.spec.kind)
        }
        .user_id(format!("recurring:{}", recurring.name()));
        // Each tick starts a trace of its own (no parent), which the job's runs continue.
        let tick = tracing::info_span!(
            parent: None,
            "recurring tick",
            otel.name = tracing::field::Empty,
            otel.kind = tracing::field::Empty,
            schedule = recurring.name(),
            %slot,
        );
        telemetry::context::describe(
            &tick,
            || format!("recurring {}", recurring.name()),
            "internal",
            &[],
        );
        let stored = enqueue(&mut tx, job).instrument(tick).await?;
        if stored.created {
            tracing::info!(schedule = recurring.name(), %slot, job.id = %stored.job.id, "recurring job enqueued");
            enqueued += 1;
        }
    }
    tx.commit().await?;
    Ok(enqueued)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .expect("a time")
    }

    #[test]
    fn only_the_latest_due_slot_is_taken() {
        let registry = burrow_shared::kinds::shipped(Default::default(), Default::default());
        let json = r#"[{"name": "every-minute", "cron": "0 * * * * *", "kind": "noop"}]"#;
        let schedules = parse_recurring(json, &registry).expect("valid");
        let every_minute = &schedules[0];
        let last = at("2026-11-21T10:00:00Z");
        assert_eq!(
            every_minute.due_slot(last, at("2026-11-21T10:00:59Z")),
            None
        );
        assert_eq!(
            every_minute.due_slot(last, at("2026-11-21T10:01:00Z")),
            Some(at("2026-11-21T10:01:00Z"))
        );
        assert_eq!(
            every_minute.due_slot(last, at("2026-11-21T10:05:30Z")),
            Some(at("2026-11-21T10:05:00Z")),
            "one catch-up, not five"
        );
    }

    #[test]
    fn bad_entries_are_named() {
        let registry = burrow_shared::kinds::shipped(Default::default(), Default::default());
        let cases = [
            (
                r#"[{"name": "a", "cron": "nope", "kind": "noop"}]"#,
                "bad cron expression",
            ),
            (
                r#"[{"name": "a", "cron": "0 * * * * *", "kind": "nope"}]"#,
                "unknown kind",
            ),
            (
                r#"[{"name": "a", "cron": "0 * * * * *", "kind": "sleep", "payload": {}}]"#,
                "invalid payload",
            ),
            (
                r#"[{"name": "a", "cron": "0 * * * * *", "kind": "import_xlsx"}]"#,
                "needs an upload",
            ),
            (
                r#"[{"name": "a", "cron": "0 * * * * *", "kind": "noop"}, {"name": "a", "cron": "0 * * * * *", "kind": "noop"}]"#,
                "declared twice",
            ),
        ];
        for (json, expected) in cases {
            let error = parse_recurring(json, &registry)
                .expect_err("invalid")
                .to_string();
            assert!(error.contains(expected), "{json}: {error}");
        }
    }
}

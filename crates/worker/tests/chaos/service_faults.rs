//! Scenarios where a shared service goes away under load: RabbitMQ's application stopped and
//! started (c), Postgres restarted (d).

use std::time::Duration;

use burrow_shared::retry::RetryPolicy;
use burrow_shared::JobStatus;
use tokio::time::Instant;

use crate::rig::{paced, Rig, WorkerSpec, RECOVERY_DEADLINE, SETTLE};
use crate::services::{broker_refuses, PostgresRestart, RabbitDown};
use crate::tally::Row;

/// How long RabbitMQ stays stopped in scenario c (after `stop_app` returns).
const BROKER_DOWNTIME: Duration = Duration::from_secs(4);

/// **c.** RabbitMQ's application stopped for a few seconds under load (an api process, two
/// worker processes) loses nothing: uploads keep being accepted into the outbox while it is
/// down, the relay publishes them once it is back, workers reconnect, and jobs whose ack was
/// cut off are redelivered and acked without running twice.
pub async fn rabbitmq_restart_under_load() -> Row {
    let mut rig = Rig::new("c-rabbitmq-restart").await;
    let api = rig.api("api", &[]).await;
    rig.worker("c-w1", &paced());
    rig.worker("c-w2", &paced());
    // ~4 s of work on 4 slots: `rabbitmqctl stop_app` alone takes several seconds, and some
    // jobs must still be running when it cuts the connections.
    rig.upload_many(&api, 16).await;
    let busy = rig.wait_processing(2, SETTLE).await;
    rig.check(busy, "no jobs were running before the fault");

    rig.fault();
    let stopping = Instant::now();
    let stop = tokio::spawn(RabbitDown::stop());
    let refused = broker_refuses(&rig.env.amqp_url, Duration::from_secs(30)).await;
    rig.check(refused, "RabbitMQ never stopped accepting connections");
    // These jobs commit without a broker; their acks are lost, so they are redelivered later.
    let cut_off = rig
        .jobs()
        .await
        .map(|jobs| {
            jobs.iter()
                .filter(|job| job.status == JobStatus::Processing)
                .count()
        })
        .unwrap_or_default();
    let outage = stop
        .await
        .unwrap_or_else(|e| panic!("stopping RabbitMQ: {e}"));
    let stop_took = stopping.elapsed();
    let while_down = rig.upload_many(&api, 3).await;
    tokio::time::sleep(BROKER_DOWNTIME).await;
    if let Err(e) = outage.start().await {
        rig.check(false, format!("restarting RabbitMQ: {e}"));
    }
    rig.note(format!(
        "stop_app took {:.1} s, down and up again in {:.1} s; {cut_off} job(s) mid-import when \
         it stopped; {} of 3 uploads accepted while it was down",
        stop_took.as_secs_f64(),
        stopping.elapsed().as_secs_f64(),
        while_down.len()
    ));
    rig.check(cut_off > 0, "no job was running when RabbitMQ stopped");
    rig.wait_all_ended(RECOVERY_DEADLINE).await;
    rig.finish().await
}

/// **d.** Postgres restarted under load (its sessions are terminated mid-import) loses nothing:
/// the interrupted imports roll back and are retried with backoff, and every job ends imported
/// once. Uploads that Postgres refused while down are not counted as accepted.
pub async fn postgres_restart_under_load() -> Row {
    let mut rig = Rig::new("d-postgres-restart").await;
    let api = rig.api("api", &[]).await;
    let spec = WorkerSpec {
        retry: Some(RetryPolicy {
            base: Duration::from_millis(200),
            ..RetryPolicy::default()
        }),
        ..paced()
    };
    rig.worker("d-w1", &spec);
    rig.worker("d-w2", &spec);
    rig.upload_many(&api, 8).await;
    let busy = rig.wait_processing(2, SETTLE).await;
    rig.check(busy, "no jobs were running before the fault");

    rig.fault();
    let began = Instant::now();
    let mut restart = PostgresRestart::begin();
    let (mut accepted, mut refused) = (0, 0);
    while restart.in_progress() && accepted + refused < 3 {
        match rig.upload(&api).await {
            Ok(_) => accepted += 1,
            Err(_) => refused += 1,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let restarted = restart.finish().await;
    rig.note(format!(
        "Postgres back {:.1} s after the restart began; uploads meanwhile: {accepted} accepted, \
         {refused} refused",
        began.elapsed().as_secs_f64(),
    ));
    if let Err(e) = restarted {
        rig.check(false, e);
    }
    rig.wait_all_ended(RECOVERY_DEADLINE).await;
    let retried = rig
        .jobs()
        .await
        .map(|jobs| jobs.iter().filter(|job| job.attempts > 1).count())
        .unwrap_or_default();
    rig.note(format!("{retried} job(s) needed more than one attempt"));
    rig.check(retried > 0, "the restart interrupted no import");
    rig.finish().await
}

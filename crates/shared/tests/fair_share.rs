//! Fair sharing between tenants against the real Postgres and RabbitMQ: relays in fair mode
//! keep at most the window ready in the work queues, however many relays run, and release a
//! newcomer's jobs before more of a tenant that was just served.

use std::collections::HashMap;
use std::time::Duration;

use burrow_shared::engine::fair_share::{self, FairShare};
use burrow_shared::enqueue::{enqueue_many, NewJob};
use burrow_shared::message::JobMessage;
use burrow_shared::outbox;
use burrow_shared::relay::OutboxRelay;
use burrow_shared::testing::{eventually, TestEnv, DEADLINE};
use lapin::options::{BasicAckOptions, BasicGetOptions};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const WINDOW: u32 = 10;

/// Enqueues `count` noop jobs owned by `tenant` in one transaction; their ids → `tenant`.
async fn enqueue_for(env: &TestEnv, tenant: &str, count: usize) -> HashMap<Uuid, String> {
    let jobs = (0..count)
        .map(|_| NewJob::new("noop").user_id(tenant))
        .collect();
    let mut tx = env.db.begin().await.expect("begin");
    let stored = enqueue_many(&mut tx, jobs).await.expect("enqueue");
    tx.commit().await.expect("commit");
    stored
        .into_iter()
        .map(|s| (s.job.id, tenant.to_owned()))
        .collect()
}

#[tokio::test]
async fn the_window_holds_across_relays_and_a_newcomer_goes_before_the_tenant_just_served() {
    let env = TestEnv::new().await.expect("env");
    // A half-life of an hour: usage does not decay during the test, so turns are exact.
    let fair = FairShare::new(WINDOW).with_half_life(Duration::from_secs(3600));
    let mut owners = enqueue_for(&env, "a", 200).await;

    let stop = CancellationToken::new();
    let relays: Vec<_> = (0..2)
        .map(|_| {
            let relay = OutboxRelay::new(env.db.clone(), env.amqp.clone(), env.topology.clone())
                .with_fair_share(Some(fair));
            tokio::spawn(relay.run(stop.clone()))
        })
        .collect();

    // Two relays, one window: exactly WINDOW released, the rest held in the outbox.
    eventually("the first window released", || async {
        (outbox::pending_count(&env.db).await.expect("pending") == 200 - i64::from(WINDOW))
            .then_some(())
    })
    .await;
    let work_queue = env.topology.work_queue.clone();
    assert_eq!(
        env.ready_messages(&work_queue).await.expect("ready"),
        WINDOW,
        "two relays must not each fill the window"
    );

    owners.extend(enqueue_for(&env, "b", 20).await);

    // Take messages one at a time, as a worker would: each opens room for one release.
    let channel = env.channel().await.expect("channel");
    let mut order = Vec::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while order.len() < 40 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} messages after {DEADLINE:?}: {order:?}",
            order.len()
        );
        let Some(delivery) = channel
            .basic_get(work_queue.as_str().into(), BasicGetOptions::default())
            .await
            .expect("basic.get")
        else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let message = JobMessage::decode(&delivery.delivery.data).expect("a job message");
        order.push(owners[&message.job_id].clone());
        delivery
            .delivery
            .ack(BasicAckOptions::default())
            .await
            .expect("ack");
        // Never more than the window ready, whatever the relays do meanwhile.
        assert!(env.ready_messages(&work_queue).await.expect("ready") <= WINDOW);
    }
    stop.cancel();
    for relay in relays {
        relay.await.expect("relay task");
    }

    let tenants =
        |range: std::ops::Range<usize>| order[range].iter().map(String::as_str).collect::<Vec<_>>();
    assert_eq!(tenants(0..10), ["a"; 10], "what was ready before b came");
    // a was served 10: b's turns 1..=10 go before a's next (turn 11), then they alternate.
    assert_eq!(
        tenants(10..20),
        ["b"; 10],
        "b first, until its usage is a's"
    );
    let b_later = tenants(20..40).iter().filter(|t| **t == "b").count();
    assert_eq!(b_later, 10, "then one each: {order:?}");

    let usage: HashMap<String, f64> = fair_share::usage(&env.db, fair.half_life())
        .await
        .expect("usage")
        .into_iter()
        .collect();
    // Released: all of b's, and at least the 20 of a's taken (more may wait in the window).
    assert!((usage["b"] - 20.0).abs() < 0.5, "{usage:?}");
    assert!(usage["a"] >= 19.5, "{usage:?}");
}

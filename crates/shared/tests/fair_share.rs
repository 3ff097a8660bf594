//! Fair sharing between tenants against the real Postgres and RabbitMQ: relays in fair mode
//! keep at most the window ready in the work queues, however many relays run, and release a
//! newcomer's jobs before more of a tenant that was just served, and share the releases in
//! proportion to the tenants' weights.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use burrow_shared::engine::fair_share::{self, FairShare};
use burrow_shared::engine::fair_share_weights::{self, SetWeightsError};
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

/// Takes `count` messages from the default work queue one at a time, as a worker would (each
/// opens room for one release), and returns their owners in the order taken; checks that no
/// more than `window` are ever ready.
async fn take_one_at_a_time(
    env: &TestEnv,
    owners: &HashMap<Uuid, String>,
    count: usize,
    window: u32,
) -> Vec<String> {
    let work_queue = &env.topology.work_queue;
    let channel = env.channel().await.expect("channel");
    let mut order = Vec::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while order.len() < count {
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
        assert!(env.ready_messages(work_queue).await.expect("ready") <= window);
    }
    order
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

    let order = take_one_at_a_time(&env, &owners, 40, WINDOW).await;
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

#[tokio::test]
async fn a_tenant_of_weight_3_is_served_three_releases_for_each_one_of_a_tenant_of_weight_1() {
    const SMALL_WINDOW: u32 = 8;
    let env = TestEnv::new().await.expect("env");
    // A half-life of an hour: usage does not decay during the test, so turns are exact (but
    // for ties, see below).
    let fair = FairShare::new(SMALL_WINDOW).with_half_life(Duration::from_secs(3600));
    let weights = BTreeMap::from([("a".to_owned(), 3.0)]);
    fair_share_weights::set_weights(&env.db, &weights, "test")
        .await
        .expect("weights");
    // a's jobs are the older ones: ties of turn go to a.
    let mut owners = enqueue_for(&env, "a", 200).await;
    owners.extend(enqueue_for(&env, "b", 200).await);

    let stop = CancellationToken::new();
    let relay = OutboxRelay::new(env.db.clone(), env.amqp.clone(), env.topology.clone())
        .with_fair_share(Some(fair));
    let relay = tokio::spawn(relay.run(stop.clone()));
    eventually("the first window released", || async {
        (outbox::pending_count(&env.db).await.expect("pending") == 400 - i64::from(SMALL_WINDOW))
            .then_some(())
    })
    .await;
    let order = take_one_at_a_time(&env, &owners, 48, SMALL_WINDOW).await;
    stop.cancel();
    relay.await.expect("relay task");

    // No usage yet at the first ranking: a's turns are 1/3, 2/3, 1, 4/3, …, b's 1, 2, …, and
    // the ties (1, 2) go to a's older messages.
    assert_eq!(
        order[..8],
        ["a", "a", "a", "b", "a", "a", "a", "b"],
        "the first window, in one batch from one ranking"
    );
    // Then three a for each b. A later ranking reads usage decayed by a hair, which may break a
    // tie (a's turn n against b's turn n) the other way: a pair swaps, so a stretch of 40 holds
    // 30 a, give or take one, and between two b there are 2 to 4 a.
    let next = &order[8..48];
    let a = next.iter().filter(|t| *t == "a").count();
    assert!((29..=31).contains(&a), "{a} of 40 for a: {next:?}");
    let b_at: Vec<usize> = (0..next.len()).filter(|i| next[*i] == "b").collect();
    for pair in b_at.windows(2) {
        let between = pair[1] - pair[0] - 1;
        assert!(
            (2..=4).contains(&between),
            "{between} a between two b: {next:?}"
        );
    }

    let usage: HashMap<String, f64> = fair_share::usage(&env.db, fair.half_life())
        .await
        .expect("usage")
        .into_iter()
        .collect();
    // Usage counts releases, unweighted: a's is three times b's (the window's last 8 may be
    // released beyond the 48 taken).
    let ratio = usage["a"] / usage["b"];
    assert!((2.5..=3.5).contains(&ratio), "{usage:?}");
}

#[tokio::test]
async fn weights_are_written_whole_or_not_at_all_and_can_be_removed() {
    let env = TestEnv::new().await.expect("env");
    let good = BTreeMap::from([("acme".to_owned(), 3.0), ("globex".to_owned(), 0.5)]);
    fair_share_weights::set_weights(&env.db, &good, "replica-1")
        .await
        .expect("valid weights");
    assert_eq!(
        fair_share_weights::weights(&env.db).await.expect("read"),
        good
    );

    // One bad weight: nothing of the call is written.
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let mixed = BTreeMap::from([("acme".to_owned(), 5.0), ("initech".to_owned(), bad)]);
        let refused = fair_share_weights::set_weights(&env.db, &mixed, "replica-2").await;
        assert!(
            matches!(refused, Err(SetWeightsError::Invalid(ref e)) if e.tenant == "initech"),
            "{bad}: {refused:?}"
        );
        assert_eq!(
            fair_share_weights::weights(&env.db).await.expect("read"),
            good
        );
    }

    // The table refuses them too, written by hand: a ranking never divides by one.
    let by_hand = |weight: &'static str| {
        sqlx::query(
            "INSERT INTO fair_share_weights (tenant, weight) VALUES ('initech', $1::float8)",
        )
        .bind(weight)
        .execute(&env.db)
    };
    for bad in ["0", "-1", "NaN", "Infinity", "1e-7", "2e6"] {
        assert!(by_hand(bad).await.is_err(), "{bad}");
    }
    by_hand("2").await.expect("a weight in range, by hand");
    assert!(fair_share_weights::remove_weight(&env.db, "initech")
        .await
        .expect("remove"));

    // The last writer wins, tenant by tenant; other tenants stay.
    let later = BTreeMap::from([("acme".to_owned(), 2.0)]);
    fair_share_weights::set_weights(&env.db, &later, "replica-2")
        .await
        .expect("valid weights");
    let now = fair_share_weights::weights(&env.db).await.expect("read");
    assert_eq!(now.get("acme"), Some(&2.0));
    assert_eq!(now.get("globex"), Some(&0.5));

    assert!(fair_share_weights::remove_weight(&env.db, "acme")
        .await
        .expect("remove"));
    assert!(!fair_share_weights::remove_weight(&env.db, "acme")
        .await
        .expect("remove"));
    assert_eq!(
        fair_share_weights::weights(&env.db).await.expect("read"),
        BTreeMap::from([("globex".to_owned(), 0.5)])
    );
}

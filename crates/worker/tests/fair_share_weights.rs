//! A worker writes its fair-share weights (`FAIR_SHARE_WEIGHTS`) at build, as it does its kind
//! caps: the last replica to start wins, and a bad weight stops the build with nothing written.

use std::collections::BTreeMap;

use burrow_shared::engine::fair_share_weights;
use burrow_shared::kinds::Noop;
use burrow_shared::testing::TestEnv;
use burrow_worker::Worker;

#[tokio::test]
async fn a_worker_writes_its_weights_at_build_and_refuses_a_bad_one() {
    let env = TestEnv::new().await.expect("test services");
    let build = |id: &str, weights: &[(&str, f64)]| {
        let mut builder = Worker::builder(env.db.clone(), env.amqp_url.clone())
            .register(Noop)
            .queue_prefix(env.topology.prefix())
            .worker_id(id);
        for (tenant, weight) in weights {
            builder = builder.fair_share_weight(*tenant, *weight);
        }
        builder.build()
    };
    build("replica-1", &[("acme", 3.0), ("globex", 0.5)])
        .await
        .expect("a worker");
    build("replica-2", &[("acme", 2.0)])
        .await
        .expect("a worker");
    let written = BTreeMap::from([("acme".to_owned(), 2.0), ("globex".to_owned(), 0.5)]);
    assert_eq!(
        fair_share_weights::weights(&env.db).await.expect("read"),
        written,
        "the last replica to start wins, tenant by tenant"
    );

    let refused = build("replica-3", &[("acme", 5.0), ("initech", 0.0)])
        .await
        .err()
        .expect("a weight of 0 stops the build");
    assert!(
        format!("{refused:#}").contains("initech"),
        "the error names the tenant: {refused:#}"
    );
    assert_eq!(
        fair_share_weights::weights(&env.db).await.expect("read"),
        written,
        "nothing of a refused build is written"
    );
}

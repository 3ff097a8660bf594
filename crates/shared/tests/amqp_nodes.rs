//! The AMQP pool over several nodes (`burrow_shared::amqp`) against the real broker: a node
//! that refuses is skipped, whichever place it has in the list.

use burrow_shared::amqp::amqp_pool;
use burrow_shared::testing::TestEnv;

/// A node that is down: nothing listens on port 1.
const DOWN: &str = "amqp://guest:guest@127.0.0.1:1/%2f";

#[tokio::test]
async fn connections_skip_a_node_that_is_down() {
    let env = TestEnv::new().await.expect("test services");
    // Each new connection starts one node further: with two nodes, half of them try the
    // down node first, so four connections cover both orders twice.
    let pool = amqp_pool(&format!("{DOWN}, {}", env.amqp_url), 4).expect("pool");
    let mut held = Vec::new();
    for _ in 0..4 {
        let connection = pool.get().await.expect("a connection to the live node");
        assert!(connection.status().connected());
        held.push(connection);
    }
    assert_eq!(pool.status().size, 4);
}

#[tokio::test]
async fn with_every_node_down_no_connection_is_made() {
    let pool = amqp_pool(&format!("{DOWN},{DOWN}"), 1).expect("pool");
    assert!(pool.get().await.is_err());
}

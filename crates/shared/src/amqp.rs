//! The RabbitMQ connection pool (deadpool-lapin) both binaries use.

use deadpool_lapin::{Config, Pool, PoolConfig, Runtime};
use lapin::ConnectionProperties;

/// Builds a pool of at most `max_connections` AMQP connections to `url`
/// (`amqp://user:pass@host:5672/%2f`). Connections are opened lazily, on first use, and
/// broken ones are replaced on the next `get()`.
///
/// Must be called inside a tokio runtime.
///
/// # Errors
/// If the pool cannot be built (an invalid configuration); an unreachable broker shows up only
/// when a connection is first requested.
pub fn amqp_pool(
    url: &str,
    max_connections: usize,
) -> Result<Pool, deadpool_lapin::CreatePoolError> {
    Config {
        url: Some(url.to_owned()),
        pool: Some(PoolConfig::new(max_connections.max(1))),
    }
    .create_pool(ConnectionProperties::default, Runtime::Tokio1)
}

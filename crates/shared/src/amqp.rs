//! RabbitMQ connections: one pool (deadpool) over a single broker or the nodes of a cluster.
//!
//! `AMQP_URL` names one node (`amqp://user:pass@host:5672/%2f`) or several, separated by
//! commas (`amqp://u:p@rabbit1:5672/%2f,amqp://u:p@rabbit2:5672/%2f,amqp://u:p@rabbit3:5672/%2f`).
//! Each new connection tries the nodes in turn, starting one node further than the previous
//! connection did (so the connections of many processes spread over the cluster) and moving on
//! when a node refuses or cannot be reached; a connection that broke is dropped at the next
//! `get()` and replaced the same way. That is the client side of a cluster's availability: any
//! node serves any queue, and quorum queues keep working while a majority of their replicas run
//! (<https://www.rabbitmq.com/docs/clustering#clients>,
//! <https://www.rabbitmq.com/docs/quorum-queues#what-is-a-quorum>).
//!
//! Lower the heartbeat (`?heartbeat=10`, seconds; RabbitMQ proposes 60) to notice a node that
//! went silent, e.g. cut off by a network partition, sooner.

use std::sync::atomic::{AtomicUsize, Ordering};

use deadpool::managed::{self, Metrics, RecycleResult};
use lapin::ConnectionProperties;

/// The pool both binaries use.
pub type AmqpPool = managed::Pool<Brokers>;
/// A pooled connection (derefs to [`lapin::Connection`]).
pub type AmqpConnection = managed::Object<Brokers>;
/// Why [`AmqpPool::get`] gave no connection.
pub type AmqpPoolError = managed::PoolError<lapin::Error>;

/// Why [`amqp_pool`] could not build a pool.
#[derive(Debug, thiserror::Error)]
pub enum AmqpConfigError {
    /// The URL list names no node.
    #[error("AMQP_URL names no broker")]
    NoBroker,
    /// The pool could not be built.
    #[error("building the AMQP pool: {0}")]
    Pool(#[from] managed::BuildError),
}

/// The nodes a pool connects to, each through deadpool-lapin's manager.
pub struct Brokers {
    nodes: Vec<deadpool_lapin::Manager>,
    /// The node the next connection tries first (modulo the number of nodes).
    next: AtomicUsize,
}

impl std::fmt::Debug for Brokers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The managers' addresses hold passwords: only their number is shown.
        f.debug_struct("Brokers")
            .field("nodes", &self.nodes.len())
            .finish_non_exhaustive()
    }
}

impl Brokers {
    /// The nodes of `urls`: one `amqp://` URL, or several separated by commas. Must be called
    /// inside a Tokio runtime.
    ///
    /// # Errors
    /// [`AmqpConfigError::NoBroker`] when `urls` names none.
    pub fn new(urls: &str) -> Result<Brokers, AmqpConfigError> {
        let nodes: Vec<deadpool_lapin::Manager> = node_urls(urls)
            .map(|url| {
                deadpool_lapin::Manager::new(
                    url,
                    ConnectionProperties::default,
                    async_rs::Runtime::tokio_current(),
                )
            })
            .collect();
        if nodes.is_empty() {
            return Err(AmqpConfigError::NoBroker);
        }
        Ok(Brokers {
            nodes,
            next: AtomicUsize::new(0),
        })
    }

    /// How many nodes it knows.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always `false`: [`Brokers::new`] refuses an empty list.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

/// The URLs of a comma-separated list, trimmed, empty entries skipped.
fn node_urls(urls: &str) -> impl Iterator<Item = &str> {
    urls.split(',').map(str::trim).filter(|url| !url.is_empty())
}

impl managed::Manager for Brokers {
    type Type = lapin::Connection;
    type Error = lapin::Error;

    async fn create(&self) -> Result<lapin::Connection, lapin::Error> {
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        let node = |step: usize| &self.nodes[(first + step) % self.nodes.len()];
        let mut result = managed::Manager::create(node(0)).await;
        for step in 1..self.nodes.len() {
            let Err(error) = &result else { break };
            tracing::debug!(%error, "AMQP node unreachable; trying the next");
            result = managed::Manager::create(node(step)).await;
        }
        result
    }

    async fn recycle(
        &self,
        connection: &mut lapin::Connection,
        metrics: &Metrics,
    ) -> RecycleResult<lapin::Error> {
        // Whether a connection is alive does not depend on the node it went to.
        managed::Manager::recycle(&self.nodes[0], connection, metrics).await
    }
}

/// Builds a pool of at most `max_connections` AMQP connections to the node(s) of `urls` (see
/// the module doc). Connections are opened lazily, on first use, and broken ones are replaced
/// on the next `get()`. Must be called inside a Tokio runtime.
///
/// # Errors
/// [`AmqpConfigError`] if `urls` names no node; an unreachable broker shows up only when a
/// connection is first requested.
///
/// # Example
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = burrow_shared::amqp::amqp_pool(
///     "amqp://guest:guest@rabbit1:5672/%2f,amqp://guest:guest@rabbit2:5672/%2f",
///     4,
/// )?;
/// let connection = pool.get().await?; // to whichever node answers first
/// # Ok(()) }
/// ```
pub fn amqp_pool(urls: &str, max_connections: usize) -> Result<AmqpPool, AmqpConfigError> {
    Ok(managed::Pool::builder(Brokers::new(urls)?)
        .max_size(max_connections.max(1))
        .runtime(deadpool::Runtime::Tokio1)
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_list_is_split_on_commas() {
        let urls: Vec<&str> = node_urls(" amqp://a:5672/%2f ,,amqp://b:5672/%2f, ").collect();
        assert_eq!(urls, ["amqp://a:5672/%2f", "amqp://b:5672/%2f"]);
        assert_eq!(node_urls(" , ").count(), 0);
    }

    #[tokio::test]
    async fn an_empty_list_is_refused() {
        assert!(matches!(amqp_pool(" ", 1), Err(AmqpConfigError::NoBroker)));
        assert_eq!(
            Brokers::new("amqp://a/%2f,amqp://b/%2f")
                .map(|b| b.len())
                .ok(),
            Some(2)
        );
    }
}

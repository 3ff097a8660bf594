//! Building the api from its config and serving until shutdown, with the outbox relay beside
//! the HTTP server.

use std::time::Duration;

use anyhow::Context as _;
use burrow_shared::engine::fair_share::FairShare;
use burrow_shared::handler::Registry;
use burrow_shared::relay::OutboxRelay;
use burrow_shared::Topology;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::ApiConfig;
use crate::publisher::Publisher;
use crate::routes::router;
use crate::state::AppState;

/// Broker connections in the pool: the relay keeps one open, the rest are spare.
const AMQP_POOL_SIZE: usize = 4;

/// Longest wait at shutdown for the relay to finish its batch. It is bounded by the relay's own
/// timeouts already; past this, the task is aborted and its rows stay pending (safe: they are
/// published again later).
const RELAY_STOP_TIMEOUT: Duration = Duration::from_secs(45);

/// A bound, ready-to-serve api.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    fair_share: Option<FairShare>,
}

impl Application {
    /// Connects to Postgres, prepares the broker pool, installs the process's metrics recorder
    /// (once per process) and binds the listen address. The api accepts the kinds of
    /// `registry` (the binary passes the shipped ones).
    ///
    /// RabbitMQ is not contacted here: the api starts, and accepts jobs into the outbox, while
    /// the broker is down; the relay connects (and declares the topology) when it can.
    ///
    /// # Errors
    /// If Postgres is unreachable, `AMQP_URL` is invalid, the weights of
    /// `FAIR_SHARE_WEIGHTS` cannot be written, or the address cannot be bound.
    pub async fn build(config: &ApiConfig, registry: Registry) -> anyhow::Result<Self> {
        let db = burrow_shared::db::connect(&config.database_url, config.database_max_connections)
            .await
            .context("connecting to DATABASE_URL")?;
        let amqp =
            burrow_shared::amqp::amqp_pool(&config.amqp_url, AMQP_POOL_SIZE).context("AMQP_URL")?;
        let failpoint = config.failpoint();
        if let Some(failpoint) = failpoint {
            tracing::warn!(
                failpoint = failpoint.name(),
                "test-only failpoint armed: this process will crash on purpose"
            );
        }
        // The queues of the api's kinds are declared too: its relay publishes to them.
        let topology = Topology::with_prefix(&config.queue_prefix)
            .with_queues(registry.queues())
            .context("a kind's QUEUE")?;
        let publisher = Publisher::new(amqp, topology).with_failpoint(failpoint);
        let state = AppState {
            readiness: config.readiness_rules(),
            metrics: Some(crate::metrics::install()),
            auth: config.auth()?,
            import_limits: config.import_limits(),
            profiles: config.import.profiles()?,
            ..AppState::new(db, publisher, config.upload_max_bytes, registry)
        };
        if state.auth.mode == crate::auth::AuthMode::Off {
            tracing::warn!("AUTH_MODE=off: every request acts as an admin (development only)");
        }
        // As the workers do: the last replica to start wins (`FAIR_SHARE_WEIGHTS`).
        burrow_shared::engine::fair_share_weights::set_weights(
            &state.db,
            &config.fair_share_weights,
            &api_id(),
        )
        .await
        .context("writing FAIR_SHARE_WEIGHTS")?;
        let listener = TcpListener::bind(config.bind_addr)
            .await
            .with_context(|| format!("binding {}", config.bind_addr))?;
        Ok(Application {
            listener,
            state,
            fair_share: FairShare::from_window(config.fair_share_window),
        })
    }

    /// An api over existing pools, bound to `listener` (tests bind port 0).
    pub fn from_parts(listener: TcpListener, state: AppState) -> Self {
        Application {
            listener,
            state,
            fair_share: None,
        }
    }

    /// The same api with fair sharing between tenants in its outbox relay (`FAIR_SHARE_WINDOW`;
    /// `None`: oldest first).
    #[must_use]
    pub fn with_fair_share(mut self, fair: Option<FairShare>) -> Self {
        self.fair_share = fair;
        self
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }

    /// Runs the outbox relay and serves until `shutdown` is cancelled; then stops accepting,
    /// lets in-flight requests finish, and only then stops the relay, which finishes its
    /// current batch (so jobs accepted during the drain are still relayed if the broker is up).
    ///
    /// # Errors
    /// If the server fails.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(addr = %self.listener.local_addr()?, "api listening");
        // The relay's own token: it must outlive the HTTP drain, which `shutdown` starts.
        let relay_stop = CancellationToken::new();
        let publisher = &self.state.publisher;
        let relay = OutboxRelay::new(
            self.state.db.clone(),
            publisher.pool().clone(),
            publisher.topology().clone(),
        )
        .with_handle(publisher.relay())
        .with_fair_share(self.fair_share);
        let mut relay = tokio::spawn(relay.run(relay_stop.clone()));
        let served = axum::serve(self.listener, router(self.state))
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        relay_stop.cancel();
        match tokio::time::timeout(RELAY_STOP_TIMEOUT, &mut relay).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "the outbox relay panicked"),
            Err(_) => {
                tracing::warn!("the outbox relay did not stop in time; its rows stay pending");
                relay.abort();
            }
        }
        served?;
        Ok(())
    }
}

/// Who wrote the api's settings to the database: `api:{hostname}:{pid}`.
fn api_id() -> String {
    format!("api:{}", burrow_shared::process_id::process_id("api"))
}

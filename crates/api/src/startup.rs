//! Building the api from its config and serving until shutdown.

use anyhow::Context as _;
use burrow_shared::Topology;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::ApiConfig;
use crate::publisher::Publisher;
use crate::routes::router;
use crate::state::AppState;

/// A bound, ready-to-serve api.
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Connects to Postgres and RabbitMQ, declares the topology and binds the listen address.
    ///
    /// # Errors
    /// If a service is unreachable or the address cannot be bound.
    pub async fn build(config: &ApiConfig) -> anyhow::Result<Self> {
        let db = burrow_shared::db::connect(&config.database_url, config.database_max_connections)
            .await
            .context("connecting to DATABASE_URL")?;
        let amqp = burrow_shared::amqp::amqp_pool(&config.amqp_url, 4).context("AMQP_URL")?;
        let topology = Topology::with_prefix(&config.queue_prefix);
        {
            let connection = amqp.get().await.context("connecting to AMQP_URL")?;
            let channel = connection.create_channel().await?;
            topology
                .declare(&channel)
                .await
                .context("declaring the topology")?;
            let _ = channel.close(200, "declared".into()).await;
        }
        let state = AppState {
            db,
            publisher: Publisher::new(amqp, topology),
            upload_max_bytes: config.upload_max_bytes,
        };
        let listener = TcpListener::bind(config.bind_addr)
            .await
            .with_context(|| format!("binding {}", config.bind_addr))?;
        Ok(Application { listener, state })
    }

    /// An api over existing pools, bound to `listener` (tests bind port 0).
    pub fn from_parts(listener: TcpListener, state: AppState) -> Self {
        Application { listener, state }
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }

    /// Serves until `shutdown` is cancelled, then stops accepting and lets in-flight requests
    /// finish.
    ///
    /// # Errors
    /// If the server fails.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(addr = %self.listener.local_addr()?, "api listening");
        axum::serve(self.listener, router(self.state.clone()))
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await?;
        Ok(())
    }
}

//! The app's web server: `POST /signups` on `127.0.0.1:3000` (or `BIND_ADDR`), with an outbox
//! relay beside it so its jobs are published at once. `DATABASE_URL`, `AMQP_URL` as for burrow.

use burrow_shared::relay::OutboxRelay;
use burrow_shared::Topology;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let (db, amqp_url) = welcome_email::connect_from_env().await?;
    let bind = std::env::var("BIND_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());

    let stop = CancellationToken::new();
    let amqp = burrow_shared::amqp::amqp_pool(&amqp_url, 2)?;
    let relay = OutboxRelay::new(db.clone(), amqp, Topology::default());
    let relay = tokio::spawn(relay.run(stop.clone()));

    let listener = tokio::net::TcpListener::bind(&bind).await?;
    tracing::info!(%bind, "welcome-email listening");
    let shutdown = stop.clone();
    axum::serve(listener, welcome_email::router(db))
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            shutdown.cancel();
        })
        .await?;
    stop.cancel();
    let _ = relay.await;
    Ok(())
}

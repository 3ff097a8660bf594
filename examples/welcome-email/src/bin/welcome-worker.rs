//! The app's worker: burrow's engine running the app's kind (and burrow's shipped kinds), until
//! SIGINT. `DATABASE_URL`, `AMQP_URL` as for burrow.

use burrow_worker::Worker;
use tokio_util::sync::CancellationToken;
use welcome_email::WelcomeEmail;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let (db, amqp_url) = welcome_email::connect_from_env().await?;

    let worker = Worker::builder(db, amqp_url)
        .register(WelcomeEmail)
        .registry(burrow_shared::kinds::shipped(
            Default::default(),
            Default::default(),
        ))
        .concurrency(8)
        .build()
        .await?;
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    worker.run(shutdown).await
}

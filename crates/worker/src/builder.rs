//! [`Worker`]: the engine as a library. An app registers its kinds, sets what it wants, and
//! runs the worker in its own binary (the `burrow-worker` binary is one such app, registering
//! the shipped kinds from environment variables).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use burrow_shared::engine::fair_share::FairShare;
use burrow_shared::handler::{JobHandler, Registry};
use burrow_shared::rate_limits::RateLimit;
use burrow_shared::readiness::ReadinessRules;
use burrow_shared::relay::OutboxRelay;
use burrow_shared::retry::RetryPolicy;
use burrow_shared::topology::{check_queue_name, DEFAULT_QUEUE};
use burrow_shared::{JobStatus, Topology};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::consumer::{consume, ConsumerSettings, HARD_STOP_GRACE};
use crate::http::{self, HttpState};
use crate::maintenance::{recurring, Maintenance};
use crate::process::JobContext;
use crate::{metrics, queue_stats, tenant_stats};

/// Broker connections in the pool: the consumer and the outbox relay keep one each, the queue
/// gauges borrow one every few seconds, one is spare.
const AMQP_POOL_SIZE: usize = 4;

/// How often the idle mode ([`WorkerBuilder::stop_when_idle`]) looks at the job table.
const IDLE_CHECK: Duration = Duration::from_millis(50);

/// Builds a [`Worker`]; start with [`Worker::builder`].
pub struct WorkerBuilder {
    db: PgPool,
    amqp_url: String,
    registry: Registry,
    worker_id: Option<String>,
    queue_prefix: String,
    retry: RetryPolicy,
    settings: ConsumerSettings,
    http: Option<(SocketAddr, ReadinessRules)>,
    metrics: bool,
    relay: bool,
    fair_share: Option<FairShare>,
    /// Weights per tenant set here, written at build (`FAIR_SHARE_WEIGHTS`).
    fair_share_weights: BTreeMap<String, f64>,
    stop_when_idle: bool,
    lease: Duration,
    sweep_interval: Duration,
    retention_days: u32,
    recurring: Option<String>,
    failpoint_file: Option<String>,
    /// Cluster-wide caps set here, over what the kinds declare.
    caps: BTreeMap<String, u32>,
    /// Cluster-wide rate limits set here, over what the kinds declare.
    rate_limits: BTreeMap<String, RateLimit>,
    /// The queues to consume; `None`: the default queue and every queue a kind declares.
    queues: Option<Vec<String>>,
}

/// A worker ready to run: consumer, outbox relay, maintenance and (if asked) its HTTP port.
pub struct Worker {
    ctx: JobContext,
    amqp: burrow_shared::amqp::AmqpPool,
    topology: Topology,
    settings: ConsumerSettings,
    http: Option<(SocketAddr, ReadinessRules)>,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    relay: bool,
    fair_share: Option<FairShare>,
    stop_when_idle: bool,
    maintenance: Maintenance,
}

impl Worker {
    /// A builder for a worker over `db` (migrated: [`burrow_shared::db::connect`]) and the
    /// broker at `amqp_url` (`amqp://user:pass@host:5672/%2f`, or a cluster's nodes separated
    /// by commas: [`burrow_shared::amqp`]). Defaults: concurrency 64,
    /// prefetch 128, the default [`RetryPolicy`], queue prefix `burrow`, drain timeout 30 s,
    /// no HTTP port, no metrics recorder, an outbox relay, no kinds.
    ///
    /// # Example
    /// ```no_run
    /// use std::time::Duration;
    /// use burrow_shared::kinds::{Noop, Sleep};
    /// use burrow_worker::Worker;
    /// use tokio_util::sync::CancellationToken;
    ///
    /// # async fn example(db: sqlx::PgPool) -> anyhow::Result<()> {
    /// let worker = Worker::builder(db, "amqp://guest:guest@127.0.0.1:5672/%2f")
    ///     .register(Noop)
    ///     .register(Sleep)
    ///     .concurrency(16)
    ///     .drain_timeout(Duration::from_secs(10))
    ///     .build()
    ///     .await?;
    /// let shutdown = CancellationToken::new();
    /// // e.g. cancel `shutdown` on SIGTERM
    /// worker.run(shutdown).await?;
    /// # Ok(()) }
    /// ```
    pub fn builder(db: PgPool, amqp_url: impl Into<String>) -> WorkerBuilder {
        WorkerBuilder {
            db,
            amqp_url: amqp_url.into(),
            registry: Registry::default(),
            worker_id: None,
            queue_prefix: burrow_shared::topology::DEFAULT_PREFIX.to_owned(),
            retry: RetryPolicy::default(),
            settings: ConsumerSettings {
                concurrency: 64,
                prefetch: 128,
                drain_timeout: Duration::from_secs(30),
                hard_stop_grace: HARD_STOP_GRACE,
                queues: Vec::new(),
            },
            http: None,
            metrics: false,
            relay: true,
            fair_share: None,
            fair_share_weights: BTreeMap::new(),
            stop_when_idle: false,
            lease: Duration::from_secs(600),
            sweep_interval: Duration::from_secs(30),
            retention_days: 30,
            recurring: None,
            failpoint_file: None,
            caps: BTreeMap::new(),
            rate_limits: BTreeMap::new(),
            queues: None,
        }
    }

    /// The worker's job context (its kinds, retry policy, id).
    pub fn context(&self) -> &JobContext {
        &self.ctx
    }

    /// Runs until `shutdown` is cancelled (or, in [`WorkerBuilder::stop_when_idle`] mode, until
    /// no job waits or runs). Then the soft stop: no new deliveries, in-flight jobs finish for
    /// up to the drain timeout; then the hard stop: the runs' tokens are cancelled and what
    /// is left goes back to the queue. The outbox relay and maintenance stop last.
    ///
    /// # Errors
    /// If the consumer fails in a way it cannot recover from (none today: broker failures
    /// are retried with backoff until shutdown).
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Worker {
            ctx,
            amqp,
            topology,
            settings,
            http,
            metrics,
            relay,
            fair_share,
            stop_when_idle,
            maintenance,
        } = self;
        let db = ctx.db.clone();
        let health = ctx.health.clone();
        // Background parts stop after the consumer has drained, not with the signal.
        let background = CancellationToken::new();
        let consuming = shutdown.child_token();
        if stop_when_idle {
            tokio::spawn(cancel_when_idle(db.clone(), consuming.clone()));
        }
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(maintenance.run(background.clone()));
        if relay {
            let relay = OutboxRelay::new(db.clone(), amqp.clone(), topology.clone())
                .with_fair_share(fair_share);
            tasks.spawn(relay.run(background.clone()));
        }
        if let Some((addr, rules)) = http {
            let state = HttpState {
                db: db.clone(),
                health: health.clone(),
                rules,
                metrics: metrics.clone(),
            };
            tasks.spawn(http::run_http(addr, state, background.clone()));
        }
        tasks.spawn(queue_stats::run_queue_stats(
            amqp.clone(),
            topology.clone(),
            settings.queues.clone(),
            health,
            background.clone(),
        ));
        if let Some(handle) = metrics {
            tasks.spawn(crate::metrics::run_upkeep(handle, background.clone()));
        }
        tasks.spawn(ctx.caps.clone().run_refresh(db.clone(), background.clone()));
        tasks.spawn(tenant_stats::run_tenant_stats(
            db.clone(),
            background.clone(),
        ));
        tasks.spawn(
            ctx.rates
                .clone()
                .run_refresh(db.clone(), background.clone()),
        );
        tasks.spawn(ctx.rates.clone().run_pump(db.clone(), background.clone()));
        let result = consume(&amqp, &topology, ctx, &settings, consuming).await;
        background.cancel();
        while tasks.join_next().await.is_some() {}
        amqp.close();
        result
    }
}

impl WorkerBuilder {
    /// Runs jobs of `handler`'s kind (replacing an earlier handler of the same kind).
    #[must_use]
    pub fn register<H: JobHandler>(mut self, handler: H) -> Self {
        self.registry = self.registry.register(handler);
        self
    }

    /// Runs every kind of `registry` too (e.g. [`burrow_shared::kinds::shipped`]).
    #[must_use]
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = self.registry.merge(registry);
        self
    }

    /// Consume these queues only (`WORKER_QUEUES`; [`burrow_shared::topology`], "Queues per
    /// kind"), e.g. `["imports"]` for a worker that runs imports apart from small jobs. By
    /// default a worker consumes the default queue and every queue its kinds declare, so one
    /// worker alone runs every job. Jobs of kinds it does not register that arrive on these
    /// queues are dead-lettered as of an unknown kind.
    ///
    /// # Example
    /// ```no_run
    /// use burrow_shared::kinds::Noop;
    /// use burrow_worker::Worker;
    ///
    /// # async fn example(db: sqlx::PgPool) -> anyhow::Result<()> {
    /// let worker = Worker::builder(db, "amqp://guest:guest@127.0.0.1:5672/%2f")
    ///     .register(Noop)
    ///     .queues(["default"])
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn queues<I, S>(mut self, queues: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.queues = Some(queues.into_iter().map(Into::into).collect());
        self
    }

    /// Jobs run at once by this process (at least 1).
    #[must_use]
    pub fn concurrency(mut self, jobs: usize) -> Self {
        self.settings.concurrency = jobs.max(1);
        self
    }

    /// `basic.qos` prefetch count per work queue, in messages
    /// (<https://www.rabbitmq.com/docs/consumer-prefetch>); at least the concurrency, so a
    /// finished job's slot is refilled without a round trip.
    #[must_use]
    pub fn prefetch(mut self, messages: u16) -> Self {
        self.settings.prefetch = messages;
        self
    }

    /// The retry policy of kinds without one of their own.
    #[must_use]
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Prefix of exchange and queue names (`burrow`): separate installations, or tests, on one
    /// broker.
    #[must_use]
    pub fn queue_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.queue_prefix = prefix.into();
        self
    }

    /// The soft stop: how long in-flight jobs may take to finish after shutdown (30 s).
    #[must_use]
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.settings.drain_timeout = timeout;
        self
    }

    /// The hard stop: after the drain timeout, how long cancelled runs may take to return
    /// (5 s) before the channel closes anyway.
    #[must_use]
    pub fn hard_stop_grace(mut self, grace: Duration) -> Self {
        self.settings.hard_stop_grace = grace;
        self
    }

    /// The name recorded on each job this process runs (default `{hostname}:{pid}`).
    #[must_use]
    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.worker_id = Some(id.into());
        self
    }

    /// Serve `/healthz`, `/readyz` (by `rules`) and `/metrics` on `addr`.
    #[must_use]
    pub fn http(mut self, addr: SocketAddr, rules: ReadinessRules) -> Self {
        self.http = Some((addr, rules));
        self
    }

    /// Install the process's Prometheus recorder (once per process) for `/metrics`.
    #[must_use]
    pub fn metrics(mut self, install: bool) -> Self {
        self.metrics = install;
        self
    }

    /// Run an outbox relay in this process (the default): jobs enqueued here, by recurring
    /// schedules or the sweeper are published even when no api runs.
    #[must_use]
    pub fn relay(mut self, run: bool) -> Self {
        self.relay = run;
        self
    }

    /// Fair sharing between tenants in this process's outbox relay (`None`, the default:
    /// oldest first). Give every relaying process (api and workers) the same setting
    /// ([`burrow_shared::engine::fair_share`]).
    #[must_use]
    pub fn fair_share(mut self, fair: Option<FairShare>) -> Self {
        self.fair_share = fair;
        self
    }

    /// `tenant`'s weight in fair sharing (`FAIR_SHARE_WEIGHTS`; tenants not set weigh 1):
    /// while tenants have backlogs, each is released messages in proportion to its weight.
    /// Written to the `fair_share_weights` table at [`WorkerBuilder::build`], where the last
    /// replica to start wins, and read by every relay
    /// ([`burrow_shared::engine::fair_share_weights`]). A weight out of range (from a
    /// millionth to a million) makes [`WorkerBuilder::build`] fail.
    ///
    /// # Example
    /// ```no_run
    /// use burrow_shared::engine::fair_share::FairShare;
    /// use burrow_shared::kinds::Noop;
    /// use burrow_worker::Worker;
    ///
    /// # async fn example(db: sqlx::PgPool) -> anyhow::Result<()> {
    /// let worker = Worker::builder(db, "amqp://guest:guest@127.0.0.1:5672/%2f")
    ///     .register(Noop)
    ///     .fair_share(FairShare::from_window(64))
    ///     .fair_share_weight("acme", 3.0)
    ///     .build()
    ///     .await?;
    /// # let _ = worker; Ok(()) }
    /// ```
    #[must_use]
    pub fn fair_share_weight(mut self, tenant: impl Into<String>, weight: f64) -> Self {
        self.fair_share_weights.insert(tenant.into(), weight);
        self
    }

    /// Stop by itself once no job is `queued`, `processing` or `retrying` and no message waits
    /// in the outbox (then drain as on shutdown): for tests and one-off batch runs. Start it
    /// after enqueueing, or it stops at once.
    #[must_use]
    pub fn stop_when_idle(mut self, stop: bool) -> Self {
        self.stop_when_idle = stop;
        self
    }

    /// The sweeper: a `processing` job without a live worker for `lease` is re-enqueued;
    /// it looks every `interval` (one replica at a time).
    #[must_use]
    pub fn sweeper(mut self, lease: Duration, interval: Duration) -> Self {
        self.lease = lease;
        self.sweep_interval = interval;
        self
    }

    /// Finished jobs are deleted after `days` days (0: kept for ever).
    #[must_use]
    pub fn retention_days(mut self, days: u32) -> Self {
        self.retention_days = days;
        self
    }

    /// Recurring jobs: a JSON array of `{"name", "cron", "kind", "payload"}` (cron with
    /// seconds, UTC), checked against the registered kinds at [`WorkerBuilder::build`].
    #[must_use]
    pub fn recurring(mut self, json: impl Into<String>) -> Self {
        self.recurring = Some(json.into());
        self
    }

    /// At most `cap` jobs of `kind` run at once across every worker and host (at least 1),
    /// over the kind's own [`JobHandler::GLOBAL_CONCURRENCY`]. Written to the `kind_caps` table
    /// at [`WorkerBuilder::build`], where the last replica to start wins
    /// ([`burrow_shared::engine::kind_caps`]).
    ///
    /// # Example
    /// ```no_run
    /// use burrow_shared::kinds::Sleep;
    /// use burrow_worker::Worker;
    ///
    /// # async fn example(db: sqlx::PgPool) -> anyhow::Result<()> {
    /// let worker = Worker::builder(db, "amqp://guest:guest@127.0.0.1:5672/%2f")
    ///     .register(Sleep)
    ///     .global_concurrency("sleep", 2)
    ///     .build()
    ///     .await?;
    /// # let _ = worker; Ok(()) }
    /// ```
    #[must_use]
    pub fn global_concurrency(mut self, kind: impl Into<String>, cap: u32) -> Self {
        self.caps.insert(kind.into(), cap.max(1));
        self
    }

    /// At most `limit.rate` jobs of `kind` start per `limit.period` across every worker and
    /// host, per key of the kind's [`JobHandler::rate_key`], after a burst of `limit.burst`;
    /// over the kind's own [`JobHandler::RATE_LIMIT`]. Written to the `kind_rate_limits`
    /// table at [`WorkerBuilder::build`], where the last replica to start wins
    /// ([`burrow_shared::engine::rate_limits`]).
    ///
    /// # Example
    /// ```no_run
    /// use burrow_shared::engine::rate_limits::RateLimit;
    /// use burrow_shared::kinds::Sleep;
    /// use burrow_worker::Worker;
    ///
    /// # async fn example(db: sqlx::PgPool) -> anyhow::Result<()> {
    /// let worker = Worker::builder(db, "amqp://guest:guest@127.0.0.1:5672/%2f")
    ///     .register(Sleep)
    ///     .rate_limit("sleep", RateLimit::per_second(10).with_burst(5))
    ///     .build()
    ///     .await?;
    /// # let _ = worker; Ok(()) }
    /// ```
    #[must_use]
    pub fn rate_limit(mut self, kind: impl Into<String>, limit: RateLimit) -> Self {
        self.rate_limits.insert(kind.into(), limit);
        self
    }

    /// Test-only fault injection: jobs whose file has this name fail transiently every time.
    #[doc(hidden)]
    #[must_use]
    pub fn failpoint_transient_file(mut self, file_name: Option<String>) -> Self {
        self.failpoint_file = file_name;
        self
    }

    /// The worker. Starts its batcher tasks, so call it inside a Tokio runtime.
    ///
    /// # Errors
    /// An invalid AMQP URL or recurring-jobs declaration (unknown kind, bad cron, bad payload);
    /// a cap on a kind this worker does not run; an invalid or empty list of queues, or a kind
    /// declaring an invalid queue; a fair-share weight out of range (from a millionth to a
    /// million);
    /// Postgres unreachable while the caps (or weights) are written.
    /// The broker need not be up yet: the consumer connects with backoff.
    pub async fn build(self) -> anyhow::Result<Worker> {
        let amqp =
            burrow_shared::amqp::amqp_pool(&self.amqp_url, AMQP_POOL_SIZE).context("AMQP URL")?;
        // Every queue this worker's kinds use is declared (its relay may publish to them), the
        // ones it consumes are declared by the consumer.
        let topology = Topology::with_prefix(&self.queue_prefix)
            .with_queues(self.registry.queues())
            .context("a kind's QUEUE")?;
        let mut settings = self.settings;
        settings.queues = consumed_queues(self.queues, &self.registry)?;
        let recurring = match &self.recurring {
            Some(json) => recurring::parse_recurring(json, &self.registry)?,
            None => Vec::new(),
        };
        let metrics = self.metrics.then(|| {
            let handle = metrics::install();
            // Every series this worker can record, at 0 from the start.
            metrics::zero_known(self.registry.kinds());
            handle
        });
        let worker_id = self.worker_id.unwrap_or_else(default_worker_id);
        let caps = declared_caps(&self.registry, self.caps)?;
        burrow_shared::engine::kind_caps::declare(&self.db, &caps, &worker_id)
            .await
            .context("writing the kind caps")?;
        let rate_limits = declared_rate_limits(&self.registry, self.rate_limits)?;
        burrow_shared::engine::rate_limits::declare(&self.db, &rate_limits, &worker_id)
            .await
            .context("writing the kind rate limits")?;
        burrow_shared::engine::fair_share_weights::set_weights(
            &self.db,
            &self.fair_share_weights,
            &worker_id,
        )
        .await
        .context("writing the fair-share weights")?;
        let ctx = JobContext {
            retry: self.retry.clone(),
            always_transient_file: self.failpoint_file,
            ..JobContext::new(self.db.clone(), worker_id, self.registry)
        };
        ctx.caps
            .refresh(&self.db)
            .await
            .context("reading the kind caps")?;
        ctx.rates
            .refresh(&self.db)
            .await
            .context("reading the kind rate limits")?;
        let maintenance = Maintenance {
            db: self.db,
            retry: self.retry,
            lease: self.lease,
            interval: self.sweep_interval,
            retention_days: self.retention_days,
            recurring,
        };
        Ok(Worker {
            ctx,
            amqp,
            topology,
            settings,
            http: self.http,
            metrics,
            relay: self.relay,
            fair_share: self.fair_share,
            stop_when_idle: self.stop_when_idle,
            maintenance,
        })
    }
}

/// The queues a worker consumes: `chosen` (checked, once each), or by default the default
/// queue and every queue of `registry`'s kinds.
fn consumed_queues(
    chosen: Option<Vec<String>>,
    registry: &Registry,
) -> anyhow::Result<Vec<String>> {
    let mut queues = chosen.unwrap_or_else(|| {
        std::iter::once(DEFAULT_QUEUE)
            .chain(registry.queues())
            .map(str::to_owned)
            .collect()
    });
    anyhow::ensure!(!queues.is_empty(), "WORKER_QUEUES names no queue");
    for queue in &queues {
        check_queue_name(queue).context("WORKER_QUEUES")?;
    }
    // The default queue first (its consumers' tags and logs come first), then by name.
    queues.sort_by_key(|queue| (queue != DEFAULT_QUEUE, queue.clone()));
    queues.dedup();
    Ok(queues)
}

/// The rate limits this worker declares: its kinds' [`JobHandler::RATE_LIMIT`], replaced by
/// `set` (the builder's, e.g. from `KIND_RATE_LIMITS`).
fn declared_rate_limits(
    registry: &Registry,
    set: BTreeMap<String, RateLimit>,
) -> anyhow::Result<BTreeMap<String, RateLimit>> {
    declared(registry, set, "a rate limit", |kind| {
        registry.get(kind)?.rate_limit()
    })
}

/// The caps this worker declares: its kinds' [`JobHandler::GLOBAL_CONCURRENCY`], replaced by
/// `set` (the builder's, e.g. from `KIND_CAPS`).
fn declared_caps(
    registry: &Registry,
    set: BTreeMap<String, u32>,
) -> anyhow::Result<BTreeMap<String, u32>> {
    declared(registry, set, "a cluster-wide cap", |kind| {
        let cap = registry.get(kind)?.global_concurrency()?;
        Some(u32::try_from(cap).unwrap_or(u32::MAX).max(1))
    })
}

/// What the registry's kinds declare (`of_kind`), replaced by `set`; `what` names the setting
/// in the error for a kind of `set` this worker does not run.
fn declared<V>(
    registry: &Registry,
    set: BTreeMap<String, V>,
    what: &str,
    of_kind: impl Fn(&str) -> Option<V>,
) -> anyhow::Result<BTreeMap<String, V>> {
    let mut declared: BTreeMap<String, V> = registry
        .kinds()
        .filter_map(|kind| Some((kind.to_owned(), of_kind(kind)?)))
        .collect();
    for (kind, value) in set {
        anyhow::ensure!(
            registry.get(&kind).is_some(),
            "{what} names the kind {kind:?}, which this worker does not run"
        );
        declared.insert(kind, value);
    }
    Ok(declared)
}

/// `{hostname}:{pid}`.
pub fn default_worker_id() -> String {
    burrow_shared::process_id::process_id("worker")
}

/// Cancels `stop` once no job waits or runs and the outbox is empty.
async fn cancel_when_idle(db: PgPool, stop: CancellationToken) {
    let busy = format!(
        "SELECT EXISTS (SELECT 1 FROM jobs WHERE status NOT IN ({ended})) \
             OR EXISTS (SELECT 1 FROM outbox WHERE published_at IS NULL)",
        ended = JobStatus::sql_list(&JobStatus::TERMINAL)
    );
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(IDLE_CHECK) => {}
        }
        if let Ok(false) = sqlx::query_scalar::<_, bool>(&busy).fetch_one(&db).await {
            tracing::info!("no job waits or runs; stopping (stop_when_idle)");
            stop.cancel();
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burrow_shared::handler::{JobError, JobOutput, RunContext};

    /// A kind that declares a cluster-wide cap of its own.
    struct Capped;

    impl JobHandler for Capped {
        const KIND: &'static str = "capped";
        const GLOBAL_CONCURRENCY: Option<usize> = Some(3);
        type Payload = serde_json::Value;

        async fn run(
            &self,
            _: RunContext<'_>,
            _: serde_json::Value,
        ) -> Result<JobOutput, JobError> {
            Ok(JobOutput::default())
        }
    }

    #[test]
    fn a_worker_consumes_the_default_queue_and_its_kinds_queues_unless_told_otherwise() {
        let registry = burrow_shared::kinds::shipped(Default::default(), Default::default());
        assert_eq!(
            consumed_queues(None, &registry).expect("queues"),
            ["default", "imports"]
        );
        let chosen = vec!["mail".to_owned(), "imports".to_owned(), "mail".to_owned()];
        assert_eq!(
            consumed_queues(Some(chosen), &registry).expect("queues"),
            ["imports", "mail"],
            "only what it is told, once each"
        );
        let both = vec!["imports".to_owned(), "default".to_owned()];
        assert_eq!(
            consumed_queues(Some(both), &registry).expect("queues"),
            ["default", "imports"],
            "the default queue first"
        );
        assert!(consumed_queues(Some(Vec::new()), &registry).is_err());
        let bad =
            consumed_queues(Some(vec!["Imports".to_owned()]), &registry).expect_err("refused");
        assert!(format!("{bad:#}").contains("lowercase"), "{bad:#}");
    }

    #[test]
    fn declared_caps_are_the_kinds_own_overridden_by_the_builders_and_name_known_kinds_only() {
        let registry = Registry::default()
            .register(Capped)
            .register(burrow_shared::kinds::Sleep);
        let own = declared_caps(&registry, BTreeMap::new()).expect("caps");
        assert_eq!(own, BTreeMap::from([("capped".to_owned(), 3)]));
        let set = BTreeMap::from([("capped".to_owned(), 1), ("sleep".to_owned(), 2)]);
        let overridden = declared_caps(&registry, set).expect("caps");
        assert_eq!(
            overridden,
            BTreeMap::from([("capped".to_owned(), 1), ("sleep".to_owned(), 2)])
        );
        let unknown = BTreeMap::from([("export_xlsx".to_owned(), 2)]);
        let error = declared_caps(&registry, unknown).expect_err("not run here");
        assert!(error.to_string().contains("export_xlsx"), "{error}");
    }
}

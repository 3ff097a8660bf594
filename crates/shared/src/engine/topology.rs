//! RabbitMQ names and the one function that declares them.
//!
//! ```text
//!  api ─publish(rk "work")──────▶ {p}.jobs ──▶ {p}.jobs.work      (quorum, priority 0–4) ─┐
//!     ─publish(rk "work.high")─▶ (direct) ──▶ {p}.jobs.work.high (quorum, priority 5–9) ─┴▶ workers
//!                                                   │ reject / delivery limit           (high first)
//!                                                   ▼
//!                             {p}.jobs.dlx (fanout) ──▶ {p}.jobs.dead (quorum, the DLQ)
//!
//!  worker ─retry(rk "4s")──────▶ {p}.jobs.retry ──▶ {p}.jobs.delay.4s      (quorum, TTL 4 s)
//!        ─retry(rk "high.4s")─▶ (direct)       ──▶ {p}.jobs.delay.high.4s (quorum, TTL 4 s)
//!                                                   │ expired: dead-lettered to {p}.jobs with
//!                                                   ▼ rk "work" (resp. "work.high")
//!                                        {p}.jobs.work (resp. {p}.jobs.work.high)
//! ```
//!
//! Retries wait in delay queues, one per distinct backoff delay, named after their delay: a
//! queue-level `x-message-ttl` dead-letters each message back to the work exchange when it
//! expires (<https://www.rabbitmq.com/docs/ttl>, <https://www.rabbitmq.com/docs/dlx>). Naming
//! them by delay means a changed retry policy declares new queues instead of conflicting with
//! the old ones. Their dead-lettering is `at-least-once` (quorum queues, RabbitMQ ≥ 3.10), so a
//! waiting retry is not lost on the way back. The delayed-message plugin is not used: it is
//! unmaintained and keeps one unreplicated copy of each message.
//!
//! Everything is durable and both work queues are quorum queues (replicated, and the queue type
//! RabbitMQ recommends for data safety: <https://www.rabbitmq.com/docs/quorum-queues>). Their
//! dead-letter exchange and delivery limit are set explicitly: RabbitMQ 4.x gives quorum queues a
//! default delivery limit of 20, 3.x gives none, and burrow must behave the same on both.
//!
//! # Two priority levels: two queues
//!
//! A job's priority (0–9) picks its [`Lane`]: 5–9 go to the high queue, 0–4 to the normal one,
//! and workers always take a high delivery first (`burrow_worker::deliveries`). One quorum queue
//! per level is what RabbitMQ documents for prioritising with quorum queues
//! (<https://www.rabbitmq.com/docs/3.13/quorum-queues#priorities>): 3.x quorum queues ignore the
//! `priority` property (FIFO); 4.x ones know two levels only, priority > 4 being "high", served
//! 2:1 (<https://www.rabbitmq.com/docs/quorum-queues#priorities>); classic priority queues are
//! not replicated. Two queues behave the same on every version. The cut at 5 is 4.x's: a job is
//! high here exactly when a 4.x quorum queue would call it high. A delay queue's dead-letter
//! routing key cannot change on an existing queue, so each level has its own delay queues
//! (`{p}.jobs.delay.high.4s`), and a retry comes back to the queue it left.
//!
//! # Queues per kind
//!
//! A kind declares its queue ([`crate::handler::JobHandler::QUEUE`], default [`DEFAULT_QUEUE`]),
//! so operators can run import workers apart from small-job workers (`WORKER_QUEUES`). The
//! default queue *is* the two work queues above, names and arguments unchanged: deployed
//! brokers, KEDA and dashboards rely on them, and redeclaring them otherwise would fail. Every
//! other queue `name` gets the same pair under its own names, bound on the same work exchange,
//! and its own delay queues (a delay queue's dead-letter routing key cannot change, so a retry
//! can only come back to the queue it left if each queue has its own):
//!
//! ```text
//!  rk "q.imports"       ─▶ {p}.jobs ──▶ {p}.jobs.q.imports       (normal lane)
//!  rk "q.imports.high"  ─▶          ──▶ {p}.jobs.q.imports.high  (high lane)
//!  rk "q.imports.4s"    ─▶ {p}.jobs.retry ──▶ {p}.jobs.delay.q.imports.4s  ─(TTL)▶ rk "q.imports"
//!  rk "q.imports.high.4s" ─▶          ──▶ {p}.jobs.delay.q.imports.high.4s ─(TTL)▶ rk "q.imports.high"
//! ```
//!
//! The `q.` infix keeps every named queue's names apart from the default queue's (`work`,
//! `4s`, `high.4s`), whatever the name. The queue travels in the message
//! ([`crate::message::JobMessage::queue`]) and is stored with the job, so a retry, a park, a
//! released waiter, a sweeper requeue and a DLQ re-drive all go back to the job's own queue.
//! One dead-letter queue serves every queue: a dead message names its queue in its body.
//! A [`Topology`] declares the named queues it was given ([`Topology::with_queues`]); a
//! message for a named queue nobody declared is returned unroutable and its publish fails.
//!
//! Declaring is idempotent: both binaries declare on start. Declaring an existing queue with other
//! arguments fails with `PRECONDITION_FAILED`, which is why every argument lives here only.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use std::borrow::Cow;
use std::time::Duration;

use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, ExchangeKind};

use crate::retry::delay_label;

/// Default prefix of every exchange and queue name.
pub const DEFAULT_PREFIX: &str = "burrow";

/// The queue of every kind that declares none: its work queues are `{p}.jobs.work` and
/// `{p}.jobs.work.high`, the names they had before there were queues per kind.
pub const DEFAULT_QUEUE: &str = "default";

/// Longest queue name, in bytes: queue names end up inside AMQP names (at most 255 bytes)
/// after the prefix, and in metric labels.
pub const MAX_QUEUE_NAME_LEN: usize = 32;

/// A queue name that cannot be used: names are 1 to [`MAX_QUEUE_NAME_LEN`] characters of
/// `a-z`, `0-9`, `_` and `-`, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid queue name {name:?}: {reason}")]
pub struct QueueNameError {
    /// The name refused.
    pub name: String,
    /// Why.
    pub reason: &'static str,
}

/// Checks that `name` can name a queue (see [`QueueNameError`]).
///
/// # Errors
/// [`QueueNameError`] saying what is wrong with it.
///
/// # Example
/// ```
/// use burrow_shared::topology::check_queue_name;
/// assert!(check_queue_name("imports").is_ok());
/// assert!(check_queue_name("Imports").is_err());
/// assert!(check_queue_name("").is_err());
/// ```
pub fn check_queue_name(name: &str) -> Result<(), QueueNameError> {
    let refuse = |reason| {
        Err(QueueNameError {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return refuse("it is empty");
    }
    if name.len() > MAX_QUEUE_NAME_LEN {
        return refuse("it is longer than 32 characters");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return refuse("it must start with a lowercase letter (a-z)");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return refuse("only a-z, 0-9, `_` and `-` are allowed");
    }
    Ok(())
}

/// Routing key of normal-priority job messages on the work exchange (to `{p}.jobs.work`).
pub const WORK_ROUTING_KEY: &str = "work";

/// Routing key of high-priority job messages on the work exchange (to `{p}.jobs.work.high`).
pub const HIGH_ROUTING_KEY: &str = "work.high";

/// The lowest high priority: jobs of priority 5–9 are high, 0–4 normal. RabbitMQ 4.x quorum
/// queues draw the same line ("priority higher than 4 will be mapped to high",
/// <https://www.rabbitmq.com/docs/quorum-queues#priorities>).
pub const HIGH_PRIORITY: u8 = 5;

/// How many times RabbitMQ redelivers one message (requeues after a nack or a lost consumer)
/// before it dead-letters it: a poison message that crashes workers cannot loop forever.
pub const WORK_DELIVERY_LIMIT: i64 = 10;

/// A priority level: which work queue (and which delay queues) a job's messages travel through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// Priority 0–4: `{p}.jobs.work`, routing key [`WORK_ROUTING_KEY`].
    Normal,
    /// Priority 5–9: `{p}.jobs.work.high`, routing key [`HIGH_ROUTING_KEY`]; workers take
    /// these first.
    High,
}

impl Lane {
    /// Both lanes, high first: the order a worker starts its consumers in and prefers them.
    pub const ALL: [Lane; 2] = [Lane::High, Lane::Normal];

    /// The lane of a job of `priority` (0–9): [`Lane::High`] from [`HIGH_PRIORITY`] up.
    pub fn of(priority: u8) -> Lane {
        if priority >= HIGH_PRIORITY {
            Lane::High
        } else {
            Lane::Normal
        }
    }

    /// The routing key that reaches this lane's work queue on the work exchange.
    pub fn routing_key(self) -> &'static str {
        match self {
            Lane::Normal => WORK_ROUTING_KEY,
            Lane::High => HIGH_ROUTING_KEY,
        }
    }

    /// The routing key on the retry exchange of this lane's delay queue for `delay`: the
    /// delay's label (`4s`), prefixed with `high.` for the high lane (`high.4s`).
    pub fn delay_routing_key(self, delay: Duration) -> String {
        format!("{}{}", self.delay_infix(), delay_label(delay))
    }

    /// The routing key of this lane's work queue in `queue`: [`Lane::routing_key`] for the
    /// [`DEFAULT_QUEUE`], `q.{queue}` (normal) or `q.{queue}.high` for the others.
    pub fn routing_key_in(self, queue: &str) -> Cow<'static, str> {
        if queue == DEFAULT_QUEUE {
            return Cow::Borrowed(self.routing_key());
        }
        match self {
            Lane::Normal => Cow::Owned(format!("q.{queue}")),
            Lane::High => Cow::Owned(format!("q.{queue}.high")),
        }
    }

    /// The routing key on the retry exchange of this lane's delay queue for `delay` in
    /// `queue`: [`Lane::delay_routing_key`] for the [`DEFAULT_QUEUE`], else prefixed with
    /// `q.{queue}.` (`q.imports.4s`, `q.imports.high.4s`).
    pub fn delay_routing_key_in(self, queue: &str, delay: Duration) -> String {
        if queue == DEFAULT_QUEUE {
            return self.delay_routing_key(delay);
        }
        format!("q.{queue}.{}", self.delay_routing_key(delay))
    }

    /// `normal` or `high`, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Normal => "normal",
            Lane::High => "high",
        }
    }

    /// What sets this lane's delay queues and routing keys apart. Empty for the normal lane,
    /// so its delay queues keep the names (and arguments) they had before there were lanes.
    fn delay_infix(self) -> &'static str {
        match self {
            Lane::Normal => "",
            Lane::High => "high.",
        }
    }
}

/// The exchange and queue names of one burrow installation.
///
/// The prefix separates installations sharing a vhost, and gives each test its own names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Direct exchange the api publishes jobs to.
    pub exchange: String,
    /// Quorum queue of normal-priority jobs ([`Lane::Normal`]); workers consume it and the
    /// high queue. Its name predates priorities: deployments, KEDA and dashboards rely on it.
    pub work_queue: String,
    /// Quorum queue of high-priority jobs ([`Lane::High`]), same arguments as `work_queue`.
    pub high_queue: String,
    /// Fanout exchange the work queue dead-letters into.
    pub dead_letter_exchange: String,
    /// Quorum queue where dead-lettered (poison) messages rest for inspection and re-drive.
    pub dead_letter_queue: String,
    /// Direct exchange retries are published to, routing key = the delay label (`4s`).
    pub retry_exchange: String,
    prefix: String,
    /// The named queues (other than [`DEFAULT_QUEUE`]) this topology declares, sorted.
    named_queues: Vec<String>,
}

impl Default for Topology {
    fn default() -> Self {
        Topology::with_prefix(DEFAULT_PREFIX)
    }
}

impl Topology {
    /// Names under `prefix`: `{prefix}.jobs`, `{prefix}.jobs.work`, `{prefix}.jobs.work.high`,
    /// `{prefix}.jobs.dlx`, `{prefix}.jobs.dead`, `{prefix}.jobs.retry`.
    pub fn with_prefix(prefix: &str) -> Self {
        Topology {
            exchange: format!("{prefix}.jobs"),
            work_queue: format!("{prefix}.jobs.work"),
            high_queue: format!("{prefix}.jobs.work.high"),
            dead_letter_exchange: format!("{prefix}.jobs.dlx"),
            dead_letter_queue: format!("{prefix}.jobs.dead"),
            retry_exchange: format!("{prefix}.jobs.retry"),
            prefix: prefix.to_owned(),
            named_queues: Vec::new(),
        }
    }

    /// The same names, also declaring the work and delay queues of `queues` (besides the
    /// default queue's, always declared). Naming [`DEFAULT_QUEUE`] or a queue twice is fine.
    ///
    /// # Errors
    /// [`QueueNameError`] for the first invalid name.
    ///
    /// # Example
    /// ```
    /// use burrow_shared::topology::{Lane, Topology};
    ///
    /// let topology = Topology::with_prefix("burrow").with_queues(["imports", "default"])?;
    /// assert_eq!(topology.queues().collect::<Vec<_>>(), ["default", "imports"]);
    /// assert_eq!(topology.work_queue_in("imports", Lane::High), "burrow.jobs.q.imports.high");
    /// # Ok::<(), burrow_shared::topology::QueueNameError>(())
    /// ```
    pub fn with_queues<I, S>(mut self, queues: I) -> Result<Self, QueueNameError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for queue in queues {
            let queue = queue.into();
            check_queue_name(&queue)?;
            if queue != DEFAULT_QUEUE {
                self.named_queues.push(queue);
            }
        }
        self.named_queues.sort();
        self.named_queues.dedup();
        Ok(self)
    }

    /// Every queue this topology declares: [`DEFAULT_QUEUE`] first, then the named ones.
    pub fn queues(&self) -> impl Iterator<Item = &str> + '_ {
        std::iter::once(DEFAULT_QUEUE).chain(self.named_queues.iter().map(String::as_str))
    }

    /// The work queues (normal, then high) of every queue ([`Topology::queues`]).
    pub fn work_queues(&self) -> Vec<String> {
        self.queues()
            .flat_map(|queue| [Lane::Normal, Lane::High].map(|lane| (queue, lane)))
            .map(|(queue, lane)| self.work_queue_in(queue, lane).into_owned())
            .collect()
    }

    /// The work queue of `lane` in `queue`: [`Topology::queue`] for the [`DEFAULT_QUEUE`],
    /// `{prefix}.jobs.q.{queue}` (normal) or `{prefix}.jobs.q.{queue}.high` for the others.
    pub fn work_queue_in(&self, queue: &str, lane: Lane) -> Cow<'_, str> {
        if queue == DEFAULT_QUEUE {
            return Cow::Borrowed(self.queue(lane));
        }
        Cow::Owned(format!(
            "{}.jobs.{}",
            self.prefix,
            lane.routing_key_in(queue)
        ))
    }

    /// The delay queue of `lane` in `queue` for retries that wait `delay`:
    /// [`Topology::delay_queue_for`] for the [`DEFAULT_QUEUE`], else
    /// `{prefix}.jobs.delay.q.{queue}.[high.]{label}`.
    pub fn delay_queue_in(&self, queue: &str, lane: Lane, delay: Duration) -> String {
        format!(
            "{}.jobs.delay.{}",
            self.prefix,
            lane.delay_routing_key_in(queue, delay)
        )
    }

    /// The name prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The work queue of `lane`: [`Topology::work_queue`] or [`Topology::high_queue`].
    pub fn queue(&self, lane: Lane) -> &str {
        match lane {
            Lane::Normal => &self.work_queue,
            Lane::High => &self.high_queue,
        }
    }

    /// The normal lane's delay queue for retries that wait `delay`:
    /// `{prefix}.jobs.delay.{label}` (see [`Topology::delay_queue_for`]).
    pub fn delay_queue(&self, delay: Duration) -> String {
        self.delay_queue_for(Lane::Normal, delay)
    }

    /// The delay queue of `lane` for retries that wait `delay`: `{prefix}.jobs.delay.{label}`
    /// for the normal lane, `{prefix}.jobs.delay.high.{label}` for the high one.
    pub fn delay_queue_for(&self, lane: Lane, delay: Duration) -> String {
        format!(
            "{}.jobs.delay.{}{}",
            self.prefix,
            lane.delay_infix(),
            delay_label(delay)
        )
    }

    /// Every (queue, lane, delay) of this topology for `delays`, collected (so no iterator
    /// adapter is held across the declaring `.await`s).
    fn routes(&self, delays: &[Duration]) -> Vec<(&str, Lane, Duration)> {
        self.queues()
            .flat_map(|queue| Lane::ALL.map(|lane| (queue, lane)))
            .flat_map(|(queue, lane)| delays.iter().map(move |delay| (queue, lane, *delay)))
            .collect()
    }

    /// Declares the retry exchange and, per delay in `delays`, one delay queue per lane of
    /// every queue ([`Topology::queues`]), idempotently. Each queue's TTL is its delay; expired
    /// messages go back to its lane's work queue in its queue (dead-letter routing key
    /// [`Lane::routing_key_in`]).
    ///
    /// # Errors
    /// The broker's error.
    pub async fn declare_delay_queues(
        &self,
        channel: &Channel,
        delays: &[Duration],
    ) -> Result<(), lapin::Error> {
        channel
            .exchange_declare(
                self.retry_exchange.as_str().into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        for (queue_name, lane, delay) in self.routes(delays) {
            let queue = self.delay_queue_in(queue_name, lane, delay);
            let mut arguments = quorum_arguments();
            let ttl_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
            arguments.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl_ms));
            arguments.insert("x-dead-letter-exchange".into(), long_string(&self.exchange));
            arguments.insert(
                "x-dead-letter-routing-key".into(),
                long_string(&lane.routing_key_in(queue_name)),
            );
            // At-least-once dead-lettering needs overflow=reject-publish (quorum queues only).
            arguments.insert(
                "x-dead-letter-strategy".into(),
                long_string("at-least-once"),
            );
            arguments.insert("x-overflow".into(), long_string("reject-publish"));
            channel
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions::durable(),
                    arguments,
                )
                .await?;
            channel
                .queue_bind(
                    queue.as_str().into(),
                    self.retry_exchange.as_str().into(),
                    lane.delay_routing_key_in(queue_name, delay).as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }

    /// Declares the exchanges, queues and bindings (durable, quorum queues), idempotently: the
    /// work queues of every queue ([`Topology::queues`]).
    ///
    /// # Errors
    /// The broker's error, e.g. `PRECONDITION_FAILED` if a queue of the same name exists with
    /// other arguments; the channel is closed by the broker in that case.
    pub async fn declare(&self, channel: &Channel) -> Result<(), lapin::Error> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                self.exchange.as_str().into(),
                ExchangeKind::Direct,
                durable,
                FieldTable::default(),
            )
            .await?;
        channel
            .exchange_declare(
                self.dead_letter_exchange.as_str().into(),
                ExchangeKind::Fanout,
                durable,
                FieldTable::default(),
            )
            .await?;

        channel
            .queue_declare(
                self.dead_letter_queue.as_str().into(),
                QueueDeclareOptions::durable(),
                quorum_arguments(),
            )
            .await?;
        channel
            .queue_bind(
                self.dead_letter_queue.as_str().into(),
                self.dead_letter_exchange.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;

        // Both lanes' queues are alike: only the routing key that reaches them differs.
        let mut work_arguments = quorum_arguments();
        work_arguments.insert(
            "x-dead-letter-exchange".into(),
            long_string(&self.dead_letter_exchange),
        );
        work_arguments.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(WORK_DELIVERY_LIMIT),
        );
        for (queue, lane, _) in self.routes(&[Duration::ZERO]) {
            let work_queue = self.work_queue_in(queue, lane);
            channel
                .queue_declare(
                    work_queue.as_ref().into(),
                    QueueDeclareOptions::durable(),
                    work_arguments.clone(),
                )
                .await?;
            channel
                .queue_bind(
                    work_queue.as_ref().into(),
                    self.exchange.as_str().into(),
                    lane.routing_key_in(queue).as_ref().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }
}

fn quorum_arguments() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert("x-queue-type".into(), long_string("quorum"));
    arguments
}

fn long_string(text: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(text.as_bytes().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_share_the_prefix() {
        let topology = Topology::with_prefix("t1");
        assert_eq!(topology.exchange, "t1.jobs");
        assert_eq!(topology.work_queue, "t1.jobs.work");
        assert_eq!(topology.high_queue, "t1.jobs.work.high");
        assert_eq!(topology.dead_letter_exchange, "t1.jobs.dlx");
        assert_eq!(topology.dead_letter_queue, "t1.jobs.dead");
        assert_eq!(topology.retry_exchange, "t1.jobs.retry");
        assert_eq!(
            topology.delay_queue(Duration::from_secs(4)),
            "t1.jobs.delay.4s"
        );
    }

    #[test]
    fn priorities_from_5_up_are_high_as_on_rabbitmq_4() {
        let lanes: Vec<Lane> = (0..=9).map(Lane::of).collect();
        assert_eq!(lanes[..5], [Lane::Normal; 5]);
        assert_eq!(lanes[5..], [Lane::High; 5]);
        assert_eq!(Lane::of(u8::MAX), Lane::High);
        assert_eq!(Lane::ALL[0], Lane::High, "high is consumed first");
    }

    #[test]
    fn each_lane_has_its_own_work_queue_routing_key_and_delay_queues() {
        let topology = Topology::with_prefix("t1");
        let four = Duration::from_secs(4);
        assert_eq!(
            (topology.queue(Lane::Normal), Lane::Normal.routing_key()),
            ("t1.jobs.work", "work")
        );
        assert_eq!(
            (topology.queue(Lane::High), Lane::High.routing_key()),
            ("t1.jobs.work.high", "work.high")
        );
        assert_eq!(
            topology.delay_queue_for(Lane::Normal, four),
            topology.delay_queue(four),
            "the normal lane keeps the delay queues that existed before lanes"
        );
        assert_eq!(
            topology.delay_queue_for(Lane::High, four),
            "t1.jobs.delay.high.4s"
        );
        assert_eq!(Lane::Normal.delay_routing_key(four), "4s");
        assert_eq!(
            Lane::High.delay_routing_key(Duration::from_millis(1500)),
            "high.1500ms"
        );
    }

    /// Names under `t1` with the queue `imports`, and a delay of 4 s.
    fn imports_topology() -> (Topology, Duration) {
        let topology = Topology::with_prefix("t1")
            .with_queues(["imports"])
            .expect("valid");
        (topology, Duration::from_secs(4))
    }

    #[test]
    fn the_default_queue_keeps_the_names_it_had_before_queues_per_kind() {
        let (topology, four) = imports_topology();
        for lane in Lane::ALL {
            assert_eq!(
                topology.work_queue_in(DEFAULT_QUEUE, lane),
                topology.queue(lane)
            );
            assert_eq!(lane.routing_key_in(DEFAULT_QUEUE), lane.routing_key());
            assert_eq!(
                topology.delay_queue_in(DEFAULT_QUEUE, lane, four),
                topology.delay_queue_for(lane, four)
            );
            assert_eq!(
                lane.delay_routing_key_in(DEFAULT_QUEUE, four),
                lane.delay_routing_key(four)
            );
        }
    }

    #[test]
    fn a_named_queue_has_its_own_work_queues_routing_keys_and_delay_queues() {
        let (topology, four) = imports_topology();
        assert_eq!(
            topology.work_queue_in("imports", Lane::Normal),
            "t1.jobs.q.imports"
        );
        assert_eq!(
            topology.work_queue_in("imports", Lane::High),
            "t1.jobs.q.imports.high"
        );
        assert_eq!(Lane::Normal.routing_key_in("imports"), "q.imports");
        assert_eq!(Lane::High.routing_key_in("imports"), "q.imports.high");
        assert_eq!(
            topology.delay_queue_in("imports", Lane::Normal, four),
            "t1.jobs.delay.q.imports.4s"
        );
        assert_eq!(
            topology.delay_queue_in("imports", Lane::High, four),
            "t1.jobs.delay.q.imports.high.4s"
        );
        assert_eq!(
            Lane::High.delay_routing_key_in("imports", four),
            "q.imports.high.4s"
        );
    }

    #[test]
    fn a_queue_named_like_a_default_name_does_not_collide_with_it() {
        let topology = Topology::with_prefix("t1")
            .with_queues(["work", "high"])
            .expect("valid");
        let four = Duration::from_secs(4);
        let mut names: Vec<String> = Vec::new();
        for queue in topology.queues() {
            for lane in Lane::ALL {
                names.push(topology.work_queue_in(queue, lane).into_owned());
                names.push(topology.delay_queue_in(queue, lane, four));
            }
        }
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count, "{names:?}");
    }

    #[test]
    fn queues_are_the_default_then_the_named_ones_sorted_once() {
        let topology = Topology::with_prefix("t1")
            .with_queues(["mail", "imports", "default", "mail"])
            .expect("valid");
        assert_eq!(
            topology.queues().collect::<Vec<_>>(),
            ["default", "imports", "mail"]
        );
        assert_eq!(
            Topology::with_prefix("t1").queues().collect::<Vec<_>>(),
            ["default"]
        );
        assert_eq!(
            topology.work_queues(),
            [
                "t1.jobs.work",
                "t1.jobs.work.high",
                "t1.jobs.q.imports",
                "t1.jobs.q.imports.high",
                "t1.jobs.q.mail",
                "t1.jobs.q.mail.high"
            ]
        );
    }

    #[test]
    fn bad_queue_names_are_refused_with_the_reason() {
        for (name, reason) in [
            ("", "empty"),
            ("Imports", "lowercase"),
            ("9lives", "lowercase"),
            ("a.b", "only"),
            ("a b", "only"),
            ("été", "lowercase"),
            (&"q".repeat(MAX_QUEUE_NAME_LEN + 1), "longer"),
        ] {
            let error = check_queue_name(name).expect_err(name);
            assert!(error.reason.contains(reason), "{name:?}: {error}");
            assert!(Topology::with_prefix("t1").with_queues([name]).is_err());
        }
        for name in [
            "imports",
            "a",
            "bulk_mail-2",
            &"q".repeat(MAX_QUEUE_NAME_LEN),
        ] {
            assert_eq!(check_queue_name(name), Ok(()), "{name}");
        }
    }
}

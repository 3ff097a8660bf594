//! The api's configuration, read once from environment variables (or flags).
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `DATABASE_URL` | `postgres://postgres@127.0.0.1:5432/burrow` | Postgres |
//! | `DATABASE_MAX_CONNECTIONS` | 10 | pool size |
//! | `AMQP_URL` | `amqp://guest:guest@127.0.0.1:5672/%2f` | RabbitMQ: one URL, or a cluster's nodes separated by commas (`burrow_shared::amqp`) |
//! | `BURROW_QUEUE_PREFIX` | `burrow` | prefix of exchange and queue names |
//! | `BIND_ADDR` | `127.0.0.1:8080` | listen address (`0.0.0.0:8080` in a container) |
//! | `UPLOAD_MAX_BYTES` | 52428800 (50 MiB) | largest accepted upload, enforced while streaming |
//! | `IMPORT_MAX_UNCOMPRESSED_BYTES` | 2147483648 (2 GiB) | an upload's zip entries may inflate to this many bytes in all (else 422) |
//! | `IMPORT_MAX_COMPRESSION_RATIO` | 100 | largest inflated:compressed ratio of an entry over 1 MiB (else 422: a zip bomb) |
//! | `IMPORT_MAX_SHARED_STRINGS_BYTES` | 134217728 (128 MiB) | largest real inflated size of an upload's shared-strings table (else 422) |
//! | `READY_BACKLOG_THRESHOLD` | 10000 | `/readyz` says `degraded` above this many queued (due) jobs |
//! | `READY_STALL_MINUTES` | 10 | `/readyz` says `degraded` when jobs waited this long and none finished |
//! | `AUTH_MODE` | `off` on a loopback `BIND_ADDR`, else `keys` | `keys`: every `/api` call needs an API key; `off`: every call is an admin (development) |
//! | `RATE_LIMIT_PER_SECOND` | 50 | requests per second per API key (then 429 with `Retry-After`) |
//! | `RATE_LIMIT_BURST` | 100 | requests a key may burst above its rate |
//! | `WEBHOOK_ALLOWED_HOSTS` | empty | hosts `webhook` jobs may POST to, as the worker's: a job whose URL's host is not on it is refused (422); set it as on the worker |
//! | `FAIR_SHARE_WINDOW` | 0 | fair sharing between tenants in this process's outbox relay: at most this many messages ready in the work queues, the rest released in turn order (`burrow_shared::engine::fair_share`); 0: off; give every api and worker the same |
//! | `FAIR_SHARE_WEIGHTS` | unset | weights per tenant for fair sharing, `tenant=weight` separated by commas (`acme=3,globex=0.5`): while tenants have backlogs, each is released messages in proportion to its weight (from 0.000001 to 1000000); tenants not named weigh 1; a bad entry stops the process at start-up; written to the database at start-up, the last replica to start wins (`burrow_shared::engine::fair_share_weights`); set it as on the workers |
//! | `BURROW_FAILPOINT` | unset | **test-only**: arms a [`Failpoint`] for the fault-injection suite (`api_crash_after_commit`); other names are ignored |
//!
//! RabbitMQ is not needed to start: jobs wait in the outbox until the relay can publish them
//! (see [`burrow_shared::relay`]). Postgres is needed: the api does not start without it.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use burrow_shared::engine::fair_share_weights::parse_weights;
use burrow_shared::import::{ImportLimitArgs, ImportLimits};
use burrow_shared::kinds::webhook::{AllowedHosts, ALLOWED_HOSTS_VAR};
use burrow_shared::kinds::WebhookConfig;
use burrow_shared::readiness::{self, ReadinessRules};
use clap::Parser;

use crate::failpoint::Failpoint;

/// Default upload limit: 50 MiB.
pub const DEFAULT_UPLOAD_MAX_BYTES: usize = 50 * 1024 * 1024;

/// The api's settings.
#[derive(Debug, Clone, Parser)]
pub struct ApiConfig {
    /// Postgres URL.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/burrow"
    )]
    pub database_url: String,
    /// Postgres pool size.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,
    /// RabbitMQ URL, or the URLs of a cluster's nodes separated by commas.
    #[arg(
        long,
        env = "AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,
    /// Prefix of exchange and queue names.
    #[arg(long, env = "BURROW_QUEUE_PREFIX", default_value = burrow_shared::topology::DEFAULT_PREFIX)]
    pub queue_prefix: String,
    /// Listen address.
    #[arg(long, env = "BIND_ADDR", default_value = "127.0.0.1:8080")]
    pub bind_addr: SocketAddr,
    /// Largest accepted upload in bytes (the file itself), enforced while streaming.
    #[arg(long, env = "UPLOAD_MAX_BYTES", default_value_t = DEFAULT_UPLOAD_MAX_BYTES)]
    pub upload_max_bytes: usize,
    /// The `IMPORT_*` package limits (the worker reads the same).
    #[command(flatten)]
    pub import: ImportLimitArgs,
    /// `keys` or `off`; unset: `off` on a loopback bind address, `keys` otherwise.
    #[arg(long, env = "AUTH_MODE")]
    pub auth_mode: Option<String>,
    /// Requests per second per API key.
    #[arg(long, env = "RATE_LIMIT_PER_SECOND", default_value_t = crate::auth::DEFAULT_RATE_PER_SECOND)]
    pub rate_limit_per_second: u32,
    /// Requests a key may burst above its rate.
    #[arg(long, env = "RATE_LIMIT_BURST", default_value_t = crate::auth::DEFAULT_RATE_BURST)]
    pub rate_limit_burst: u32,
    /// `/readyz` says `degraded` when more jobs than this are queued and due.
    #[arg(long, env = "READY_BACKLOG_THRESHOLD", default_value_t = readiness::DEFAULT_BACKLOG_THRESHOLD)]
    pub ready_backlog_threshold: u64,
    /// `/readyz` says `degraded` when jobs have waited this many minutes and none finished.
    #[arg(long, env = "READY_STALL_MINUTES", default_value_t = readiness::DEFAULT_STALL_MINUTES)]
    pub ready_stall_minutes: u64,
    /// Hosts `webhook` jobs may POST to (the worker's list): comma-separated `host` or
    /// `host:port`. The api refuses other hosts at once; the secret is the worker's only.
    #[arg(long, env = ALLOWED_HOSTS_VAR, default_value = "", value_parser = AllowedHosts::parse)]
    pub webhook_allowed_hosts: AllowedHosts,
    /// Fair sharing between tenants in this process's outbox relay: at most this many messages
    /// ready in the work queues, the rest waiting in the outbox in turn order; 0: off. Set it
    /// as on the workers.
    #[arg(long, env = "FAIR_SHARE_WINDOW", default_value_t = 0)]
    pub fair_share_window: u32,
    /// Weights per tenant for fair sharing: `tenant=weight` separated by commas, e.g.
    /// `acme=3,globex=0.5` (tenants not named weigh 1). Set it as on the workers.
    #[arg(long, env = "FAIR_SHARE_WEIGHTS", default_value = "", value_parser = parse_weights)]
    pub fair_share_weights: BTreeMap<String, f64>,
    /// Test-only: the failpoint to arm (see [`Failpoint`]); never set in production.
    #[arg(long, env = "BURROW_FAILPOINT", hide = true)]
    pub failpoint: Option<String>,
}

impl ApiConfig {
    /// The limits an upload's package is checked against before it is stored (the `IMPORT_*`
    /// settings); the limits checked while parsing (rows, columns, cells) are the worker's.
    pub fn import_limits(&self) -> ImportLimits {
        self.import.limits()
    }

    /// When `/readyz` says `degraded`.
    pub fn readiness_rules(&self) -> ReadinessRules {
        ReadinessRules::new(self.ready_backlog_threshold, self.ready_stall_minutes)
    }

    /// What the `webhook` kind checks at the api: the allowed hosts (it sends nothing here,
    /// so no secret).
    pub fn webhook(&self) -> WebhookConfig {
        WebhookConfig {
            allowed_hosts: self.webhook_allowed_hosts.clone(),
            ..WebhookConfig::default()
        }
    }

    /// The armed failpoint, if `BURROW_FAILPOINT` names one of the api's; names of other
    /// binaries' failpoints (and unknown names) give `None`.
    pub fn failpoint(&self) -> Option<Failpoint> {
        self.failpoint.as_deref().and_then(Failpoint::from_name)
    }
}

impl ApiConfig {
    /// The authentication settings. Unset `AUTH_MODE` means `off` only when the api listens on
    /// loopback, so an api reachable from elsewhere checks keys unless told otherwise.
    ///
    /// # Errors
    /// When `AUTH_MODE` is neither `keys` nor `off`.
    pub fn auth(&self) -> anyhow::Result<crate::auth::Auth> {
        use crate::auth::{Auth, AuthMode};
        let mode = match self.auth_mode.as_deref() {
            Some("keys") => AuthMode::Keys,
            Some("off") => AuthMode::Off,
            Some(other) => anyhow::bail!("AUTH_MODE is `keys` or `off`, not {other:?}"),
            None if self.bind_addr.ip().is_loopback() => AuthMode::Off,
            None => AuthMode::Keys,
        };
        Ok(Auth::new(
            mode,
            self.rate_limit_per_second,
            self.rate_limit_burst,
        ))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[test]
    fn fair_share_weights_are_parsed_at_start_up_and_bad_ones_refused() {
        let parse = |weights: &str| {
            ApiConfig::try_parse_from(["burrow-api", &format!("--fair-share-weights={weights}")])
        };
        let config = parse("acme=3,globex=0.5").expect("valid weights");
        assert_eq!(
            config.fair_share_weights,
            BTreeMap::from([("acme".to_owned(), 3.0), ("globex".to_owned(), 0.5)])
        );
        let refused = parse("acme=0").expect_err("a weight of 0").to_string();
        assert!(refused.contains("FAIR_SHARE_WEIGHTS"), "{refused}");
        assert!(parse("acme").is_err());
        assert!(ApiConfig::try_parse_from(["burrow-api"])
            .expect("no weights")
            .fair_share_weights
            .is_empty());
    }
}

//! The worker's side of cluster-wide caps per kind ([`burrow_shared::engine::kind_caps`]):
//! which kinds are capped (a copy of the `kind_caps` table, refreshed every
//! [`CAPS_REFRESH`]), and the claim of a job of such a kind.
//!
//! A capped kind's delivery is claimed in the group commit ([`crate::batcher`],
//! [`Batcher::claim_capped`]) like any other, taking a free slot of its kind in the same
//! statement. Only when no slot is free does it claim again in a transaction of its own, with
//! its job's lock still held, which parks it under the kind's exclusive lock
//! ([`burrow_shared::engine::state::capped::claim`]). A delivery that finds the kind full is
//! parked in Postgres and acked, so it neither holds a consumer slot nor bounces through a
//! delay queue while it waits. Uncapped kinds pay one map look-up.
//!
//! The per-process limit ([`crate::kind_slots`], `MAX_CONCURRENCY`) still applies first: it
//! protects one process's memory, the cap protects what all replicas share.

use std::collections::BTreeMap;
use std::time::Duration;

use burrow_shared::engine::kind_caps;
use burrow_shared::engine::state::capped::{self, CappedClaim};
use burrow_shared::job_batch::Claim;
use burrow_shared::telemetry::TraceContext;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::warn;
use uuid::Uuid;

use crate::batcher::Batcher;
use crate::kind_table::KindTable;
use crate::metrics;

/// How often a worker re-reads which kinds are capped: a cap another replica declares is
/// enforced by this one at most this long later.
pub const CAPS_REFRESH: Duration = Duration::from_secs(5);

/// The capped kinds as this worker last read them (kind → cap); cheap to clone, shared.
#[derive(Clone, Default, Debug)]
pub struct ClusterCaps {
    caps: KindTable<u32>,
}

/// What [`ClusterCaps::claim`] came to.
#[derive(Debug)]
pub enum CapClaim {
    /// As a group claim would have answered; on [`Claim::Claimed`] the job's lock is held
    /// until [`Batcher::release`].
    Claim(Claim),
    /// The kind is at its cap: the message is parked in Postgres, so ack the delivery. The
    /// job's lock is released.
    Waiting {
        /// The kind's cap.
        cap: u32,
        /// Slots busy when the claim looked.
        busy: u32,
    },
}

impl ClusterCaps {
    /// Caps as given (for tests and start-up, before the first [`ClusterCaps::refresh`]).
    pub fn with(caps: BTreeMap<String, u32>) -> Self {
        ClusterCaps {
            caps: KindTable::with(caps),
        }
    }

    /// The cap of `kind`, if it has one (as last read).
    pub fn cap(&self, kind: &str) -> Option<u32> {
        self.caps.get(kind)
    }

    /// Re-reads the `kind_caps` table.
    ///
    /// # Errors
    /// The database error; the caps stay as they were.
    pub async fn refresh(&self, db: &PgPool) -> Result<(), sqlx::Error> {
        self.caps.replace(kind_caps::load(db).await?);
        Ok(())
    }

    /// Refreshes every [`CAPS_REFRESH`] until `stop`, and sets the cap gauges
    /// ([`metrics::record_cap`]) from what the database says each time.
    pub async fn run_refresh(self, db: PgPool, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(CAPS_REFRESH) => {}
            }
            if let Err(e) = self.refresh(&db).await {
                warn!(error = %e, "could not re-read the kind caps; keeping the last ones");
                continue;
            }
            if self.caps.is_empty() {
                continue;
            }
            match kind_caps::usage(&db).await {
                Ok(usage) => usage.iter().for_each(metrics::record_cap),
                Err(e) => warn!(error = %e, "could not read the kind caps' usage"),
            }
        }
    }

    /// Claims job `id` (kind capped) for `worker`, or parks `message` (the delivery's
    /// encoded job message) until a slot of its kind frees. Never answers [`Claim::Full`].
    ///
    /// # Errors
    /// The database error, as text; nothing is held or changed then.
    pub async fn claim(
        batcher: &Batcher,
        db: &PgPool,
        worker: &str,
        id: Uuid,
        run: Option<&TraceContext>,
        message: &[u8],
    ) -> Result<CapClaim, String> {
        match batcher.claim_capped(id, run.cloned()).await? {
            Claim::Full => {}
            claim => return Ok(CapClaim::Claim(claim)),
        }
        // No slot was free in the group claim: claim again alone, parking if still full. The
        // job's lock is still held from the group claim.
        let claimed = capped::claim(db, id, worker, run, message).await;
        let answer = match claimed {
            Ok(CappedClaim::Claimed(run)) => return Ok(CapClaim::Claim(Claim::Claimed(run))),
            Ok(CappedClaim::Waiting { cap, busy }) => Ok(CapClaim::Waiting { cap, busy }),
            Ok(CappedClaim::Ended(status)) => Ok(CapClaim::Claim(Claim::Ended(status))),
            Ok(CappedClaim::Missing) => Ok(CapClaim::Claim(Claim::Missing)),
            Err(e) => Err(format!("claiming the job under its kind's cap: {e}")),
        };
        batcher.release(id);
        answer
    }
}

//! Group commit for the worker: the claims and successes of concurrently running jobs go to
//! Postgres in batches — one round trip and one commit for everything that arrived while the
//! previous batch was in flight, so a batch grows with the load and a lone job never waits.
//!
//! Two tasks, alive while any clone of the [`Batcher`] is:
//! - **the lock session**: one connection holding the advisory locks of every job this worker
//!   runs ([`burrow_shared::job_lock`]). Each turn it releases the locks of jobs that ended,
//!   then locks and claims the jobs whose deliveries arrived since the last turn, all in one
//!   statement ([`state::batch::release_lock_and_claim`]). If the session dies, Postgres frees its
//!   locks; the next turn opens a new one and takes the running jobs' locks again.
//! - **the completer**: marks succeeded, in one statement, the runs that wrote nothing
//!   ([`burrow_shared::handler::RunTx`]) ([`state::batch::succeed_many`]).
//!
//! Either way a job's message is acked only after its status has committed, durably (the
//! commit waits for the WAL flush), so at-least-once delivery and the exactly-once effect of
//! [`crate::process`] are unchanged; only the number of commits shrinks.

use std::collections::{HashMap, HashSet};

use burrow_shared::handler::JobOutput;
use burrow_shared::job_batch::{self, Claim, ClaimRequest};
use burrow_shared::state;
use burrow_shared::telemetry::TraceContext;
use sqlx::{PgConnection, PgPool};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};
use uuid::Uuid;

/// Most requests one statement carries.
const MAX_BATCH: usize = 256;

/// The handle jobs use; cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    session: mpsc::UnboundedSender<SessionRequest>,
    completer: mpsc::UnboundedSender<Completion>,
}

enum SessionRequest {
    Claim(ClaimRequest, oneshot::Sender<Result<Claim, String>>),
    Release(Uuid),
}

struct Completion {
    id: Uuid,
    output: JobOutput,
    reply: oneshot::Sender<Result<bool, String>>,
}

impl Batcher {
    /// Starts the two tasks on the current Tokio runtime, claiming as `worker`.
    pub fn start(db: PgPool, worker: String) -> Batcher {
        let (session, requests) = mpsc::unbounded_channel();
        let (completer, completions) = mpsc::unbounded_channel();
        tokio::spawn(run_session(db.clone(), worker, requests));
        tokio::spawn(run_completer(db, completions));
        Batcher { session, completer }
    }

    /// Locks and claims job `id` for a run whose span has the trace context `run` (kept on
    /// the job, for the next run's link). On [`Claim::Claimed`] the caller must
    /// [`Batcher::release`] the job once its outcome is recorded.
    ///
    /// # Errors
    /// The database error, as text; nothing is held then.
    pub async fn claim(&self, id: Uuid, run: Option<TraceContext>) -> Result<Claim, String> {
        self.ask(ClaimRequest {
            id,
            run,
            capped: false,
        })
        .await
    }

    /// As [`Batcher::claim`], for a job whose kind has a cluster-wide cap: claimed in the same
    /// group commit if it takes a free slot of its kind. [`Claim::Full`]: no slot was free;
    /// the job's lock is held, for the claim that parks it
    /// ([`crate::cluster_caps::ClusterCaps::claim`]), and must be [`Batcher::release`]d after.
    ///
    /// # Errors
    /// The database error, as text; nothing is held then.
    pub async fn claim_capped(&self, id: Uuid, run: Option<TraceContext>) -> Result<Claim, String> {
        self.ask(ClaimRequest {
            id,
            run,
            capped: true,
        })
        .await
    }

    async fn ask(&self, request: ClaimRequest) -> Result<Claim, String> {
        let (reply, answer) = oneshot::channel();
        self.session
            .send(SessionRequest::Claim(request, reply))
            .map_err(|_| "the worker is stopping".to_owned())?;
        answer
            .await
            .map_err(|_| "the lock session stopped".to_owned())?
    }

    /// Records the success of a run that wrote nothing, with other jobs' in one commit.
    /// `Ok(false)`: the job was no longer `processing`, so nothing changed.
    ///
    /// # Errors
    /// The database error, as text; nothing changed then.
    pub async fn succeeded(&self, id: Uuid, output: JobOutput) -> Result<bool, String> {
        let (reply, answer) = oneshot::channel();
        self.completer
            .send(Completion { id, output, reply })
            .map_err(|_| "the worker is stopping".to_owned())?;
        answer
            .await
            .map_err(|_| "the completer stopped".to_owned())?
    }

    /// Releases the lock of a claimed job whose outcome is recorded (at the next turn).
    pub fn release(&self, id: Uuid) {
        // A closed session means no lock is held any more.
        let _ = self.session.send(SessionRequest::Release(id));
    }
}

/// Takes whatever else is waiting, up to [`MAX_BATCH`] in all.
fn gather<T>(first: T, more: &mut mpsc::UnboundedReceiver<T>) -> Vec<T> {
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match more.try_recv() {
            Ok(next) => batch.push(next),
            Err(_) => break,
        }
    }
    batch
}

async fn run_session(
    db: PgPool,
    worker: String,
    mut requests: mpsc::UnboundedReceiver<SessionRequest>,
) {
    let mut session = LockSession {
        db,
        conn: None,
        held: HashSet::new(),
    };
    while let Some(first) = requests.recv().await {
        let mut claims = Vec::new();
        let mut released = Vec::new();
        for request in gather(first, &mut requests) {
            match request {
                SessionRequest::Claim(request, reply) => claims.push((request, reply)),
                SessionRequest::Release(id) => released.push(id),
            }
        }
        let (asked, started) = (claims.len(), std::time::Instant::now());
        session.turn(&released, claims, &worker).await;
        debug!(
            claims = asked,
            released = released.len(),
            took_us = started.elapsed().as_micros() as u64,
            "lock session turn"
        );
    }
}

/// The connection holding this worker's job locks, and which jobs it holds them for.
struct LockSession {
    db: PgPool,
    conn: Option<PgConnection>,
    /// Jobs claimed by this worker and not yet released: held locks, and the guard against
    /// running two deliveries of one job here (session locks stack, so Postgres cannot tell).
    held: HashSet<Uuid>,
}

type ClaimReply = oneshot::Sender<Result<Claim, String>>;

impl LockSession {
    /// The session's connection, opening a new one (and re-taking the held locks) if needed.
    /// Its own, outside the pool: its locks must live exactly as long as this session, not go
    /// back to the pool still held.
    async fn conn(&mut self) -> Result<&mut PgConnection, sqlx::Error> {
        if let Some(conn) = self.conn.take() {
            return Ok(self.conn.insert(conn));
        }
        let mut conn = job_batch::open_session(&self.db).await?;
        if !self.held.is_empty() {
            let held: Vec<Uuid> = self.held.iter().copied().collect();
            let relocked = job_batch::try_lock(&mut conn, &held).await?;
            if relocked.len() < held.len() {
                warn!(
                    lost = held.len() - relocked.len(),
                    "lock session reopened; some running jobs' locks are now held elsewhere"
                );
            }
        }
        Ok(self.conn.insert(conn))
    }

    /// Releases the locks of jobs that ended, then answers the claims.
    async fn turn(
        &mut self,
        released: &[Uuid],
        claims: Vec<(ClaimRequest, ClaimReply)>,
        worker: &str,
    ) {
        for id in released {
            self.held.remove(id);
        }
        // A job already running here, or asked for twice in this turn, is busy.
        let mut asked = HashSet::new();
        let mut fresh = Vec::new();
        let mut replies = Vec::new();
        for (request, reply) in claims {
            let id = request.id;
            if self.held.contains(&id) || !asked.insert(id) {
                let _ = reply.send(Ok(Claim::Busy));
            } else {
                fresh.push(request);
                replies.push((id, reply));
            }
        }
        match self.release_and_claim(released, &fresh, worker).await {
            Ok(mut found) => {
                for (id, reply) in replies {
                    let claim = found.remove(&id).unwrap_or(Claim::Busy);
                    if matches!(claim, Claim::Claimed(_) | Claim::Full) {
                        self.held.insert(id);
                    }
                    let _ = reply.send(Ok(claim));
                }
            }
            Err(e) => {
                // Closing the session frees every lock it holds, this turn's included.
                warn!(error = %e, "lock session failed; reopening it");
                self.conn = None;
                for (_, reply) in replies {
                    let _ = reply.send(Err(format!("claiming the job: {e}")));
                }
            }
        }
    }

    /// The turn's statement, and for locked jobs that could not be claimed (rare: duplicates
    /// of ended jobs), why, and their unlock. Ids missing from the answer are busy elsewhere.
    async fn release_and_claim(
        &mut self,
        released: &[Uuid],
        claims: &[ClaimRequest],
        worker: &str,
    ) -> Result<HashMap<Uuid, Claim>, sqlx::Error> {
        if released.is_empty() && claims.is_empty() {
            return Ok(HashMap::new());
        }
        let conn = self.conn().await?;
        let turn = state::batch::release_lock_and_claim(conn, released, claims, worker).await?;
        let mut found: HashMap<Uuid, Claim> = turn
            .claimed
            .into_iter()
            .map(|run| (run.job.id, Claim::Claimed(Box::new(run))))
            .chain(turn.full.into_iter().map(|id| (id, Claim::Full)))
            .collect();
        let unclaimed: Vec<Uuid> = turn
            .locked
            .into_iter()
            .filter(|id| !found.contains_key(id))
            .collect();
        if !unclaimed.is_empty() {
            for (id, status) in job_batch::statuses(&mut *conn, &unclaimed).await? {
                found.insert(id, Claim::Ended(status));
            }
            for id in &unclaimed {
                found.entry(*id).or_insert(Claim::Missing);
            }
            job_batch::unlock(conn, &unclaimed).await?;
        }
        Ok(found)
    }
}

async fn run_completer(db: PgPool, mut completions: mpsc::UnboundedReceiver<Completion>) {
    let mut conn: Option<PgConnection> = None;
    while let Some(first) = completions.recv().await {
        let (done, replies): (Vec<(Uuid, JobOutput)>, Vec<_>) = gather(first, &mut completions)
            .into_iter()
            .map(|c| ((c.id, c.output), (c.id, c.reply)))
            .unzip();
        let started = std::time::Instant::now();
        let result = match conn.take() {
            Some(c) => Ok(c),
            None => job_batch::open_session(&db).await,
        };
        let result = match result {
            Ok(mut c) => {
                let marked = state::batch::succeed_many(&mut c, &done).await;
                // A connection that failed is not trusted again.
                if marked.is_ok() {
                    conn = Some(c);
                }
                marked
            }
            Err(e) => Err(e),
        };
        debug!(
            jobs = done.len(),
            took_us = started.elapsed().as_micros() as u64,
            "completer turn"
        );
        match result {
            Ok(changed) => {
                let changed: HashSet<Uuid> = changed.into_iter().collect();
                for (id, reply) in replies {
                    let _ = reply.send(Ok(changed.contains(&id)));
                }
            }
            Err(e) => {
                let error = e.to_string();
                for (_, reply) in replies {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }
}

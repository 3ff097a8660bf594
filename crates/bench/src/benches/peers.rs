//! Benchmark 10: burrow's people import against two other tools on the same workbook (row 1's),
//! into the same Postgres, in the same run: (a) polars `read_excel` (calamine engine) +
//! `write_database` over ADBC, (b) DuckDB `read_xlsx` + its postgres extension. Each peer is a
//! small script of `bench/peers/` run by the venv's Python (`just bench-peers`) as a subprocess
//! with a deadline, timed from process start to exit (interpreter start and imports included:
//! that is what running it costs), its rows counted in Postgres afterwards.
//!
//! Order: polars, DuckDB, burrow, DuckDB, polars, so drifting load weighs on every side; a
//! peer's figure is the mean of its two runs. The peers write into `bench_peer_people`: the six
//! people columns as `imported_rows` types them (bigint id, text), without the job id and row
//! number burrow adds and without a primary key — peers have no row numbers to key on, so this
//! is a little less work than burrow's, not more. burrow's side is the `people` profile into
//! `imported_rows`, exactly as row 1. A peer that cannot run (no venv, a package missing, a
//! failed run) gets a "not run" row saying why; the comparison uses the peers that ran.

use std::time::Duration;

use serde::Serialize;

use crate::benches::upload::{self, SystemImport, Upload};
use crate::reference::peer::{self, Peer, PeerRun, PeerSetup};
use crate::report::{Row, Verdict};
use crate::stack::Stack;
use crate::stats::{rate, thousands};

/// Target: burrow's rows per second over the faster peer's.
pub const TARGET_RATIO: f64 = 1.5;
/// Longest one peer run may take.
const DEADLINE: Duration = Duration::from_secs(300);
/// The peers' table.
const TABLE: &str = "bench_peer_people";
/// Owner tag of the bench's jobs.
const TAG: &str = "bench-peers";

/// One peer's result.
#[derive(Debug, Clone, Serialize)]
pub struct PeerResult {
    /// Which.
    pub peer: Peer,
    /// Its runs (before and after burrow), or why it did not run.
    #[serde(flatten)]
    pub outcome: PeerOutcome,
}

/// A peer's runs, or why there are none.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerOutcome {
    /// It ran (once when its second run failed; the note says so).
    Ran {
        /// What its probe printed (the versions).
        version: String,
        /// Before and after burrow.
        runs: Vec<PeerRun>,
        /// The mean rows per second of its runs.
        rows_per_sec: f64,
        /// A failed second run, if any.
        note: Option<String>,
    },
    /// It could not run.
    NotRun {
        /// Why (first line).
        reason: String,
    },
}

impl PeerResult {
    fn rows_per_sec(&self) -> Option<f64> {
        match &self.outcome {
            PeerOutcome::Ran { rows_per_sec, .. } => Some(*rows_per_sec),
            PeerOutcome::NotRun { .. } => None,
        }
    }
}

/// What benchmark 10 measured.
#[derive(Debug, Clone, Serialize)]
pub struct PeersBench {
    /// The workbook.
    pub file: String,
    /// Rows burrow imported.
    pub rows: u64,
    /// burrow's people import, end to end.
    pub system: SystemImport,
    /// polars, then DuckDB.
    pub peers: Vec<PeerResult>,
}

/// Runs benchmark 10 (see the module doc); the peers' table goes afterwards.
///
/// # Errors
/// If burrow's import fails (a peer's failure is a "not run" row instead).
pub async fn run(stack: &Stack) -> anyhow::Result<PeersBench> {
    sqlx::query(&format!("DROP TABLE IF EXISTS \"{TABLE}\""))
        .execute(&stack.db)
        .await?;
    sqlx::query(&format!(
        "CREATE TABLE \"{TABLE}\" (id bigint NOT NULL, first_name text, last_name text, \
         email text, gender text, ip_address text)"
    ))
    .execute(&stack.db)
    .await?;
    let measured = measure(stack).await;
    sqlx::query(&format!("DROP TABLE IF EXISTS \"{TABLE}\""))
        .execute(&stack.db)
        .await?;
    measured
}

async fn measure(stack: &Stack) -> anyhow::Result<PeersBench> {
    let cfg = stack.config();
    let file = cfg.fixture.clone();
    let setup = PeerSetup {
        python: &cfg.peers_python,
        dir: &cfg.peers_dir,
        log_dir: &cfg.log_dir,
        database_url: stack.database_url(),
    };
    // Probe both first: a peer that cannot start is "not run" without a timed try.
    let mut state: Vec<Tries> = Vec::new();
    for p in Peer::ALL {
        let probe = peer::probe(&setup, p).await.map_err(|e| {
            format!("{e:#}")
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned()
        });
        if let Err(why) = &probe {
            println!("  {}: not run: {why}", p.name());
        }
        state.push(Tries {
            peer: p,
            probe,
            runs: Vec::new(),
            note: None,
        });
    }
    let before: Vec<Peer> = Peer::ALL.to_vec();
    let after: Vec<Peer> = Peer::ALL.iter().rev().copied().collect();

    for p in &before {
        timed_run(stack, &setup, *p, &mut state, "before").await?;
    }
    stack.reset_imported_rows().await?;
    let burrow = upload::run(
        stack,
        Upload {
            name: "peers",
            file: &file,
            profile: None,
            tag: TAG,
            env: &[],
        },
    )
    .await?;
    stack.reset_imported_rows().await?;
    for p in &after {
        timed_run(stack, &setup, *p, &mut state, "after").await?;
    }

    let peers = state
        .into_iter()
        .map(
            |Tries {
                 peer: p,
                 probe,
                 runs,
                 note,
             }| {
                let outcome = match probe {
                    Ok(version) if !runs.is_empty() => PeerOutcome::Ran {
                        version,
                        rows_per_sec: runs.iter().map(|r| r.rows_per_sec).sum::<f64>()
                            / runs.len() as f64,
                        runs,
                        note,
                    },
                    Ok(_) => PeerOutcome::NotRun {
                        reason: note.unwrap_or_else(|| "no run succeeded".to_owned()),
                    },
                    Err(reason) => PeerOutcome::NotRun { reason },
                };
                PeerResult { peer: p, outcome }
            },
        )
        .collect();
    Ok(PeersBench {
        file: file.display().to_string(),
        rows: burrow.rows,
        system: burrow.system,
        peers,
    })
}

/// A peer's probe and runs so far.
struct Tries {
    peer: Peer,
    /// The versions it printed, or why it cannot start.
    probe: Result<String, String>,
    runs: Vec<PeerRun>,
    /// Why a run failed.
    note: Option<String>,
}

/// One timed run of `p` on an empty table, unless it could not start or its first run failed.
/// A failure is kept as the peer's note; only the database failing fails the bench.
async fn timed_run(
    stack: &Stack,
    setup: &PeerSetup<'_>,
    p: Peer,
    state: &mut [Tries],
    when: &str,
) -> anyhow::Result<()> {
    let Some(Tries {
        probe, runs, note, ..
    }) = state.iter_mut().find(|t| t.peer == p)
    else {
        return Ok(());
    };
    // Skipped when it cannot start, or when its run before burrow failed.
    if probe.is_err() || (when == "after" && runs.is_empty()) {
        return Ok(());
    }
    sqlx::query(&format!("TRUNCATE \"{TABLE}\""))
        .execute(&stack.db)
        .await?;
    sqlx::query("CHECKPOINT").execute(&stack.db).await?;
    println!("  peer ({when}): {}", p.label());
    let file = stack.config().fixture.clone();
    match peer::run(&stack.db, setup, p, &file, TABLE, DEADLINE).await {
        Ok(run) => {
            println!(
                "    {} rows in {:.1} s: {} rows/s; {}",
                thousands(run.rows),
                run.secs,
                rate(run.rows_per_sec),
                run.said
            );
            runs.push(run);
        }
        Err(e) => {
            let why = format!("{when}: {e:#}");
            println!("    failed: {why}");
            *note = Some(why.lines().next().unwrap_or_default().to_owned());
        }
    }
    Ok(())
}

impl PeersBench {
    /// The faster peer that ran, and its rows per second.
    pub fn fastest(&self) -> Option<(&PeerResult, f64)> {
        self.peers
            .iter()
            .filter_map(|p| p.rows_per_sec().map(|r| (p, r)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// Rows 10a, 10b (one per peer, context) and 10 (the target).
    pub fn rows(&self) -> Vec<Row> {
        let burrow = format!(
            "{} rows/s ({:.1} s)",
            rate(self.system.rows_per_sec),
            self.system.secs
        );
        let mut rows: Vec<Row> = self
            .peers
            .iter()
            .zip(["10a", "10b"])
            .map(|(p, id)| {
                let benchmark = format!(
                    "peer {}: {} rows of 1's workbook → Postgres, process start → exit",
                    p.peer.label(),
                    thousands(self.rows)
                );
                match &p.outcome {
                    PeerOutcome::Ran {
                        runs, rows_per_sec, ..
                    } => Row {
                        id,
                        benchmark,
                        burrow: burrow.clone(),
                        reference: format!(
                            "{} rows/s ({})",
                            rate(*rows_per_sec),
                            runs.iter()
                                .map(|r| format!("{:.1} s", r.secs))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        ratio: Some(self.system.rows_per_sec / rows_per_sec),
                        target: "context for 10".to_owned(),
                        verdict: Verdict::Context,
                    },
                    PeerOutcome::NotRun { reason } => Row {
                        id,
                        benchmark,
                        burrow: burrow.clone(),
                        reference: format!("not run: {reason}"),
                        ratio: None,
                        target: "context for 10".to_owned(),
                        verdict: Verdict::NotRun,
                    },
                }
            })
            .collect();
        let benchmark = "burrow's people import vs the faster peer (10a, 10b)".to_owned();
        let target = format!("≥ {TARGET_RATIO:.2}× the faster peer");
        rows.push(match self.fastest() {
            Some((p, peer_rate)) => {
                let ratio = self.system.rows_per_sec / peer_rate;
                Row {
                    id: "10",
                    benchmark,
                    burrow,
                    reference: format!("{}: {} rows/s", p.peer.name(), rate(peer_rate)),
                    ratio: Some(ratio),
                    target,
                    verdict: Verdict::from_bool(ratio >= TARGET_RATIO),
                }
            }
            None => Row {
                id: "10",
                benchmark,
                burrow,
                reference: "no peer ran".to_owned(),
                ratio: None,
                target,
                verdict: Verdict::NotRun,
            },
        });
        rows
    }

    /// burrow's stages, each peer run's time and CPU.
    pub fn details(&self) -> Vec<String> {
        let mut lines = vec![format!("10 burrow stages: {}", self.system.stages())];
        for p in &self.peers {
            match &p.outcome {
                PeerOutcome::Ran {
                    version,
                    runs,
                    note,
                    ..
                } => {
                    for (run, when) in runs.iter().zip(["before", "after"]) {
                        lines.push(format!(
                            "10 {} ({version}) {when}: {} rows/s in {:.1} s; the Python process {:.1} CPU s; {}",
                            p.peer.name(),
                            rate(run.rows_per_sec),
                            run.secs,
                            run.process_cpu_secs,
                            run.cpu.summary()
                        ));
                    }
                    if let Some(note) = note {
                        lines.push(format!("10 {}: a run failed: {note}", p.peer.name()));
                    }
                }
                PeerOutcome::NotRun { reason } => {
                    lines.push(format!("10 {}: not run: {reason}", p.peer.name()));
                }
            }
        }
        lines
    }
}

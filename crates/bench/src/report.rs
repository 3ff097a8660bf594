//! The report: one markdown table (each figure beside its reference from the same run, its
//! target and whether it was met), the details under it, and the same as JSON in
//! `bench/results/latest.json` (written to a `.tmp` file first, then renamed).

use std::path::Path;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::benches::{
    csv::CsvBench, fairness::FairnessBench, import::ImportBench, latency::LatencyBench,
    limits::LimitsBench, overhead::OverheadBench, peers::PeersBench, retry::RetryBench,
    sweep::SweepBench, typed::TypedBench, upsert::UpsertBench, workflows::WorkflowsBench,
};
use crate::config::{BenchConfig, BenchId};
use crate::machine::Machine;

/// Whether a figure met its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Met.
    Met,
    /// Missed (or the bench could not measure it).
    Missed,
    /// No target of its own: a figure that another row's target compares with.
    Context,
    /// Not measured because an optional tool (a peer) is not installed or failed; not a miss.
    NotRun,
}

impl Verdict {
    /// `Met` when `met`.
    pub fn from_bool(met: bool) -> Self {
        if met {
            Verdict::Met
        } else {
            Verdict::Missed
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The numbering: `1` … `11`, a letter after the number for a row's parts (`10a`).
    pub id: &'static str,
    /// What was measured.
    pub benchmark: String,
    /// burrow's figure.
    pub burrow: String,
    /// The reference from the same run.
    pub reference: String,
    /// burrow ÷ reference, where that is the target's measure.
    pub ratio: Option<f64>,
    /// The target.
    pub target: String,
    /// Whether it was met.
    pub verdict: Verdict,
}

/// One bench's result.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "bench", rename_all = "snake_case")]
pub enum Measurement {
    /// Benchmarks 1 and 2.
    Import(ImportBench),
    /// Benchmark 3.
    Overhead(OverheadBench),
    /// Benchmark 4.
    Latency(LatencyBench),
    /// Benchmark 5.
    Retry(RetryBench),
    /// Benchmark 6.
    Sweep(SweepBench),
    /// Benchmark 7.
    Csv(CsvBench),
    /// Benchmark 8.
    Typed(TypedBench),
    /// Benchmark 9.
    Upsert(UpsertBench),
    /// Benchmark 10.
    Peers(PeersBench),
    /// Benchmark 11.
    Workflows(WorkflowsBench),
    /// Benchmark 12.
    Limits(LimitsBench),
    /// Benchmark 13.
    Fairness(FairnessBench),
}

impl Measurement {
    fn rows(&self) -> Vec<Row> {
        match self {
            Measurement::Import(m) => m.rows(),
            Measurement::Overhead(m) => m.rows(),
            Measurement::Latency(m) => m.rows(),
            Measurement::Retry(m) => m.rows(),
            Measurement::Sweep(m) => m.rows(),
            Measurement::Csv(m) => m.rows(),
            Measurement::Typed(m) => m.rows(),
            Measurement::Upsert(m) => m.rows(),
            Measurement::Peers(m) => m.rows(),
            Measurement::Workflows(m) => m.rows(),
            Measurement::Limits(m) => m.rows(),
            Measurement::Fairness(m) => m.rows(),
        }
    }

    fn details(&self) -> Vec<String> {
        match self {
            Measurement::Import(m) => m.details(),
            Measurement::Overhead(m) => m.details(),
            Measurement::Latency(m) => m.details(),
            Measurement::Retry(m) => m.details(),
            Measurement::Sweep(m) => m.details(),
            Measurement::Csv(m) => m.details(),
            Measurement::Typed(m) => m.details(),
            Measurement::Upsert(m) => m.details(),
            Measurement::Peers(m) => m.details(),
            Measurement::Workflows(m) => m.details(),
            Measurement::Limits(_) | Measurement::Fairness(_) => Vec::new(),
        }
    }
}

/// How one bench went.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRun {
    /// Which.
    pub bench: BenchId,
    /// Runs it took (more than one after a service restart or a failure).
    pub tries: u32,
    /// What happened on the way (restarts seen, failed tries).
    pub notes: Vec<String>,
    /// The measurement, or why there is none (as JSON: `"measurement"` or `"error"`).
    #[serde(flatten, serialize_with = "serialize_result")]
    pub result: Result<Measurement, String>,
}

fn serialize_result<S: serde::Serializer>(
    result: &Result<Measurement, String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap as _;
    let mut map = serializer.serialize_map(Some(1))?;
    match result {
        Ok(measurement) => map.serialize_entry("measurement", measurement)?,
        Err(error) => map.serialize_entry("error", error)?,
    }
    map.end()
}

impl BenchRun {
    /// Its table rows: the measurement's, or rows saying it failed.
    pub fn rows(&self) -> Vec<Row> {
        match &self.result {
            Ok(m) => m.rows(),
            Err(error) => failed_rows(self.bench, error),
        }
    }
}

fn failed_rows(bench: BenchId, error: &str) -> Vec<Row> {
    let row = |id, benchmark: &str, target: String| Row {
        id,
        benchmark: benchmark.to_owned(),
        burrow: "not measured".to_owned(),
        reference: format!("error: {}", error.lines().next().unwrap_or_default()),
        ratio: None,
        target,
        verdict: Verdict::Missed,
    };
    use crate::benches::{
        csv, fairness, import, latency, limits, overhead, peers, sweep, typed, upsert, workflows,
    };
    use crate::stats::rate;
    match bench {
        BenchId::Import => vec![
            row(
                "1",
                "import, upload → succeeded",
                format!(
                    "≥ {:.2}× raw and ≥ {} rows/s",
                    import::TARGET_RATIO,
                    rate(import::TARGET_ROWS_PER_SEC)
                ),
            ),
            row("2", "worker peak RSS during 1", "≤ 256.0 MiB".to_owned()),
        ],
        BenchId::Overhead => vec![row(
            "3",
            "noop jobs end to end",
            format!("≥ {:.2}× raw", overhead::TARGET_RATIO),
        )],
        BenchId::Latency => vec![row(
            "4",
            "POST /api/jobs latency",
            format!("p99 ≤ {:.0} ms", latency::TARGET_P99_MS),
        )],
        BenchId::Retry => vec![row("5", "retry gaps", "band ± 10 %".to_owned())],
        BenchId::Sweep => vec![row(
            "6",
            "concurrency × prefetch sweep",
            format!("≥ {:.2}× best", sweep::TARGET_SHARE),
        )],
        BenchId::Csv => vec![row(
            "7",
            "import as .csv, upload → succeeded",
            format!("≥ {} rows/s", rate(csv::TARGET_ROWS_PER_SEC)),
        )],
        BenchId::Typed => vec![row(
            "8",
            "import, typed profile (append)",
            format!("≥ {:.2}× raw", typed::TARGET_RATIO),
        )],
        BenchId::Upsert => vec![row(
            "9",
            "upsert onto existing rows",
            format!("≥ {} rows/s", rate(upsert::TARGET_ROWS_PER_SEC)),
        )],
        BenchId::Peers => vec![row(
            "10",
            "burrow's people import vs the faster peer",
            format!("≥ {:.2}× the faster peer", peers::TARGET_RATIO),
        )],
        BenchId::Workflows => vec![
            row(
                "11a",
                "workflow batch + on_complete vs plain noop jobs",
                format!("≥ {:.2}× plain", workflows::TARGET_RATIO),
            ),
            row(
                "11b",
                "chain of noop jobs, time per link",
                "reported".to_owned(),
            ),
        ],
        BenchId::Limits => vec![row(
            "12",
            "noop jobs under a cap not reached vs none",
            format!("≥ {:.2}× uncapped", limits::TARGET_RATIO),
        )],
        BenchId::Fairness => vec![row(
            "13",
            "fair sharing: tenant B behind tenant A's burst vs alone",
            format!("≤ {:.2}× alone", fairness::TARGET_RATIO),
        )],
    }
}

/// Where a row's id sorts: by its number, then its letter (`2` < `9` < `10a` < `10b` < `10`:
/// the parts of a row come before the row that compares them).
fn row_order(id: &str) -> (u32, u8, String) {
    let digits = id.bytes().take_while(u8::is_ascii_digit).count();
    let number = id[..digits].parse().unwrap_or(u32::MAX);
    let rest = &id[digits..];
    (number, u8::from(rest.is_empty()), rest.to_owned())
}

/// Settings that shape the figures.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// The big workbook.
    pub fixture: String,
    /// The same rows as CSV (row 7).
    pub csv_fixture: String,
    /// Jobs of benchmark 3.
    pub noop_jobs: u64,
    /// Offered rate of benchmark 4.
    pub rate: u32,
    /// Seconds of benchmark 4.
    pub rate_secs: u64,
    /// Jobs of benchmark 5.
    pub retry_jobs: usize,
    /// Jobs per point of benchmark 6.
    pub sweep_jobs: u64,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What it ran on.
    pub machine: Machine,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// How long it took, in seconds.
    pub duration_secs: f64,
    /// The sizes used.
    pub settings: Settings,
    /// The table, in the order.
    pub table: Vec<Row>,
    /// Every bench's full result.
    pub benches: Vec<BenchRun>,
    /// Set when the run was cut short (a signal).
    pub interrupted: Option<String>,
}

impl Report {
    /// An empty report for `cfg` on `machine`.
    pub fn new(cfg: &BenchConfig, machine: Machine, started_at: DateTime<Utc>) -> Self {
        Report {
            machine,
            started_at,
            duration_secs: 0.0,
            settings: Settings {
                fixture: cfg.fixture.display().to_string(),
                csv_fixture: cfg.csv_fixture.display().to_string(),
                noop_jobs: cfg.noop_jobs,
                rate: cfg.rate,
                rate_secs: cfg.rate_secs,
                retry_jobs: cfg.retry_jobs,
                sweep_jobs: cfg.sweep_jobs,
            },
            table: Vec::new(),
            benches: Vec::new(),
            interrupted: None,
        }
    }

    /// Builds the table from the benches (sorted by the numbering).
    pub fn finish(&mut self) {
        self.duration_secs =
            (Utc::now() - self.started_at).num_milliseconds().max(0) as f64 / 1000.0;
        let mut table: Vec<Row> = self.benches.iter().flat_map(BenchRun::rows).collect();
        table.sort_by_key(|row| row_order(row.id));
        self.table = table;
    }

    /// The targets missed, one line each.
    pub fn missed(&self) -> Vec<String> {
        let mut missed: Vec<String> = self
            .table
            .iter()
            .filter(|row| row.verdict == Verdict::Missed)
            .map(|row| {
                let ratio = row.ratio.map_or(String::new(), |r| format!(" ({r:.2}×)"));
                format!(
                    "{} {}: {}{ratio}, target {}",
                    row.id, row.benchmark, row.burrow, row.target
                )
            })
            .collect();
        if let Some(why) = &self.interrupted {
            missed.push(format!("the run was interrupted: {why}"));
        }
        missed
    }

    /// The table and the details, as markdown.
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut out = format!(
            "burrow-bench {} — {} cores (nproc), {}, {:.1} GiB RAM, Linux {}; PostgreSQL {}, RabbitMQ {}; load {} → {}; {:.0} s\n\n",
            self.started_at.format("%Y-%m-%d %H:%M UTC"),
            m.nproc,
            m.cpu_model,
            m.memory_gib,
            m.kernel,
            m.postgres.as_deref().unwrap_or("?"),
            m.rabbitmq.as_deref().unwrap_or("?"),
            m.load_before,
            m.load_after.as_deref().unwrap_or("?"),
            self.duration_secs
        );
        out.push_str("| # | benchmark | burrow | reference, same run | ratio | target | |\n");
        out.push_str("|---|---|---|---|---:|---|---|\n");
        for row in &self.table {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                row.id,
                row.benchmark,
                row.burrow,
                row.reference,
                row.ratio.map_or(String::new(), |r| format!("{r:.2}×")),
                row.target,
                match row.verdict {
                    Verdict::Met => "met",
                    Verdict::Missed => "**MISSED**",
                    Verdict::Context => "context",
                    Verdict::NotRun => "not run",
                }
            ));
        }
        out.push('\n');
        for run in &self.benches {
            if let Ok(measurement) = &run.result {
                for line in measurement.details() {
                    out.push_str(&line);
                    out.push('\n');
                }
            }
            for note in &run.notes {
                out.push_str(&format!("note ({:?}): {note}\n", run.bench));
            }
            if let Err(error) = &run.result {
                out.push_str(&format!("error ({:?}): {error}\n", run.bench));
            }
        }
        out
    }

    /// Writes the report as JSON to `path` (via `path.tmp` and a rename).
    ///
    /// # Errors
    /// If the file cannot be written.
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let tmp = path.with_extension("json.tmp");
        let mut json = serde_json::to_vec_pretty(self)?;
        json.push(b'\n');
        std::fs::write(&tmp, json).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_sort_by_number_then_parts_before_the_whole() {
        let mut ids = vec!["10", "2", "10b", "1", "9", "10a", "7"];
        ids.sort_by_key(|id| row_order(id));
        assert_eq!(ids, ["1", "2", "7", "9", "10a", "10b", "10"]);
    }
}

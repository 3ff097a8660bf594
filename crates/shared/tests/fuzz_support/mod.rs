//! The harness shared by the fuzz targets (`fuzz_message`, `fuzz_import`): how many cases and
//! how long, a per-case watchdog for time and peak memory, and what is kept when a case fails.
//!
//! Why not cargo-fuzz: it needs a nightly toolchain (`-Z sanitizer`), which this project's
//! machines cannot download. These are proptest properties on stable instead: random and
//! mutated inputs, shrunk to a minimal failing input.
//!
//! # Environment
//! - `PROPTEST_CASES`: cases per property (default: the property's own small number, so that
//!   `just test` spends a few seconds per target).
//! - `FUZZ_SECONDS`: wall-clock budget of one target, split evenly between its properties; a
//!   property stops at its share or at `PROPTEST_CASES`, whichever comes first. `just fuzz`
//!   sets it (60) with an effectively unbounded `PROPTEST_CASES`.
//! - `PROPTEST_RNG_SEED`, `PROPTEST_MAX_SHRINK_TIME` (ms, default 60 s here),
//!   `PROPTEST_DISABLE_FAILURE_PERSISTENCE`: as in proptest.
//!
//! # When a case fails
//! The minimal input is written to `tests/fuzz-regressions/` (relative to the crate: the
//! input itself, plus a `.txt` with the case, the failure and the stack), proptest appends its
//! seed to `tests/fuzz-regressions/<target>.txt` so the case is replayed first next time, and
//! the test panics with all of it. A case that aborts the process (an allocation failure, a
//! stack overflow) cannot be caught: targets with `keep_last_case` (the import) keep the case
//! being run in `target/tmp/<target>-<property>.last-case.txt`.

#![allow(dead_code)] // Each target uses part of it.

use std::backtrace::Backtrace;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, Once, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestError, TestRunner};

/// Longest a guarded case may run. Generous: debug builds, two cores shared with other tests,
/// and the largest seed (a 64 MiB sheet) takes about a second.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest growth of the process's peak resident memory during one guarded case. The limits
/// hold the one part loaded whole (the shared-strings table) to 128 MiB; twice the largest
/// seed's inflated size is far below this.
pub const MEMORY_LIMIT_BYTES: u64 = 256 * 1024 * 1024;

/// Cases run between two looks at the clock.
const BATCH: u32 = 64;

/// Default `max_shrink_time`, in milliseconds.
const SHRINK_MS: u32 = 60_000;

/// Name of the threads [`Probe::guarded`] runs cases on.
const CASE_THREAD: &str = "fuzz-case";

/// Guarded cases of one process run one at a time, so that one's peak memory is not another's
/// (`cargo test` runs a binary's tests on threads; nextest gives each its own process).
static MEASURING: Mutex<()> = Mutex::new(());

/// One fuzz target (one test binary).
pub struct Target {
    /// The binary's name, e.g. `fuzz_import`: names its regression files.
    pub name: &'static str,
    /// Seed file for proptest's failure persistence, relative to the crate.
    pub regressions: &'static str,
    /// Properties in the binary, which share `FUZZ_SECONDS`.
    pub properties: u32,
    /// Write each case to `target/tmp/` before running it, so that one that aborts the process
    /// can be found (costs a file write per case: for slow targets only).
    pub keep_last_case: bool,
}

/// One property of a target.
pub struct Property<'a, V> {
    /// The target it belongs to.
    pub target: &'a Target,
    /// The test's name.
    pub name: &'static str,
    /// Cases when `PROPTEST_CASES` is not set (the quick run of `just test`).
    pub default_cases: u32,
    /// File extension of a saved failing input (`json`, `xlsx`, `bin`).
    pub extension: &'static str,
    /// The bytes the code under test saw for a case (what is saved when it fails).
    pub materialize: &'a dyn Fn(&V) -> Vec<u8>,
}

/// What one run of a property did, printed at its end.
#[derive(Default)]
pub struct Probe {
    outcomes: RefCell<BTreeMap<String, u64>>,
    guarded: Cell<u64>,
    slowest: Cell<Duration>,
    peak_growth: Cell<u64>,
}

impl Probe {
    /// Counts one case's outcome (`ok`, an error variant…), to show what the inputs reached.
    pub fn outcome(&self, label: impl Into<String>) {
        *self.outcomes.borrow_mut().entry(label.into()).or_default() += 1;
    }

    /// Runs `work` on its own thread and fails the case if it panics, runs longer than
    /// [`CASE_TIMEOUT`] or grows the peak resident memory by more than
    /// [`MEMORY_LIMIT_BYTES`]. A thread that overruns is left behind (the test fails anyway).
    pub fn guarded<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, TestCaseError> {
        let _serial = MEASURING.lock().unwrap_or_else(PoisonError::into_inner);
        let baseline = memory::reset_peak();
        let started = Instant::now();
        let (done, result) = mpsc::sync_channel(1);
        thread::Builder::new()
            .name(CASE_THREAD.to_owned())
            .spawn(move || {
                let _ = done.send(panic::catch_unwind(AssertUnwindSafe(work)));
            })
            .map_err(|e| TestCaseError::fail(format!("spawning the case thread: {e}")))?;
        let value = match result.recv_timeout(CASE_TIMEOUT) {
            Ok(Ok(value)) => value,
            Ok(Err(payload)) => {
                return Err(TestCaseError::fail(format!(
                    "panicked: {}",
                    panic_message(payload.as_ref())
                )))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(TestCaseError::fail(format!(
                    "still running after {CASE_TIMEOUT:?}: unbounded time?"
                )))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(TestCaseError::fail(
                    "the case thread ended without a result",
                ))
            }
        };
        let elapsed = started.elapsed();
        self.guarded.set(self.guarded.get() + 1);
        self.slowest.set(self.slowest.get().max(elapsed));
        if let (Some(before), Some(peak)) = (baseline, memory::peak()) {
            let growth = peak.saturating_sub(before);
            self.peak_growth.set(self.peak_growth.get().max(growth));
            if growth > MEMORY_LIMIT_BYTES {
                return Err(TestCaseError::fail(format!(
                    "peak memory grew by {} MiB (limit {} MiB)",
                    growth >> 20,
                    MEMORY_LIMIT_BYTES >> 20
                )));
            }
        }
        Ok(value)
    }
}

/// Cases per property: `PROPTEST_CASES`, else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// This property's share of `FUZZ_SECONDS`, if set.
pub fn budget(target: &Target) -> Option<Duration> {
    let seconds: f64 = std::env::var("FUZZ_SECONDS").ok()?.trim().parse().ok()?;
    Some(Duration::from_secs_f64(
        seconds.max(0.0) / f64::from(target.properties.max(1)),
    ))
}

/// Runs `test` on values of `strategy` until the case count or the time budget is reached;
/// on a failure, shrinks it, saves the minimal input and panics with the report.
pub fn run<S>(
    property: &Property<'_, S::Value>,
    strategy: S,
    test: impl Fn(S::Value, &Probe) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: Clone,
{
    let target = property.target;
    let wanted = cases(property.default_cases);
    let budget = budget(target);
    let mut config = Config {
        // No `fork`/`timeout` features (they need a test name and a child process per run):
        // `Probe::guarded` times cases in-process instead.
        cases: BATCH,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(target.regressions))),
        ..Config::default()
    };
    if std::env::var_os("PROPTEST_MAX_SHRINK_TIME").is_none() {
        config.max_shrink_time = SHRINK_MS;
    }
    if std::env::var_os("PROPTEST_DISABLE_FAILURE_PERSISTENCE").is_some() {
        config.failure_persistence = None;
    }
    quiet_case_panics();
    let last_case = last_case_file(target, property.name);
    let probe = Probe::default();
    let checked = |value: S::Value| {
        // Kept on disk first: a case that aborts the process cannot be reported otherwise.
        if target.keep_last_case {
            let _ = std::fs::write(&last_case, format!("{value:?}\n"));
        }
        test(value, &probe)
    };

    let started = Instant::now();
    let mut seeds = TestRunner::new(config.clone());
    let mut done: u32 = 0;
    while done < wanted && budget.is_none_or(|b| started.elapsed() < b) {
        let batch = BATCH.min(wanted - done);
        let mut runner = TestRunner::new_with_rng(
            Config {
                cases: batch,
                ..config.clone()
            },
            seeds.new_rng(),
        );
        match runner.run(&strategy, checked) {
            Ok(()) => done += batch,
            Err(TestError::Abort(why)) => panic!("{}: proptest aborted: {why}", property.name),
            Err(TestError::Fail(why, minimal)) => {
                let stack = replay_for_stack(|| test(minimal.clone(), &Probe::default()));
                let saved = save_failure(property, &minimal, &why.to_string(), &stack);
                panic!(
                    "{}: {why}\nminimal input: {minimal:?}\nsaved as {}\n{stack}",
                    property.name,
                    saved.display()
                );
            }
        }
    }
    let _ = std::fs::remove_file(&last_case);
    let guarded = match probe.guarded.get() {
        0 => String::new(),
        _ => format!(
            "; slowest case {} ms, largest peak-memory growth {} MiB",
            probe.slowest.get().as_millis(),
            probe.peak_growth.get() >> 20
        ),
    };
    eprintln!(
        "{}/{}: {done} cases in {:.1} s{guarded}; outcomes {:?}",
        target.name,
        property.name,
        started.elapsed().as_secs_f64(),
        probe.outcomes.borrow(),
    );
}

/// Keeps panics on case threads off stderr: shrinking can repeat one a thousand times, and the
/// failure report carries its message and, from the replay, its stack. Other threads keep the
/// hook they had.
fn quiet_case_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if thread::current().name() != Some(CASE_THREAD) {
                previous(info);
            }
        }));
    });
}

/// Runs the minimal failing case once more with a panic hook that keeps the stack.
fn replay_for_stack(replay: impl FnOnce() -> Result<(), TestCaseError>) -> String {
    let stack = Arc::new(Mutex::new(None::<String>));
    let kept = Arc::clone(&stack);
    let previous = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        let mut slot = kept.lock().unwrap_or_else(PoisonError::into_inner);
        slot.get_or_insert_with(|| format!("{info}\nstack:\n{}", Backtrace::force_capture()));
    }));
    let replayed = panic::catch_unwind(AssertUnwindSafe(replay));
    panic::set_hook(previous);
    let panicked = stack.lock().unwrap_or_else(PoisonError::into_inner).take();
    match (panicked, replayed) {
        (Some(stack), _) => stack,
        (None, Ok(Err(e))) => format!("replay failed without a panic: {e}"),
        (None, _) => "the replay passed: the failure depends on timing or memory".to_owned(),
    }
}

/// Writes the minimal input and its report to `tests/fuzz-regressions/`, returns the input's path.
fn save_failure<V: Debug>(
    property: &Property<'_, V>,
    minimal: &V,
    why: &str,
    stack: &str,
) -> PathBuf {
    let bytes = (property.materialize)(minimal);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let stem = format!(
        "{}-{}-{:016x}",
        property.target.name,
        property.name,
        fnv1a(&bytes)
    );
    let input = dir.join(format!("{stem}.{}", property.extension));
    let report = format!(
        "property: {}/{}\nfailure: {why}\ncase: {minimal:?}\n\n{stack}\n",
        property.target.name, property.name
    );
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&input, &bytes))
        .and_then(|()| std::fs::write(dir.join(format!("{stem}.txt")), report));
    if let Err(e) = written {
        eprintln!("could not save the failing input to {}: {e}", dir.display());
    }
    input
}

/// The inputs that earlier failures of `target` saved (`<target>-….<extension>`), by file name,
/// for a test that replays them whatever the strategies have become since.
pub fn saved_inputs(target: &Target, extensions: &[&str]) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let Ok(listing) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut inputs: Vec<(String, Vec<u8>)> = listing
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let extension = path
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or_default();
            name.starts_with(&format!("{}-", target.name)) && extensions.contains(&extension)
        })
        .filter_map(|path| {
            let name = path.file_name()?.to_string_lossy().into_owned();
            Some((name, std::fs::read(&path).ok()?))
        })
        .collect();
    inputs.sort();
    inputs
}

fn last_case_file(target: &Target, property: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-{property}.last-case.txt", target.name))
}

/// A stable name for a saved input (64-bit FNV-1a).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a non-string panic payload)".to_owned())
}

/// Resident memory of this process, from `/proc/self/status` (Linux; `None` elsewhere).
mod memory {
    /// Resets the peak (`VmHWM`) to the current resident size, and returns that size in bytes.
    /// Where the reset is refused, returns the old peak, so only growth beyond it is seen.
    pub fn reset_peak() -> Option<u64> {
        // "5" resets the peak RSS (proc(5), /proc/pid/clear_refs, Linux 4.0+).
        if std::fs::write("/proc/self/clear_refs", "5").is_ok() {
            field("VmRSS:")
        } else {
            field("VmHWM:")
        }
    }

    /// The peak resident size since the last reset, in bytes.
    pub fn peak() -> Option<u64> {
        field("VmHWM:")
    }

    fn field(name: &str) -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    }
}

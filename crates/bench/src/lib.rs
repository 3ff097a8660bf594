//! burrow's benchmarks: every figure measured beside a reference from the same run, on the
//! same machine, so that what else loads the machine weighs on both sides.
//!
//! `just bench` builds the release binaries and runs `burrow-bench`. It creates its own
//! database (`burrow_bench`, with `burrow-api migrate`) and queue prefix (`burrow-bench`),
//! starts and stops its own api and worker processes, prints one table and writes it to
//! `bench/results/latest.json`, then drops the database and the queues. It exits 1 when a
//! target is missed. Benchmarks are not tests: nothing here asserts a timing under
//! `cargo test`.
//!
//! # Layout
//! - [`config`]: sizes, rates and paths from flags or `BENCH_*` variables.
//! - [`run`]: the benches in order, each repeated after a service restart, cleanup always.
//! - [`benches`]: the benchmarks, one file each.
//! - [`reference`]: the references: the file's parser + one `COPY`, a raw lapin loop, and
//!   the Python peers (polars, DuckDB) as subprocesses.
//! - [`stack`]: the private installation: database, queues, api and worker processes.
//! - [`process`]: child processes that are always stopped; peak RSS from `/proc`.
//! - [`cpu`]: where a run's CPU time went (machine, worker, api, Postgres, RabbitMQ).
//! - [`client`]: the few api calls the benches make.
//! - [`machine`]: what the run ran on.
//! - [`stats`]: percentiles and number formats.
//! - [`report`]: the table, the targets and `latest.json`.

pub mod benches;
pub mod client;
pub mod config;
pub mod cpu;
pub mod machine;
pub mod process;
pub mod reference;
pub mod report;
pub mod run;
pub mod stack;
pub mod stats;

//! Benchmark 4: enqueue latency. `POST /api/jobs` with a small JSON `noop` job at a fixed
//! offered rate (open loop), p50/p99 measured from each request's *scheduled* start.
//!
//! The generator schedules request `i` at `t0 + i / rate` on a fixed clock and starts it then,
//! whatever earlier requests are doing; its latency runs from the scheduled time to the last
//! byte of the answer. A stall therefore counts for every request it delays, including the
//! ones the generator itself started late (no coordinated omission). Tokio's timer has a 1 ms
//! tick, so a request may start up to about 1 ms after its slot; that lag is counted too (and
//! reported). Two seconds of warm-up at the same rate are not recorded.
//!
//! Only the api runs: in production workers sit on other hosts, and on this 2-core machine a
//! worker would compete with the api for the same cores. The jobs stay queued and are removed
//! afterwards (work queue purged, job tables emptied).

use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use tokio::time::Instant;

use crate::client::ApiClient;
use crate::cpu::{CpuBreakdown, CpuMeter};
use crate::report::{Row, Verdict};
use crate::stack::Stack;
use crate::stats::{ms, percentile, rate};

/// Target: p99 of `POST /api/jobs`, in milliseconds.
pub const TARGET_P99_MS: f64 = 20.0;
/// Not recorded.
const WARMUP: Duration = Duration::from_secs(2);
/// A request taking longer counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Owner tag of the bench's jobs.
const TAG: &str = "bench-latency";

/// What benchmark 4 measured.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyBench {
    /// Offered requests per second.
    pub offered_per_sec: u32,
    /// Seconds measured.
    pub secs: u64,
    /// Requests sent.
    pub requests: u64,
    /// Requests answered `202`.
    pub accepted: u64,
    /// Requests that failed, timed out or got another status.
    pub errors: u64,
    /// The first error, if any.
    pub first_error: Option<String>,
    /// Answered requests per second over the measured window.
    pub achieved_per_sec: f64,
    /// Latency percentiles of all requests (errors included), in ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// 99.9th percentile, ms.
    pub p999_ms: f64,
    /// Slowest, ms.
    pub max_ms: f64,
    /// How late the generator started requests after their slots: p99, ms.
    pub start_lag_p99_ms: f64,
    /// CPU per component over the measured window.
    pub cpu: CpuBreakdown,
}

/// One request's fate.
struct Sample {
    latency: Duration,
    lag: Duration,
    error: Option<String>,
}

/// Runs benchmark 4 at `offered` requests per second for `secs` seconds.
///
/// # Errors
/// If the api does not start.
pub async fn run(stack: &Stack, offered: u32, secs: u64) -> anyhow::Result<LatencyBench> {
    let api = stack.start_api("latency-api", &[]).await?;
    println!(
        "  POST /api/jobs (noop) at {offered}/s, open loop: {} s warm-up, {secs} s measured",
        WARMUP.as_secs()
    );
    let _ = fire(&api.client, offered, WARMUP).await;
    let meter = CpuMeter::start(None, Some(api.service.pid()));
    let window = Duration::from_secs(secs);
    let samples = fire(&api.client, offered, window).await;
    let cpu = meter.finish();
    api.stop().await?;
    stack.purge_work_queue().await?;
    stack.reset_jobs().await?;

    let mut latencies: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
    latencies.sort();
    let mut lags: Vec<Duration> = samples.iter().map(|s| s.lag).collect();
    lags.sort();
    let errors = samples.iter().filter(|s| s.error.is_some()).count() as u64;
    let requests = samples.len() as u64;
    let at = |q: f64| percentile(&latencies, q).map_or(0.0, ms);
    let bench = LatencyBench {
        offered_per_sec: offered,
        secs,
        requests,
        accepted: requests - errors,
        errors,
        first_error: samples.iter().find_map(|s| s.error.clone()),
        achieved_per_sec: (requests - errors) as f64 / window.as_secs_f64(),
        p50_ms: at(0.50),
        p90_ms: at(0.90),
        p99_ms: at(0.99),
        p999_ms: at(0.999),
        max_ms: latencies.last().copied().map_or(0.0, ms),
        start_lag_p99_ms: percentile(&lags, 0.99).map_or(0.0, ms),
        cpu,
    };
    println!(
        "    p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {} errors",
        bench.p50_ms, bench.p99_ms, bench.max_ms, bench.errors
    );
    Ok(bench)
}

/// Sends `offered × duration` requests, request `i` scheduled at `t0 + i / offered`, and
/// waits for all of them.
async fn fire(client: &ApiClient, offered: u32, duration: Duration) -> Vec<Sample> {
    let count = (u128::from(offered) * duration.as_millis() / 1000) as u64;
    let url = client.url("/api/jobs");
    let body = json!({"kind": "noop", "payload": {}, "user_id": TAG});
    let t0 = Instant::now() + Duration::from_millis(50);
    let mut requests = Vec::with_capacity(count as usize);
    for i in 0..count {
        let scheduled = t0 + Duration::from_nanos(i * 1_000_000_000 / u64::from(offered.max(1)));
        tokio::time::sleep_until(scheduled).await;
        let request = client
            .http()
            .post(&url)
            .timeout(REQUEST_TIMEOUT)
            .json(&body);
        requests.push(tokio::spawn(async move {
            let lag = scheduled.elapsed();
            let error = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let answered = response.bytes().await;
                    match (status, answered) {
                        (reqwest::StatusCode::ACCEPTED, Ok(_)) => None,
                        (status, Ok(_)) => Some(format!("answered {status}")),
                        (_, Err(e)) => Some(format!("reading the answer: {e}")),
                    }
                }
                Err(e) => Some(format!("sending: {e}")),
            };
            Sample {
                latency: scheduled.elapsed(),
                lag,
                error,
            }
        }));
    }
    let mut samples = Vec::with_capacity(requests.len());
    for request in requests {
        samples.push(request.await.unwrap_or(Sample {
            latency: REQUEST_TIMEOUT,
            lag: Duration::ZERO,
            error: Some("the request task panicked".to_owned()),
        }));
    }
    samples
}

impl LatencyBench {
    /// Whether the target is met: p99 within bounds and no request failed.
    pub fn met(&self) -> bool {
        self.p99_ms <= TARGET_P99_MS && self.errors == 0
    }

    /// Row 4 of the table.
    pub fn rows(&self) -> Vec<Row> {
        vec![Row {
            id: "4",
            benchmark: format!(
                "POST /api/jobs latency, open loop {}/s for {} s",
                self.offered_per_sec, self.secs
            ),
            burrow: format!(
                "p50 {:.1} ms, p99 {:.1} ms (max {:.0} ms)",
                self.p50_ms, self.p99_ms, self.max_ms
            ),
            reference: format!(
                "offered {}/s, answered {}/s, {} errors",
                self.offered_per_sec,
                rate(self.achieved_per_sec),
                self.errors
            ),
            ratio: None,
            target: format!("p99 ≤ {TARGET_P99_MS:.0} ms"),
            verdict: Verdict::from_bool(self.met()),
        }]
    }

    /// The rest of the distribution and the generator's own lag.
    pub fn details(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "4 latency p90 {:.1} ms, p99.9 {:.1} ms over {} requests; generator start lag p99 {:.2} ms (counted in the latency); {}",
            self.p90_ms,
            self.p999_ms,
            self.requests,
            self.start_lag_p99_ms,
            self.cpu.summary()
        )];
        if let Some(error) = &self.first_error {
            lines.push(format!("4 first error: {error}"));
        }
        lines
    }
}

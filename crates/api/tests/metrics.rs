//! The api's `/metrics` before any job: every counter is there, at 0, for each kind of the api's
//! registry (Prometheus: avoid missing metrics). The recorder is global to a process, so this
//! binary holds this one test: nothing else in the process records.

mod support;

use burrow_api::state::AppState;
use burrow_shared::handler::Registry;
use burrow_shared::kinds::{Noop, Sleep};
use reqwest::StatusCode;
use support::TestApi;

/// The value of `series` (name and labels, exactly as rendered) on a Prometheus text page.
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn every_counter_is_scraped_at_zero_for_each_registered_kind_before_any_job() {
    let api = TestApi::spawn_with(|state| AppState {
        metrics: Some(burrow_api::metrics::install()),
        registry: Registry::default().register(Noop).register(Sleep),
        ..state
    })
    .await;

    let response = api.get_response("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.expect("the page");
    for series in [
        "burrow_outbox_published_total",
        r#"burrow_jobs_enqueued_total{kind="noop"}"#,
        r#"burrow_jobs_enqueued_total{kind="sleep"}"#,
    ] {
        assert_eq!(sample(&page, series), Some(0.0), "{series} in:\n{page}");
    }
    // The label values are the registry's: a kind it does not hold is not invented.
    assert!(!page.contains(r#"kind="export_xlsx""#), "{page}");
}

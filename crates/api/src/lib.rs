//! burrow's HTTP api: accepts jobs, records each job, its file and its message in Postgres in
//! one transaction (the transactional outbox) and answers `202 Accepted` at once; a relay task
//! publishes the messages to RabbitMQ with publisher confirms.
//!
//! # Layout
//! - [`config`]: settings from environment variables.
//! - [`startup`]: [`Application`]: build from config, serve (and relay) until stopped.
//! - [`routes`]: one file per route, [`routes::router`], the list of its routes
//!   ([`routes::ROUTES`]) and their OpenAPI document ([`routes::ApiDoc`]).
//! - [`enqueue`]: a request's jobs in one transaction ([`burrow_shared::enqueue_many`]), then wake
//!   the relay ([`burrow_shared::relay`], run beside the server).
//! - [`publisher`]: what handlers and the relay share: broker pool, wake-up, broker health.
//! - [`failpoint`]: test-only crash points for the fault-injection suite.
//! - [`metrics`]: the Prometheus metric names (with units), the recorder, recording helpers.
//! - [`state`]: [`state::AppState`], what handlers share.
//! - [`error`]: [`error::ApiError`], the JSON error responses.
//! - `testing` (feature `test-support`): the harness of the integration tests (api, worker,
//!   chaos): an api on port 0 over a private database and queue names, and a client.
//!
//! `main.rs` only reads config, starts tracing and runs a subcommand.

pub mod auth;
pub mod config;
pub mod enqueue;
pub mod error;
pub mod failpoint;
pub mod metrics;
pub mod publisher;
pub mod request_span;
pub mod routes;
pub mod startup;
pub mod state;
#[cfg(feature = "test-support")]
pub mod testing;

pub use startup::Application;

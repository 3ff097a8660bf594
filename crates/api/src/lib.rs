//! burrow's HTTP api: accepts jobs, records them in Postgres, publishes them to RabbitMQ and
//! answers `202 Accepted` at once.
//!
//! # Layout
//! - [`config`]: settings from environment variables.
//! - [`startup`]: [`Application`]: build from config, serve until stopped.
//! - [`routes`]: one file per route, and [`routes::router`].
//! - [`enqueue`]: store a job and its file, publish its message.
//! - [`publisher`]: publish with publisher confirms.
//! - [`error`]: [`error::ApiError`], the JSON error responses.
//!
//! `main.rs` only reads config, starts tracing and runs a subcommand.

pub mod config;
pub mod enqueue;
pub mod error;
pub mod publisher;
pub mod routes;
pub mod startup;
pub mod state;

pub use startup::Application;

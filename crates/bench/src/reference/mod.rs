//! The references burrow is measured against, written with the libraries directly.
//!
//! - [`import`]: calamine's cell reader + one `COPY`, in one process.
//! - [`amqp`]: a raw lapin publish/consume loop with confirms and manual acks.

pub mod amqp;
pub mod import;

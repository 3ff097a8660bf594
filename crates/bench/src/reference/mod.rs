//! The references burrow is measured against, written with the libraries directly.
//!
//! - [`import`]: a raw import in one process: the file's parser + one `COPY`, into
//!   `imported_rows` or a bench-created people table.
//! - [`copy_lines`]: people rows as COPY text, chunked for the writer.
//! - [`xlsx_rows`], [`csv_rows`]: calamine's cell reader, the `csv` crate.
//! - [`amqp`]: a raw lapin publish/consume loop with confirms and manual acks.
//! - [`peer`]: another tool's import (polars, DuckDB) run as a Python subprocess.

pub mod amqp;
pub mod copy_lines;
pub mod csv_rows;
pub mod import;
pub mod peer;
pub mod xlsx_rows;

//! The integration tests' harness is [`burrow_api::testing`], shared with the worker's and the
//! chaos suite's tests; each test binary declares `mod support;` and keeps its own helpers as
//! free functions next to its tests.
#![allow(unused_imports)]

pub use burrow_api::testing::*;

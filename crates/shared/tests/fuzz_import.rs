//! placeholder
mod fuzz_support;

//! Benchmarks only: see `parse.rs`.

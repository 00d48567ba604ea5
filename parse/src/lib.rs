//! The parse stage of scansync, as a crate of its own: no I/O, no AWS or PostgreSQL
//! dependencies, so it can be fuzzed and benchmarked in isolation.
//!
//! [`attr`] is the DynamoDB item model every source converts to; [`export`] decodes export
//! lines; [`record`] turns items into canonical records by the named rules of [`text`],
//! [`number`], [`time`], [`json`] (metadata) and [`tags`]; [`typed`] reads an export line of
//! the common shape straight into a record, and sends every other line to that general path.

pub mod attr;
pub mod export;
pub mod json;
pub mod number;
pub mod record;
pub mod tags;
pub mod text;
pub mod time;
pub mod typed;

pub use record::*;

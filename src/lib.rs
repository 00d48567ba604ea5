//! scansync: a resumable, idempotent sync of DynamoDB scan records into PostgreSQL.
//!
//! The pipeline reads pages from a [`source`], cleans them in [`parse`], lands them through a
//! [`write`]r, and moves the [`checkpoint`] last; [`run`] ties the stages together and
//! [`lifecycle`] wraps a run in its lock and its ledger row. The modules form layers that only
//! point down (ARCHITECTURE.md lists them; `tests/layers.rs` checks them).

pub mod error;

pub use error::{Error, Kind, Result};
/// The parse stage (its own crate, `parse/`): items, records, the repair rules.
pub use scansync_parse as parse;
pub use scansync_parse::{attr, time};
pub mod aws;
pub mod backfill;
pub mod bulk;
pub mod checkpoint;
pub mod cli;
pub mod commands;
pub mod config;
pub mod db;
pub mod demo;
pub mod docs;
pub mod follow;
pub mod health;
pub mod lambda;
pub mod ledger;
pub mod lifecycle;
pub mod lock;
pub mod logging;
pub mod metrics;
pub mod pipeline;
pub mod plan;
pub mod retry;
pub mod run;
pub mod schema;
pub mod secrets;
pub mod serve;
pub mod shutdown;
pub mod source;
pub mod stats;
pub mod stream;
pub mod summary;
pub mod tls;
pub mod verify;
pub mod window;
pub mod write;

//! Integration tests against real servers: PostgreSQL, dynalite (DynamoDB API) and moto
//! (SSM API), driving the real `scansync` binary. Run them with `scripts/test`.

mod backfill_jobs;
mod bulk;
mod claims;
mod copy_binary;
mod demo;
mod deploy;
mod differential;
mod durability;
mod export;
mod follow;
mod follow_clock;
mod hardening;
mod health;
mod jsonb_property;
mod lambda;
mod merge_rules;
mod pooler;
mod privileges;
mod removals;
mod serve;
mod shutdown;
mod ssm;
mod support;
mod sync;
mod tls;
mod verify;
mod window;

//! ConvertPulse aggregator: consumes the event stream into MongoDB, as raw batch documents plus
//! the daily and hourly rollups the stats are read from. Several processes may share the work;
//! a redelivered or replayed batch is never counted twice.
//!
//! # Layout
//! - [`config`], [`startup`], [`router`], [`metrics`]: the process.
//! - [`consumer`]: pulling chunks from JetStream and acking after the write.
//! - [`flush`]: the exactly-once write protocol and the recovery of half-done flushes.
//! - [`buckets`]: the day, hour and minute a batch counts in.
//! - [`rollup`]: pure arithmetic from a batch to counter increments.
//! - [`sessions`]: what a session did across batches: conversions, attribution, bounces.
//! - [`writer`]: bulk MongoDB commands.
//! - [`jobs`], [`expiry`]: scheduled maintenance: the recovery sweep, removing what expired.
//! - [`migrate`]: the one-off moves between layouts.

pub mod buckets;
pub mod config;
pub mod consumer;
pub mod expiry;
pub mod flush;
pub mod jobs;
pub mod metrics;
pub mod migrate;
pub mod rollup;
pub mod router;
pub mod sessions;
pub mod startup;
pub mod writer;

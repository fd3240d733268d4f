//! ConvertPulse ingest: takes tracker batches from the public internet and puts them, validated
//! and enriched, on the JetStream event stream. It answers 202 only once the stream has a batch,
//! and never touches MongoDB.
//!
//! # Layout
//! - [`config`]: settings from the environment.
//! - [`startup`]: connects to NATS, starts the background tasks, serves.
//! - [`router`] and [`routes`]: the HTTP surface; [`state`]: what every request shares.
//! - [`error`]: every way a request can fail, and its status.
//! - [`sites`]: the in-memory API key → site map, kept current by watching the sites bucket.
//! - [`salt`]: the daily visitor-hash salt shared through NATS.
//! - [`limiter`]: per-key and per-IP token buckets.
//! - [`audience`]: device, browser, OS and bot verdicts from the User-Agent.
//! - [`geo`]: the country of a client IP.
//! - [`origin`]: whether a request's `Origin` belongs to the site.
//! - [`publisher`]: publishing a batch and waiting for the stream's ack (JetStream; a stream in
//!   memory for tests of the router without NATS, `tests/router.rs`).
//! - [`metrics`]: Prometheus figures.

pub mod audience;
pub mod config;
pub mod error;
pub mod geo;
pub mod limiter;
pub mod metrics;
pub mod origin;
pub mod publisher;
pub mod router;
pub mod routes;
pub mod salt;
pub mod sites;
pub mod startup;
pub mod state;

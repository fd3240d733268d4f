//! Cross-process test harness: starts a private nats-server, MongoDB-wire server and the three
//! real binaries on free ports with temporary data, and speaks HTTP to them.
//!
//! # Layout
//! - [`stack`]: the processes and their lifecycle (start, stop, SIGKILL, restart).
//! - [`cluster`]: the scaled-out stack of `make cluster` (three NATS nodes, two ingest, two
//!   aggregators, HAProxy), started through its script, killed through its pid files.
//! - [`client`]: typed HTTP helpers for the api and ingest.
//! - [`batch`]: building tracker batches.
//! - [`browser`]: the headless-Chromium driver and test pages.
//! - [`wait`]: polling with a deadline.

pub mod batch;
pub mod browser;
pub mod client;
pub mod cluster;
pub mod stack;
pub mod wait;

//! Cross-process test harness: starts a private nats-server, MongoDB-wire server and the three
//! real binaries on free ports with temporary data, and speaks HTTP to them.
//!
//! # Layout
//! - [`stack`]: the processes and their lifecycle (start, stop, SIGKILL, restart).
//! - [`cluster`]: the scaled-out stack of `make cluster` (three NATS nodes, two ingest, two
//!   aggregators, HAProxy), started through its script, killed through its pid files.
//! - [`client`]: typed HTTP helpers for the api and ingest.
//! - [`batch`]: building tracker batches.
//! - [`bench`]: what the bench binaries share (settings, a generator, `/proc` and `perf`).
//! - [`browser`]: the headless-browser drivers (Chromium, Firefox) and test pages.
//! - [`capture`]: a capture site: landing pages, the current snippet and a stand-in ingest
//!   endpoint that keeps the exact request bodies.
//! - [`mongo`]: a MongoDB of its own for library-level tests (no NATS, no services).
//! - [`replica`]: an api replica in the test's process (its state with a test's clock), to run
//!   its scheduled jobs.
//! - [`queries`]: the query shapes of `docs/queries.md` and the checks against what a run sent.
//! - [`smtp`]: a real SMTP server (aiosmtpd) whose received mail a test reads.
//! - [`nats`]: a bare nats-server with JetStream for library-level tests.
//! - [`v2`]: v2 tracker events, audience headers, and past days written into a stack.
//! - [`wait`]: polling with a deadline.

pub mod batch;
pub mod bench;
pub mod browser;
pub mod capture;
pub mod client;
pub mod cluster;
pub mod mongo;
pub mod nats;
pub mod queries;
pub mod replica;
pub mod smtp;
pub mod stack;
pub mod v2;
pub mod wait;

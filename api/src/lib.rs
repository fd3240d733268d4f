//! ConvertPulse api: accounts, sites and their keys, precomputed stats, and the static web app.
//!
//! # Layout
//! - [`config`], [`startup`], [`router`], [`metrics`], [`jobs`]: the process.
//! - [`routes`]: the HTTP handlers by resource.
//! - [`state`]: what every request shares.
//! - [`access`]: who may do what with a site (owner, admin, viewer).
//! - [`error`], [`extractors`]: failures and the JSON / auth extractors.
//! - [`tokens`], [`passwords`], [`throttle`], [`revocation`]: authentication, and ending tokens.
//! - [`keys`]: site keys and the key-value bucket ingest watches; [`lease`]: one runner of a
//!   job across api processes.
//! - [`mail`]: the outbox and the SMTP server of invitations, reports and alerts.
//! - [`reports`]: the weekly report (figures, text and HTML, when it is due).
//! - [`quota`]: per-tenant limits (sites per account, key rotations per site).
//! - [`share_links`]: share links as stored, found by their token's hash.
//! - [`timeframe`], [`stats`], [`stats_store`]: what a stats request covers, its arithmetic,
//!   and reading the rollups; [`experiment`]: the statistics of an A/B experiment (issue 22;
//!   not served yet).
//! - [`plausible_query`]: Plausible's Stats API v2 query, ConvertPulse's subset of it (issue
//!   23): parsing, what the rollups answer, the answer's shape.

pub mod access;
pub mod alerts;
pub mod attention;
pub mod config;
pub mod error;
pub mod experiment;
pub mod extractors;
pub mod jobs;
pub mod keys;
pub mod lease;
pub mod mail;
pub mod metrics;
pub mod passwords;
pub mod plausible_domains;
pub mod plausible_query;
pub mod quota;
pub mod reports;
pub mod revocation;
pub mod router;
pub mod routes;
pub mod scheduled;
pub mod share_links;
pub mod startup;
pub mod state;
pub mod stats;
pub mod stats_keys;
pub mod stats_store;
pub mod throttle;
pub mod timeframe;
pub mod tokens;

//! Everything two or more ConvertPulse services must agree on.
//!
//! # Layout
//! - [`event`]: the tracker batch as it arrives on the wire, and its validation.
//! - [`goal`]: goals (what converts) and how events match them; [`funnel`]: ordered steps.
//! - [`money`]: revenue: currencies and amounts.
//! - [`segment`]: saved segments, sessions selected by their attribution.
//! - [`backfill`]: the jobs that count a new goal or funnel over the raw batches kept.
//! - [`audience`]: device, browser, OS and country, as ingest derives them.
//! - [`message`]: the enriched batch that ingest publishes and the aggregator consumes.
//! - [`names`]: stream, subject, key-value bucket and collection names.
//! - [`error`]: the closed set of error codes and the JSON error envelope.
//! - [`config`]: reading typed settings from the environment.
//! - [`telemetry`] and [`metrics`]: logging and Prometheus helpers.
//! - [`time`]: day and hour buckets in a site's time zone.
//! - [`urls`]: paths, hosts and referrer sources out of tracked URLs.
//! - [`visitor`]: the cookie-free visitor hash.
//! - [`site`]: the site entry ingest keeps per API key, and domain / time-zone rules.
//! - [`site_share`]: each site's share of the event stream, as the stream enforces it.
//! - [`http`]: what every HTTP service shares: metrics middleware, error envelope, shutdown.
//! - [`serve`]: serving a router with header-read and idle timeouts and a connection cap.
//! - [`client_ip`]: the client address behind trusted proxies.
//! - [`bus`]: JetStream stream and key-value bucket setup.
//! - [`store`]: MongoDB document types; [`indexes`]: index setup and what expires.
//! - [`command_log`]: the query shapes a service sends to MongoDB, recorded for tests
//!   (`CP_MONGO_COMMAND_LOG`).
//! - [`rollup`]: the rollup documents stats are read from: keys, counters, top lists, sketches.
//! - [`team`]: a site's members, invitations, weekly-report opt-ins and alerts.
//! - [`mail`]: the mail outbox as stored.
//! - [`clock`]: time as a dependency, for code that tests must control.

pub mod audience;
pub mod backends;
pub mod backfill;
pub mod bus;
pub mod client_ip;
pub mod clock;
pub mod command_log;
pub mod config;
pub mod error;
pub mod event;
pub mod funnel;
pub mod goal;
pub mod http;
pub mod ids;
pub mod imports;
pub mod indexes;
pub mod mail;
pub mod message;
pub mod metrics;
pub mod money;
pub mod names;
pub mod rollup;
pub mod segment;
pub mod serve;
pub mod site;
pub mod site_config;
pub mod site_share;
pub mod store;
pub mod team;
pub mod telemetry;
pub mod time;
pub mod urls;
pub mod visitor;

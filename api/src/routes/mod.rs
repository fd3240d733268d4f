//! The api's HTTP handlers, one module per resource, each exposing its own `router()`.

pub mod alerts;
pub mod auth;
pub mod funnels;
pub mod goals;
pub mod health;
pub mod imports;
pub mod members;
pub mod overlay;
pub mod plausible_query;
pub mod reports;
pub mod segments;
pub mod share;
pub mod sites;
pub mod stats;
pub mod stats_keys;
pub mod web;

//! Ingest's HTTP handlers, one module per resource.

pub mod batch;
pub mod health;
pub mod plausible;

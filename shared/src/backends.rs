//! The settings every service shares: where NATS and MongoDB are, and how to log in to them.

use crate::{
    bus::NatsSettings,
    config::{redact_userinfo, string},
};

/// Settings every service shares: where NATS and MongoDB are, and how to log in to them.
/// `Debug` leaves the passwords out.
#[derive(Clone)]
pub struct Backends {
    /// `NATS_URL` and the other `NATS_*` settings (see [`NatsSettings`]).
    pub nats: NatsSettings,
    /// `MONGODB_URI`, default `mongodb://127.0.0.1:27017`; may carry credentials
    /// (`mongodb://user:password@host/?authSource=admin`).
    pub mongodb_uri: String,
    /// `MONGODB_DB`, default `convertpulse`.
    pub mongodb_db: String,
}

impl Backends {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            nats: NatsSettings::from_env()?,
            mongodb_uri: string("MONGODB_URI", "mongodb://127.0.0.1:27017"),
            mongodb_db: string("MONGODB_DB", "convertpulse"),
        })
    }
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends")
            .field("nats", &self.nats)
            .field("mongodb_uri", &redact_userinfo(&self.mongodb_uri))
            .field("mongodb_db", &self.mongodb_db)
            .finish()
    }
}

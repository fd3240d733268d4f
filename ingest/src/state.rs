//! The state every request shares, behind one `Arc`. Routes import it from here, below the
//! router. Every field can be made without NATS (a [`crate::publisher::MemoryStream`],
//! [`SaltCache::in_memory`], [`SiteDirectory::from_entries`]), so tests drive the real router
//! in-process.

use std::{net::IpAddr, sync::Arc};

use shared::{client_ip::TrustedProxies, clock::Clock};

use crate::{
    audience::UserAgents, geo::Countries, limiter::RateLimiter, metrics::Metrics, publisher::Publisher, salt::SaltCache,
    sites::SiteDirectory,
};

/// What every request shares, behind one `Arc` so that handing it to a request is one
/// reference-count increment rather than a clone of each handle.
#[derive(Clone)]
pub struct AppState(pub Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The handles inside [`AppState`].
pub struct Shared {
    pub sites: SiteDirectory,
    pub salts: SaltCache,
    pub publisher: Publisher,
    pub key_limiter: Arc<RateLimiter<String>>,
    pub ip_limiter: Arc<RateLimiter<IpAddr>>,
    pub trusted: Arc<TrustedProxies>,
    /// Device, browser, OS and bot verdicts per User-Agent.
    pub user_agents: UserAgents,
    /// Client IP to country.
    pub countries: Countries,
    pub metrics: Metrics,
    /// Receive times, the salt's day and the rate limits read it: the system clock, or a
    /// test's.
    pub clock: Arc<dyn Clock>,
}

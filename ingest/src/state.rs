//! The state every request shares, behind one `Arc`. Routes import it from here, below the
//! router.

use std::{net::IpAddr, sync::Arc};

use shared::client_ip::TrustedProxies;

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
    pub nats: async_nats::Client,
}

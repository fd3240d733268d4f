//! The state every request shares: cheap handles to the database, the key registry, the
//! throttles and the settings. Routes and extractors import it from here, below the router.

use std::sync::Arc;

use mongodb::{Collection, Database};
use shared::{
    site_config::SiteConfigDoc,
    store::{SiteDoc, UserDoc},
};

use crate::{
    config::Config,
    keys::KeyRegistry,
    metrics::Metrics,
    passwords::Hasher,
    revocation::TokenVersions,
    throttle::{LoginThrottle, Throttle},
    tokens::Tokens,
};

/// Cheap handles shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Database,
    pub users: Collection<UserDoc>,
    pub sites: Collection<SiteDoc>,
    /// What each site counts (its goals), one document per site.
    pub site_config: Collection<SiteConfigDoc>,
    pub tokens: Arc<Tokens>,
    pub keys: KeyRegistry,
    /// Login (and password change) attempts per (email, client address) and per address.
    pub login_throttle: Arc<LoginThrottle>,
    /// The users' token versions: what ends a token before it expires.
    pub token_versions: Arc<TokenVersions>,
    /// Registrations per client IP.
    pub register_throttle: Arc<Throttle>,
    /// Shared-link stats requests per client IP.
    pub public_throttle: Arc<Throttle>,
    /// bcrypt with bounded concurrency.
    pub hasher: Hasher,
    /// A bcrypt hash of nothing anyone knows, verified against when the email is unknown.
    pub dummy_hash: Arc<String>,
    pub metrics: Metrics,
    pub nats: async_nats::Client,
}

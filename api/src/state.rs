//! The state every request shares: cheap handles to the database, the key registry, the
//! throttles and the settings. Routes and extractors import it from here, below the router.

use std::sync::Arc;

use anyhow::Context;
use mongodb::{Collection, Database};
use shared::{
    clock::Clock,
    names::collections as c,
    site_config::SiteConfigDoc,
    store::{SiteDoc, UserDoc},
};

use crate::{
    config::Config,
    keys::KeyRegistry,
    metrics::Metrics,
    passwords::{self, Hasher},
    revocation::TokenVersions,
    throttle::{self, LoginThrottle, Throttle},
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
    /// Each site's members, invitations, report opt-ins and alerts, one document per site.
    pub teams: Collection<shared::team::TeamDoc>,
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
    /// The time every time-dependent rule reads (token expiry, token versions, attempt
    /// limits, key rotations, goals, stats ranges): the system clock, or a test's.
    pub clock: Arc<dyn Clock>,
    /// The outbox mail is queued in (a no-op handle without `CP_SMTP_URL`).
    pub mailer: crate::mail::Mailer,
}

impl AppState {
    /// The state over connections already made (`startup::build_state` makes them): the
    /// token keys, throttles and metrics are built here, and the hash verified against for
    /// unknown emails is made at the configured bcrypt cost. Tests build it over a MongoDB
    /// client that never connects and a detached key registry (`tests/router.rs`).
    pub async fn new(
        config: Config,
        db: Database,
        nats: async_nats::Client,
        keys: KeyRegistry,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let dummy_hash = passwords::hash("not a password anyone has".into(), config.bcrypt_cost)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Self {
            tokens: Arc::new(Tokens::new(&config.jwt_secret, config.jwt_ttl, clock.clone())),
            login_throttle: Arc::new(LoginThrottle::new(
                config.login_max_failures,
                config.login_max_failures_per_ip,
                config.login_throttle_keys,
            )),
            token_versions: Arc::new(TokenVersions::new(db.collection(c::USERS), clock.clone())),
            register_throttle: Arc::new(Throttle::new(
                config.register_max_per_ip,
                throttle::REGISTER_WINDOW,
                throttle::CAPACITY,
            )),
            public_throttle: Arc::new(Throttle::new(
                config.public_stats_per_min.max(1),
                std::time::Duration::from_secs(60),
                throttle::CAPACITY,
            )),
            hasher: Hasher::new(config.bcrypt_cost, config.bcrypt_concurrency),
            users: db.collection(c::USERS),
            sites: db.collection(c::SITES),
            site_config: db.collection(c::SITE_CONFIG),
            teams: db.collection(c::SITE_TEAMS),
            mailer: crate::mail::Mailer::new(config.mail.clone(), &db, clock.clone()),
            db,
            keys,
            dummy_hash: Arc::new(dummy_hash),
            metrics: Metrics::new().context("registering metrics")?,
            nats,
            clock,
            config: Arc::new(config),
        })
    }
}

//! API settings, from environment variables.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use shared::{backends::Backends, client_ip::TrustedProxies, config as env, serve::ServeLimits};

/// Everything the api can be told. `Debug` leaves the JWT secret out.
#[derive(Clone)]
pub struct Config {
    /// `CP_API_ADDR`: listen address, default `127.0.0.1:8080`.
    pub addr: SocketAddr,
    /// `CP_METRICS_ADDR`: internal listen address of `/metrics`, default `127.0.0.1:9180`.
    pub metrics_addr: SocketAddr,
    /// `CP_HTTP_HEADER_TIMEOUT_MS`, `CP_HTTP_IDLE_TIMEOUT_MS`, `CP_HTTP_MAX_CONNECTIONS`.
    pub http: ServeLimits,
    /// `NATS_URL`, `MONGODB_URI`, `MONGODB_DB`.
    pub backends: Backends,
    /// `CP_JWT_SECRET`: HS256 signing secret, required, at least 32 bytes.
    pub jwt_secret: String,
    /// `CP_JWT_TTL_HOURS`: token lifetime, default 24.
    pub jwt_ttl: Duration,
    /// `CP_BCRYPT_COST`: bcrypt cost, default 12 (lower it for tests only; 4 is the minimum).
    pub bcrypt_cost: u32,
    /// `CP_LOGIN_MAX_FAILURES`: failed logins of one email from one client address (IPv6 by
    /// /64) before 429, default 5 per 15 min. Failures from other addresses never count.
    pub login_max_failures: u32,
    /// `CP_LOGIN_MAX_FAILURES_PER_IP`: failed logins from one client address (IPv6 by /64),
    /// whatever the emails, before 429; default 20 per 15 min.
    pub login_max_failures_per_ip: u32,
    /// `CP_LOGIN_THROTTLE_KEYS`: most (email, address) pairs, and most addresses, the login
    /// limiter remembers; default 100,000 each. Locked ones are never evicted (`throttle.rs`).
    pub login_throttle_keys: usize,
    /// `CP_REGISTER_MAX_PER_IP`: accounts one client IP may register per hour, default 10.
    pub register_max_per_ip: u32,
    /// `CP_PUBLIC_STATS_PER_MIN`: shared-link stats requests one client IP may make per
    /// minute, default 120 (a shared dashboard refreshes every 30 s).
    pub public_stats_per_min: u32,
    /// `CP_MAX_SITES_PER_ACCOUNT`: sites one account may hold, default 100 (1-100000); past
    /// it `POST /api/sites` answers 403 `site_limit`.
    pub max_sites_per_account: u32,
    /// `CP_KEY_PURGE_GRACE_SECS`: how old a revoked key's delete marker in the sites bucket
    /// must be before the reconcile purges it, default 3600 (1-2592000); see `keys` rule 6.
    /// Lower it for tests only.
    pub key_purge_grace: Duration,
    /// `CP_BCRYPT_CONCURRENCY`: bcrypt computations for logins at once, default the number of
    /// CPUs; registrations get half of it (at least 1) on top. Past that, 503 with Retry-After.
    pub bcrypt_concurrency: usize,
    /// `CP_TRUSTED_PROXIES`: comma-separated IPs or CIDRs whose `X-Forwarded-For` is believed.
    pub trusted_proxies: TrustedProxies,
    /// `CP_WEB_DIR`: the static web app, default `web`.
    pub web_dir: PathBuf,
    /// `CP_NODE_MODULES_DIR`: npm packages (the charting library), default `node_modules`.
    pub node_modules_dir: PathBuf,
    /// `CP_TRACKER_DIR`: the tracker snippet and demo page, default `tracker`.
    pub tracker_dir: PathBuf,
    /// `CP_INGEST_PUBLIC_URL`: ingest as browsers reach it, for the snippet and the demo page;
    /// default `http://127.0.0.1:8081`.
    pub ingest_public_url: String,
    /// `CP_DEMO_EMAIL`: the account whose first site the `/demo` page reports to. Unset (the
    /// default), `/demo` is off: where nobody seeded that account, anyone could register it and
    /// receive the demo's events. `make run` sets it and seeds the account.
    pub demo_email: Option<String>,
    /// `CP_SMTP_URL` (`smtp://user:pass@host:port`, STARTTLS when offered; `smtps://` for TLS),
    /// `CP_MAIL_FROM` (the `From` of every mail) and `CP_MAIL_RETRY_BASE_MS` (first wait after a
    /// failed send, doubled each time; default 5000). Both of the first two or neither: unset,
    /// no mail is sent (docs/mail.md).
    pub mail: Option<crate::mail::MailSettings>,
    /// `CP_PUBLIC_URL`: the web app as people reach it, for links in mail (invitations);
    /// default `http://127.0.0.1:8080`.
    pub public_url: String,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("addr", &self.addr)
            .field("metrics_addr", &self.metrics_addr)
            .field("backends", &self.backends)
            .field("jwt_secret", &"<redacted>")
            .field("bcrypt_cost", &self.bcrypt_cost)
            .field("mail", &self.mail)
            .finish_non_exhaustive()
    }
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        let cost: u32 = env::ranged("CP_BCRYPT_COST", 12, 4, 31)?;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let bcrypt_concurrency: usize = env::ranged("CP_BCRYPT_CONCURRENCY", cpus, 1, 1024)?;
        let demo_email = env::string("CP_DEMO_EMAIL", "");
        Ok(Self {
            addr: env::addr("CP_API_ADDR", "127.0.0.1:8080")?,
            metrics_addr: env::addr("CP_METRICS_ADDR", "127.0.0.1:9180")?,
            http: ServeLimits::from_env()?,
            backends: Backends::from_env()?,
            jwt_secret: env::secret("CP_JWT_SECRET", 32)?,
            jwt_ttl: Duration::from_secs(3600 * env::ranged::<u64>("CP_JWT_TTL_HOURS", 24, 1, 8760)?),
            bcrypt_cost: cost,
            login_max_failures: env::ranged("CP_LOGIN_MAX_FAILURES", 5, 1, 1000)?,
            login_max_failures_per_ip: env::ranged("CP_LOGIN_MAX_FAILURES_PER_IP", 20, 1, 100_000)?,
            login_throttle_keys: env::ranged("CP_LOGIN_THROTTLE_KEYS", crate::throttle::CAPACITY, 10, 10_000_000)?,
            register_max_per_ip: env::ranged("CP_REGISTER_MAX_PER_IP", 10, 1, 1_000_000)?,
            public_stats_per_min: env::ranged("CP_PUBLIC_STATS_PER_MIN", 120, 1, 1_000_000)?,
            max_sites_per_account: env::ranged("CP_MAX_SITES_PER_ACCOUNT", 100, 1, 100_000)?,
            key_purge_grace: Duration::from_secs(env::ranged("CP_KEY_PURGE_GRACE_SECS", 3600, 1, 30 * 86_400)?),
            bcrypt_concurrency,
            trusted_proxies: TrustedProxies::parse(&env::string("CP_TRUSTED_PROXIES", "")).context("CP_TRUSTED_PROXIES")?,
            web_dir: PathBuf::from(env::string("CP_WEB_DIR", "web")),
            node_modules_dir: PathBuf::from(env::string("CP_NODE_MODULES_DIR", "node_modules")),
            tracker_dir: PathBuf::from(env::string("CP_TRACKER_DIR", "tracker")),
            ingest_public_url: env::string("CP_INGEST_PUBLIC_URL", "http://127.0.0.1:8081"),
            demo_email: (!demo_email.is_empty()).then(|| demo_email.to_ascii_lowercase()),
            mail: crate::mail::MailSettings::parse(
                &env::string("CP_SMTP_URL", ""),
                &env::string("CP_MAIL_FROM", ""),
                env::millis("CP_MAIL_RETRY_BASE_MS", 5000, 10, 600_000)?,
            )?,
            public_url: env::string("CP_PUBLIC_URL", "http://127.0.0.1:8080").trim_end_matches('/').to_string(),
        })
    }
}

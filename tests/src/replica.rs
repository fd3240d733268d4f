//! An api replica in the test's process: the api's own state over a stack's (or a library
//! test's) database, with a clock the test moves and, optionally, mail to a test SMTP server.
//! What a scheduled job of the api does (weekly reports, alerts) is run through it by calling
//! the job's function, so a test can be at Monday 08:05 or an hour past a window without
//! waiting; two replicas stand for two api processes (each takes the job's lease as its own
//! holder). NATS is not reached: the state's client points nowhere and keeps retrying.

use std::{path::PathBuf, sync::Arc, time::Duration};

use api::{config::Config, keys::KeyRegistry, mail::MailSettings, state::AppState};
use mongodb::Database;
use shared::{
    backends::Backends, bus::NatsSettings, client_ip::TrustedProxies, clock::Clock, names::collections as c,
    serve::ServeLimits,
};

/// What [`state`] is told where the api would read an env var: `CP_PUBLIC_URL`.
pub const PUBLIC_URL: &str = "https://cp.example.test";

fn repo(dir: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(dir)
}

/// The api's settings as `Config::from_env` gives them by default, with mail as given.
pub fn config(mail: Option<MailSettings>) -> Config {
    Config {
        addr: "127.0.0.1:0".parse().expect("addr"),
        metrics_addr: "127.0.0.1:0".parse().expect("addr"),
        http: ServeLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_connections: 64,
            max_connections_per_ip: 0,
            trusted_proxies: TrustedProxies::parse("").expect("proxies"),
        },
        backends: Backends {
            nats: NatsSettings::new("nats://127.0.0.1:1", "", "", "", 1).expect("nats settings"),
            mongodb_uri: String::new(),
            mongodb_db: String::new(),
        },
        jwt_secret: "replica-secret-that-is-at-least-32-bytes-long".into(),
        jwt_ttl: Duration::from_secs(3600),
        bcrypt_cost: 4,
        login_max_failures: 5,
        login_max_failures_per_ip: 20,
        login_throttle_keys: 100,
        register_max_per_ip: 10,
        public_stats_per_min: 60,
        max_sites_per_account: 100,
        key_purge_grace: Duration::from_secs(3600),
        bcrypt_concurrency: 2,
        trusted_proxies: TrustedProxies::parse("").expect("proxies"),
        web_dir: repo("web"),
        node_modules_dir: repo("node_modules"),
        tracker_dir: repo("tracker"),
        ingest_public_url: "http://127.0.0.1:8081".into(),
        demo_email: None,
        mail,
        public_url: PUBLIC_URL.into(),
    }
}

/// Mail to the SMTP server at `url` from `ConvertPulse <reports@convertpulse.test>`, retried
/// after 5 s.
pub fn mail_to(url: &str) -> MailSettings {
    MailSettings::parse(url, "ConvertPulse <reports@convertpulse.test>", Duration::from_secs(5))
        .expect("valid settings")
        .expect("mail on")
}

/// A replica's state over `db`, reading `clock`.
pub async fn state(db: Database, clock: Arc<dyn Clock>, mail: Option<MailSettings>) -> AppState {
    // Returns at once and keeps trying in the background: nothing listens there.
    let nats = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect("nats://127.0.0.1:1")
        .await
        .expect("a client, not connected");
    let keys = KeyRegistry::detached(db.collection(c::SITES));
    AppState::new(config(mail), db, nats, keys, clock).await.expect("the state")
}

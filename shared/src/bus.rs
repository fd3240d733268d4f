//! JetStream setup shared by the services: the event stream and the key-value buckets.
//!
//! Every service calls the `ensure_*` function it depends on at start, so the start order of
//! the processes does not matter. The NATS users of `deploy/nats/accounts.conf` allow each
//! service to create (never to purge or delete) the streams it uses, for that reason; ingest
//! alone may also update the event stream, to give it the configured per-site share
//! ([`crate::site_share`]).
//!
//! In a cluster, [`NatsSettings`] takes several seed URLs and the replica count of the stream
//! and buckets; the client fails over to another node by itself, and the servers tell it about
//! the rest of the cluster.

use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;
use async_nats::jetstream::{Context, kv, stream};

use crate::names;
use crate::telemetry::Chain;

/// Largest message the event stream takes (headers and payload). Ingest keeps its grouped
/// messages well under it (`ingest/src/publisher.rs`).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Limits of the event stream. File storage, and when full it refuses new batches (ingest then
/// answers 503) rather than dropping stored ones that the aggregator has not seen yet; a site
/// that holds its own share of it is refused alone (429).
#[derive(Debug, Clone)]
pub struct StreamLimits {
    /// Most bytes on disk (`CP_STREAM_MAX_BYTES`, default 1 GiB).
    pub max_bytes: i64,
    /// Oldest message kept (`CP_STREAM_MAX_AGE_HOURS`, default 7 days).
    pub max_age: Duration,
    /// Window in which a repeated `Nats-Msg-Id` is stored once.
    pub duplicate_window: Duration,
    /// Most messages of one site the stream holds (`CP_STREAM_MAX_MSGS_PER_SITE`, default
    /// [`default_msgs_per_site`]); past it the stream refuses that site's messages only, and
    /// ingest answers them 429 (see [`crate::site_share`]).
    pub max_msgs_per_site: i64,
}

/// The default per-site cap: a quarter of `max_bytes` in messages of the largest size the
/// stream takes ([`MAX_MESSAGE_BYTES`]), so that a site can never hold more than a quarter of
/// the stream, whatever its batches hold and however they compress (1,024 messages for the
/// default 1 GiB). At least one message.
pub fn default_msgs_per_site(max_bytes: i64) -> i64 {
    (max_bytes / (4 * MAX_MESSAGE_BYTES as i64)).max(1)
}

impl StreamLimits {
    pub fn from_env() -> anyhow::Result<Self> {
        // JetStream reads 0 or less as "no limit": a stream that never refuses would fill the
        // disk instead. From 1 MiB to 1 PiB, and from an hour to ten years.
        let max_bytes = crate::config::ranged("CP_STREAM_MAX_BYTES", 1_i64 << 30, 1 << 20, 1 << 50)?;
        Ok(Self {
            max_bytes,
            max_age: Duration::from_secs(3600 * crate::config::ranged("CP_STREAM_MAX_AGE_HOURS", 24 * 7_u64, 1, 87_600)?),
            duplicate_window: Duration::from_secs(5 * 60),
            // 0 or less would again mean "no limit" to JetStream.
            max_msgs_per_site: crate::config::ranged(
                "CP_STREAM_MAX_MSGS_PER_SITE",
                default_msgs_per_site(max_bytes),
                1,
                1 << 40,
            )?,
        })
    }
}

/// How a service reaches NATS. `Debug` leaves the password out.
#[derive(Clone)]
pub struct NatsSettings {
    /// `NATS_URL`: one server or a comma-separated list of seed servers
    /// (`nats://n1:4222,nats://n2:4222`), default `nats://127.0.0.1:4222`. `tls://` requires TLS.
    pub urls: Vec<String>,
    /// `NATS_USER` and `NATS_PASSWORD`: this service's NATS user, when the server requires one.
    pub user: Option<(String, String)>,
    /// `NATS_TLS_CA`: the CA that signed the servers' certificates; setting it requires TLS.
    pub tls_ca: Option<PathBuf>,
    /// `CP_NATS_REPLICAS`: copies of the event stream and buckets a service creates, default 1;
    /// 3 on a three-node cluster. Only applies when a stream is created.
    pub replicas: usize,
}

impl std::fmt::Debug for NatsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSettings")
            .field("urls", &self.urls.iter().map(|u| crate::config::redact_userinfo(u)).collect::<Vec<_>>())
            .field("user", &self.user.as_ref().map(|(u, _)| u.as_str()))
            .field("tls_ca", &self.tls_ca)
            .field("replicas", &self.replicas)
            .finish()
    }
}

impl NatsSettings {
    pub fn from_env() -> anyhow::Result<Self> {
        use crate::config::{parse, string};
        Self::new(
            &string("NATS_URL", "nats://127.0.0.1:4222"),
            &string("NATS_USER", ""),
            &std::env::var("NATS_PASSWORD").unwrap_or_default(),
            &string("NATS_TLS_CA", ""),
            parse("CP_NATS_REPLICAS", 1)?,
        )
    }

    /// Checks and builds the settings from the variables' values (empty = unset).
    pub fn new(url: &str, user: &str, password: &str, tls_ca: &str, replicas: usize) -> anyhow::Result<Self> {
        let urls: Vec<String> = url.split(',').map(|u| u.trim().to_string()).filter(|u| !u.is_empty()).collect();
        anyhow::ensure!(!urls.is_empty(), "NATS_URL names no server");
        for url in &urls {
            url.parse::<async_nats::ServerAddr>()
                .with_context(|| format!("NATS_URL: {:?} is not a NATS server URL", crate::config::redact_userinfo(url)))?;
        }
        anyhow::ensure!(
            user.is_empty() == password.is_empty(),
            "NATS_USER and NATS_PASSWORD go together: set both or neither"
        );
        anyhow::ensure!(
            user.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "NATS_USER may hold letters, digits, - and _ only (it names the reply inbox subject)"
        );
        anyhow::ensure!((1..=5).contains(&replicas), "CP_NATS_REPLICAS must be from 1 to 5");
        Ok(Self {
            urls,
            user: (!user.is_empty()).then(|| (user.to_string(), password.to_string())),
            tls_ca: (!tls_ca.is_empty()).then(|| PathBuf::from(tls_ca)),
            replicas,
        })
    }

    /// Settings for one plain server without credentials (tests, tools).
    pub fn plain(url: &str) -> Self {
        Self { urls: vec![url.to_string()], user: None, tls_ca: None, replicas: 1 }
    }

    /// The subject prefix of this connection's reply inboxes: `_INBOX_<user>` with a user, so
    /// the server can let each service subscribe to its own replies only.
    pub fn inbox_prefix(&self) -> String {
        match &self.user {
            Some((user, _)) => format!("_INBOX_{user}"),
            None => "_INBOX".to_string(),
        }
    }

    fn options(&self, service: &str) -> async_nats::ConnectOptions {
        let mut opts = async_nats::ConnectOptions::new();
        if let Some((user, password)) = &self.user {
            opts = opts.user_and_password(user.clone(), password.clone());
        }
        if let Some(ca) = &self.tls_ca {
            opts = opts.add_root_certificates(ca.clone()).require_tls(true);
        }
        opts.name(service)
            .custom_inbox_prefix(self.inbox_prefix())
            .connection_timeout(Duration::from_secs(2))
            // A dead node refuses at once; retry the next seed right away, then back off a little.
            .reconnect_delay_callback(|attempts| Duration::from_millis((attempts as u64).saturating_sub(1).min(10) * 100))
            .max_reconnects(None)
    }
}

/// Connects to NATS, retrying for up to `patience` so services may start before NATS. Any
/// reachable seed will do; afterwards the client follows the cluster on its own.
pub async fn connect(settings: &NatsSettings, service: &str, patience: Duration) -> anyhow::Result<async_nats::Client> {
    let deadline = tokio::time::Instant::now() + patience;
    let addrs: Vec<async_nats::ServerAddr> =
        settings.urls.iter().map(|u| u.parse()).collect::<Result<_, _>>().context("NATS_URL")?;
    let shown = settings.urls.iter().map(|u| crate::config::redact_userinfo(u)).collect::<Vec<_>>().join(",");
    loop {
        let attempt = settings.options(service).connect(addrs.clone()).await;
        match attempt {
            Ok(client) => return Ok(client),
            // Wrong credentials or permissions will not fix themselves: say so at once.
            Err(e) if e.kind() == async_nats::ConnectErrorKind::AuthorizationViolation => {
                return Err(e).with_context(|| format!("NATS at {shown} refused the credentials of {service}"));
            }
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %Chain(&e), url = %shown, "nats not reachable yet, retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e).with_context(|| format!("connecting to NATS at {shown}")),
        }
    }
}

/// How long stream and bucket setup keeps trying: a cluster that is still forming answers
/// "no suitable peers" or times out for a few seconds.
const SETUP_PATIENCE: Duration = Duration::from_secs(30);

/// Runs `step` until it succeeds or [`SETUP_PATIENCE`] has passed.
async fn with_patience<T, F, Fut>(what: &str, mut step: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let deadline = tokio::time::Instant::now() + SETUP_PATIENCE;
    loop {
        match step().await {
            Ok(v) => return Ok(v),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %format!("{e:#}"), what, "jetstream not ready, retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Creates the event stream if absent (with `replicas` copies) and returns it. An existing
/// stream is left as it is; ingest then brings its per-site share to the configured one
/// ([`crate::site_share::ensure`]).
pub async fn ensure_stream(js: &Context, limits: &StreamLimits, replicas: usize) -> anyhow::Result<stream::Stream> {
    with_patience("event stream", || create_stream(js, limits, replicas)).await
}

async fn create_stream(js: &Context, limits: &StreamLimits, replicas: usize) -> anyhow::Result<stream::Stream> {
    js.get_or_create_stream(stream::Config {
        name: names::STREAM.to_string(),
        subjects: vec![names::SUBJECTS.to_string()],
        storage: stream::StorageType::File,
        // Work-queue retention: a message is gone once the aggregator acked it, so the disk
        // holds only what MongoDB does not have yet.
        retention: stream::RetentionPolicy::WorkQueue,
        discard: stream::DiscardPolicy::New,
        max_bytes: limits.max_bytes,
        // Each site's share (`site_share.rs`): past it, the stream refuses that site's messages.
        max_messages_per_subject: limits.max_msgs_per_site,
        discard_new_per_subject: true,
        max_age: limits.max_age,
        max_message_size: MAX_MESSAGE_BYTES as i32,
        duplicate_window: limits.duplicate_window,
        num_replicas: replicas,
        ..Default::default()
    })
    .await
    .with_context(|| format!("creating stream {}", names::STREAM))
}

/// Opens a key-value bucket, creating its backing stream first when absent.
///
/// The stream is created by hand, with the settings the client library would use, because the
/// library's own `create_key_value` first asks for account info in a form nats-server 2.9 does
/// not send.
async fn ensure_kv(
    js: &Context,
    bucket: &str,
    description: &str,
    max_age: Duration,
    replicas: usize,
) -> anyhow::Result<kv::Store> {
    with_patience(bucket, || create_kv(js, bucket, description, max_age, replicas)).await
}

async fn create_kv(
    js: &Context,
    bucket: &str,
    description: &str,
    max_age: Duration,
    replicas: usize,
) -> anyhow::Result<kv::Store> {
    if let Ok(store) = js.get_key_value(bucket).await {
        return Ok(store);
    }
    js.get_or_create_stream(stream::Config {
        name: format!("KV_{bucket}"),
        description: Some(description.to_string()),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age,
        max_message_size: -1,
        max_bytes: -1,
        storage: stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        num_replicas: replicas,
        ..Default::default()
    })
    .await
    .with_context(|| format!("creating key-value bucket {bucket}"))?;
    js.get_key_value(bucket).await.with_context(|| format!("opening key-value bucket {bucket}"))
}

/// The bucket mapping API keys to sites (written by the api, watched by ingest).
pub async fn sites_bucket(js: &Context, replicas: usize) -> anyhow::Result<kv::Store> {
    ensure_kv(js, names::KV_SITES, "site API key -> site entry", Duration::ZERO, replicas).await
}

/// The bucket of daily visitor-hash salts. A salt is gone 48 h after it was written.
pub async fn salts_bucket(js: &Context, replicas: usize) -> anyhow::Result<kv::Store> {
    ensure_kv(js, names::KV_SALTS, "UTC day -> visitor hash salt", Duration::from_secs(48 * 3600), replicas).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_settings_take_a_seed_list_and_refuse_what_cannot_work() {
        let s = NatsSettings::new(" nats://a:4222, nats://b:4222 ,,nats://c:4222", "ingest", "pw", "", 3).expect("valid");
        assert_eq!(s.urls, ["nats://a:4222", "nats://b:4222", "nats://c:4222"]);
        assert_eq!(s.inbox_prefix(), "_INBOX_ingest");
        assert_eq!(NatsSettings::new("nats://a:4222", "", "", "", 1).expect("valid").inbox_prefix(), "_INBOX");
        assert!(NatsSettings::new("tls://a:4222", "", "", "/ca.pem", 1).expect("valid").tls_ca.is_some());

        let invalid = [
            ("no server", ",", "", "", 1),
            ("user without password", "nats://a:4222", "ingest", "", 1),
            ("password without user", "nats://a:4222", "", "pw", 1),
            ("user that is no subject token", "nats://a:4222", "in.gest", "pw", 1),
            ("zero replicas", "nats://a:4222", "", "", 0),
            ("six replicas", "nats://a:4222", "", "", 6),
        ];
        for (case, url, user, password, replicas) in invalid {
            assert!(NatsSettings::new(url, user, password, "", replicas).is_err(), "case {case}: accepted");
        }
    }

    #[test]
    fn the_default_share_keeps_a_site_to_a_quarter_of_the_stream_at_the_largest_message() {
        assert_eq!(default_msgs_per_site(1 << 30), 1024, "the default 1 GiB stream");
        assert_eq!(default_msgs_per_site(8 << 30), 8192);
        assert_eq!(default_msgs_per_site(1 << 20), 1, "the smallest stream still takes one message a site");
        for max_bytes in [1_i64 << 20, 5 << 20, 1 << 30, 3 << 30, 1 << 50] {
            let held = default_msgs_per_site(max_bytes) * MAX_MESSAGE_BYTES as i64;
            assert!(held <= (max_bytes / 4).max(MAX_MESSAGE_BYTES as i64), "{max_bytes}: a site may hold {held} bytes");
        }
    }

    #[test]
    fn nats_settings_debug_shows_no_password() {
        let s = NatsSettings::new("nats://u:urlsecret@a:4222", "api", "s3cret", "", 1).expect("valid");
        let shown = format!("{s:?}");
        assert!(!shown.contains("s3cret") && !shown.contains("urlsecret"), "{shown}");
        assert!(shown.contains("api"), "{shown}");
    }
}

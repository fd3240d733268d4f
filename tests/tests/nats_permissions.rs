//! Least privilege on the bus: the NATS users of `deploy/nats/accounts.conf`, on a real
//! nats-server, with the services' own connect code. Security found that anything reaching
//! NATS could rewrite `$KV.cp_sites.*` and point a key at another tenant's site: now only the
//! api's user can, and a connection without a user gets nowhere. And `NATS_TLS_CA` makes the
//! services speak TLS (certificates made with openssl for the test).

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use async_nats::jetstream;
use cp_tests::stack::free_port;
use shared::{
    bus::{self, NatsSettings},
    site_share,
};

const PASSWORDS: [(&str, &str); 4] = [
    ("CP_NATS_INGEST_PASSWORD", "ingest-test-password"),
    ("CP_NATS_AGGREGATOR_PASSWORD", "aggregator-test-password"),
    ("CP_NATS_API_PASSWORD", "api-test-password"),
    ("CP_NATS_ADMIN_PASSWORD", "admin-test-password"),
];

/// A nats-server with JetStream and the checked-in accounts; killed when dropped.
struct Server {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Server {
    fn start() -> Self {
        Self::start_with(|_| String::new())
    }

    /// `extra` gets the server's folder and returns more config lines.
    fn start_with(extra: impl FnOnce(&std::path::Path) -> String) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("cp-nats-perm-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let extra = extra(&dir);
        let accounts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nats/accounts.conf");
        std::fs::copy(accounts, dir.join("accounts.conf")).expect("accounts.conf");
        let conf = format!(
            "host: 127.0.0.1\nport: {port}\njetstream {{ store_dir: \"{}\" }}\ninclude ./accounts.conf\n{extra}",
            dir.join("js").display()
        );
        std::fs::write(dir.join("nats.conf"), conf).expect("nats.conf");
        let log = std::fs::File::create(dir.join("nats.log")).expect("log");
        let mut cmd = Command::new("nats-server");
        cmd.arg("-c").arg(dir.join("nats.conf")).stdout(Stdio::from(log.try_clone().expect("log"))).stderr(Stdio::from(log));
        for (k, v) in PASSWORDS {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("nats-server");
        Self { child, port, dir }
    }

    fn settings(&self, user: Option<(&str, &str)>) -> NatsSettings {
        let mut s = NatsSettings::plain(&format!("nats://127.0.0.1:{}", self.port));
        s.user = user.map(|(u, p)| (u.to_string(), p.to_string()));
        s
    }

    async fn connect(&self, user: &str) -> async_nats::Client {
        let password = PASSWORDS.iter().find(|(k, _)| k.contains(&user.to_uppercase())).expect("user").1;
        bus::connect(&self.settings(Some((user, password))), &format!("test-{user}"), Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("{user} connects: {e:#}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// True when `op` fails or gets no answer within 2 s (a publish the server refuses is dropped,
/// so its JetStream ack never comes).
async fn refused<T, E>(op: impl std::future::Future<Output = Result<T, E>>) -> bool {
    !matches!(tokio::time::timeout(Duration::from_secs(2), op).await, Ok(Ok(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_user_may_do_its_job_and_nothing_else() {
    let server = Server::start();
    // The api creates and writes the sites bucket: its job.
    let api = server.connect("api").await;
    let sites = bus::sites_bucket(&jetstream::new(api.clone()), 1).await.expect("api opens cp_sites");
    sites
        .put("cp_key_of_tenant_a", r#"{"site_id":"a","domain":"a.example","timezone":"UTC"}"#.into())
        .await
        .expect("api writes a key");

    // Ingest reads keys, watches them, creates salts and publishes batches.
    let ingest = server.connect("ingest").await;
    let ingest_js = jetstream::new(ingest.clone());
    let stream = bus::ensure_stream(&ingest_js, &bus::StreamLimits::from_env().expect("limits"), 1)
        .await
        .expect("ingest creates the stream");
    let ingest_sites = bus::sites_bucket(&ingest_js, 1).await.expect("ingest opens cp_sites");
    let entry = ingest_sites.get("cp_key_of_tenant_a").await.expect("ingest reads a key");
    assert!(entry.is_some(), "ingest sees the api's key");
    let salts = bus::salts_bucket(&ingest_js, 1).await.expect("ingest opens cp_salts");
    salts.create("2026-11-26", "salt".into()).await.expect("ingest creates a salt");
    ingest_js.publish("cp.events.a", "{}".into()).await.expect("publish").await.expect("ingest's batch is stored");
    // Ingest keeps the stream's share per site (an update of CP_EVENTS); the aggregator may not.
    let mut limits = bus::StreamLimits::from_env().expect("limits");
    limits.max_msgs_per_site *= 2;
    let from = bus::StreamLimits::from_env().expect("limits").max_msgs_per_site;
    assert_eq!(
        site_share::ensure(&ingest_js, &limits).await.expect("ingest updates the stream"),
        site_share::Outcome::Applied { from }
    );

    // ...but cannot point a key at another site, nor revoke one.
    assert!(
        refused(ingest_sites.put("cp_key_of_tenant_a", r#"{"site_id":"b","domain":"b.example","timezone":"UTC"}"#.into()))
            .await,
        "ingest's user wrote $KV.cp_sites"
    );
    assert!(refused(ingest_sites.delete("cp_key_of_tenant_a")).await, "ingest's user deleted a key");
    assert!(refused(ingest_js.delete_stream("CP_EVENTS")).await, "ingest's user deleted the event stream");
    assert!(refused(stream.purge().into_future()).await, "ingest's user purged the event stream");
    let value = sites.get("cp_key_of_tenant_a").await.expect("get").expect("the key is still there");
    assert!(String::from_utf8_lossy(&value).contains(r#""site_id":"a""#), "the key still points at site a: {value:?}");

    // The aggregator consumes the stream and touches no bucket.
    let aggregator = server.connect("aggregator").await;
    let aggregator_js = jetstream::new(aggregator.clone());
    assert!(refused(bus::sites_bucket(&aggregator_js, 1)).await, "the aggregator's user opened cp_sites");
    assert!(
        refused(aggregator_js.publish("$KV.cp_sites.cp_key_of_tenant_a", "{}".into()).await.expect("send").into_future())
            .await,
        "the aggregator's user wrote $KV.cp_sites"
    );
    assert!(
        refused(aggregator_js.publish("cp.events.a", "{}".into()).await.expect("send").into_future()).await,
        "the aggregator's user published a batch"
    );
    limits.max_msgs_per_site *= 2;
    assert!(refused(site_share::ensure(&aggregator_js, &limits)).await, "the aggregator's user updated the event stream");

    // The api writes keys and nothing else.
    let api_js = jetstream::new(api.clone());
    assert!(
        refused(api_js.publish("cp.events.a", "{}".into()).await.expect("send").into_future()).await,
        "the api's user published a batch"
    );
    assert!(
        refused(api_js.publish("$KV.cp_salts.2026-11-27", "x".into()).await.expect("send").into_future()).await,
        "the api's user wrote a salt"
    );

    // The api purges the delete markers of revoked keys (api/src/keys.rs rule 6); ingest may not.
    sites.put("cp_revoked_key", r#"{"site_id":"r","domain":"r.example","timezone":"UTC"}"#.into()).await.expect("put");
    sites.delete("cp_revoked_key").await.expect("the api revokes a key");
    let marker = "$KV.cp_sites.cp_revoked_key";
    assert!(refused(ingest_sites.stream.purge().filter(marker).into_future()).await, "ingest's user purged a key's marker");
    assert!(sites.entry("cp_revoked_key").await.expect("entry").is_some(), "the marker is still there");
    let purged = sites.stream.purge().filter(marker).await.expect("the api purges a revoked key's marker");
    assert_eq!(purged.purged, 1);
    assert!(sites.entry("cp_revoked_key").await.expect("entry").is_none(), "no history left for the key");
    assert!(
        refused(api.request("$JS.API.STREAM.PURGE.CP_EVENTS", "{}".into())).await,
        "the api's user purged the event stream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_valid_credentials_is_refused() {
    let server = Server::start();
    // Wait for the server through a valid user first, so the refusals below are the server's.
    let _ = server.connect("api").await;
    for (case, user) in [
        ("no user", None),
        ("wrong password", Some(("ingest", "not-the-password"))),
        ("unknown user", Some(("mallory", "x"))),
    ] {
        let result = bus::connect(&server.settings(user), "test-intruder", Duration::from_secs(1)).await;
        assert!(result.is_err(), "case {case}: connected");
    }
}

/// A CA and a server certificate for 127.0.0.1, made with openssl in `dir`.
fn make_certificates(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl (Debian package openssl)");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=cp-test-ca",
    ]);
    run(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost").expect("ext.cnf");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nats_tls_ca_the_services_speak_tls_and_refuse_a_plain_server() {
    let mut ca = std::path::PathBuf::new();
    let server = Server::start_with(|dir| {
        make_certificates(dir);
        ca = dir.join("ca.crt");
        format!(
            "tls {{ cert_file: \"{}\", key_file: \"{}\" }}\n",
            dir.join("server.crt").display(),
            dir.join("server.key").display()
        )
    });
    let password = PASSWORDS.iter().find(|(k, _)| k.contains("API")).expect("api").1;
    let mut settings = NatsSettings::plain(&format!("tls://127.0.0.1:{}", server.port));
    settings.user = Some(("api".to_string(), password.to_string()));
    settings.tls_ca = Some(ca.clone());
    let client = bus::connect(&settings, "test-tls", Duration::from_secs(10)).await.expect("connects over TLS");
    bus::sites_bucket(&jetstream::new(client), 1).await.expect("JetStream over TLS");

    // The CA is required: a server without TLS is refused.
    let plain = Server::start();
    let _ = plain.connect("api").await;
    let mut settings = plain.settings(Some(("api", password)));
    settings.tls_ca = Some(ca);
    assert!(bus::connect(&settings, "test-tls", Duration::from_secs(1)).await.is_err(), "connected to a server without TLS");
}

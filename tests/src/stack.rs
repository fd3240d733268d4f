//! The processes of one isolated ConvertPulse stack.
//!
//! Binaries are taken from `CP_BIN_DIR` (default: the workspace's `target/debug`), the
//! MongoDB-wire server from `CP_NX_BIN` (default: `.venv/bin/nx-27017`). When `MONGODB_URI` is
//! set, that server is used instead, with a database name of the stack's own. Each service
//! records the shapes of its MongoDB commands in the stack's directory
//! ([`Stack::query_shapes`], checked against `docs/queries.md` by `tests/tests/query_shapes.rs`).

use std::{
    collections::HashMap,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use crate::wait;

static STACK_SEQ: AtomicU32 = AtomicU32::new(0);

/// The IP-to-country database `deploy/local/deps.sh` installs, relative to the workspace.
pub const GEOIP_DB: &str = "deploy/geoip/node_modules/@ip-location-db/geo-whois-asn-country-mmdb/geo-whois-asn-country.mmdb";

/// A process of the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proc {
    Nats,
    Mongo,
    Ingest,
    Aggregator,
    Api,
}

impl Proc {
    fn name(self) -> &'static str {
        match self {
            Self::Nats => "nats",
            Self::Mongo => "mongo",
            Self::Ingest => "ingest",
            Self::Aggregator => "aggregator",
            Self::Api => "api",
        }
    }
}

/// Free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// The MongoDB-wire server (`CP_NX_BIN`, default `.venv/bin/nx-27017`) on `port`, with its
/// data and logs under `dir`.
pub fn nx_command(dir: &Path, port: &str) -> Command {
    let nx = std::env::var_os("CP_NX_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv").join("bin").join("nx-27017"));
    let mut c = Command::new(nx);
    c.args(["--host", "127.0.0.1", "-p", port, "--data-dir"])
        .arg(dir.join("nx"))
        .arg("--log-file")
        .arg(dir.join("nx-internal.log"))
        .arg("--pid-file")
        .arg(dir.join("nx.pid"));
    c
}

/// `rel` under the workspace root.
pub fn workspace_path(rel: &str) -> PathBuf {
    workspace_root().join(rel)
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn bin_dir() -> PathBuf {
    std::env::var_os("CP_BIN_DIR").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("target").join("debug"))
}

/// The path of one of the service binaries (`ingest`, `api`, `aggregator`) the stacks run.
pub fn service_binary(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// One isolated stack. Everything it started is killed when it is dropped.
pub struct Stack {
    pub dir: PathBuf,
    pub nats_port: u16,
    pub mongo_uri: String,
    pub mongo_db: String,
    pub api_port: u16,
    pub ingest_port: u16,
    pub aggregator_port: u16,
    /// Each service's internal metrics listener (`CP_METRICS_ADDR`), learned like the above.
    metrics_ports: HashMap<Proc, u16>,
    extra_env: Vec<(String, String)>,
    children: HashMap<Proc, Child>,
    external_mongo: bool,
    http: reqwest::Client,
}

impl Stack {
    /// Starts everything with the default test settings.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts everything; `env` overrides or adds service settings.
    ///
    /// Ports are picked free and then released before the servers bind them, so another
    /// process can take one in between; an attempt whose processes do not all come up is torn
    /// down and retried on fresh ports.
    pub async fn start_with(env: &[(&str, &str)]) -> Self {
        let mut last_error = String::new();
        for _attempt in 0..3 {
            let mut stack = Self::new(env);
            match stack.boot().await {
                Ok(()) => return stack,
                Err(e) => {
                    last_error = e;
                    eprintln!("stack start failed ({last_error}); retrying on fresh ports");
                }
            }
        }
        panic!("the test stack did not start: {last_error}");
    }

    fn new(env: &[(&str, &str)]) -> Self {
        let seq = STACK_SEQ.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("cp-test-{}-{seq}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("nx")).expect("temp dir");
        let (mongo_uri, external_mongo) = match std::env::var("MONGODB_URI") {
            Ok(uri) if !uri.is_empty() => (uri, true),
            _ => (format!("mongodb://127.0.0.1:{}", free_port()), false),
        };
        Self {
            nats_port: free_port(),
            mongo_uri,
            mongo_db: format!("cp_test_{}_{seq}", std::process::id()),
            // Learned from each service's "listening addr=" log line: they bind port 0, so no
            // other process can take their port between picking and binding.
            api_port: 0,
            ingest_port: 0,
            aggregator_port: 0,
            metrics_ports: HashMap::new(),
            extra_env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            children: HashMap::new(),
            external_mongo,
            dir,
            http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("http client"),
        }
    }

    async fn boot(&mut self) -> Result<(), String> {
        self.start_proc(Proc::Nats);
        self.start_proc(Proc::Mongo);
        // Ingest first: the api is told ingest's public URL.
        for p in [Proc::Ingest, Proc::Api, Proc::Aggregator] {
            self.start_proc(p);
            let port = self.learn_port(p, "listening").await?;
            match p {
                Proc::Ingest => self.ingest_port = port,
                Proc::Api => self.api_port = port,
                _ => self.aggregator_port = port,
            }
            let metrics_port = self.learn_port(p, "metrics listening").await?;
            self.metrics_ports.insert(p, metrics_port);
        }
        for p in [Proc::Api, Proc::Ingest, Proc::Aggregator] {
            let url = format!("{}/readyz", self.url(p));
            let http = self.http.clone();
            let ready = wait::poll(Duration::from_secs(20), || {
                let (http, url) = (http.clone(), url.clone());
                async move { http.get(&url).send().await.ok().filter(|r| r.status() == 200).map(|_| ()) }
            })
            .await;
            if let Some(dead) = self.exited() {
                return Err(format!("{} exited", dead.name()));
            }
            if ready.is_none() {
                return Err(format!("{} not ready within 20 s", p.name()));
            }
        }
        Ok(())
    }

    /// The port a service reports in its `<name> <what> addr=127.0.0.1:PORT` log line
    /// (`api listening`, `api metrics listening`).
    async fn learn_port(&mut self, p: Proc, what: &str) -> Result<u16, String> {
        let path = self.dir.join(format!("{}.log", p.name()));
        let needle = format!(" {} {what} addr=", p.name());
        let port = wait::poll(Duration::from_secs(40), || {
            let (path, needle) = (path.clone(), needle.clone());
            async move {
                let text = std::fs::read_to_string(&path).ok()?;
                let line = text.lines().find(|l| l.contains(&needle))?;
                line.rsplit(':').next()?.trim().parse::<u16>().ok()
            }
        })
        .await;
        if let Some(dead) = self.exited() {
            return Err(format!("{} exited", dead.name()));
        }
        port.ok_or_else(|| format!("{} did not report its {what} port", p.name()))
    }

    /// True when the stack uses a MongoDB it did not start (`MONGODB_URI`), which it cannot stop.
    pub fn external_mongo(&self) -> bool {
        self.external_mongo
    }

    /// A process of the stack that has already exited, if any.
    fn exited(&mut self) -> Option<Proc> {
        self.children.iter_mut().find_map(|(p, child)| matches!(child.try_wait(), Ok(Some(_))).then_some(*p))
    }

    fn port_of(&self, p: Proc) -> u16 {
        match p {
            Proc::Api => self.api_port,
            Proc::Ingest => self.ingest_port,
            Proc::Aggregator => self.aggregator_port,
            Proc::Nats => self.nats_port,
            Proc::Mongo => 0,
        }
    }

    /// Base URL of an HTTP service.
    pub fn url(&self, p: Proc) -> String {
        format!("http://127.0.0.1:{}", self.port_of(p))
    }

    /// `/metrics` of a service, on its internal listener.
    pub fn metrics_url(&self, p: Proc) -> String {
        format!("http://127.0.0.1:{}/metrics", self.metrics_ports.get(&p).copied().unwrap_or_default())
    }

    /// A service's metrics in the Prometheus text format.
    pub async fn metrics(&self, p: Proc) -> String {
        let res = self.http.get(self.metrics_url(p)).send().await.expect("metrics listener reachable");
        assert_eq!(res.status(), 200, "{} /metrics", p.name());
        res.text().await.expect("metrics text")
    }

    fn log_file(&self, p: Proc) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{}.log", p.name())))
            .expect("log file")
    }

    /// Starts (or restarts) one process.
    pub fn start_proc(&mut self, p: Proc) {
        let mut cmd = match p {
            Proc::Nats => {
                let mut c = Command::new("nats-server");
                c.args(["-js", "-a", "127.0.0.1", "-p", &self.nats_port.to_string(), "-sd"]).arg(self.dir.join("js"));
                c
            }
            Proc::Mongo => {
                if self.external_mongo {
                    return;
                }
                let port = self.mongo_uri.rsplit(':').next().unwrap_or_default().to_string();
                nx_command(&self.dir, &port)
            }
            svc => {
                let bin = bin_dir().join(svc.name());
                assert!(
                    bin.exists(),
                    "{} is missing: build the binaries first (`cargo build --bins`, which `make test` does)",
                    bin.display()
                );
                let mut c = Command::new(bin);
                c.env("NATS_URL", format!("nats://127.0.0.1:{}", self.nats_port))
                    .env("MONGODB_URI", &self.mongo_uri)
                    .env("MONGODB_DB", &self.mongo_db)
                    .env("CP_JWT_SECRET", "test-secret-that-is-at-least-32-bytes-long")
                    .env("CP_BCRYPT_COST", "4")
                    .env("CP_API_ADDR", format!("127.0.0.1:{}", self.api_port))
                    .env("CP_INGEST_ADDR", format!("127.0.0.1:{}", self.ingest_port))
                    .env("CP_AGGREGATOR_ADDR", format!("127.0.0.1:{}", self.aggregator_port))
                    .env("CP_METRICS_ADDR", format!("127.0.0.1:{}", self.metrics_ports.get(&svc).copied().unwrap_or(0)))
                    .env("CP_REGISTER_MAX_PER_IP", "100000")
                    .env("CP_HTTP_MAX_CONNECTIONS_PER_IP", "100000")
                    .env("CP_INGEST_PUBLIC_URL", format!("http://127.0.0.1:{}", self.ingest_port))
                    .env("CP_WEB_DIR", workspace_root().join("web"))
                    .env("CP_TRACKER_DIR", workspace_root().join("tracker"))
                    .env("CP_NODE_MODULES_DIR", workspace_root().join("node_modules"))
                    .env("CP_GEOIP_DB", workspace_root().join(GEOIP_DB))
                    .env("CP_RATE_LIMIT_IP_PER_SEC", "10000")
                    .env("CP_RATE_LIMIT_IP_BURST", "10000")
                    .env("CP_ACK_WAIT_SECS", "3")
                    .env("CP_FLUSH_INTERVAL_MS", "20")
                    .env("RUST_LOG", "info")
                    .env("NO_COLOR", "1")
                    .env(shared::command_log::ENV, self.command_log(svc));
                for (k, v) in &self.extra_env {
                    c.env(k, v);
                }
                c
            }
        };
        let log = self.log_file(p);
        let err = log.try_clone().expect("log file");
        cmd.stdin(Stdio::null()).stdout(Stdio::from(log)).stderr(Stdio::from(err));
        let child = cmd.spawn().unwrap_or_else(|e| panic!("starting {}: {e}", p.name()));
        self.children.insert(p, child);
    }

    /// The process id of a process of the stack while it runs (benches read `/proc/<pid>`).
    pub fn pid(&self, p: Proc) -> Option<u32> {
        self.children.get(&p).map(Child::id)
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(&mut self, p: Proc) {
        if let Some(mut child) = self.children.remove(&p) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait for the exit; returns how long the process took to stop.
    pub fn terminate(&mut self, p: Proc) -> Duration {
        let started = std::time::Instant::now();
        if let Some(mut child) = self.children.remove(&p) {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = started + Duration::from_secs(15);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return started.elapsed();
                }
                // The poll interval of this deadline loop (what it returns is the time to stop).
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        started.elapsed()
    }

    /// Waits until the service answers 200 on `/readyz`.
    pub async fn wait_ready(&self, p: Proc) {
        let url = format!("{}/readyz", self.url(p));
        let http = self.http.clone();
        wait::until(&format!("{} to be ready", p.name()), Duration::from_secs(30), || {
            let (http, url) = (http.clone(), url.clone());
            async move { http.get(&url).send().await.ok().filter(|r| r.status() == 200).map(|_| ()) }
        })
        .await;
    }

    /// What the aggregators have yet to finish, as JetStream counts it; `None` while NATS, the
    /// stream or the aggregators' consumer cannot be asked.
    pub async fn backlog(&self) -> Option<Backlog> {
        let nats = async_nats::connect(format!("nats://127.0.0.1:{}", self.nats_port)).await.ok()?;
        Backlog::of(&async_nats::jetstream::new(nats)).await
    }

    /// Waits until the aggregators have finished everything the stream was given
    /// ([`Backlog::is_empty`]), so no accepted batch can still change the numbers. Fails when
    /// the backlog has not moved for 15 s (stuck), or after 120 s in all: a long backlog on a
    /// loaded machine drains slowly, and only a drain that stops is a failure.
    pub async fn wait_drained(&self) {
        let nats =
            async_nats::connect(format!("nats://127.0.0.1:{}", self.nats_port)).await.expect("the stack's NATS reachable");
        let js = async_nats::jetstream::new(nats);
        let started = std::time::Instant::now();
        let (mut last, mut moved_at) = (None, started);
        loop {
            let now = Backlog::of(&js).await;
            if now.as_ref().is_some_and(Backlog::is_empty) {
                return;
            }
            if now != last {
                last = now;
                moved_at = std::time::Instant::now();
            }
            if moved_at.elapsed() >= Duration::from_secs(15) || started.elapsed() >= Duration::from_secs(120) {
                panic!("the aggregators did not drain the stream (no progress for 15 s, or 120 s in all); now: {last:?}");
            }
            // The poll interval, as `wait::poll`'s.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The file a service appends the shapes of its MongoDB commands to
    /// (`CP_MONGO_COMMAND_LOG`, see [`shared::command_log`]); a restarted process appends.
    pub fn command_log(&self, p: Proc) -> PathBuf {
        self.dir.join(format!("{}-mongo-commands.jsonl", p.name()))
    }

    /// Every query shape the services have sent so far, each once, sorted. A service that has
    /// sent nothing (ingest never talks to MongoDB) adds nothing.
    pub fn query_shapes(&self) -> Vec<shared::command_log::QueryShape> {
        let mut all = std::collections::BTreeSet::new();
        for p in [Proc::Api, Proc::Ingest, Proc::Aggregator] {
            let path = self.command_log(p);
            if path.exists() {
                all.extend(shared::command_log::read(&path).unwrap_or_else(|e| panic!("{e}")));
            }
        }
        all.into_iter().collect()
    }

    /// The last lines of a process's log, for failure messages.
    pub fn log_tail(&self, p: Proc) -> String {
        let text = std::fs::read_to_string(self.dir.join(format!("{}.log", p.name()))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let procs: Vec<Proc> = self.children.keys().copied().collect();
        for p in procs {
            self.kill(p);
        }
        if !std::thread::panicking() && std::env::var_os("CP_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("test stack files kept in {}", self.dir.display());
        }
    }
}

/// The aggregators' backlog, read from JetStream rather than from the aggregator's lag gauge
/// (sampled every 2 s, so it can read 0 while a batch just accepted waits).
///
/// It is exact: ingest answers 202 only once the stream stored the message, the aggregator
/// acks a message only once MongoDB holds every batch it carries (`aggregator::consumer`), and
/// the stream's work-queue retention removes a message when it is acked or terminated. So a
/// stream holding no message means every accepted batch is in MongoDB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    /// Messages the stream still holds.
    pub stored: u64,
    /// Messages of the aggregators' consumer not yet delivered to an aggregator.
    pub undelivered: u64,
    /// Messages delivered to an aggregator and neither acked nor terminated yet.
    pub unacked: usize,
}

impl Backlog {
    /// The backlog of the stream and consumer `js` holds; `None` if either cannot be read.
    pub async fn of(js: &async_nats::jetstream::Context) -> Option<Self> {
        let mut stream = js.get_stream(shared::names::STREAM).await.ok()?;
        let stored = stream.info().await.ok()?.state.messages;
        let consumer = stream.consumer_info(shared::names::CONSUMER).await.ok()?;
        Some(Self { stored, undelivered: consumer.num_pending, unacked: consumer.num_ack_pending })
    }

    /// Nothing stored, undelivered or unacked: every batch the stream took is counted.
    pub fn is_empty(&self) -> bool {
        *self == Self { stored: 0, undelivered: 0, unacked: 0 }
    }
}

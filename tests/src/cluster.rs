//! The scaled-out stack of `make cluster`, started through the very script operators run
//! (`deploy/local/cluster.sh`): three NATS nodes, two ingest, two aggregators, the api and
//! HAProxy, each supervised and restarted when killed.
//!
//! Every port of the script moves by one offset, picked so that all of them are free; the
//! run directory is a temporary folder. Processes are killed through their pid files, as an
//! operator (or a held-out fault run) would.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{stack::Backlog, wait};

/// Ports of the script before the offset (see `deploy/local/cluster.sh`).
const BASE_PORTS: [u16; 21] = [
    8080, 8081, 8404, 8090, 8091, 8092, 8093, 8094, 9180, 9181, 9182, 9183, 9184, 4222, 4223, 4224, 6222, 6223, 6224, 8222,
    27017,
];

/// A running cluster; stopped (Ctrl-C equivalent, then SIGKILL of leftovers) when dropped.
pub struct Cluster {
    pub dir: PathBuf,
    pub offset: u16,
    script: Option<Child>,
    http: reqwest::Client,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// An offset that leaves every port of the script (and the NATS monitoring ports) free.
fn free_offset() -> u16 {
    let seed = std::process::id() as u16;
    for attempt in 0..200u16 {
        let offset = 10_000 + (seed.wrapping_add(attempt * 37) % 90) * 100;
        let all_free = BASE_PORTS.iter().chain([8223u16, 8224].iter()).all(|p| port_free(p + offset));
        if all_free {
            return offset;
        }
    }
    panic!("no free port range for a cluster");
}

impl Cluster {
    /// Starts the cluster with debug (or `CP_BIN_DIR`) binaries; `env` adds service settings.
    pub async fn start(env: &[(&str, &str)]) -> Self {
        let mut last = String::new();
        for _attempt in 0..2 {
            match Self::try_start(env).await {
                Ok(c) => return c,
                Err(e) => {
                    eprintln!("cluster start failed ({e}); retrying on other ports");
                    last = e;
                }
            }
        }
        panic!("the cluster did not start: {last}");
    }

    async fn try_start(env: &[(&str, &str)]) -> Result<Self, String> {
        let offset = free_offset();
        let dir = std::env::temp_dir().join(format!("cp-cluster-{}-{offset}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let bin_dir = std::env::var_os("CP_BIN_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("target").join("debug"));
        let log = std::fs::File::create(dir.join("cluster-script.log")).map_err(|e| e.to_string())?;
        let mut cmd = Command::new("bash");
        cmd.arg(workspace_root().join("deploy/local/cluster.sh"))
            .env("CP_RUN_DIR", &dir)
            .env("CP_BIN_DIR", bin_dir)
            .env("CP_CLUSTER_PORT_OFFSET", offset.to_string())
            .env("CP_CLUSTER_RESTART_DELAY", "2")
            .env("CP_BCRYPT_COST", "4")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("MONGODB_URI")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().map_err(|e| e.to_string())?))
            .stderr(Stdio::from(log));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().map_err(|e| format!("starting cluster.sh: {e}"))?;
        let mut cluster = Self {
            dir,
            offset,
            script: Some(child),
            http: reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("http client"),
        };
        let endpoints = cluster.dir.join("endpoints.env");
        let deadline = Instant::now() + Duration::from_secs(180);
        while !endpoints.exists() {
            if let Some(script) = cluster.script.as_mut()
                && let Ok(Some(status)) = script.try_wait()
            {
                let out = std::fs::read_to_string(cluster.dir.join("cluster-script.log")).unwrap_or_default();
                return Err(format!("cluster.sh exited ({status}): {out}"));
            }
            if Instant::now() > deadline {
                return Err("cluster not up within 180 s".to_string());
            }
            // The poll interval of this deadline loop, which also watches the script exit.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(cluster)
    }

    fn port(&self, base: u16) -> u16 {
        base + self.offset
    }

    /// The api through the balancer.
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port(8080))
    }

    /// Ingest through the balancer.
    pub fn ingest_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port(8081))
    }

    /// Direct URL of a service (`ingest-1`, `aggregator-2`, `api`), bypassing the balancer.
    pub fn service_url(&self, name: &str) -> String {
        let base = match name {
            "api" => 8090,
            "ingest-1" => 8091,
            "ingest-2" => 8092,
            "aggregator-1" => 8093,
            "aggregator-2" => 8094,
            other => panic!("no service {other}"),
        };
        format!("http://127.0.0.1:{}", self.port(base))
    }

    /// Where a service serves `/metrics` (as the script found it).
    pub fn metrics_url(&self, name: &str) -> String {
        let targets = std::fs::read_to_string(self.dir.join("metrics-targets")).unwrap_or_default();
        let addr = targets
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no metrics target for {name}"));
        format!("http://{addr}/metrics")
    }

    /// NATS monitoring of node `n` (1..=3).
    pub fn nats_monitor(&self, n: u16) -> String {
        format!("http://127.0.0.1:{}", self.port(8221 + n))
    }

    /// The current pid of a process, from its pid file.
    pub fn pid(&self, name: &str) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("pids").join(format!("{name}.pid"))).ok()?.trim().parse().ok()
    }

    /// SIGKILL through the pid file; returns the pid killed.
    pub fn kill(&self, name: &str) -> u32 {
        let pid = self.pid(name).unwrap_or_else(|| panic!("no pid file for {name}"));
        let status = Command::new("kill").args(["-KILL", &pid.to_string()]).status().expect("kill");
        assert!(status.success(), "kill -9 {pid} ({name})");
        pid
    }

    /// Waits until the supervisor has started `name` again (a pid other than `old`).
    pub async fn wait_restarted(&self, name: &str, old: u32) -> u32 {
        wait::until(&format!("{name} to be restarted"), Duration::from_secs(30), || async move {
            self.pid(name).filter(|p| *p != old)
        })
        .await
    }

    /// Waits until a service answers 200 on its own `/readyz`.
    pub async fn wait_ready(&self, name: &str) {
        let url = format!("{}/readyz", self.service_url(name));
        let http = self.http.clone();
        wait::until(&format!("{name} to be ready"), Duration::from_secs(60), || {
            let (http, url) = (http.clone(), url.clone());
            async move { http.get(&url).send().await.ok().filter(|r| r.status() == 200).map(|_| ()) }
        })
        .await;
    }

    /// `/jsz` of a NATS node with stream details, or `None` when it does not answer.
    pub async fn jsz(&self, node: u16) -> Option<serde_json::Value> {
        let url = format!("{}/jsz?accounts=true&streams=true&consumers=true", self.nats_monitor(node));
        self.http.get(url).send().await.ok()?.json().await.ok()
    }

    /// The node leading `stream` and whether all its replicas are current, as the leader
    /// itself reports (a follower's view of the other replicas is stale).
    pub async fn stream_state(&self, stream: &str) -> Option<(String, bool)> {
        let cluster_of = |jsz: &serde_json::Value| -> Option<serde_json::Value> {
            jsz["account_details"].as_array()?.iter().find_map(|account| {
                account["stream_detail"].as_array()?.iter().find(|s| s["name"] == stream).map(|s| s["cluster"].clone())
            })
        };
        for node in 1..=3 {
            let Some(jsz) = self.jsz(node).await else { continue };
            let Some(leader) =
                cluster_of(&jsz).and_then(|c| c["leader"].as_str().map(str::to_string)).filter(|l| !l.is_empty())
            else {
                continue;
            };
            let leader_node: u16 = leader.trim_start_matches("nats-").parse().ok()?;
            let seen_by_leader = self.jsz(leader_node).await.as_ref().and_then(cluster_of)?;
            if seen_by_leader["leader"].as_str() != Some(leader.as_str()) {
                return None;
            }
            let replicas = seen_by_leader["replicas"].as_array().cloned().unwrap_or_default();
            let current = replicas.len() == 2 && replicas.iter().all(|r| r["current"] == true);
            return Some((leader, current));
        }
        None
    }

    /// The aggregators' backlog ([`Backlog`]), asked of the cluster as its admin; `None` while
    /// no node, the stream or the consumer answers.
    pub async fn backlog(&self) -> Option<Backlog> {
        let urls: Vec<String> = self.nats_urls().split(',').map(str::to_string).collect();
        let nats = async_nats::ConnectOptions::with_user_and_password("admin".into(), self.secret("CP_NATS_ADMIN_PASSWORD"))
            .connect(urls)
            .await
            .ok()?;
        Backlog::of(&async_nats::jetstream::new(nats)).await
    }

    /// HAProxy's view of each server: name → (status, total sessions), from the stats CSV.
    pub async fn balancer_servers(&self) -> HashMap<String, (String, u64)> {
        let url = format!("http://127.0.0.1:{}/stats;csv", self.port(8404));
        let text = match self.http.get(url).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let mut out = HashMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let cols: Vec<&str> = line.split(',').collect();
            // pxname, svname, ..., stot is column 7, status column 17.
            if cols.len() > 17 && !matches!(cols[1], "FRONTEND" | "BACKEND") {
                out.insert(cols[1].to_string(), (cols[17].to_string(), cols[7].parse().unwrap_or(0)));
            }
        }
        out
    }

    /// The text of a process's log.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join("logs").join(format!("{name}.log"))).unwrap_or_default()
    }

    /// The NATS admin password the script generated (for checks an operator would make).
    pub fn secret(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.dir.join("secrets.env")).unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in secrets.env"))
            .to_string()
    }

    /// Seed URLs of the three NATS nodes.
    pub fn nats_urls(&self) -> String {
        (0..3).map(|i| format!("nats://127.0.0.1:{}", self.port(4222 + i))).collect::<Vec<_>>().join(",")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut script) = self.script.take() {
            // What Ctrl-C does: the script stops everything it started.
            let _ = Command::new("kill").args(["-TERM", &script.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = script.try_wait() {
                    break;
                }
                // The poll interval of this deadline loop (in Drop: no runtime to await in).
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = script.kill();
            let _ = script.wait();
        }
        // Anything left (the script was killed itself): its pid files name it.
        if let Ok(entries) = std::fs::read_dir(self.dir.join("pids")) {
            for e in entries.flatten() {
                if let Ok(pid) = std::fs::read_to_string(e.path()) {
                    let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
                }
            }
        }
        if !std::thread::panicking() && std::env::var_os("CP_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("cluster files kept in {}", self.dir.display());
        }
    }
}

//! Running the headless-browser drivers (`tests/browser/*.mjs`: Debian's chromium through
//! playwright-core, Debian's firefox-esr over WebDriver BiDi through puppeteer-core), serving
//! test pages from the test process, and the fake api the dashboard tests run against.

use std::{path::PathBuf, process::Stdio};

use axum::{Router, response::Html, routing::get};
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::{Child, Command},
};

fn script(name: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("browser").join(name)
}

/// Serves `html` on every path of a fresh port (a single-page app's fallback); returns the
/// base URL. The server lives as long as the test's runtime.
pub async fn serve_page(html: String) -> String {
    let app = Router::new().fallback(get(move || {
        let html = html.clone();
        async move { Html(html) }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind page server");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://127.0.0.1:{}", addr.port())
}

/// A landing page with the snippet wired to `key`, loaded from the stack's api.
pub fn landing_page(api: &str, ingest: &str, key: &str) -> String {
    let tall = "<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit.</p>".repeat(200);
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>Test landing</title>
<script defer src="{api}/convertpulse.js" data-key="{key}" data-endpoint="{ingest}/api/events/batch"></script></head>
<body><header><button id="cta" class="btn primary">Start free trial</button></header>
<main>{tall}<section id="pricing"><article class="plan featured"><button class="btn primary" data-plan="pro">Choose Pro</button></article></section>
<form><input type="password" name="pw" value="hunter2"><input type="submit" value="secret-value"></form></main></body></html>"#
    )
}

/// The fake api (`tests/browser/fake-api.mjs`: the real `web/` files and contract-shaped
/// answers) on a free port, for dashboard tests that need no backend. Stopped when dropped.
pub struct FakeApi {
    pub url: String,
    _child: Child,
}

impl FakeApi {
    pub async fn start() -> Self {
        let mut child = Command::new("node")
            .arg(script("fake-api.mjs"))
            // It exits when its stdin closes, so it never outlives the test process.
            .arg("--stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node is installed (make test installs it)");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next_line().await.expect("fake api output").unwrap_or_default();
        let url =
            first.strip_prefix("LISTENING ").unwrap_or_else(|| panic!("fake api did not start: {first}")).trim().to_string();
        Self { url, _child: child }
    }
}

/// A running driver process.
pub struct Driver {
    child: Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Driver {
    /// Starts `tests/browser/<script>` with `args`.
    pub fn start(script_name: &str, args: &[&str]) -> Self {
        let mut child = Command::new("node")
            .arg(script(script_name))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node is installed (make test installs it)");
        let stdout = child.stdout.take().expect("stdout");
        Self { child, lines: BufReader::new(stdout).lines() }
    }

    /// Waits for a line starting with `prefix`; returns the rest of it.
    pub async fn expect_line(&mut self, prefix: &str) -> String {
        while let Some(line) = self.lines.next_line().await.expect("driver output") {
            if let Some(rest) = line.trim().strip_prefix(prefix) {
                return rest.trim().to_string();
            }
        }
        panic!("driver ended before printing {prefix}");
    }

    pub async fn send_line(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin.write_all(format!("{line}\n").as_bytes()).await.expect("write to driver");
        stdin.flush().await.expect("flush");
    }

    /// Waits for the driver to finish and returns its JSON report.
    pub async fn finish(mut self) -> Value {
        drop(self.child.stdin.take());
        let mut last = String::new();
        while let Some(line) = self.lines.next_line().await.expect("driver output") {
            last = line;
        }
        let _ = self.child.wait().await;
        let report: Value = serde_json::from_str(&last).unwrap_or_else(|_| panic!("driver report is JSON: {last}"));
        assert!(report["driverError"].is_null(), "driver failed: {}", report["driverError"]);
        report
    }
}

/// Runs a tracker scenario to the end in Chromium.
pub async fn run(scenario: &str, url: &str) -> Value {
    run_in("chromium", scenario, url).await
}

/// Runs a tracker scenario to the end in `engine` (`chromium`, `firefox` or `webkit`).
pub async fn run_in(engine: &str, scenario: &str, url: &str) -> Value {
    Driver::start("tracker.mjs", &[scenario, url, engine]).finish().await
}

/// Gzipped size (level 9, via the system `gzip`): the snippet's size as a CDN would serve it.
pub fn gzip_len(bytes: &[u8]) -> usize {
    use std::io::Write;
    let mut child = std::process::Command::new("gzip")
        .arg("-9c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gzip is installed");
    child.stdin.take().expect("stdin").write_all(bytes).expect("write to gzip");
    child.wait_with_output().expect("gzip output").stdout.len()
}

//! A real SMTP server for the mail tests: `tests/smtp/sink.py` (aiosmtpd, in `.venv-smtp/`,
//! installed by `deploy/local/deps.sh --test`) on a port of its own, writing each message it
//! accepts, parsed, into a directory the test reads ([`Received`]).

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use serde::Deserialize;

use crate::{stack, wait};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// One message as the server received it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub from: String,
    pub to: String,
    pub subject: String,
    pub message_id: String,
    pub text: Option<String>,
    pub html: Option<String>,
}

/// The SMTP server process; killed when dropped.
pub struct SmtpSink {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl SmtpSink {
    /// Started on a free port.
    pub async fn start() -> Self {
        let mut sink = Self::stopped(stack::free_port());
        sink.resume().await;
        sink
    }

    /// Not started: the port is reserved by number only, and nothing listens there until
    /// [`Self::resume`] (an SMTP server that is down).
    pub fn stopped(port: u16) -> Self {
        let dir =
            std::env::temp_dir().join(format!("cp-smtp-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::SeqCst)));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self { port, dir, child: None }
    }

    /// `smtp://127.0.0.1:<port>`: what `CP_SMTP_URL` is set to.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again), keeping what it received; returns once it accepts connections.
    pub async fn resume(&mut self) {
        let python = stack::workspace_path(".venv-smtp/bin/python");
        let script = stack::workspace_path("tests/smtp/sink.py");
        let child = Command::new(&python)
            .arg(script)
            .arg(&self.dir)
            .arg(self.port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {} (run `deploy/local/deps.sh --test` first): {e}", python.display()));
        self.child = Some(child);
        let port = self.port;
        wait::until("the SMTP server to listen", Duration::from_secs(20), || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(|_| ())
        })
        .await;
    }

    /// Stops the server; nothing listens on its port until [`Self::resume`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Every message received so far, in the order received.
    pub fn received(&self) -> Vec<Received> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .expect("the sink's directory")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).expect("a message file")).expect("a message record"))
            .collect()
    }

    /// Waits until exactly `n` messages arrived (at most `limit`), and returns them.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Received> {
        wait::until(&format!("{n} mails"), limit, || async move {
            let got = self.received();
            (got.len() >= n).then_some(got)
        })
        .await
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

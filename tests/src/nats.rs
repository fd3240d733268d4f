//! A bare nats-server with JetStream for library-level tests: a free port, temporary data,
//! no users, killed when dropped. Pair it with [`crate::mongo::Mongo`] to drive a service's
//! library without its process (and without its scheduled jobs).

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use crate::{stack::free_port, wait};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A nats-server for one test.
pub struct Nats {
    pub port: u16,
    dir: PathBuf,
    child: Child,
}

impl Nats {
    pub async fn start() -> Self {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("cp-nats-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::SeqCst)));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let log = std::fs::File::create(dir.join("nats.log")).expect("log file");
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.join("js"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log file")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("starting nats-server");
        let url = format!("nats://127.0.0.1:{port}");
        wait::until("nats-server to accept connections", Duration::from_secs(20), || {
            let url = url.clone();
            async move { async_nats::connect(url).await.ok().map(|_| ()) }
        })
        .await;
        Self { port, dir, child }
    }

    /// A new connection.
    pub async fn connect(&self) -> async_nats::Client {
        async_nats::connect(format!("nats://127.0.0.1:{}", self.port)).await.expect("nats connects")
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

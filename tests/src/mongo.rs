//! A MongoDB for library-level tests: the MongoDB-wire server on a free port with temporary
//! data, or the server of `MONGODB_URI` when set. Each [`Mongo::database`] is a fresh name, so
//! tests sharing a server never see each other's documents.

use std::{
    path::PathBuf,
    process::{Child, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use mongodb::Database;

use crate::{stack, wait};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A MongoDB server for one test.
pub struct Mongo {
    client: mongodb::Client,
    dir: PathBuf,
    child: Option<Child>,
}

impl Mongo {
    pub async fn start() -> Self {
        let seq = SEQ.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("cp-mongo-{}-{seq}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("nx")).expect("temp dir");
        let (uri, child) = match std::env::var("MONGODB_URI") {
            Ok(uri) if !uri.is_empty() => (uri, None),
            _ => {
                let port = stack::free_port();
                let child = stack::nx_command(&dir, &port.to_string())
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("starting nx-27017 (run `make deps` first)");
                (format!("mongodb://127.0.0.1:{port}"), Some(child))
            }
        };
        let client = mongodb::Client::with_uri_str(&uri).await.expect("mongodb client");
        let probe = client.database("admin");
        wait::until("MongoDB to answer", Duration::from_secs(20), || {
            let probe = probe.clone();
            async move { probe.run_command(mongodb::bson::doc! {"ping": 1}).await.ok().map(|_| ()) }
        })
        .await;
        Self { client, dir, child }
    }

    /// A database of its own, with the services' indexes.
    pub async fn database(&self) -> Database {
        let name = format!("cp_lib_{}_{}", std::process::id(), SEQ.fetch_add(1, Ordering::SeqCst));
        let db = self.client.database(&name);
        shared::store::ensure_indexes(&db, Some(Duration::from_secs(90 * 86_400))).await.expect("indexes");
        db
    }
}

impl Drop for Mongo {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

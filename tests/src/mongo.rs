//! A MongoDB for library-level tests: the MongoDB-wire server on a free port with temporary
//! data, or the server of `MONGODB_URI` when set. Each [`Mongo::database`] is a fresh name, so
//! tests sharing a server never see each other's documents.
//!
//! The client records the shape of every command it sends ([`shared::command_log`]): the
//! aggregator's and the api's code run in-process here, so a [`Mongo`] dropped at the end of a
//! test that passed fails it when a recorded query has no row in `docs/queries.md` for any
//! service (the tests' own setup and checks, [`TEST_OWN_QUERIES`], aside). That holds the flush
//! protocol's recovery paths, which a stack rarely takes, to the list too.

use std::{
    path::PathBuf,
    process::{Child, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use mongodb::Database;

use shared::command_log::QueryShape;

use crate::{queries, stack, wait};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// The app name the library-level client records its commands under.
const SERVICE: &str = "library-tests";
/// The command log's file in the test's directory.
const COMMAND_LOG: &str = "mongo-commands.jsonl";

/// Queries the library-level tests send themselves — arranging documents and checking what was
/// stored — as `(command, collection, shape)`: no service sends them, so they need no row.
pub const TEST_OWN_QUERIES: &[(&str, &str, &str)] = &[
    // import_job.rs: the chunks left, and the documents held under an import's site id.
    ("aggregate", "import_chunks", "{}"),
    ("aggregate", "rollups_v3", r#"{"_id":{"$in":"?"}}"#),
    // flush_protocol.rs: how many rollup documents a stopped flush wrote (`count_documents`),
    // a site-day read to size the compact limit, the goals arranged, and a database turned
    // back into the layout before site-days.
    ("aggregate", "rollups_v3", "{}"),
    ("find", "rollups_v3", r#"{"_id":"?"}"#),
    ("find", "rollups_v3", "{}"),
    ("delete", "rollups_v3", "{}"),
    ("insert", "rollups_v2", "-"),
    ("aggregate", "rollups_v2", "{}"),
    ("insert", "site_config", "-"),
    ("insert", "sites", "-"),
    // expiry.rs: documents arranged in each collection that expires, then read back.
    ("insert", "sessions", "-"),
    ("insert", "recoveries", "-"),
    ("insert", "raw_batches", "-"),
    ("insert", "flushes", "-"),
    ("insert", "visitor_marks", "-"),
    ("insert", "rollups_v3", "-"),
    ("find", "sessions", "{}"),
    ("find", "recoveries", "{}"),
    ("find", "raw_batches", "{}"),
    ("find", "flushes", "{}"),
    ("find", "visitor_marks", "{}"),
    ("insert", "outbox", "-"),
    ("find", "outbox", "{}"),
    ("find", "import_chunks", "{}"),
    ("createIndexes", "sessions", "-"),
    // tenancy_limits.rs: a dead holder's lease arranged, then read.
    ("insert", "leases", "-"),
    ("find", "leases", r#"{"_id":"?"}"#),
    // migration.rs: old goals and share links arranged, then checked.
    ("insert", "goals", "-"),
    ("find", "site_config", r#"{"_id":"?"}"#),
    ("aggregate", "goals", "{}"),
    ("find", "share_links", r#"{"_id":"?"}"#),
    ("aggregate", "share_links", "{}"),
    // migration.rs: the first layout arranged, then checked gone, and the migration's record.
    ("insert", "rollups", "-"),
    ("insert", "top_rollups", "-"),
    ("aggregate", "rollups", "{}"),
    ("aggregate", "top_rollups", "{}"),
    ("aggregate", "visitor_marks", r#"{"hour":{"$exists":"?"}}"#),
    ("find", "migrations", r#"{"_id":"?"}"#),
];

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
        let mut options = mongodb::options::ClientOptions::parse(&uri).await.expect("mongodb uri");
        shared::command_log::install(&mut options, &dir.join(COMMAND_LOG), SERVICE).expect("command log");
        let client = mongodb::Client::with_options(options).expect("mongodb client");
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
        shared::indexes::ensure_indexes(&db, Some(Duration::from_secs(90 * 86_400))).await.expect("indexes");
        db
    }
}

impl Mongo {
    /// The queries recorded so far that neither `docs/queries.md` (for any service) nor
    /// [`TEST_OWN_QUERIES`] lists.
    pub fn unlisted_queries(&self) -> Vec<QueryShape> {
        let recorded = shared::command_log::read(&self.dir.join(COMMAND_LOG)).unwrap_or_else(|e| panic!("{e}"));
        queries::unlisted_for_any_service(&recorded, &queries::listed(), TEST_OWN_QUERIES)
    }
}

impl Drop for Mongo {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let unlisted = if std::thread::panicking() { Vec::new() } else { self.unlisted_queries() };
        let _ = std::fs::remove_dir_all(&self.dir);
        assert!(
            unlisted.is_empty(),
            "queries sent with no row in docs/queries.md (add one per shape, see the doc):\n{}",
            queries::lines(&unlisted)
        );
    }
}

/// An aggregator's flusher over `db` with the services' defaults (1,000 keys a list, a 30 s
/// lease, 400 days of daily units) and a clock the test moves.
pub fn flusher(db: &Database, clock: &shared::clock::ManualClock) -> aggregator::flush::Flusher {
    let settings = aggregator::flush::Settings {
        lease: Duration::from_secs(30),
        caps: aggregator::rollup::Capacities::with_keys(1000, 1000),
        day_retention: Duration::from_secs(400 * 86_400),
        compact_max_bytes: shared::rollup::siteday::COMPACT_MAX_BYTES,
    };
    aggregator::flush::Flusher::new(db.clone(), settings, std::sync::Arc::new(clock.clone()))
}

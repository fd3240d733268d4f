//! A record of the query shapes a service sends to MongoDB, for tests and diagnostics only.
//!
//! When [`ENV`] (`CP_MONGO_COMMAND_LOG`) names a file, [`crate::store::connect`] installs the
//! driver's command monitoring and appends one JSON line ([`QueryShape`]) per shape of every
//! command it starts: the service, the command, the collection and the *shape* of what the
//! command addresses — its filter with field names and operators kept and every value replaced
//! by `"?"` (`{"_id":{"$in":"?"}}`). `docs/queries.md` lists every shape the services send and
//! `tests/tests/query_shapes.rs` holds the code to that list: a query without a row there is a
//! red test, and so is a hot-path query not addressed by `_id`.
//!
//! Which part of a command is its filter: `find` its `filter`; `update` and `delete` each
//! statement's `q` (one line per distinct shape of the command); `findAndModify`, `count` and
//! `distinct` their `query`; `aggregate` its first stage when that is a `$match` (otherwise
//! `{}`: the pipeline starts on the whole collection). Commands that address no documents
//! (`insert`, `createIndexes`, `drop`, …) are recorded with the shape [`NO_FILTER`]. The
//! driver's own traffic and the continuation of a query ([`NOISE`]) are not recorded.
//!
//! Keys are written sorted, so the order a filter was built in does not change its shape. The
//! line is written and flushed inside the driver's callback, on the task that sends the
//! command: a blocking write of a few dozen bytes, fine for a test or a diagnosis, not meant
//! for production traffic.

use std::{
    collections::BTreeSet,
    fs::File,
    io::{BufWriter, Write as _},
    path::Path,
    sync::{Arc, Mutex, PoisonError},
};

use crate::telemetry::Chain;
use mongodb::{
    bson::{Bson, Document},
    event::{EventHandler, command::CommandEvent},
    options::ClientOptions,
};
use serde::{Deserialize, Serialize};

/// The environment variable naming the file to append the query shapes to (unset or empty:
/// nothing is recorded).
pub const ENV: &str = "CP_MONGO_COMMAND_LOG";

/// The shape of a command that addresses no documents (`insert`, `createIndexes`, `drop`).
pub const NO_FILTER: &str = "-";

/// Commands not recorded: the driver's handshake, heartbeats and session bookkeeping, the
/// readiness probe's `ping`, and the continuation of a cursor (`getMore`, `killCursors`), whose
/// query was recorded when it started.
pub const NOISE: &[&str] = &[
    "hello",
    "isMaster",
    "ismaster",
    "ping",
    "buildInfo",
    "buildinfo",
    "endSessions",
    "listIndexes",
    "getMore",
    "killCursors",
    "saslStart",
    "saslContinue",
    "authenticate",
    "getnonce",
];

/// One recorded line: a service sent `command` on `collection` addressing `shape`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct QueryShape {
    /// The MongoDB client's app name without its `convertpulse-` prefix (`api`, `aggregator`).
    pub service: String,
    /// The command's name as the driver reports it (`find`, `update`, `findAndModify`).
    pub command: String,
    /// The collection it runs on, `-` for a command on the database.
    pub collection: String,
    /// The filter with every value replaced by `"?"`, or [`NO_FILTER`].
    pub shape: String,
}

impl std::fmt::Display for QueryShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {} {}", self.service, self.command, self.collection, self.shape)
    }
}

/// The shapes a command addresses, one per distinct filter; empty for [`NOISE`].
pub fn shapes_of(service: &str, command_name: &str, command: &Document) -> Vec<QueryShape> {
    if NOISE.contains(&command_name) {
        return Vec::new();
    }
    let collection = match command.get(command_name) {
        Some(Bson::String(name)) => name.clone(),
        _ => "-".to_string(),
    };
    let statements = |list: &str| -> BTreeSet<String> {
        let filters =
            command.get_array(list).map(|a| a.iter().filter_map(Bson::as_document).collect::<Vec<_>>()).unwrap_or_default();
        filters.into_iter().map(|s| s.get_document("q").map(filter_shape).unwrap_or_else(|_| "{}".to_string())).collect()
    };
    let optional = |field: &str| -> BTreeSet<String> {
        BTreeSet::from([command.get_document(field).map(filter_shape).unwrap_or_else(|_| "{}".to_string())])
    };
    let shapes = match command_name {
        "find" => optional("filter"),
        "update" => statements("updates"),
        "delete" => statements("deletes"),
        "findAndModify" | "count" | "distinct" => optional("query"),
        "aggregate" => {
            let first = command.get_array("pipeline").ok().and_then(|p| p.first()).and_then(Bson::as_document);
            BTreeSet::from([first
                .and_then(|s| s.get_document("$match").ok())
                .map(filter_shape)
                .unwrap_or_else(|| "{}".to_string())])
        }
        _ => BTreeSet::from([NO_FILTER.to_string()]),
    };
    shapes
        .into_iter()
        .map(|shape| QueryShape {
            service: service.to_string(),
            command: command_name.to_string(),
            collection: collection.clone(),
            shape,
        })
        .collect()
}

/// The shape of a filter: its field names and operators, sorted, with every value `"?"`.
/// Documents under `$and`, `$or`, `$nor`, `$not` and `$elemMatch` are filters themselves and
/// keep their shape; any other array or embedded document is a value.
pub fn filter_shape(filter: &Document) -> String {
    let mut out = String::new();
    write_doc(&mut out, filter);
    out
}

fn write_doc(out: &mut String, doc: &Document) {
    let mut keys: Vec<&String> = doc.keys().collect();
    keys.sort();
    out.push('{');
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::Value::String(key.clone()).to_string());
        out.push(':');
        write_value(out, key, doc.get(key).unwrap_or(&Bson::Null));
    }
    out.push('}');
}

fn write_value(out: &mut String, key: &str, value: &Bson) {
    match (key, value) {
        ("$and" | "$or" | "$nor", Bson::Array(items)) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match item {
                    Bson::Document(d) => write_doc(out, d),
                    _ => out.push_str("\"?\""),
                }
            }
            out.push(']');
        }
        ("$not" | "$elemMatch", Bson::Document(d)) => write_doc(out, d),
        // An operator document (`{"$gte": ..}`); a document without operators is a value.
        (_, Bson::Document(d)) if !d.is_empty() && d.keys().all(|k| k.starts_with('$')) => write_doc(out, d),
        _ => out.push_str("\"?\""),
    }
}

/// The service a MongoDB app name stands for: `convertpulse-api` is `api`.
pub fn service_name(app: &str) -> &str {
    app.strip_prefix("convertpulse-").unwrap_or(app)
}

/// Where the lines go.
struct Sink {
    service: String,
    out: Mutex<BufWriter<File>>,
}

impl Sink {
    fn record(&self, command_name: &str, command: &Document) {
        let shapes = shapes_of(&self.service, command_name, command);
        if shapes.is_empty() {
            return;
        }
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        let written = shapes.iter().try_for_each(|s| {
            serde_json::to_writer(&mut *out, s)?;
            out.write_all(b"\n")
        });
        if let Err(e) = written.and_then(|()| out.flush()) {
            tracing::warn!(error = %Chain(&e), "writing the MongoDB command log failed");
        }
    }
}

/// Installs command monitoring on `options` that appends the shapes of every command `app`
/// sends to `path` (created when missing).
pub fn install(options: &mut ClientOptions, path: &Path, app: &str) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    let sink = Arc::new(Sink { service: service_name(app).to_string(), out: Mutex::new(BufWriter::new(file)) });
    options.command_event_handler = Some(EventHandler::callback(move |event| {
        if let CommandEvent::Started(started) = event {
            sink.record(&started.command_name, &started.command);
        }
    }));
    Ok(())
}

/// Reads a file written by [`install`]; a line that does not read is an error naming it. A
/// last line without its newline is still being written by a running service: it is left out.
pub fn read(path: &Path) -> std::io::Result<Vec<QueryShape>> {
    let text = std::fs::read_to_string(path)?;
    let complete = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
    complete
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}: {l}", path.display())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use mongodb::bson::{DateTime, doc};

    use super::*;

    fn one(command_name: &str, command: Document) -> Vec<String> {
        shapes_of("convertpulse-api", command_name, &command)
            .into_iter()
            .map(|s| format!("{} {} {}", s.command, s.collection, s.shape))
            .collect()
    }

    #[test]
    fn filters_keep_fields_and_operators_and_lose_every_value() {
        let cases = [
            (doc! {"_id": "s1"}, r#"{"_id":"?"}"#, "equality"),
            (doc! {"_id": {"$in": ["a", "b"]}}, r#"{"_id":{"$in":"?"}}"#, "$in list"),
            (doc! {"rev": 3, "_id": "x"}, r#"{"_id":"?","rev":"?"}"#, "keys sorted"),
            (
                doc! {"site_id": "s", "day": {"$gte": "2025-01-01", "$lte": "2025-01-07"}},
                r#"{"day":{"$gte":"?","$lte":"?"},"site_id":"?"}"#,
                "range",
            ),
            (doc! {"claimed_at": {"$lt": DateTime::from_millis(5)}}, r#"{"claimed_at":{"$lt":"?"}}"#, "date"),
            (doc! {"meta": {"a": 1}}, r#"{"meta":"?"}"#, "embedded document is a value"),
            (
                doc! {"$or": [{"a": 1}, {"b": {"$exists": true}}]},
                r#"{"$or":[{"a":"?"},{"b":{"$exists":"?"}}]}"#,
                "$or keeps its filters",
            ),
            (doc! {"tags": {"$elemMatch": {"k": "x"}}}, r#"{"tags":{"$elemMatch":{"k":"?"}}}"#, "$elemMatch"),
            (doc! {"we\"ird": 1}, r#"{"we\"ird":"?"}"#, "field name escaped"),
            (doc! {}, "{}", "everything"),
        ];
        for (filter, want, case) in cases {
            assert_eq!(filter_shape(&filter), want, "case: {case}");
        }
    }

    #[test]
    fn each_command_is_recorded_by_the_filter_it_addresses() {
        let statement = |id: &str| doc! {"q": {"_id": id, "rev": 1}, "u": {"$set": {"n": 1}}, "upsert": true};
        let cases = [
            (
                "find",
                doc! {"find": "rollups", "filter": {"_id": {"$in": ["a"]}}, "projection": {"tail": 1}},
                vec![r#"find rollups {"_id":{"$in":"?"}}"#],
            ),
            ("find", doc! {"find": "sites"}, vec!["find sites {}"]),
            (
                "update",
                doc! {"update": "rollups", "updates": [statement("a"), statement("b"), {"q": {"site_id": "s"}, "u": {}}]},
                vec![r#"update rollups {"_id":"?","rev":"?"}"#, r#"update rollups {"site_id":"?"}"#],
            ),
            (
                "delete",
                doc! {"delete": "recoveries", "deletes": [{"q": {"_id": "f"}, "limit": 1}]},
                vec![r#"delete recoveries {"_id":"?"}"#],
            ),
            (
                "findAndModify",
                doc! {"findAndModify": "sites", "query": {"_id": "s", "owner_id": "u"}, "remove": true},
                vec![r#"findAndModify sites {"_id":"?","owner_id":"?"}"#],
            ),
            (
                "aggregate",
                doc! {"aggregate": "rollups", "pipeline": [{"$match": {"site_id": "s"}}, {"$group": {"_id": 1, "n": {"$sum": 1}}}], "cursor": {}},
                vec![r#"aggregate rollups {"site_id":"?"}"#],
            ),
            (
                "aggregate",
                doc! {"aggregate": "rollups", "pipeline": [{"$group": {"_id": 1}}], "cursor": {}},
                vec!["aggregate rollups {}"],
            ),
            ("count", doc! {"count": "goals", "query": {"site_id": "s"}}, vec![r#"count goals {"site_id":"?"}"#]),
            ("insert", doc! {"insert": "flushes", "documents": [{"_id": "i:1"}]}, vec!["insert flushes -"]),
            ("createIndexes", doc! {"createIndexes": "goals", "indexes": []}, vec!["createIndexes goals -"]),
            ("drop", doc! {"drop": "rollups_v1"}, vec!["drop rollups_v1 -"]),
        ];
        for (name, command, want) in cases {
            assert_eq!(one(name, command.clone()), want, "command: {command}");
        }
    }

    #[test]
    fn driver_traffic_and_cursor_continuations_are_not_recorded() {
        for name in ["hello", "ping", "endSessions", "listIndexes", "getMore", "killCursors"] {
            assert_eq!(one(name, doc! {name: 1}), Vec::<String>::new(), "{name}");
        }
    }

    #[test]
    fn the_service_is_the_app_name_without_its_prefix() {
        assert_eq!(service_name("convertpulse-aggregator"), "aggregator");
        assert_eq!(service_name("convertpulse-api"), "api");
        assert_eq!(service_name("tests"), "tests");
    }

    #[test]
    fn a_written_line_reads_back_as_the_same_shape() {
        let dir = std::env::temp_dir().join(format!("cp-command-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("commands.jsonl");
        let _ = std::fs::remove_file(&path);
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path).expect("file");
        let sink = Sink { service: "api".into(), out: Mutex::new(BufWriter::new(file)) };

        sink.record("find", &doc! {"find": "sites", "filter": {"_id": "s"}});
        sink.record("ping", &doc! {"ping": 1});
        sink.record("insert", &doc! {"insert": "users", "documents": [{"_id": "u"}]});

        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(br#"{"service":"api","comm"#))
            .expect("a partial line");

        let read_back: Vec<String> = read(&path).expect("log reads").iter().map(ToString::to_string).collect();
        assert_eq!(read_back, vec![r#"api find sites {"_id":"?"}"#, "api insert users -"], "the partial last line left out");
        std::fs::OpenOptions::new().append(true).open(&path).and_then(|mut f| f.write_all(b"\n")).expect("the line ended");
        let err = read(&path).expect_err("a damaged complete line is an error");
        assert!(err.to_string().contains("commands.jsonl"), "names the file: {err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! The query shapes listed in `docs/queries.md`, and the checks that hold the services to them:
//! every shape a run recorded (see [`shared::command_log`]) must have a row, and a hot-path row
//! must address its documents by `_id`.
//!
//! The table format (one row per shape, a machine reads it): a Markdown table whose rows start
//! with `| api |`, `| aggregator |` or `| ingest |` and hold seven cells — service, collection,
//! command, filter shape (in backticks), what it is for, addressed by (`_id`, `index {a, b}`,
//! `scan` or `-`), hot path (`yes` / `no`).

use std::path::{Path, PathBuf};

use shared::command_log::QueryShape;

/// The services a row may name.
pub const SERVICES: [&str; 3] = ["api", "aggregator", "ingest"];

/// One row of `docs/queries.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub service: String,
    pub collection: String,
    pub command: String,
    pub shape: String,
    pub purpose: String,
    pub addressed_by: String,
    pub hot_path: bool,
}

impl Row {
    /// True when this row stands for `q` (same service, collection, command and shape).
    pub fn lists(&self, q: &QueryShape) -> bool {
        self.service == q.service && self.same_query(q)
    }

    /// True when this row's query is `q`'s, whatever the service.
    pub fn same_query(&self, q: &QueryShape) -> bool {
        self.collection == q.collection && self.command == q.command && self.shape == q.shape
    }

    /// The row as the recorded line it stands for.
    pub fn as_shape(&self) -> QueryShape {
        QueryShape {
            service: self.service.clone(),
            command: self.command.clone(),
            collection: self.collection.clone(),
            shape: self.shape.clone(),
        }
    }
}

/// `docs/queries.md` of this workspace.
pub fn doc_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").join("docs").join("queries.md")
}

/// The rows of `docs/queries.md`; panics naming the line that does not parse.
pub fn listed() -> Vec<Row> {
    let path = doc_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The rows of a query table (see the module doc). Lines that are not rows of a service are
/// ignored; a row of a service with the wrong cells is an error naming it.
pub fn parse(markdown: &str) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for (n, line) in markdown.lines().enumerate() {
        let line = line.trim();
        let Some(inner) = line.strip_prefix('|').and_then(|l| l.strip_suffix('|')) else {
            continue;
        };
        let cells: Vec<&str> = inner.split('|').map(str::trim).collect();
        if !SERVICES.contains(&cells[0]) {
            continue;
        }
        let at = |what: &str| format!("line {}: {what}: {line}", n + 1);
        let [service, collection, command, shape, purpose, addressed_by, hot] = cells[..] else {
            return Err(at(&format!("{} cells, want 7", cells.len())));
        };
        let unquote = |cell: &str| cell.strip_prefix('`').and_then(|c| c.strip_suffix('`')).map(str::to_string);
        let shape = unquote(shape).ok_or_else(|| at("the filter shape is not in backticks"))?;
        let addressed_by = unquote(addressed_by).unwrap_or_else(|| addressed_by.to_string());
        let hot_path = match hot {
            "yes" => true,
            "no" => false,
            other => return Err(at(&format!("hot path {other:?}, want yes or no"))),
        };
        if shape != shared::command_log::NO_FILTER && serde_json::from_str::<serde_json::Value>(&shape).is_err() {
            return Err(at("the filter shape is not JSON"));
        }
        rows.push(Row {
            service: service.to_string(),
            collection: collection.to_string(),
            command: command.to_string(),
            shape,
            purpose: purpose.to_string(),
            addressed_by,
            hot_path,
        });
    }
    Ok(rows)
}

/// The recorded shapes no row lists, each once.
pub fn unlisted(recorded: &[QueryShape], rows: &[Row]) -> Vec<QueryShape> {
    let mut out: Vec<QueryShape> = recorded.iter().filter(|q| !rows.iter().any(|r| r.lists(q))).cloned().collect();
    out.sort();
    out.dedup();
    out
}

/// The recorded shapes that no row lists for any service and that are not among `own`
/// (`(command, collection, shape)` a test sends itself), each once: for code of several
/// services run in one process, under one client.
pub fn unlisted_for_any_service(recorded: &[QueryShape], rows: &[Row], own: &[(&str, &str, &str)]) -> Vec<QueryShape> {
    let mut out: Vec<QueryShape> = recorded
        .iter()
        .filter(|q| !rows.iter().any(|r| r.same_query(q)))
        .filter(|q| !own.contains(&(q.command.as_str(), q.collection.as_str(), q.shape.as_str())))
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

/// True when a filter shape addresses its documents by `_id`: `_id` equality or `_id $in` at
/// its top level.
pub fn id_addressed(shape: &str) -> bool {
    let Ok(serde_json::Value::Object(filter)) = serde_json::from_str::<serde_json::Value>(shape) else {
        return false;
    };
    match filter.get("_id") {
        Some(serde_json::Value::String(s)) => s == "?",
        Some(serde_json::Value::Object(ops)) => ops.len() == 1 && ops.get("$in").is_some_and(|v| v == "?"),
        _ => false,
    }
}

/// The hot-path rows whose filter is not addressed by `_id`.
pub fn hot_path_scans(rows: &[Row]) -> Vec<QueryShape> {
    rows.iter()
        .filter(|r| r.hot_path && r.shape != shared::command_log::NO_FILTER && !id_addressed(&r.shape))
        .map(Row::as_shape)
        .collect()
}

/// Formats shapes one a line, for failure messages.
pub fn lines(shapes: &[QueryShape]) -> String {
    shapes.iter().map(|s| format!("  {s}")).collect::<Vec<_>>().join("\n")
}

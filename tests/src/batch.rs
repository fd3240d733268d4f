//! Building tracker batches as the snippet sends them.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A fresh id of the allowed shape: `prefix_<pid>_<n>`.
pub fn id(prefix: &str) -> String {
    format!("{prefix}_{}_{}", std::process::id(), SEQ.fetch_add(1, Ordering::SeqCst))
}

fn base(kind: &str, page_id: &str, url: &str) -> Value {
    json!({"type": kind, "ts": 1_764_000_000_000_i64, "page_id": page_id, "url": url})
}

pub fn pageview(page_id: &str, url: &str, referrer: &str, new_session: bool) -> Value {
    let mut e = base("pageview", page_id, url);
    e["referrer"] = json!(referrer);
    e["title"] = json!("Landing");
    e["new_session"] = json!(new_session);
    e
}

pub fn scroll(page_id: &str, url: &str, depth: u8, prev: u8) -> Value {
    let mut e = base("scroll", page_id, url);
    e["depth"] = json!(depth);
    e["prev"] = json!(prev);
    e
}

pub fn click(page_id: &str, url: &str, selector: &str, text: &str) -> Value {
    let mut e = base("click", page_id, url);
    e["selector"] = json!(selector);
    e["text"] = json!(text);
    e
}

pub fn time(page_id: &str, url: &str, seconds: f64) -> Value {
    let mut e = base("time", page_id, url);
    e["seconds"] = json!(seconds);
    e
}

/// A batch for `key` with a fresh batch id.
pub fn batch(key: &str, session_id: &str, events: Vec<Value>) -> Value {
    json!({"key": key, "batch_id": id("batch"), "session_id": session_id, "events": events})
}

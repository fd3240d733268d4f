//! Bulk writes as single MongoDB commands: `insert` and `update` with many statements each, so
//! a flush costs a few round trips whatever its size. Duplicate-key errors are reported back by
//! statement index (they are how idempotency and lost races are detected); any other write
//! error fails the call. Every command sent is counted, for the round-trip figures.

use mongodb::{
    Database,
    bson::{Bson, Document, doc},
};

/// MongoDB's duplicate-key error code.
const DUPLICATE_KEY: i32 = 11000;
/// Keep each command well under MongoDB's 16 MiB document limit.
const MAX_COMMAND_BYTES: usize = 8 * 1024 * 1024;
/// And under its statement count limit.
const MAX_STATEMENTS: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("mongodb: {0}")]
    Mongo(#[from] mongodb::error::Error),
    #[error("write error {code} on {collection}: {message}")]
    Statement { collection: String, code: i32, message: String },
    #[error("encoding a document: {0}")]
    Encode(#[from] mongodb::bson::ser::Error),
    #[error("a stored document does not read: {0}")]
    Decode(String),
}

/// Counts what a flush costs MongoDB.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// Commands sent.
    pub round_trips: u64,
    /// Documents inserted, replaced or updated.
    pub docs_written: u64,
    /// Documents read.
    pub docs_read: u64,
}

impl Cost {
    pub fn add(&mut self, o: Cost) {
        self.round_trips += o.round_trips;
        self.docs_written += o.docs_written;
        self.docs_read += o.docs_read;
    }
}

/// Inserts `docs` unordered; returns the indexes (into `docs`) that already existed.
pub async fn insert_unordered(
    db: &Database,
    collection: &str,
    docs: Vec<Document>,
    cost: &mut Cost,
) -> Result<Vec<usize>, WriteError> {
    let mut duplicates = Vec::new();
    let mut offset = 0;
    for chunk in chunks(docs)? {
        let count = chunk.len();
        let reply = db.run_command(doc! {"insert": collection, "documents": chunk, "ordered": false}).await?;
        cost.round_trips += 1;
        let dups = duplicate_indexes(collection, &reply)?;
        cost.docs_written += (count - dups.len()) as u64;
        duplicates.extend(dups.into_iter().map(|d| offset + d));
        offset += count;
    }
    Ok(duplicates)
}

/// Runs update statements (`{q, u, upsert}`) in order, stopping at the first that fails with a
/// duplicate key (a lost race on a conditional upsert). Returns its index, or `None` when all
/// ran; the statements after it did not run.
pub async fn update_ordered(
    db: &Database,
    collection: &str,
    statements: Vec<Document>,
    cost: &mut Cost,
) -> Result<Option<usize>, WriteError> {
    let mut offset = 0;
    for chunk in chunks(statements)? {
        let count = chunk.len();
        let reply = db.run_command(doc! {"update": collection, "updates": chunk, "ordered": true}).await?;
        cost.round_trips += 1;
        if let Some(&first) = duplicate_indexes(collection, &reply)?.first() {
            cost.docs_written += first as u64;
            return Ok(Some(offset + first));
        }
        cost.docs_written += count as u64;
        offset += count;
    }
    Ok(None)
}

/// Splits statements into commands under MongoDB's size and count limits.
fn chunks(items: Vec<Document>) -> Result<Vec<Vec<Bson>>, WriteError> {
    let mut out = Vec::new();
    let mut chunk: Vec<Bson> = Vec::new();
    let mut chunk_bytes = 0;
    for item in items {
        let size = mongodb::bson::to_vec(&item)?.len();
        if !chunk.is_empty() && (chunk.len() >= MAX_STATEMENTS || chunk_bytes + size >= MAX_COMMAND_BYTES) {
            out.push(std::mem::take(&mut chunk));
            chunk_bytes = 0;
        }
        chunk_bytes += size;
        chunk.push(Bson::Document(item));
    }
    if !chunk.is_empty() {
        out.push(chunk);
    }
    Ok(out)
}

fn duplicate_indexes(collection: &str, reply: &Document) -> Result<Vec<usize>, WriteError> {
    let mut out = Vec::new();
    if let Ok(errors) = reply.get_array("writeErrors") {
        for e in errors.iter().filter_map(Bson::as_document) {
            let code = e.get("code").and_then(as_i64).unwrap_or(-1) as i32;
            let index = e.get("index").and_then(as_i64).unwrap_or(-1);
            if code == DUPLICATE_KEY && index >= 0 {
                out.push(index as usize);
            } else {
                return Err(WriteError::Statement {
                    collection: collection.to_string(),
                    code,
                    message: e.get_str("errmsg").unwrap_or_default().to_string(),
                });
            }
        }
    }
    if let Ok(wce) = reply.get_document("writeConcernError") {
        return Err(WriteError::Statement {
            collection: collection.to_string(),
            code: wce.get("code").and_then(as_i64).unwrap_or(-1) as i32,
            message: wce.get_str("errmsg").unwrap_or_default().to_string(),
        });
    }
    Ok(out)
}

fn as_i64(b: &Bson) -> Option<i64> {
    match b {
        Bson::Int32(v) => Some(i64::from(*v)),
        Bson::Int64(v) => Some(*v),
        Bson::Double(v) => Some(*v as i64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_key_errors_are_indexes_and_others_fail() {
        let reply =
            doc! {"ok": 1, "writeErrors": [{"index": 2, "code": 11000, "errmsg": "dup"}, {"index": 5, "code": 11000_i64}]};
        assert_eq!(duplicate_indexes("c", &reply).expect("dups only"), vec![2, 5]);
        let reply = doc! {"ok": 1, "writeErrors": [{"index": 0, "code": 121, "errmsg": "validation"}]};
        assert!(duplicate_indexes("c", &reply).is_err());
        assert!(duplicate_indexes("c", &doc! {"ok": 1, "n": 3}).expect("clean").is_empty());
    }
}

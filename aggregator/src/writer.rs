//! Bulk writes as single MongoDB commands: `insert` and `update` with many statements each,
//! unordered, so a flush costs a few round trips whatever its size. Duplicate-key errors are
//! reported back by statement index (they are how idempotency is detected); any other write
//! error fails the call.

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
    #[error("flush took {0:?}, past half its lease")]
    TooSlow(std::time::Duration),
    #[error("encoding a document: {0}")]
    Encode(#[from] mongodb::bson::ser::Error),
}

/// Inserts `docs` unordered; returns the indexes (into `docs`) that already existed.
pub async fn insert_unordered(db: &Database, collection: &str, docs: Vec<Document>) -> Result<Vec<usize>, WriteError> {
    run_chunked(db, collection, "insert", "documents", docs).await
}

/// Runs update statements (`{q, u, upsert, multi}`) unordered; returns the indexes of the
/// statements that failed with a duplicate key.
pub async fn update_unordered(db: &Database, collection: &str, statements: Vec<Document>) -> Result<Vec<usize>, WriteError> {
    run_chunked(db, collection, "update", "updates", statements).await
}

async fn run_chunked(
    db: &Database,
    collection: &str,
    verb: &str,
    field: &str,
    items: Vec<Document>,
) -> Result<Vec<usize>, WriteError> {
    let mut duplicates = Vec::new();
    let mut chunk: Vec<Bson> = Vec::new();
    let mut chunk_bytes = 0;
    let mut offset = 0;
    let total = items.len();
    for (i, item) in items.into_iter().enumerate() {
        chunk_bytes += mongodb::bson::to_vec(&item)?.len();
        chunk.push(Bson::Document(item));
        if chunk.len() >= MAX_STATEMENTS || chunk_bytes >= MAX_COMMAND_BYTES || i + 1 == total {
            let sent = std::mem::take(&mut chunk);
            let count = sent.len();
            let command = doc! { verb: collection, field: sent, "ordered": false };
            let reply = db.run_command(command).await?;
            for dup in duplicate_indexes(collection, &reply)? {
                duplicates.push(offset + dup);
            }
            offset += count;
            chunk_bytes = 0;
        }
    }
    Ok(duplicates)
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
        let reply = doc! {"ok": 1, "writeErrors": [{"index": 2, "code": 11000, "errmsg": "dup"}, {"index": 5, "code": 11000_i64}]};
        assert_eq!(duplicate_indexes("c", &reply).expect("dups only"), vec![2, 5]);
        let reply = doc! {"ok": 1, "writeErrors": [{"index": 0, "code": 121, "errmsg": "validation"}]};
        assert!(duplicate_indexes("c", &reply).is_err());
        assert!(duplicate_indexes("c", &doc! {"ok": 1, "n": 3}).expect("clean").is_empty());
    }
}

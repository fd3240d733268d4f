//! Step 3 of the protocol: visitor marks, one per (site, day, visitor) and per (site, page,
//! day, visitor). Inserting one tells whether the visitor is new that day (or new to that page
//! that day); a mark found with this flush's id was inserted by an earlier attempt at the same
//! flush, and is new for it too.

use std::collections::HashSet;

use futures::TryStreamExt;
use mongodb::bson::{self, Document, doc};
use shared::{
    event::EventKind,
    message::BatchMessage,
    names::collections as c,
    rollup::Bucket,
    store::{VisitorMarkDoc, mark_fields},
    time,
};

use super::{FlushId, Flusher, MARK_KEEP};
use crate::writer::{self, Cost, WriteError};

impl Flusher {
    /// Step 3: inserts the visitor marks of `msgs` — one per visitor and day, and one per
    /// visitor, page and day; returns the marks that are new.
    pub(super) async fn new_marks<'m>(
        &self,
        id: &FlushId,
        msgs: &[&'m BatchMessage],
        cost: &mut Cost,
    ) -> Result<Vec<NewMark<'m>>, WriteError> {
        let flush = id.to_string();
        let expire_at = self.expire_in(MARK_KEEP);
        let mut seen = HashSet::new();
        let mut marks: Vec<(String, NewMark<'m>)> = Vec::new();
        let mut docs = Vec::new();
        for m in msgs {
            let b = crate::buckets::buckets_of(m);
            let Bucket::Day(date) = b.day else { continue };
            let day = time::day_string(date);
            let mut add = |mark_id: String, label: String, mark: NewMark<'m>| -> Result<(), WriteError> {
                if seen.insert(mark_id.clone()) {
                    docs.push(bson::to_document(&VisitorMarkDoc {
                        id: mark_id.clone(),
                        site_id: m.site_id.clone(),
                        day: label,
                        v: m.visitor.clone(),
                        f: flush.clone(),
                        expire_at,
                    })?);
                    marks.push((mark_id, mark));
                }
                Ok(())
            };
            add(
                VisitorMarkDoc::id_of(&m.site_id, &day, &m.visitor),
                day.clone(),
                NewMark::Visitor { site: &m.site_id, day: b.day },
            )?;
            for ev in &m.events {
                if let EventKind::Pageview { .. } = ev.kind {
                    // One mark per page, visitor and day; a new one counts the visitor in the
                    // day and in the hour of that first view (see docs/rollups.md).
                    let path = shared::urls::page_path(&ev.url);
                    let mark_id = VisitorMarkDoc::id_of(&m.site_id, &format!("{day}|p:{}", page_tag(&path)), &m.visitor);
                    add(mark_id, day.clone(), NewMark::PageVisitor { site: &m.site_id, buckets: [b.day, b.hour], path })?;
                }
            }
        }
        let dups: HashSet<usize> =
            writer::insert_unordered(&self.db, c::VISITOR_MARKS, docs, cost).await?.into_iter().collect();
        let mut ours: HashSet<String> = HashSet::new();
        if !dups.is_empty() {
            // A mark left by an earlier attempt at this same flush is still new for it.
            let ids: Vec<&str> = dups.iter().map(|i| marks[*i].0.as_str()).collect();
            let mut cursor = self
                .db
                .collection::<Document>(c::VISITOR_MARKS)
                .find(doc! {"_id": {"$in": ids}, mark_fields::FLUSH: &flush})
                .projection(doc! {"_id": 1})
                .await?;
            cost.round_trips += 1;
            while let Some(d) = cursor.try_next().await? {
                ours.insert(d.get_str("_id").map_err(|e| WriteError::Decode(e.to_string()))?.to_string());
            }
        }
        Ok(marks
            .into_iter()
            .enumerate()
            .filter(|(i, (mark_id, _))| !dups.contains(i) || ours.contains(mark_id))
            .map(|(_, (_, mark))| mark)
            .collect())
    }
}

/// A new distinct visitor, from a visitor mark that did not exist.
pub(super) enum NewMark<'m> {
    /// Of a site on a day.
    Visitor { site: &'m str, day: Bucket },
    /// Of a page on a day, first seen in that hour.
    PageVisitor { site: &'m str, buckets: [Bucket; 2], path: String },
}

/// A short stable tag of a page path for mark ids (paths may be 2 KB long).
fn page_tag(path: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(path.as_bytes())[..8])
}

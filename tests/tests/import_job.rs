//! The import job (issue 23) against a real MongoDB-wire server and a clock the test moves:
//! an import of several chunks, whose aggregator dies after writing any chunk (before it
//! records its progress), is resumed by another aggregator once the lease has run out and
//! counts every imported day exactly once; the site's entry turns `done` and the chunks go.

use aggregator::flush::{Step, backfill::Backlog};
use api::{stats_store, timeframe::Range};
use chrono::{Duration as Days, NaiveDate};
use chrono_tz::Tz;
use cp_tests::mongo::{Mongo, flusher};
use mongodb::{
    Database,
    bson::{self, DateTime, Document, doc},
};
use shared::{
    backfill::{BackfillDoc, ItemKind, Phase},
    clock::ManualClock,
    imports::{self, ImportChunkDoc, ImportEntry, ImportState, ImportedDay, NamedRow, PageRow, VisitDim},
    names::collections as c,
    rollup::Dim,
    store::SiteDoc,
};

const SITE: &str = "site-i";
const IMPORT: &str = "imp0001";

fn first_day() -> NaiveDate {
    chrono::Utc::now().date_naive() - Days::days(20)
}

/// Ten days, day `i` with `i + 1` pageviews of `/`, one visit from `google.com`, a Signup.
fn days() -> Vec<ImportedDay> {
    (0..10)
        .map(|i| ImportedDay {
            date: (first_day() + Days::days(i)).format("%Y-%m-%d").to_string(),
            visitors: 1,
            pageviews: i as u64 + 1,
            visits: 1,
            bounces: 0,
            visit_duration: 10,
            pages: vec![PageRow {
                path: "/".into(),
                visitors: 1,
                pageviews: i as u64 + 1,
                entrances: 1,
                exits: 1,
                ..PageRow::default()
            }],
            named: vec![NamedRow { dim: VisitDim::Source, name: "google.com".into(), visits: 1 }],
            events: vec![("Signup".into(), 1)],
        })
        .collect()
}

/// A site with the import listed `running`, its days in three-day chunks, and its job: what
/// the api leaves after an upload.
async fn uploaded(db: &Database, cut_ms: i64) {
    let all = days();
    let entry = ImportEntry {
        id: IMPORT.into(),
        state: ImportState::Running,
        from: Some(all[0].date.clone()),
        to: Some(all[9].date.clone()),
        error: None,
        created_ms: cut_ms,
    };
    let site = SiteDoc {
        id: SITE.into(),
        owner_id: "u".into(),
        name: "S".into(),
        domain: "example.com".into(),
        timezone: "UTC".into(),
        currency: "USD".into(),
        api_key: shared::ids::SiteKey::from_stored("key-i"),
        created_at: DateTime::from_millis(cut_ms),
        share_hash: None,
        key_rotations: Vec::new(),
        imports: vec![entry],
        imports_rev: 1,
        plausible_compatible: false,
    };
    db.collection::<SiteDoc>(c::SITES).insert_one(&site).await.expect("site");
    let chunks: Vec<Document> = all
        .chunks(3)
        .enumerate()
        .map(|(i, d)| {
            bson::to_document(&ImportChunkDoc { id: ImportChunkDoc::id_of(SITE, IMPORT, i as i64 + 1), days: d.to_vec() })
                .expect("chunk")
        })
        .collect();
    let n = chunks.len() as i64;
    db.collection::<Document>(c::IMPORT_CHUNKS).insert_many(chunks).await.expect("chunks");
    let job = BackfillDoc { phase: Phase::Scan, chunks: n, ..BackfillDoc::new(SITE, ItemKind::Import, IMPORT, cut_ms) };
    db.collection::<BackfillDoc>(c::BACKFILLS).insert_one(&job).await.expect("job");
}

/// Pageviews, Signups and google.com visits of the site's stats over the imported days.
async fn figures(db: &Database) -> (i64, i64, i64) {
    let site = db.collection::<SiteDoc>(c::SITES).find_one(doc! {"_id": SITE}).await.expect("read").expect("site");
    let range = Range::Days { label: "custom".into(), from: first_day(), to: first_day() + Days::days(9) };
    let loaded = stats_store::load(db, &stats_store::Scope::of_site(&site), &range, Tz::UTC, None).await.expect("stats");
    let pageviews = loaded.inputs.points.iter().map(|(_, r)| r.pageviews).sum();
    let count = |dim: Dim, key: &str| {
        loaded.inputs.lists.get(&dim).and_then(|rows| rows.iter().find(|r| r.key == key)).map_or(0, |r| r.count)
    };
    (pageviews, count(Dim::Event, "Signup"), count(Dim::Source, "google.com"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_killed_after_any_chunk_is_resumed_elsewhere_and_counts_each_day_once() {
    let mongo = Mongo::start().await;
    let want = (55, 10, 10);
    for dies_after in 1..=4 {
        let db = mongo.database().await;
        let cut_ms = chrono::Utc::now().timestamp_millis();
        uploaded(&db, cut_ms).await;
        let clock = ManualClock::at(cut_ms + 1000);
        let dying = flusher(&db, &clock).failing_after(Step::BackfillChunk(dies_after));
        let error = dying.backfill_once(&Backlog::Nothing).await.expect_err("dies");
        assert!(error.to_string().contains("injected"), "{error}");
        let site = db.collection::<SiteDoc>(c::SITES).find_one(doc! {"_id": SITE}).await.expect("read").expect("site");
        assert_eq!(site.imports[0].state, ImportState::Running, "not counted yet: the stats leave it out");
        assert_eq!(figures(&db).await, (0, 0, 0));

        // Another aggregator, once the lease has run out.
        clock.advance(61_000);
        let other = flusher(&db, &clock);
        assert!(other.backfill_once(&Backlog::Nothing).await.expect("resumed").is_some());
        assert_eq!(figures(&db).await, want, "dying after chunk {dies_after}");
        let site = db.collection::<SiteDoc>(c::SITES).find_one(doc! {"_id": SITE}).await.expect("read").expect("site");
        assert_eq!(site.imports[0].state, ImportState::Done);
        let left = db.collection::<Document>(c::IMPORT_CHUNKS).count_documents(doc! {}).await.expect("count");
        assert_eq!(left, 0, "chunks removed");
        assert_eq!(other.backfill_once(&Backlog::Nothing).await.expect("a turn"), None, "job removed");

        // What deleting it removes: every document of its own site id.
        let ids = imports::lens_doc_ids(SITE, IMPORT, first_day(), first_day() + Days::days(9));
        let held = db.collection::<Document>(c::ROLLUPS).count_documents(doc! {"_id": {"$in": &ids}}).await.expect("count");
        assert!(held > 0, "the import's days are held under its own site id");
        db.collection::<Document>(c::ROLLUPS).delete_many(doc! {"_id": {"$in": &ids}}).await.expect("delete");
        let all = db.collection::<Document>(c::ROLLUPS).count_documents(doc! {}).await.expect("count");
        assert_eq!(all, 0, "nothing of it is left elsewhere");
    }
}

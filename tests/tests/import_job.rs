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
    uploaded_days(db, cut_ms, days()).await
}

async fn uploaded_days(db: &Database, cut_ms: i64, all: Vec<ImportedDay>) {
    let entry = ImportEntry {
        id: IMPORT.into(),
        state: ImportState::Running,
        from: Some(all[0].date.clone()),
        to: Some(all[all.len() - 1].date.clone()),
        error: None,
        created_ms: cut_ms,
        merged: false,
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
            let id = ImportChunkDoc::id_of(SITE, IMPORT, i as i64 + 1);
            bson::to_document(&ImportChunkDoc { id, days: d.to_vec(), stored: Some(bson::DateTime::from_millis(cut_ms)) })
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

/// Chunks left past their keep (`imports::CHUNK_KEEP`) are removed by the expiry sweep; a job
/// that then misses one fails its import with a reason, and goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_past_their_keep_expire_and_their_import_fails_with_a_reason() {
    let mongo = Mongo::start().await;
    let db = mongo.database().await;
    let cut_ms = chrono::Utc::now().timestamp_millis();
    uploaded(&db, cut_ms).await;
    let plan: Vec<_> = shared::indexes::expiries(std::time::Duration::from_secs(90 * 86_400))
        .into_iter()
        .filter(|e| e.collection == c::IMPORT_CHUNKS)
        .collect();
    let keep = imports::CHUNK_KEEP.as_millis() as i64;
    let swept = aggregator::expiry::sweep(&db, &plan, cut_ms + keep - 60_000).await.expect("sweep");
    assert_eq!(swept, vec![(c::IMPORT_CHUNKS, 0)], "a minute within the keep: every chunk stays");
    let swept = aggregator::expiry::sweep(&db, &plan, cut_ms + keep + 60_000).await.expect("sweep");
    assert_eq!(swept, vec![(c::IMPORT_CHUNKS, 4)], "a minute past it: all four go");

    let clock = ManualClock::at(cut_ms + keep + 61_000);
    let job = flusher(&db, &clock);
    assert!(job.backfill_once(&Backlog::Nothing).await.expect("a turn").is_some());
    let site = db.collection::<SiteDoc>(c::SITES).find_one(doc! {"_id": SITE}).await.expect("read").expect("site");
    assert_eq!(site.imports[0].state, ImportState::Failed);
    assert_eq!(
        site.imports[0].error.as_deref(),
        Some("its uploaded days expired before they were counted: delete it and upload the export again")
    );
    assert_eq!(figures(&db).await, (0, 0, 0), "a failed import counts nothing");
    assert_eq!(job.backfill_once(&Backlog::Nothing).await.expect("a turn"), None, "job removed");
}

/// Last month whole and the three days before it: each day with pages, sources, countries and
/// events whose counts vary by day, so that a month's merged lists differ from any one day's.
fn month_and_a_bit() -> (Vec<ImportedDay>, NaiveDate, NaiveDate) {
    let this_month = imports::month_of(chrono::Utc::now().date_naive());
    let first = imports::month_of(this_month - Days::days(1));
    let last = imports::month_end(first);
    let from = first - Days::days(3);
    let all = from
        .iter_days()
        .take_while(|d| *d <= last)
        .enumerate()
        .map(|(i, d)| {
            let i = i as u64;
            let pages = (0..8_u64)
                .map(|p| PageRow {
                    path: format!("/p{p}"),
                    visitors: 1 + (i * p) % 5,
                    pageviews: 1 + (i * 7 + p * 3) % 11,
                    scroll: 10 * p,
                    entrances: p % 3,
                    bounces: p % 2,
                    exits: p % 4,
                })
                .collect();
            let named = (0..6_u64)
                .flat_map(|n| {
                    [
                        NamedRow { dim: VisitDim::Source, name: format!("s{n}.example"), visits: 1 + (i + n * 5) % 9 },
                        NamedRow {
                            dim: VisitDim::Country,
                            name: ["DE", "US", "FR", "BR", "IN", "JP"][n as usize].into(),
                            visits: 1 + (i * n) % 4,
                        },
                    ]
                })
                .collect();
            ImportedDay {
                date: d.format("%Y-%m-%d").to_string(),
                visitors: 3 + i % 4,
                pageviews: 20 + i,
                visits: 5 + i % 3,
                bounces: i % 2,
                visit_duration: 60 + i,
                pages,
                named,
                events: vec![("Signup".into(), 1 + i % 3), (format!("e{}", i % 4), 2)],
            }
        })
        .collect();
    (all, from, last)
}

/// A response's inputs, comparable: points, then each list by dimension.
fn comparable(inputs: &api::stats::Inputs) -> String {
    let mut lists: Vec<String> = inputs.lists.iter().map(|(dim, rows)| format!("{dim:?}: {rows:?}")).collect();
    lists.sort();
    format!("{:?}\n{}\n{:?}", inputs.points, lists.join("\n"), inputs.pages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_month_or_its_rest_reads_from_one_merged_unit_with_the_same_figures() {
    let mongo = Mongo::start().await;
    // Small days stay one document each; busy ones split into a document per unit (here every
    // site-day splits at its first write, as a day of a busy site does).
    for compact_max_bytes in [shared::rollup::siteday::COMPACT_MAX_BYTES, 0] {
        let db = mongo.database().await;
        let cut_ms = chrono::Utc::now().timestamp_millis();
        let (all, from, last) = month_and_a_bit();
        uploaded_days(&db, cut_ms, all).await;
        let clock = ManualClock::at(cut_ms + 1000);
        let settings = aggregator::flush::Settings {
            lease: std::time::Duration::from_secs(30),
            caps: aggregator::rollup::Capacities::with_keys(1000, 1000),
            day_retention: std::time::Duration::from_secs(400 * 86_400),
            compact_max_bytes,
        };
        let job = aggregator::flush::Flusher::new(db.clone(), settings, std::sync::Arc::new(clock.clone()));
        while job.backfill_once(&Backlog::Nothing).await.expect("a turn").is_some() {}
        let site = db.collection::<SiteDoc>(c::SITES).find_one(doc! {"_id": SITE}).await.expect("read").expect("site");
        assert_eq!(site.imports[0].state, ImportState::Done);
        let scope = stats_store::Scope::of_site(&site);
        let month = imports::month_of(last);
        let n = (last - month).num_days() as usize + 1;
        // (from, to, merged units read, the range's imported days they hold): the rest of the
        // month before (from the import's first day: its month unit; later: a suffix) and this
        // month's unit or suffix; a month the range leaves early is read by day.
        let ranges = [
            (from, last, 2, 3 + n),
            (from + Days::days(1), last, 2, 2 + n),
            (month, last, 1, n),
            (month + Days::days(2), last, 1, n - 2),
            (month + Days::days(2), last - Days::days(3), 0, 0),
            (from + Days::days(1), from + Days::days(1), 0, 0),
            (from + Days::days(2), month + Days::days(9), 1, 1),
            (last, last, 1, 1),
            // Past the import's last day: the month's rest is still all the import holds.
            (month + Days::days(20), last + Days::days(5), 1, n - 20),
        ];
        let mut per_day = None;
        for (from, to, units, merged_days) in ranges {
            let range = Range::Days { label: "custom".into(), from, to };
            let by_month = stats_store::load(&db, &scope, &range, Tz::UTC, None).await.expect("months");
            let by_day = stats_store::load(&db, &scope.by_days(), &range, Tz::UTC, None).await.expect("days");
            assert_eq!(comparable(&by_month.inputs), comparable(&by_day.inputs), "{from} to {to}");
            assert!(by_day.inputs.points.iter().map(|(_, r)| r.pageviews).sum::<i64>() > 0);
            let (months, days) = (by_month.docs_read, by_day.docs_read);
            let imported_days = (to.min(last) - from).num_days() as usize + 1;
            // Every imported day is read as the same number of documents (the test's days all
            // have pages, sources, countries and events), and so is every merged unit (the same
            // lists, and a series list for the series).
            let day = *per_day.get_or_insert(days / imported_days);
            assert_eq!(days, day * imported_days, "{from} to {to}: by day");
            let unit = day;
            assert_eq!(
                months,
                days - merged_days * day + units * unit,
                "{from} to {to}: {units} merged units for {merged_days} days"
            );
        }
        // An import counted by an earlier release (no suffixes) is read by day.
        assert!(site.imports[0].merged, "counted with its merged units");
        let mut earlier = site.clone();
        earlier.imports[0].merged = false;
        let range = Range::Days { label: "custom".into(), from: month + Days::days(2), to: last };
        let old = stats_store::load(&db, &stats_store::Scope::of_site(&earlier), &range, Tz::UTC, None).await.expect("old");
        let by_day = stats_store::load(&db, &scope.by_days(), &range, Tz::UTC, None).await.expect("days");
        assert_eq!((comparable(&old.inputs), old.docs_read), (comparable(&by_day.inputs), by_day.docs_read));
        // Deleting removes the month units too.
        let ids = imports::lens_doc_ids(SITE, IMPORT, from, last);
        db.collection::<Document>(c::ROLLUPS).delete_many(doc! {"_id": {"$in": &ids}}).await.expect("delete");
        assert_eq!(db.collection::<Document>(c::ROLLUPS).count_documents(doc! {}).await.expect("count"), 0);
    }
}

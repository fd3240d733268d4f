//! What expires is removed by the aggregator's expiry job, not by TTL indexes: the indexes
//! of an earlier release are replaced, and a sweep removes exactly what is past its keep.

use std::time::Duration;

use cp_tests::mongo::Mongo;
use futures::TryStreamExt;
use mongodb::{
    IndexModel,
    bson::{DateTime, Document, doc},
    options::IndexOptions,
};
use shared::{indexes as store, names::collections as c};

const DAY: i64 = 86_400_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ttl_indexes_of_an_earlier_release_make_way_for_plain_ones() {
    let mongo = Mongo::start().await;
    let db = mongo.database().await;
    let ttl = IndexModel::builder()
        .keys(doc! {"expire_at": 1})
        .options(IndexOptions::builder().expire_after(Duration::ZERO).build())
        .build();
    db.collection::<Document>(c::SESSIONS).create_index(ttl).await.expect("an old TTL index");

    store::ensure_indexes(&db, Some(Duration::from_secs(90 * 86_400))).await.expect("indexes");
    store::ensure_indexes(&db, Some(Duration::from_secs(90 * 86_400))).await.expect("indexes again: idempotent");

    for e in store::expiries(Duration::from_secs(90 * 86_400)) {
        let indexes: Vec<IndexModel> =
            db.collection::<Document>(e.collection).list_indexes().await.expect("list").try_collect().await.expect("list");
        let on_field: Vec<&IndexModel> =
            indexes.iter().filter(|i| i.keys.keys().next().map(String::as_str) == Some(e.field)).collect();
        assert_eq!(on_field.len(), 1, "{}: one index on {}", e.collection, e.field);
        assert!(
            on_field[0].options.as_ref().is_none_or(|o| o.expire_after.is_none()),
            "{}: no TTL left on {}",
            e.collection,
            e.field
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_removes_exactly_what_is_past_its_keep_in_rounds() {
    let mongo = Mongo::start().await;
    let db = mongo.database().await;
    let retention = Duration::from_secs(90 * 86_400);
    store::ensure_indexes(&db, Some(retention)).await.expect("indexes");
    let now = chrono::Utc::now().timestamp_millis();
    let plan = store::expiries(retention);
    // Per collection: a document a minute past its keep and one a minute before it; in the
    // rollups, 2,500 past it, more than one round takes.
    for e in &plan {
        let keep = e.after.as_millis() as i64;
        let at = |ms: i64| doc! {e.field: DateTime::from_millis(ms)};
        let mut docs = vec![at(now - keep - 60_000), at(now - keep + 60_000)];
        if e.collection == c::ROLLUPS {
            docs.extend((0..2_499).map(|i| at(now - keep - DAY - i)));
        }
        for (i, d) in docs.iter_mut().enumerate() {
            d.insert("_id", format!("{}-{i}", e.collection));
        }
        db.collection::<Document>(e.collection).insert_many(docs).await.expect("arranged");
    }

    let removed = aggregator::expiry::sweep(&db, &plan, now).await.expect("sweep");

    for (e, (collection, n)) in plan.iter().zip(removed) {
        let want = if e.collection == c::ROLLUPS { 2_500 } else { 1 };
        assert_eq!((collection, n), (e.collection, want), "removed from {}", e.collection);
        let left: Vec<Document> =
            db.collection::<Document>(e.collection).find(doc! {}).await.expect("read").try_collect().await.expect("read");
        assert_eq!(left.len(), 1, "{}: the document within its keep stays", e.collection);
        assert_eq!(left[0].get_str("_id"), Ok(format!("{}-1", e.collection).as_str()));
    }
    let again = aggregator::expiry::sweep(&db, &plan, now).await.expect("sweep");
    assert!(again.iter().all(|(_, n)| *n == 0), "nothing left to remove: {again:?}");
}

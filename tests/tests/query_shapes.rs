//! Every MongoDB query the services send is listed in `docs/queries.md`, and every hot-path
//! query addresses its documents by `_id` (issue 18). A stack records the shape of each
//! command its services send (`CP_MONGO_COMMAND_LOG`, `shared::command_log`); a representative
//! flow over the real HTTP APIs fills the logs, and the test reads them.

use cp_tests::{
    batch::{batch as make_batch, click, id, pageview},
    client::Api,
    queries::{self, Row},
    stack::Stack,
};
use futures::TryStreamExt as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shared::command_log::QueryShape;

fn u(path: &str) -> String {
    format!("https://example.com{path}")
}

async fn ok(api: &Api, method: Method, path: &str, token: Option<&str>, body: Option<&Value>, want: StatusCode) -> Value {
    let (status, body) = api.send(method.clone(), path, token, body).await;
    assert_eq!(status, want, "{method} {path}: {body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_the_services_send_is_listed_in_docs_queries() {
    // Arrange: a stack whose /demo reports to an account registered below.
    let demo_email = format!("{}@example.com", id("demo"));
    let stack = Stack::start_with(&[("CP_DEMO_EMAIL", demo_email.as_str())]).await;
    let api = Api::new(&stack);

    // Act: accounts and sites.
    let token = api.register(&demo_email).await;
    let login = ok(
        &api,
        Method::POST,
        "/api/auth/login",
        None,
        Some(&json!({"email": demo_email, "password": "correct horse 1"})),
        StatusCode::OK,
    )
    .await;
    let token = login["token"].as_str().map(str::to_string).unwrap_or(token);
    ok(&api, Method::GET, "/api/auth/me", Some(&token), None, StatusCode::OK).await;
    let (site_id, key) = api.create_site(&token, "example.com", "Europe/Berlin").await;
    let (doomed_id, _) = api.create_site(&token, "doomed.example.com", "UTC").await;
    ok(&api, Method::GET, "/api/sites", Some(&token), None, StatusCode::OK).await;
    ok(&api, Method::GET, &format!("/api/sites/{site_id}"), Some(&token), None, StatusCode::OK).await;
    ok(
        &api,
        Method::PATCH,
        &format!("/api/sites/{site_id}"),
        Some(&token),
        Some(&json!({"name": "Renamed"})),
        StatusCode::OK,
    )
    .await;
    ok(
        &api,
        Method::PATCH,
        &format!("/api/sites/{doomed_id}"),
        Some(&token),
        Some(&json!({"domain": "moved.example.com"})),
        StatusCode::OK,
    )
    .await;
    let rotated =
        ok(&api, Method::POST, &format!("/api/sites/{doomed_id}/rotate-key"), Some(&token), None, StatusCode::OK).await;
    assert!(rotated["api_key"].is_string(), "{rotated}");
    ok(&api, Method::DELETE, &format!("/api/sites/{doomed_id}"), Some(&token), None, StatusCode::NO_CONTENT).await;
    let demo = api.http.get(format!("{}/demo", api.api)).send().await.expect("api");
    assert_eq!(demo.status(), StatusCode::OK, "/demo of the demo account's site");

    // Goals: one kept, one deleted.
    let goals = format!("/api/sites/{site_id}/goals");
    ok(
        &api,
        Method::POST,
        &goals,
        Some(&token),
        Some(&json!({"name": "Thanks", "kind": "pageview", "match": "/thanks"})),
        StatusCode::CREATED,
    )
    .await;
    let dropped = ok(
        &api,
        Method::POST,
        &goals,
        Some(&token),
        Some(&json!({"name": "Old", "kind": "event", "match": "Old"})),
        StatusCode::CREATED,
    )
    .await;
    let dropped_id = dropped["id"].as_str().expect("goal id");
    ok(&api, Method::DELETE, &format!("{goals}/{dropped_id}"), Some(&token), None, StatusCode::NO_CONTENT).await;
    ok(&api, Method::GET, &goals, Some(&token), None, StatusCode::OK).await;

    // Batches through ingest: two visits, one converting.
    let (p1, p2, p3) = (id("page"), id("page"), id("page"));
    let sent = [
        make_batch(
            &key,
            "session_a",
            vec![
                pageview(&p1, &u("/pricing"), "https://www.google.com/", true),
                click(&p1, &u("/pricing"), "button#cta", "Start"),
            ],
        ),
        make_batch(&key, "session_a", vec![pageview(&p2, &u("/thanks"), &u("/pricing"), false)]),
        make_batch(&key, "session_b", vec![pageview(&p3, &u("/"), "", true)]),
    ];
    for b in &sent {
        let (status, body) = api.post_batch(b).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let week = api.stats_when(&token, &site_id, "timeframe=7d", |s| s["summary"]["pageviews"] == 3).await;
    assert_eq!(week["summary"]["conversions"], 1, "{week}");

    // Every read the dashboard makes.
    for query in [
        "timeframe=24h",
        "timeframe=7d",
        "timeframe=90d",
        "timeframe=7d&page=%2Fpricing",
        "timeframe=24h&page=%2Fpricing",
        "timeframe=7d&compare=previous",
    ] {
        api.stats(&token, &site_id, query).await;
    }
    let csv = api
        .http
        .get(format!("{}/api/stats/{site_id}/export.csv?timeframe=7d", api.api))
        .bearer_auth(&token)
        .send()
        .await
        .expect("api");
    assert_eq!(csv.status(), StatusCode::OK, "export.csv");
    ok(&api, Method::GET, &format!("/api/stats/{site_id}/realtime"), Some(&token), None, StatusCode::OK).await;
    // Plausible's v2 query: the site by its domain, then each kind of read behind its rows.
    let v2 = |extra: Value| {
        let mut body = json!({"site_id": "example.com", "metrics": ["visits"], "date_range": "7d"});
        for (k, v) in extra.as_object().into_iter().flatten() {
            body[k] = v.clone();
        }
        body
    };
    for body in [
        v2(json!({"metrics": ["visitors", "events"], "dimensions": ["time:day"]})),
        v2(json!({"metrics": ["pageviews"], "dimensions": ["event:page"]})),
        v2(json!({"dimensions": ["visit:source"]})),
        v2(json!({"dimensions": ["event:goal"]})),
        v2(json!({"filters": [["is", "visit:source", ["Direct / None"]]]})),
        v2(json!({"metrics": ["pageviews"], "filters": [["is", "event:page", ["/pricing"]]]})),
    ] {
        ok(&api, Method::POST, "/api/v2/query", Some(&token), Some(&body), StatusCode::OK).await;
    }

    // A share link: its page and stats, then revoked.
    let share = format!("/api/sites/{site_id}/share");
    let link = ok(&api, Method::POST, &share, Some(&token), Some(&json!({})), StatusCode::OK).await;
    let share_token = link["token"].as_str().expect("share token");
    let public = ok(
        &api,
        Method::GET,
        &format!("/api/public/{share_token}/stats?timeframe=7d&page=%2Fpricing&compare=previous"),
        None,
        None,
        StatusCode::OK,
    )
    .await;
    assert!(public["summary"].is_object(), "{public}");
    let page = api.http.get(format!("{}/share/{share_token}", api.api)).send().await.expect("api");
    assert_eq!(page.status(), StatusCode::OK, "shared page");
    ok(&api, Method::DELETE, &share, Some(&token), None, StatusCode::NO_CONTENT).await;
    ok(&api, Method::GET, &format!("/api/public/{share_token}/stats"), None, None, StatusCode::NOT_FOUND).await;

    // Imports (v3): an export of one day uploaded, counted by the aggregator, listed, read
    // back through export.zip, deleted.
    let day = chrono::Utc::now().date_naive() - chrono::Duration::days(2);
    let imported = shared::imports::ImportedDay {
        date: day.format("%Y-%m-%d").to_string(),
        visitors: 2,
        pageviews: 3,
        visits: 2,
        pages: vec![shared::imports::PageRow { path: "/old".into(), pageviews: 3, visitors: 2, ..Default::default() }],
        ..Default::default()
    };
    let zip = shared::imports::write_zip(&[imported], "example.com", day, day).expect("zip");
    let imports = format!("/api/sites/{site_id}/imports");
    let res = api.http.post(format!("{}{imports}", api.api)).bearer_auth(&token).body(zip).send().await.expect("api");
    assert_eq!(res.status(), StatusCode::ACCEPTED, "upload");
    let import = res.json::<Value>().await.expect("json")["id"].as_str().expect("id").to_string();
    cp_tests::wait::until("the import to be counted", std::time::Duration::from_secs(30), || async {
        let list = ok(&api, Method::GET, &imports, Some(&token), None, StatusCode::OK).await;
        (list[0]["state"] == "done").then_some(())
    })
    .await;
    let zip =
        api.http.get(format!("{}/api/sites/{site_id}/export.zip", api.api)).bearer_auth(&token).send().await.expect("api");
    assert_eq!(zip.status(), StatusCode::OK, "export.zip");
    ok(&api, Method::DELETE, &format!("{imports}/{import}"), Some(&token), None, StatusCode::NO_CONTENT).await;

    // The account: a password change, then a logout (each ends the user's tokens).
    let changed = json!({"current_password": "correct horse 1", "new_password": "correct horse 2"});
    ok(&api, Method::POST, "/api/auth/password", Some(&token), Some(&changed), StatusCode::NO_CONTENT).await;
    let login = ok(
        &api,
        Method::POST,
        "/api/auth/login",
        None,
        Some(&json!({"email": demo_email, "password": "correct horse 2"})),
        StatusCode::OK,
    )
    .await;
    let token = login["token"].as_str().expect("token").to_string();
    ok(&api, Method::POST, "/api/auth/logout", Some(&token), None, StatusCode::NO_CONTENT).await;

    // The api's key reconcile (`find sites {}`) ran at its start; the aggregator's recovery
    // sweep runs once a minute and its rows come from the code and the library-level tests.
    stack.wait_drained().await;

    // Assert: every recorded shape has a row, and no hot-path row scans.
    let recorded = stack.query_shapes();
    assert!(
        recorded.iter().any(|q| q.service == "aggregator"
            && q.collection == shared::names::collections::ROLLUPS
            && q.command == "update"),
        "the aggregator's writes were recorded: {recorded:?}"
    );
    let rows = queries::listed();
    let unlisted = queries::unlisted(&recorded, &rows);
    assert!(
        unlisted.is_empty(),
        "queries sent with no row in docs/queries.md (add one per shape: what it is for, what addresses it, hot path or not):\n{}",
        queries::lines(&unlisted)
    );
    let scans: Vec<QueryShape> = queries::hot_path_scans(&rows);
    assert!(
        scans.is_empty(),
        "hot-path queries not addressed by _id (address them by their computed _id):\n{}",
        queries::lines(&scans)
    );
}

#[test]
fn a_shape_without_a_row_is_reported_and_one_with_a_row_is_not() {
    let rows = queries::parse(
        "| service | collection | command | filter shape | for | addressed by | hot path |\n\
         |---|---|---|---|---|---|---|\n\
         | api | sites | find | `{\"_id\":\"?\"}` | read a site | `_id` | yes |\n",
    )
    .expect("parses");
    let shape = |service: &str, shape: &str| QueryShape {
        service: service.into(),
        command: "find".into(),
        collection: "sites".into(),
        shape: shape.into(),
    };
    let listed = shape("api", r#"{"_id":"?"}"#);
    let new_filter = shape("api", r#"{"owner_id":"?"}"#);
    let other_service = shape("aggregator", r#"{"_id":"?"}"#);

    let unlisted = queries::unlisted(&[listed, new_filter.clone(), other_service.clone(), new_filter.clone()], &rows);

    assert_eq!(unlisted, vec![other_service, new_filter], "each unlisted shape once, sorted");
}

#[test]
fn a_library_level_shape_is_reported_unless_some_service_lists_it_or_the_test_sends_it_itself() {
    let rows = queries::parse("| aggregator | rollups_v2 | find | `{\"_id\":{\"$in\":\"?\"}}` | read | `_id` | yes |\n")
        .expect("parses");
    let shape = |command: &str, shape: &str| QueryShape {
        service: "library-tests".into(),
        command: command.into(),
        collection: "rollups_v2".into(),
        shape: shape.into(),
    };
    let listed = shape("find", r#"{"_id":{"$in":"?"}}"#);
    let own = shape("aggregate", "{}");
    let scan = shape("find", r#"{"site_id":"?"}"#);

    let unlisted =
        queries::unlisted_for_any_service(&[listed, own, scan.clone()], &rows, &[("aggregate", "rollups_v2", "{}")]);

    assert_eq!(unlisted, vec![scan]);
}

#[test]
fn a_hot_path_row_is_a_scan_unless_it_has_id_equality_or_id_in() {
    let cases = [
        (r#"{"_id":"?"}"#, true),
        (r#"{"_id":{"$in":"?"}}"#, true),
        (r#"{"_id":"?","rev":"?"}"#, true),
        (r#"{"_id":{"$in":"?"},"f":"?"}"#, true),
        (r#"{"_id":{"$gte":"?"}}"#, false),
        (r#"{"_id":{"$in":"?","$nin":"?"}}"#, false),
        (r#"{"site_id":"?"}"#, false),
        (r#"{"$or":[{"_id":"?"}]}"#, false),
        ("{}", false),
    ];
    for (shape, want) in cases {
        assert_eq!(queries::id_addressed(shape), want, "shape {shape}");
    }
    let row = |shape: &str, hot: bool| Row {
        service: "api".into(),
        collection: "rollups".into(),
        command: "find".into(),
        shape: shape.into(),
        purpose: String::new(),
        addressed_by: String::new(),
        hot_path: hot,
    };
    let rows =
        [row(r#"{"_id":"?"}"#, true), row(r#"{"site_id":"?"}"#, true), row(r#"{"site_id":"?"}"#, false), row("-", true)];
    assert_eq!(queries::hot_path_scans(&rows), vec![rows[1].as_shape()]);
}

#[test]
fn a_malformed_row_names_its_line() {
    let cases = [
        ("| api | sites | find | `{\"_id\":\"?\"}` | read | `_id` |\n", "6 cells"),
        ("| api | sites | find | {\"_id\":\"?\"} | read | `_id` | yes |\n", "backticks"),
        ("| api | sites | find | `{\"_id\":\"?\"}` | read | `_id` | maybe |\n", "hot path"),
        ("| api | sites | find | `{_id:?}` | read | `_id` | yes |\n", "not JSON"),
    ];
    for (table, want) in cases {
        let err = queries::parse(&format!("intro\n{table}")).expect_err(want);
        assert!(err.contains("line 2") && err.contains(want), "case {want}: {err}");
    }
}

/// docs/queries.md says `_id` exactly where the filter is addressed by `_id`, names an index the
/// collection has (leading with a field the filter selects on) or `scan` everywhere else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_of_docs_queries_names_what_addresses_it_truthfully() {
    let rows = queries::listed();
    assert!(!rows.is_empty(), "docs/queries.md has rows");
    let stack = Stack::start().await;
    let client = mongodb::Client::with_uri_str(&stack.mongo_uri).await.expect("mongodb client");
    let db = client.database(&stack.mongo_db);
    let mut wrong = Vec::new();
    for r in &rows {
        let verdict = check_addressed_by(&db, r).await;
        if let Err(why) = verdict {
            wrong.push(format!("  {} {} {} {}: {why}", r.service, r.command, r.collection, r.shape));
        }
    }
    assert!(wrong.is_empty(), "rows of docs/queries.md whose \"addressed by\" is not true:\n{}", wrong.join("\n"));
}

/// Whether a row's "addressed by" is true: `-` for no filter, `_id` exactly when the filter
/// has `_id` equality or `_id $in`, `index {a, b}` when the collection has that index and the
/// filter selects on its first field, `scan` when no index leads with a field it selects on.
async fn check_addressed_by(db: &mongodb::Database, r: &Row) -> Result<(), String> {
    if r.shape == shared::command_log::NO_FILTER {
        return if r.addressed_by == "-" {
            Ok(())
        } else {
            Err(format!("no filter, want addressed by `-`, not {:?}", r.addressed_by))
        };
    }
    if queries::id_addressed(&r.shape) {
        return if r.addressed_by == "_id" {
            Ok(())
        } else {
            Err(format!("the filter has _id, want addressed by `_id`, not {:?}", r.addressed_by))
        };
    }
    let filter: serde_json::Map<String, Value> = serde_json::from_str(&r.shape).map_err(|e| format!("{e}"))?;
    if filter.is_empty() {
        // Every document: no index can serve it (and a legacy collection may not exist).
        return if r.addressed_by == "scan" {
            Ok(())
        } else {
            Err(format!("the empty filter reads everything, want `scan`, not {:?}", r.addressed_by))
        };
    }
    let indexes: Vec<mongodb::IndexModel> = db
        .collection::<mongodb::bson::Document>(&r.collection)
        .list_indexes()
        .await
        .map_err(|e| format!("listing indexes: {e}"))?
        .try_collect()
        .await
        .map_err(|e| format!("listing indexes: {e}"))?;
    let keys: Vec<Vec<String>> = indexes.iter().map(|i| i.keys.keys().cloned().collect()).collect();
    if r.addressed_by == "scan" {
        return match keys.iter().find(|k| k.first().is_some_and(|f| filter.contains_key(f))) {
            None => Ok(()),
            Some(k) => Err(format!("index {k:?} serves it: name it instead of `scan`")),
        };
    }
    let fields: Vec<String> = r
        .addressed_by
        .strip_prefix("index {")
        .and_then(|s| s.strip_suffix('}'))
        .ok_or_else(|| format!("want `_id`, `index {{fields}}` or `scan`, not {:?}", r.addressed_by))?
        .split(',')
        .map(|f| f.trim().to_string())
        .collect();
    if !filter.contains_key(&fields[0]) {
        return Err(format!("the index leads with {:?}, which the filter does not select on", fields[0]));
    }
    if keys.contains(&fields) { Ok(()) } else { Err(format!("no such index on {}; it has {keys:?}", r.collection)) }
}

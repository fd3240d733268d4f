//! Stats API keys (issue 23) against the contract, over real processes: a key reads the stats
//! of the sites it names (or every site of its user, present and future, with `*`), is shown
//! once and listed without itself, is refused 403 `read_only` on every other route, ends with
//! its deletion on the next request, and a user holds at most 20 even when creates race.

use cp_tests::{client::Api, stack::Stack};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn with_key(api: &Api, method: Method, path: &str, key: &str, body: Option<&Value>) -> (StatusCode, Value) {
    api.send(method, path, Some(key), body).await
}

async fn make_key(api: &Api, token: &str, name: &str, sites: Value) -> Value {
    let (status, k) = api.post("/api/keys", Some(token), &json!({"name": name, "sites": sites})).await;
    assert_eq!(status, StatusCode::CREATED, "{k}");
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_reads_its_sites_only_is_read_only_everywhere_else_and_ends_when_deleted() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", "UTC").await;
    let (other_site, _) = api.create_site(&t.token, "other.example", "UTC").await;
    let stranger = api.tenant("stranger.example", "UTC").await;

    let k = make_key(&api, &t.token, "Reporting", json!([t.site_id])).await;
    let key = k["key"].as_str().expect("key").to_string();
    assert!(key.starts_with("cps_") && key.len() > 60, "{key}");
    assert_eq!((k["name"].as_str(), &k["sites"]), (Some("Reporting"), &json!([t.site_id])));
    // Listed without the key or anything derived from it.
    let (status, list) = api.get("/api/keys", Some(&t.token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    let listed = list[0].as_object().expect("key row");
    let mut fields: Vec<&str> = listed.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, vec!["created_at", "id", "name", "sites"], "{list}");
    assert!(!list.to_string().contains(&key[key.len() - 20..]), "no part of the secret is listed");

    // The key's reads: the same answers as the owner's.
    let stats = format!("/api/stats/{}?timeframe=7d", t.site_id);
    let (status, by_key) = with_key(&api, Method::GET, &stats, &key, None).await;
    assert_eq!(status, StatusCode::OK, "{by_key}");
    assert_eq!(by_key, api.stats(&t.token, &t.site_id, "timeframe=7d").await);
    for read in [
        format!("/api/stats/{}/realtime", t.site_id),
        format!("/api/stats/{}/export.csv?timeframe=7d", t.site_id),
        format!("/api/stats/{}/page?path=/&timeframe=7d", t.site_id),
        format!("/api/stats/{}/events/Signup?timeframe=7d", t.site_id),
        format!("/api/sites/{}/funnels", t.site_id),
    ] {
        let res = api.http.get(format!("{}{read}", api.api)).bearer_auth(&key).send().await.expect("api");
        assert_eq!(res.status(), StatusCode::OK, "{read}");
    }
    // Another site of the same user, and someone else's: as if they did not exist.
    for site in [&other_site, &stranger.site_id] {
        let (status, body) = with_key(&api, Method::GET, &format!("/api/stats/{site}?timeframe=7d"), &key, None).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{site}");
    }
    // Everything else: 403 read_only, and nothing changes.
    let writes = [
        (Method::GET, "/api/sites".to_string(), None),
        (Method::GET, "/api/auth/me".to_string(), None),
        (
            Method::POST,
            format!("/api/sites/{}/goals", t.site_id),
            Some(json!({"name": "G", "kind": "event", "match": "Signup"})),
        ),
        (Method::PATCH, format!("/api/sites/{}", t.site_id), Some(json!({"name": "Taken over"}))),
        (Method::DELETE, format!("/api/sites/{}", t.site_id), None),
        (Method::POST, format!("/api/sites/{}/rotate-key", t.site_id), None),
        (Method::POST, format!("/api/sites/{}/share", t.site_id), None),
        (Method::POST, "/api/keys".to_string(), Some(json!({"name": "More", "sites": "*"}))),
        (Method::GET, "/api/keys".to_string(), None),
        (Method::DELETE, format!("/api/keys/{}", k["id"].as_str().expect("id")), None),
        (Method::POST, "/api/auth/logout".to_string(), None),
    ];
    for (method, path, body) in &writes {
        let (status, answer) = with_key(&api, method.clone(), path, &key, body.as_ref()).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (StatusCode::FORBIDDEN, Some("read_only")),
            "{method} {path}: {answer}"
        );
    }
    let (_, site) = api.get(&format!("/api/sites/{}", t.site_id), Some(&t.token)).await;
    assert_eq!(site["name"], "Landing", "the PATCH changed nothing");

    // `*` reads every site of the user, one made after the key too.
    let all = make_key(&api, &t.token, "Everything", json!("*")).await;
    assert_eq!(all["sites"], "*");
    let all_key = all["key"].as_str().expect("key");
    let (later, _) = api.create_site(&t.token, "later.example", "UTC").await;
    for site in [&t.site_id, &other_site, &later] {
        let (status, _) = with_key(&api, Method::GET, &format!("/api/stats/{site}?timeframe=7d"), all_key, None).await;
        assert_eq!(status, StatusCode::OK, "{site}");
    }
    let (status, _) =
        with_key(&api, Method::GET, &format!("/api/stats/{}?timeframe=7d", stranger.site_id), all_key, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Deleted: the next request is refused.
    let (status, _) =
        api.send(Method::DELETE, &format!("/api/keys/{}", k["id"].as_str().expect("id")), Some(&t.token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = with_key(&api, Method::GET, &stats, &key, None).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")), "{body}");
    let (status, _) =
        api.send(Method::DELETE, &format!("/api/keys/{}", k["id"].as_str().expect("id")), Some(&t.token), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "deleted once");
    // Another user cannot see or delete the user's keys.
    let (_, theirs) = api.get("/api/keys", Some(&stranger.token)).await;
    assert_eq!(theirs, json!([]));
    let (status, _) = api
        .send(Method::DELETE, &format!("/api/keys/{}", all["id"].as_str().expect("id")), Some(&stranger.token), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A key-shaped token that was never made.
    let forged = format!("cps_{}_{}_{}", "ab".repeat(12), "cd".repeat(12), "A".repeat(43));
    let (status, _) = with_key(&api, Method::GET, &stats, &forged, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_key_requests_are_refused_naming_the_field_and_racing_creates_stop_at_twenty() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", "UTC").await;
    let stranger = api.tenant("stranger.example", "UTC").await;
    let cases = [
        (json!({"sites": "*"}), "name:"),
        (json!({"name": "", "sites": "*"}), "name:"),
        (json!({"name": "x".repeat(101), "sites": "*"}), "name:"),
        (json!({"name": "K"}), "sites:"),
        (json!({"name": "K", "sites": []}), "sites:"),
        (json!({"name": "K", "sites": "all"}), "sites:"),
        (json!({"name": "K", "sites": [t.site_id, stranger.site_id]}), "sites[1]:"),
        (json!({"name": "K", "sites": [42]}), "sites[0]:"),
    ];
    for (body, field) in cases {
        let (status, answer) = api.post("/api/keys", Some(&t.token), &body).await;
        assert_eq!((status, answer["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{body}");
        assert!(answer["message"].as_str().unwrap_or_default().starts_with(field), "{body}: {answer}");
    }
    // 30 creates at once: exactly 20 keys, the rest refused.
    let creates = (0..30).map(|i| {
        let api = api.clone();
        let token = t.token.clone();
        async move { api.post("/api/keys", Some(&token), &json!({"name": format!("k{i}"), "sites": "*"})).await }
    });
    let answers = futures::future::join_all(creates).await;
    let made = answers.iter().filter(|(s, _)| *s == StatusCode::CREATED).count();
    let refused = answers
        .iter()
        .filter(|(s, b)| *s == StatusCode::BAD_REQUEST && b["message"].as_str().is_some_and(|m| m.contains("at most 20")))
        .count();
    assert_eq!((made, refused), (20, 10), "{answers:?}");
    let (_, list) = api.get("/api/keys", Some(&t.token)).await;
    assert_eq!(list.as_array().map(Vec::len), Some(20));
}

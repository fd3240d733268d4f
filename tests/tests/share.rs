//! Share links (issue 10) over real processes: the public stats equal the owner's for every
//! query; the token reaches nothing but them (every owner route with it as a bearer token is
//! 401, the token in place of a site id is 404); a new link kills the old one, a revoked link
//! answers 404 within 5 s, and so does the link of a deleted site; public stats are
//! rate-limited per client address with Retry-After.

use cp_tests::v2;

use std::time::Duration;

use cp_tests::{
    batch::{batch as make_batch, click, id, pageview},
    client::{Api, Tenant},
    stack::Stack,
    wait,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use v2::{chrome, custom, send};

fn u(path: &str) -> String {
    format!("https://example.com{path}")
}

/// `POST /api/sites/{id}/share` as the owner: the token, checked for shape.
async fn share(api: &Api, t: &Tenant) -> String {
    let (status, link) = api.post(&format!("/api/sites/{}/share", t.site_id), Some(&t.token), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{link}");
    let token = link["token"].as_str().expect("token").to_string();
    assert_eq!(link["url"], format!("/share/{token}"), "{link}");
    // At least 128 random bits, in characters a URL carries as they are.
    assert!(token.len() >= 22 && token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{token}");
    token
}

/// `GET /api/public/{token}/stats?query`, without credentials.
async fn public(api: &Api, token: &str, query: &str) -> (StatusCode, Value) {
    api.get(&format!("/api/public/{token}/stats?{query}"), None).await
}

/// `GET /share/{token}`: the status.
async fn page_status(api: &Api, token: &str) -> StatusCode {
    api.http.get(format!("{}/share/{token}", api.api)).send().await.expect("api").status()
}

/// Waits (at most 5 s) until both the public stats and the page of `token` answer 404.
async fn wait_dead(api: &Api, token: &str, what: &str) {
    let api = api.clone();
    wait::until(what, Duration::from_secs(5), || {
        let (api, token) = (api.clone(), token.to_string());
        async move {
            (public(&api, &token, "").await.0 == StatusCode::NOT_FOUND
                && page_status(&api, &token).await == StatusCode::NOT_FOUND)
                .then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_link_serves_the_owners_stats_read_only_until_it_is_replaced_or_revoked() {
    // Arrange: a site with a goal and some traffic.
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let tz = v2::noon_zone();
    let t = api.tenant("example.com", &tz).await;
    let (status, g) = api
        .post(
            &format!("/api/sites/{}/goals", t.site_id),
            Some(&t.token),
            &json!({"name": "Signup", "kind": "event", "match": "Signup"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{g}");
    let goal_id = g["id"].as_str().expect("goal id").to_string();
    let (a, b) = (id("page"), id("page"));
    send(
        &api,
        &make_batch(
            &t.key,
            &id("sess"),
            vec![
                pageview(&a, &u("/pricing?utm_campaign=spring"), "https://www.google.com/", true),
                click(&a, &u("/pricing"), "button#cta", "Go"),
                custom(&a, &u("/pricing"), "Signup", Value::Null),
            ],
        ),
        &chrome(1),
    )
    .await;
    send(&api, &make_batch(&t.key, &id("sess"), vec![pageview(&b, &u("/"), "", true)]), &chrome(2)).await;
    api.stats_when(&t.token, &t.site_id, "timeframe=7d", |s| {
        s["summary"]["pageviews"] == 2 && s["summary"]["conversions"] == 1
    })
    .await;
    stack.wait_drained().await;
    let (_, site_before) = api.get(&format!("/api/sites/{}", t.site_id), Some(&t.token)).await;

    // Act: share.
    let token = share(&api, &t).await;

    // Assert: the public stats are the owner's, whatever the query.
    let today = v2::day_of(chrono::Utc::now().timestamp_millis(), &tz);
    let queries = [
        String::new(),
        "timeframe=24h".into(),
        "timeframe=30d&compare=previous".into(),
        "timeframe=7d&page=/pricing".into(),
        "timeframe=24h&page=/pricing&compare=previous".into(),
        "timeframe=7d&page=/nope".into(),
        format!("from={today}&to={today}&compare=previous"),
    ];
    for query in &queries {
        let owner = api.stats(&t.token, &t.site_id, query).await;
        let (status, shared) = public(&api, &token, query).await;
        assert_eq!(status, StatusCode::OK, "case {query:?}: {shared}");
        assert_eq!(shared, owner, "case {query:?}");
    }
    let (status, err) = public(&api, &token, "timeframe=1y").await;
    assert_eq!((status, err["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_timeframe")), "{err}");
    let res = api.http.get(format!("{}/share/{token}", api.api)).send().await.expect("api");
    assert_eq!(res.status(), StatusCode::OK);
    let header = |name: &str| res.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let (content_type, referrer_policy) = (header("content-type"), header("referrer-policy"));
    assert_eq!(referrer_policy, "no-referrer", "the token never leaves in a Referer");
    let html = res.text().await.expect("page");
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(!html.contains(&t.key), "the shared page never carries the site key");

    // The token as a bearer token opens no route of the owner's: 401, and nothing changes.
    let site = format!("/api/sites/{}", t.site_id);
    let goal_path = format!("{site}/goals/{goal_id}");
    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (Method::POST, "/api/sites".into(), Some(json!({"name": "Mine", "domain": "evil.example"}))),
        (Method::PATCH, site.clone(), Some(json!({"name": "Hacked", "domain": "evil.example"}))),
        (Method::DELETE, site.clone(), None),
        (Method::POST, format!("{site}/rotate-key"), None),
        (Method::POST, format!("{site}/goals"), Some(json!({"name": "Mine", "kind": "event", "match": "x"}))),
        (Method::DELETE, goal_path.clone(), None),
        (Method::POST, format!("{site}/share"), None),
        (Method::DELETE, format!("{site}/share"), None),
        (Method::GET, "/api/auth/me".into(), None),
        (Method::GET, "/api/sites".into(), None),
        (Method::GET, site.clone(), None),
        (Method::GET, format!("{site}/goals"), None),
        (Method::GET, format!("/api/stats/{}", t.site_id), None),
        (Method::GET, format!("/api/stats/{}/realtime", t.site_id), None),
        (Method::GET, format!("/api/stats/{}/export.csv", t.site_id), None),
    ];
    for (method, path, body) in &cases {
        let (status, err) = api.send(method.clone(), path, Some(&token), body.as_ref()).await;
        assert_eq!(
            (status, err["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("unauthorized")),
            "case {method} {path}: {err}"
        );
    }
    let (_, site_after) = api.get(&site, Some(&t.token)).await;
    assert_eq!(site_after, site_before, "the site, its name, domain and key are unchanged");
    let (_, goals) = api.get(&format!("{site}/goals"), Some(&t.token)).await;
    assert_eq!(goals.as_array().map(|g| g.len()), Some(1), "{goals}");
    assert_eq!(public(&api, &token, "").await.0, StatusCode::OK, "the link still works");

    // The token in place of a site id, with the owner's own credentials: 404 everywhere.
    let cases: Vec<(Method, String)> = vec![
        (Method::GET, format!("/api/sites/{token}")),
        (Method::PATCH, format!("/api/sites/{token}")),
        (Method::DELETE, format!("/api/sites/{token}")),
        (Method::POST, format!("/api/sites/{token}/rotate-key")),
        (Method::GET, format!("/api/sites/{token}/goals")),
        (Method::POST, format!("/api/sites/{token}/share")),
        (Method::DELETE, format!("/api/sites/{token}/share")),
        (Method::GET, format!("/api/stats/{token}")),
        (Method::GET, format!("/api/stats/{token}/realtime")),
        (Method::GET, format!("/api/stats/{token}/export.csv")),
    ];
    for (method, path) in &cases {
        let body = (method == Method::PATCH).then(|| json!({"name": "x"}));
        let (status, err) = api.send(method.clone(), path, Some(&t.token), body.as_ref()).await;
        assert_eq!(
            (status, err["error"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "case {method} {path}: {err}"
        );
    }
    // Nor does anything else open the public stats: the site id, the key, a made-up token.
    for (case, not_a_token) in
        [("site id", t.site_id.as_str()), ("site key", t.key.as_str()), ("made up", "A".repeat(43).as_str())]
    {
        assert_eq!(public(&api, not_a_token, "").await.0, StatusCode::NOT_FOUND, "case {case}");
        assert_eq!(page_status(&api, not_a_token).await, StatusCode::NOT_FOUND, "case {case}");
    }
    // Someone else can neither replace nor revoke the link.
    let other = api.tenant("example.org", "UTC").await;
    for method in [Method::POST, Method::DELETE] {
        let (status, _) = api.send(method.clone(), &format!("{site}/share"), Some(&other.token), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "case {method} by someone else");
    }
    assert_eq!(public(&api, &token, "").await.0, StatusCode::OK, "the link still works");

    // A new link: the old one stops working.
    let second = share(&api, &t).await;
    assert_ne!(second, token, "a new token each call");
    wait_dead(&api, &token, "the replaced link to answer 404").await;
    let (status, shared) = public(&api, &second, "").await;
    assert_eq!((status, shared), (StatusCode::OK, api.stats(&t.token, &t.site_id, "").await));
    assert_eq!(page_status(&api, &second).await, StatusCode::OK);

    // Revoked: 404 within 5 s, the page too.
    let (status, _) = api.send(Method::DELETE, &format!("{site}/share"), Some(&t.token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    wait_dead(&api, &second, "the revoked link to answer 404").await;

    // Shared again, then the site deleted: the link dies with it.
    let third = share(&api, &t).await;
    assert_eq!(public(&api, &third, "").await.0, StatusCode::OK);
    let (status, _) = api.send(Method::DELETE, &site, Some(&t.token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    wait_dead(&api, &third, "the link of a deleted site to answer 404").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_stats_are_rate_limited_per_client_address_with_retry_after() {
    let stack = Stack::start_with(&[("CP_PUBLIC_STATS_PER_MIN", "5"), ("CP_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", "UTC").await;
    let token = share(&api, &t).await;
    let get = |forwarded_for: Option<&'static str>| {
        let (api, token) = (api.clone(), token.clone());
        async move {
            let mut req = api.http.get(format!("{}/api/public/{token}/stats", api.api));
            if let Some(xff) = forwarded_for {
                req = req.header("x-forwarded-for", xff);
            }
            let res = req.send().await.expect("api");
            let retry_after = res.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
            let (status, body) = Api::json(res).await;
            (status, body, retry_after)
        }
    };

    for i in 1..=5 {
        let (status, body, _) = get(None).await;
        assert_eq!(status, StatusCode::OK, "request {i}: {body}");
    }
    let (status, body, retry_after) = get(None).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")), "request 6: {body}");
    let secs: u64 = retry_after
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("Retry-After in seconds: {retry_after:?}"));
    assert!((1..=60).contains(&secs), "Retry-After {secs}");

    // Another client is not held back, nor is the owner.
    let (status, body, _) = get(Some("8.8.8.8")).await;
    assert_eq!(status, StatusCode::OK, "another address: {body}");
    api.stats(&t.token, &t.site_id, "timeframe=7d").await;
}

//! What the public ports show and what they keep to themselves: metrics only on the internal
//! listeners, bounded metric labels, security and cache headers, and `/demo` only when seeded.

use cp_tests::{
    batch::{batch as make_batch, id, pageview},
    client::Api,
    stack::{Proc, Stack},
};
use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::json;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_only_on_the_internal_listeners_without_cors() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    for p in [Proc::Api, Proc::Ingest, Proc::Aggregator] {
        let public = api.http.get(format!("{}/metrics", stack.url(p))).send().await.expect("public port");
        assert_eq!(public.status(), StatusCode::NOT_FOUND, "{p:?}: /metrics is not on the public port");
        for path in ["/healthz", "/readyz"] {
            let res = api.http.get(format!("{}{path}", stack.url(p))).send().await.expect("public port");
            assert_eq!(res.status(), StatusCode::OK, "{p:?}{path} stays public for balancers");
        }
        let internal =
            api.http.get(stack.metrics_url(p)).header("origin", "https://evil.example").send().await.expect("metrics port");
        assert_eq!(internal.status(), StatusCode::OK, "{p:?}");
        assert!(internal.headers().get("access-control-allow-origin").is_none(), "{p:?}: no CORS on metrics");
        assert!(internal.text().await.expect("text").contains("convertpulse_http_requests_total"), "{p:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invented_http_methods_share_the_metric_label_other() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    for (p, path) in [(Proc::Api, "/api/sites"), (Proc::Ingest, "/api/events/batch"), (Proc::Api, "/nowhere")] {
        for token in ["FOO", "BREW", "X-METHOD-1"] {
            let method = Method::from_bytes(token.as_bytes()).expect("method");
            let res = api.http.request(method, format!("{}{path}", stack.url(p))).send().await.expect("answer");
            assert!(res.status().is_client_error(), "{p:?} {token} {path}: {}", res.status());
        }
    }
    for p in [Proc::Api, Proc::Ingest] {
        let metrics = stack.metrics(p).await;
        let methods: Vec<&str> = metrics
            .lines()
            .filter(|l| l.starts_with("convertpulse_http_requests_total{"))
            .filter_map(|l| l.split("method=\"").nth(1)?.split('"').next())
            .collect();
        assert!(methods.contains(&"other"), "{p:?}: {methods:?}");
        assert!(
            methods
                .iter()
                .all(|m| ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE", "other"]
                    .contains(m)),
            "{p:?}: {methods:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_security_headers_and_tokens_and_keys_are_never_cached() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let email = format!("{}@example.com", id("hdr"));
    let send = |method: Method, path: &str, token: Option<String>, body: Option<serde_json::Value>| {
        let mut req = api.http.request(method, format!("{}{path}", api.api));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send()
    };
    let register =
        send(Method::POST, "/api/auth/register", None, Some(json!({"email": email, "password": "long enough 1"})))
            .await
            .expect("register");
    let register_headers = register.headers().clone();
    let token = register.json::<serde_json::Value>().await.expect("json")["token"].as_str().expect("token").to_string();
    let site = send(Method::POST, "/api/sites", Some(token.clone()), Some(json!({"name": "H", "domain": "example.com"})))
        .await
        .expect("site");
    let site_headers = site.headers().clone();
    let site_id = site.json::<serde_json::Value>().await.expect("json")["id"].as_str().expect("id").to_string();

    let mut answers: Vec<(String, HeaderMap, bool)> =
        vec![("register 201".into(), register_headers, true), ("create site 201".into(), site_headers, true)];
    // (method, path, token, body, must not be stored)
    type Call = (Method, String, Option<String>, Option<serde_json::Value>, bool);
    let more: [Call; 8] = [
        (Method::POST, "/api/auth/login".into(), None, Some(json!({"email": email, "password": "long enough 1"})), true),
        (Method::POST, "/api/auth/login".into(), None, Some(json!({"email": email, "password": "wrong password"})), true),
        (Method::GET, "/api/auth/me".into(), Some(token.clone()), None, true),
        (Method::GET, "/api/sites".into(), Some(token.clone()), None, true),
        (Method::POST, format!("/api/sites/{site_id}/rotate-key"), Some(token.clone()), None, true),
        (Method::GET, "/api/sites/nope".into(), Some(token.clone()), None, true),
        (Method::GET, "/api/nowhere".into(), None, None, false),
        (Method::GET, "/".into(), None, None, false),
    ];
    for (method, path, token, body, no_store) in more {
        let res = send(method.clone(), &path, token, body).await.expect("answer");
        answers.push((format!("{method} {path} {}", res.status()), res.headers().clone(), no_store));
    }
    for (what, headers, must_not_store) in &answers {
        assert_eq!(header(headers, "x-content-type-options"), Some("nosniff"), "{what}");
        assert!(header(headers, "referrer-policy").is_some(), "{what}");
        assert_eq!(header(headers, "x-frame-options"), Some("DENY"), "{what}");
        assert!(header(headers, "content-security-policy").is_some_and(|c| c.contains("frame-ancestors 'none'")), "{what}");
        if *must_not_store {
            assert_eq!(header(headers, "cache-control"), Some("no-store"), "{what}");
        }
    }

    // Ingest's answers are not sniffed either.
    let b = make_batch(
        "cp_unknown_key_00000000000000000000",
        "session_hdr",
        vec![pageview(&id("page"), "https://example.com/", "", false)],
    );
    let (status, _, headers) = api.post_batch_raw(serde_json::to_vec(&b).expect("json"), "application/json", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_is_off_unless_configured_and_seeded() {
    let off = Stack::start().await;
    let res = Api::new(&off).http.get(format!("{}/demo", off.url(Proc::Api))).send().await.expect("demo");
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "off by default");
    assert!(res.text().await.expect("text").contains("demo is off"));

    let on = Stack::start_with(&[("CP_DEMO_EMAIL", "demo@convertpulse.dev")]).await;
    let api = Api::new(&on);
    let res = api.http.get(format!("{}/demo", api.api)).send().await.expect("demo");
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "configured but not seeded");
    let token = api.register("demo@convertpulse.dev").await;
    let (_, key) = api.create_site(&token, "localhost", "UTC").await;
    let res = api.http.get(format!("{}/demo", api.api)).send().await.expect("demo");
    assert_eq!(res.status(), StatusCode::OK, "seeded");
    assert!(res.text().await.expect("text").contains(&key), "the page reports to the demo site");
}

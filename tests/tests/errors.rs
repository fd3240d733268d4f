//! Every error row of the contract, over real processes, and that refused batches change no
//! number.

use cp_tests::{
    batch::{batch as make_batch, click, id, pageview, scroll},
    client::Api,
    stack::{Proc, Stack},
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// (case, body, Origin, status, code, the field the message starts with).
type Refusal = (&'static str, Vec<u8>, Option<&'static str>, StatusCode, &'static str, &'static str);

fn err_code(body: &Value) -> Option<&str> {
    body["error"].as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_refuses_bad_batches_with_the_contract_codes_and_counts_none() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", "UTC").await;
    let page = id("page");
    let url = "https://example.com/";
    let good = || make_batch(&t.key, "session_err", vec![pageview(&page, url, "", true)]);

    let mut deep = good();
    deep["events"] = json!([
        pageview(&page, url, "", true),
        click(&page, url, "a", "b"),
        click(&page, url, "a", "b"),
        scroll(&page, url, 101, 0)
    ]);
    let mut unknown_key = good();
    unknown_key["key"] = json!("cp_no_such_key_000000000000000000");
    let mut bad_prev = good();
    bad_prev["events"] = json!([scroll(&page, url, 40, 40)]);
    let mut too_many = good();
    too_many["events"] = json!(vec![pageview(&page, url, "", false); 51]);
    let huge = {
        let mut b = good();
        b["padding"] = json!("x".repeat(70 * 1024));
        b
    };

    let cases: Vec<Refusal> = vec![
        ("malformed json", b"{\"key\": ".to_vec(), None, StatusCode::BAD_REQUEST, "invalid_batch", "body"),
        ("not an object", b"[]".to_vec(), None, StatusCode::BAD_REQUEST, "invalid_batch", "body"),
        (
            "depth out of range",
            serde_json::to_vec(&deep).expect("json"),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_batch",
            "events[3].depth",
        ),
        (
            "prev not below depth",
            serde_json::to_vec(&bad_prev).expect("json"),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_batch",
            "events[0].prev",
        ),
        (
            "51 events",
            serde_json::to_vec(&too_many).expect("json"),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_batch",
            "events",
        ),
        (
            "unknown key",
            serde_json::to_vec(&unknown_key).expect("json"),
            None,
            StatusCode::UNAUTHORIZED,
            "invalid_key",
            "key",
        ),
        (
            "foreign origin",
            serde_json::to_vec(&good()).expect("json"),
            Some("https://notexample.com"),
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "origin",
        ),
        (
            "lookalike origin",
            serde_json::to_vec(&good()).expect("json"),
            Some("https://example.com.evil.io"),
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "origin",
        ),
        (
            "over 64 KiB",
            serde_json::to_vec(&huge).expect("json"),
            None,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "body",
        ),
    ];
    for (case, body, origin, want_status, want_code, want_field) in cases {
        let (status, err, _) = api.post_batch_raw(body, "application/json", origin).await;
        assert_eq!((status, err_code(&err)), (want_status, Some(want_code)), "case {case}: {err}");
        let message = err["message"].as_str().unwrap_or_default();
        assert!(
            !want_field.is_empty() && message.starts_with(want_field),
            "case {case}: message {message:?} should start with the field {want_field:?}"
        );
    }

    // Accepted forms: subdomain origin, text/plain (sendBeacon), and no Origin at all.
    for (origin, ct) in [(Some("https://shop.example.com"), "text/plain;charset=UTF-8"), (None, "application/json")] {
        let (status, body, headers) = api.post_batch_raw(serde_json::to_vec(&good()).expect("json"), ct, origin).await;
        assert_eq!((status, body), (StatusCode::ACCEPTED, json!({"accepted": 1})), "origin {origin:?}");
        assert_eq!(headers.get("access-control-allow-origin").and_then(|v| v.to_str().ok()), Some("*"));
    }

    // CORS preflight from any origin.
    let res = api
        .http
        .request(Method::OPTIONS, format!("{}/api/events/batch", api.ingest))
        .header("origin", "https://anything.example.org")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .expect("preflight");
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()), Some("*"));
    assert!(res.headers().get("access-control-allow-credentials").is_none());

    // Only the two accepted batches count.
    let s = api.stats_when(&t.token, &t.site_id, "", |s| s["summary"]["pageviews"] == 2).await;
    assert_eq!(s["summary"]["clicks"], 0, "refused batches changed a number: {s}");
    let metrics = stack.metrics(Proc::Ingest).await;
    assert!(metrics.contains("convertpulse_ingest_batches_rejected_total{reason=\"invalid_batch\"} 5"), "{metrics}");

    // Unknown routes and methods get the envelope.
    let res = api.http.get(format!("{}/nope", api.ingest)).send().await.expect("404");
    assert_eq!(Api::json(res).await.1["error"], "not_found");
    let res = api.http.get(format!("{}/api/events/batch", api.ingest)).send().await.expect("405");
    let (status, body) = Api::json(res).await;
    assert_eq!((status, err_code(&body)), (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_rate_limits_per_key_with_retry_after() {
    let stack = Stack::start_with(&[("CP_RATE_LIMIT_KEY_PER_SEC", "0.5"), ("CP_RATE_LIMIT_KEY_BURST", "2")]).await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", "UTC").await;
    let page = id("page");
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..3 {
        let b = make_batch(&t.key, "session_rl", vec![pageview(&page, "https://example.com/", "", false)]);
        let (status, body, headers) =
            api.post_batch_raw(serde_json::to_vec(&b).expect("json"), "application/json", None).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(err_code(&body), Some("rate_limited"));
            retry_after = headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        }
        statuses.push(status);
    }
    assert_eq!(statuses, vec![StatusCode::ACCEPTED, StatusCode::ACCEPTED, StatusCode::TOO_MANY_REQUESTS]);
    assert!(retry_after.is_some_and(|s| s >= 1), "Retry-After present: {retry_after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_rate_limits_per_client_ip_and_ignores_untrusted_forwarded_for() {
    let stack = Stack::start_with(&[("CP_RATE_LIMIT_IP_PER_SEC", "0.01"), ("CP_RATE_LIMIT_IP_BURST", "2")]).await;
    let api = Api::new(&stack);
    let token = api.register(&format!("{}@example.com", id("ip"))).await;
    let (status, site) = api.post("/api/sites", Some(&token), &json!({"name": "IP", "domain": "example.com"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let key = site["api_key"].as_str().expect("key");
    let page = id("page");
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for forwarded in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        let b = make_batch(key, "session_ip", vec![pageview(&page, "https://example.com/", "", false)]);
        let res = api
            .http
            .post(format!("{}/api/events/batch", api.ingest))
            .header("x-forwarded-for", forwarded)
            .json(&b)
            .send()
            .await
            .expect("ingest");
        retry_after = res.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
        statuses.push(res.status());
    }
    // The peer is not a trusted proxy, so all three share the socket address's bucket of two,
    // whatever they claim to forward (the first two may be 202 or, if the new key has not
    // reached ingest yet, 401: both spend a token).
    assert!(statuses[..2].iter().all(|s| *s != StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    assert_eq!(statuses[2], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
    assert!(retry_after.is_some(), "Retry-After present");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_error_rows_answer_with_the_contract_codes() {
    let stack = Stack::start_with(&[("CP_LOGIN_MAX_FAILURES", "3")]).await;
    let api = Api::new(&stack);
    let email = format!("{}@example.com", id("err"));
    let token = api.register(&email).await;

    let long_password = "é".repeat(37); // 37 chars, 74 bytes
    let register_cases = [
        (json!({"email": "not-an-email", "password": "long enough"}), StatusCode::BAD_REQUEST, "invalid_email"),
        (json!({"password": "long enough"}), StatusCode::BAD_REQUEST, "invalid_email"),
        (json!({"email": "new@example.com", "password": "short"}), StatusCode::BAD_REQUEST, "weak_password"),
        (json!({"email": "new@example.com", "password": long_password}), StatusCode::BAD_REQUEST, "weak_password"),
        (json!({"email": email.to_uppercase(), "password": "long enough"}), StatusCode::CONFLICT, "email_taken"),
    ];
    for (body, want_status, want_code) in register_cases {
        let (status, err) = api.post("/api/auth/register", None, &body).await;
        assert_eq!((status, err_code(&err)), (want_status, Some(want_code)), "register {body}: {err}");
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()), "message present: {err}");
    }

    // Unknown email and wrong password look the same.
    let (s1, unknown) =
        api.post("/api/auth/login", None, &json!({"email": "nobody@example.com", "password": "whatever1"})).await;
    let (s2, wrong) = api.post("/api/auth/login", None, &json!({"email": email, "password": "wrong password"})).await;
    assert_eq!((s1, s2), (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED));
    assert_eq!(unknown, wrong, "same body for unknown email and wrong password");
    assert_eq!(err_code(&wrong), Some("invalid_credentials"));

    // Tokens: missing, malformed, forged, expired.
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "x", "exp": chrono::Utc::now().timestamp() + 3600}),
        &jsonwebtoken::EncodingKey::from_secret(b"some other secret that is 32 bytes+"),
    )
    .expect("token");
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "x", "exp": chrono::Utc::now().timestamp() - 600}),
        &jsonwebtoken::EncodingKey::from_secret(b"test-secret-that-is-at-least-32-bytes-long"),
    )
    .expect("token");
    for (case, auth) in [
        ("missing", None),
        ("malformed", Some("garbage")),
        ("forged", Some(forged.as_str())),
        ("expired", Some(expired.as_str())),
    ] {
        let (status, err) = api.get("/api/auth/me", auth).await;
        assert_eq!((status, err_code(&err)), (StatusCode::UNAUTHORIZED, Some("unauthorized")), "token {case}");
        let (status, _) = api.get("/api/sites", auth).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "sites with token {case}");
    }

    // Sites.
    let site_cases = [
        (json!({"name": "", "domain": "example.com"}), "name"),
        (json!({"name": "A", "domain": "https://example.com/"}), "domain"),
        (json!({"name": "A", "domain": "example.com:8080"}), "domain"),
        (json!({"name": "A", "domain": "example.com", "timezone": "Mars/Olympus"}), "timezone"),
    ];
    for (body, field) in site_cases {
        let (status, err) = api.post("/api/sites", Some(&token), &body).await;
        assert_eq!((status, err_code(&err)), (StatusCode::BAD_REQUEST, Some("invalid_site")), "site {body}");
        assert!(err["message"].as_str().is_some_and(|m| m.starts_with(field)), "names {field}: {err}");
    }
    let (site_id, _) = api.create_site(&token, "example.com", "Europe/Berlin").await;
    let (status, err) = api
        .send(Method::PATCH, &format!("/api/sites/{site_id}"), Some(&token), Some(&json!({"timezone": "Nowhere/City"})))
        .await;
    assert_eq!((status, err_code(&err)), (StatusCode::BAD_REQUEST, Some("invalid_site")));
    let (status, site) = api
        .send(
            Method::PATCH,
            &format!("/api/sites/{site_id}"),
            Some(&token),
            Some(&json!({"name": "Renamed", "timezone": "Asia/Tokyo"})),
        )
        .await;
    assert_eq!(
        (status, site["name"].as_str(), site["timezone"].as_str()),
        (StatusCode::OK, Some("Renamed"), Some("Asia/Tokyo"))
    );
    for (status_path, want) in
        [("/api/sites/does-not-exist", StatusCode::NOT_FOUND), ("/api/stats/does-not-exist", StatusCode::NOT_FOUND)]
    {
        let (status, err) = api.get(status_path, Some(&token)).await;
        assert_eq!((status, err_code(&err)), (want, Some("not_found")), "{status_path}");
    }

    // Stats timeframes.
    for q in ["timeframe=1y", "from=2026-11-01", "from=2026-11-10&to=2026-11-01", "from=2026-02-30&to=2026-03-01"] {
        let (status, err) = api.get(&format!("/api/stats/{site_id}?{q}"), Some(&token)).await;
        assert_eq!((status, err_code(&err)), (StatusCode::BAD_REQUEST, Some("invalid_timeframe")), "stats {q}");
    }

    // Unknown routes and methods.
    let (status, err) = api.get("/api/nope", Some(&token)).await;
    assert_eq!((status, err_code(&err)), (StatusCode::NOT_FOUND, Some("not_found")));
    let (status, err) = api.send(Method::PUT, "/api/sites", Some(&token), Some(&json!({}))).await;
    assert_eq!((status, err_code(&err)), (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed")));

    // Repeated failed logins are throttled, even with the right password afterwards.
    for _ in 0..3 {
        let (status, _) = api.post("/api/auth/login", None, &json!({"email": email, "password": "wrong password"})).await;
        assert!(status == StatusCode::UNAUTHORIZED || status == StatusCode::TOO_MANY_REQUESTS);
    }
    let (status, err) = api.post("/api/auth/login", None, &json!({"email": email, "password": "correct horse 1"})).await;
    assert_eq!((status, err_code(&err)), (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")));
    assert!(stack.log_tail(Proc::Api).contains("api listening"));
}

/// A setting out of its range stops the service at start, with a message naming the setting,
/// rather than running with a value that was never meant (no worker thread, a stream without a
/// size limit, fewer top-list keys than the contract promises).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_refuse_to_start_with_an_out_of_range_setting_and_name_it() {
    let cases = [
        ("ingest", "CP_INGEST_WORKER_THREADS", "0"),
        ("ingest", "CP_INGEST_WORKER_THREADS", "1025"),
        ("ingest", "CP_INGEST_WORKER_THREADS", "two"),
        ("ingest", "CP_PUBLISH_IN_FLIGHT", "0"),
        ("ingest", "CP_PUBLISH_GROUP_MAX", "4097"),
        ("ingest", "CP_PUBLISH_TIMEOUT_MS", "0"),
        ("ingest", "CP_RATE_LIMIT_IP_PER_SEC", "NaN"),
        ("ingest", "CP_RATE_LIMIT_KEY_BURST", "-5"),
        ("ingest", "CP_HTTP_HEADER_TIMEOUT_MS", "0"),
        ("ingest", "CP_STREAM_MAX_BYTES", "-1"),
        ("ingest", "CP_STREAM_MAX_MSGS_PER_SITE", "0"),
        ("aggregator", "CP_STREAM_MAX_MSGS_PER_SITE", "-1"),
        ("aggregator", "CP_TOP_KEYS_PER_DAY", "999"),
        ("aggregator", "CP_STREAM_MAX_AGE_HOURS", "0"),
        ("aggregator", "CP_RAW_RETENTION_DAYS", "99999999999999999"),
        ("api", "CP_JWT_TTL_HOURS", "0"),
        ("api", "CP_BCRYPT_COST", "3"),
        ("api", "CP_LOGIN_MAX_FAILURES_PER_IP", "0"),
        ("api", "CP_LOGIN_THROTTLE_KEYS", "9"),
    ];
    for (service, name, value) in cases {
        let child = tokio::process::Command::new(cp_tests::stack::service_binary(service))
            .env("CP_INGEST_ADDR", "127.0.0.1:0")
            .env("CP_AGGREGATOR_ADDR", "127.0.0.1:0")
            .env("CP_API_ADDR", "127.0.0.1:0")
            .env("CP_METRICS_ADDR", "127.0.0.1:0")
            .env("CP_JWT_SECRET", "a-test-secret-of-at-least-32-bytes-long")
            // Nothing listens there: a setting wrongly accepted would leave the service retrying.
            .env("NATS_URL", format!("nats://127.0.0.1:{}", cp_tests::stack::free_port()))
            .env("MONGODB_URI", format!("mongodb://127.0.0.1:{}", cp_tests::stack::free_port()))
            .env(name, value)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the service starts");
        let out = tokio::time::timeout(std::time::Duration::from_secs(20), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("{service} {name}={value}: still running after 20 s"))
            .expect("the service's output");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success(), "{service} {name}={value}: exited successfully");
        assert!(
            text.contains(&format!("Error: {name}=")),
            "{service} {name}={value}: the message names the setting: {text}"
        );
    }
}

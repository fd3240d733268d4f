//! The api's real router, in-process (`tower::ServiceExt::oneshot`), for every answer it gives
//! before it reaches MongoDB or the sites bucket: tokens (missing, malformed, forged, expired
//! to the second, ended), bodies (not JSON, over 16 KiB), the fields of registration, login
//! and sites, the shared-link limit, unknown routes. The state is built over a MongoDB client
//! that never connects (its server selection gives up after 200 ms) and a key registry
//! without a bucket, with a clock the test moves. What needs the database (goal and timeframe
//! fields, which are checked after the site is looked up; duplicates; stats) stays in the
//! cross-process suite (`tests/tests/errors.rs`) and the unit tests of `shared::goal` and
//! `timeframe`.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use api::{
    config::Config,
    keys::KeyRegistry,
    router::{API_CSP, AppState, MAX_BODY_BYTES, router},
    tokens::LEEWAY_SECS,
};
use axum::{
    Router,
    body::{Body, to_bytes},
    extract::ConnectInfo,
    http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header},
};
use serde_json::{Value, json};
use shared::{
    backends::Backends, bus::NatsSettings, client_ip::TrustedProxies, clock::ManualClock, names::collections as c,
    serve::ServeLimits,
};
use tower::ServiceExt;

const SECRET: &str = "router-test-secret-that-is-at-least-32-bytes";
/// 2026-11-25T12:00:00Z.
const T0: i64 = 1_795_608_000_000;
const TTL: Duration = Duration::from_secs(3600);
const PEER: &str = "203.0.113.9:50000";
/// Nothing listens there; a request that reaches MongoDB fails within 200 ms with 503.
const NO_MONGODB: &str = "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200&connectTimeoutMS=200";

fn repo(dir: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(dir)
}

/// The api's settings as `Config::from_env` gives them, with the limits these tests reach
/// made small and the cheapest bcrypt cost.
fn config() -> Config {
    Config {
        addr: "127.0.0.1:0".parse().expect("addr"),
        metrics_addr: "127.0.0.1:0".parse().expect("addr"),
        http: ServeLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_connections: 64,
            max_connections_per_ip: 0,
            trusted_proxies: TrustedProxies::parse("").expect("proxies"),
        },
        backends: Backends {
            nats: NatsSettings::new("nats://127.0.0.1:1", "", "", "", 1).expect("nats settings"),
            mongodb_uri: NO_MONGODB.into(),
            mongodb_db: "cp_router_test".into(),
        },
        jwt_secret: SECRET.into(),
        jwt_ttl: TTL,
        bcrypt_cost: 4,
        login_max_failures: 1,
        login_max_failures_per_ip: 1,
        login_throttle_keys: 100,
        register_max_per_ip: 1,
        public_stats_per_min: 2,
        max_sites_per_account: 100,
        key_purge_grace: Duration::from_secs(3600),
        bcrypt_concurrency: 2,
        trusted_proxies: TrustedProxies::parse("").expect("proxies"),
        web_dir: repo("web"),
        node_modules_dir: repo("node_modules"),
        tracker_dir: repo("tracker"),
        ingest_public_url: "http://127.0.0.1:8081".into(),
        demo_email: None,
        mail: None,
        public_url: "http://127.0.0.1:8080".into(),
    }
}

/// The router over a state with no reachable backend, and the handles the test looks through.
struct Api {
    app: Router,
    state: AppState,
    clock: ManualClock,
}

async fn api() -> Api {
    let db =
        mongodb::Client::with_uri_str(NO_MONGODB).await.expect("a client, not yet connected").database("cp_router_test");
    // Returns at once and keeps trying in the background: nothing listens there.
    let nats = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect("nats://127.0.0.1:1")
        .await
        .expect("a client, not connected");
    let keys = KeyRegistry::detached(db.collection(c::SITES));
    let clock = ManualClock::at(T0);
    let state = AppState::new(config(), db, nats, keys, Arc::new(clock.clone())).await.expect("the state");
    Api { app: router(state.clone()), state, clock }
}

/// One answer: status, headers, and the body as JSON (`Value::Null` when it is not JSON).
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The error code and message of an error answer.
    fn error(&self) -> (&str, &str) {
        (self.body["error"].as_str().unwrap_or_default(), self.body["message"].as_str().unwrap_or_default())
    }
}

/// A request from [`PEER`]; `body` is sent as JSON when given.
fn request(method: Method, path: &str, auth: Option<HeaderValue>, body: Option<Vec<u8>>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(auth) = auth {
        builder = builder.header(header::AUTHORIZATION, auth);
    }
    if body.is_some() {
        builder = builder.header(header::CONTENT_TYPE, "application/json");
    }
    let mut request = builder.body(body.map_or_else(Body::empty, Body::from)).expect("request");
    request.extensions_mut().insert(ConnectInfo(PEER.parse::<SocketAddr>().expect("peer")));
    request
}

fn bearer(token: &str) -> Option<HeaderValue> {
    Some(HeaderValue::from_str(&format!("Bearer {token}")).expect("header value"))
}

fn json_body(v: &Value) -> Option<Vec<u8>> {
    Some(serde_json::to_vec(v).expect("json"))
}

impl Api {
    async fn send(&self, request: Request<Body>) -> Answer {
        let res = self.app.clone().oneshot(request).await.expect("the router answers");
        let (status, headers) = (res.status(), res.headers().clone());
        let bytes = to_bytes(res.into_body(), usize::MAX).await.expect("the body");
        Answer { status, headers, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
    }

    /// A token of `user` at version 0, and the version cache told that 0 is current (what a
    /// login leaves behind), so the token is taken without reading the user from MongoDB
    /// until the clock moves [`api::revocation::FRESH_FOR`] on.
    fn token_for(&self, user: &str) -> String {
        self.state.token_versions.ended(user, 0);
        self.state.tokens.issue(user, 0).expect("a token")
    }
}

/// Signs `claims` with `secret`.
fn signed(secret: &str, claims: Value) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).expect("a token")
}

#[tokio::test]
async fn a_request_without_a_valid_token_is_401_unauthorized_on_every_owner_route() {
    let api = api().await;
    let now = T0 / 1000;
    let forged =
        signed("another secret that is at least 32 bytes", json!({"sub": "u1", "tv": 0, "iat": now, "exp": now + 600}));
    let expired = signed(SECRET, json!({"sub": "u1", "tv": 0, "iat": now - 7200, "exp": now - 3600}));
    let alg_none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1MSIsImV4cCI6OTk5OTk5OTk5OX0.";
    // (case, Authorization, message)
    let tokens = [
        ("missing", None, "missing bearer token"),
        (
            "not UTF-8",
            Some(HeaderValue::from_bytes(b"Bearer \xff\xfe").expect("obs-text")),
            "malformed Authorization header",
        ),
        (
            "another scheme",
            Some(HeaderValue::from_static("Basic dTE6cGFzc3dvcmQ=")),
            "Authorization must be 'Bearer <token>'",
        ),
        ("garbage", bearer("garbage"), "invalid token"),
        ("forged", bearer(&forged), "invalid token"),
        ("alg none", bearer(alg_none), "invalid token"),
        ("expired", bearer(&expired), "token expired"),
    ];
    let routes = [
        (Method::GET, "/api/auth/me", None),
        (Method::POST, "/api/auth/logout", None),
        (Method::POST, "/api/auth/password", json_body(&json!({"current_password": "x", "new_password": "long enough"}))),
        (Method::GET, "/api/sites", None),
        (Method::POST, "/api/sites", json_body(&json!({"name": "A", "domain": "example.com"}))),
        (Method::DELETE, "/api/sites/s1", None),
        (Method::POST, "/api/sites/s1/rotate-key", None),
        (Method::POST, "/api/sites/s1/goals", json_body(&json!({"name": "G", "kind": "event", "match": "Signup"}))),
        (Method::POST, "/api/sites/s1/share", None),
        (Method::GET, "/api/stats/s1?timeframe=7d", None),
        (Method::GET, "/api/stats/s1/export.csv", None),
        (Method::GET, "/api/stats/s1/realtime", None),
    ];
    for (method, path, body) in &routes {
        for (case, auth, message) in &tokens {
            let answer = api.send(request(method.clone(), path, auth.clone(), body.clone())).await;
            assert_eq!(
                (answer.status, answer.error()),
                (StatusCode::UNAUTHORIZED, ("unauthorized", *message)),
                "{method} {path} with a token {case}"
            );
            // Security headers on error answers too.
            let headers = [header::X_CONTENT_TYPE_OPTIONS, header::X_FRAME_OPTIONS, header::CONTENT_SECURITY_POLICY]
                .map(|h| answer.header(h).map(str::to_string));
            assert_eq!(
                headers,
                [Some("nosniff"), Some("DENY"), Some(API_CSP)].map(|v| v.map(str::to_string)),
                "{method} {path}"
            );
        }
    }
}

#[tokio::test]
async fn a_token_is_taken_until_its_lifetime_and_the_leeway_have_passed_to_the_second() {
    let api = api().await;
    let token = api.token_for("u1");
    // An invalid site name is refused after the token check and before any lookup: a 400
    // says the token was taken.
    let create =
        || request(Method::POST, "/api/sites", bearer(&token), json_body(&json!({"name": "", "domain": "example.com"})));

    api.clock.advance((TTL.as_secs() as i64 + LEEWAY_SECS) * 1000);
    api.state.token_versions.ended("u1", 0);
    let last_second = api.send(create()).await;
    assert_eq!(
        (last_second.status, last_second.error().0),
        (StatusCode::BAD_REQUEST, "invalid_site"),
        "{}",
        last_second.body
    );

    api.clock.advance(1000);
    api.state.token_versions.ended("u1", 0);
    let expired = api.send(create()).await;
    assert_eq!((expired.status, expired.error()), (StatusCode::UNAUTHORIZED, ("unauthorized", "token expired")));
}

#[tokio::test]
async fn a_token_of_an_ended_version_is_refused_and_the_current_one_taken() {
    let api = api().await;
    let old = api.token_for("u1");
    // A logout on this instance raised the version to 1.
    api.state.token_versions.ended("u1", 1);
    let current = api.state.tokens.issue("u1", 1).expect("a token");
    let body = json_body(&json!({"name": "", "domain": "example.com"}));

    let answer = api.send(request(Method::POST, "/api/sites", bearer(&old), body.clone())).await;
    let ended = "token ended by a logout or a password change";
    assert_eq!((answer.status, answer.error()), (StatusCode::UNAUTHORIZED, ("unauthorized", ended)));
    let answer = api.send(request(Method::POST, "/api/sites", bearer(&current), body)).await;
    assert_eq!((answer.status, answer.error().0), (StatusCode::BAD_REQUEST, "invalid_site"), "{}", answer.body);
}

/// (case, body, status, code, the message's start).
type Refusal = (&'static str, Option<Vec<u8>>, StatusCode, &'static str, &'static str);

#[tokio::test]
async fn registration_refuses_bad_fields_and_bodies_before_any_limit_hash_or_lookup() {
    // One registration an hour per address (`config`): every row below would be over it if
    // a refusal spent the attempt.
    let api = api().await;
    let long_password = "é".repeat(37); // 37 characters, 74 bytes
    let long_name = "n".repeat(101);
    let cases: Vec<Refusal> = vec![
        ("no email", json_body(&json!({"password": "long enough"})), StatusCode::BAD_REQUEST, "invalid_email", "email: "),
        (
            "not an email",
            json_body(&json!({"email": "not-an-email", "password": "long enough"})),
            StatusCode::BAD_REQUEST,
            "invalid_email",
            "email: ",
        ),
        (
            "a host without a dot",
            json_body(&json!({"email": "a@localhost", "password": "long enough"})),
            StatusCode::BAD_REQUEST,
            "invalid_email",
            "email: ",
        ),
        (
            "short password",
            json_body(&json!({"email": "new@example.com", "password": "short"})),
            StatusCode::BAD_REQUEST,
            "weak_password",
            "password: must be at least 8 characters",
        ),
        (
            "no password",
            json_body(&json!({"email": "new@example.com"})),
            StatusCode::BAD_REQUEST,
            "weak_password",
            "password: ",
        ),
        (
            "password over 72 bytes",
            json_body(&json!({"email": "new@example.com", "password": long_password})),
            StatusCode::BAD_REQUEST,
            "weak_password",
            "password: must be at most 72 bytes",
        ),
        (
            "name over 100 characters",
            json_body(&json!({"email": "new@example.com", "password": "long enough", "name": long_name})),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "name: ",
        ),
        ("malformed JSON", Some(b"{\"email\": ".to_vec()), StatusCode::BAD_REQUEST, "invalid_request", "body: "),
        ("a list", Some(b"[]".to_vec()), StatusCode::BAD_REQUEST, "invalid_request", "body: "),
        (
            "email not a string",
            json_body(&json!({"email": 5, "password": "long enough"})),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "body: ",
        ),
        ("no body", None, StatusCode::BAD_REQUEST, "invalid_request", "body: Content-Type must be application/json"),
    ];
    for (case, body, status, code, prefix) in cases {
        let answer = api.send(request(Method::POST, "/api/auth/register", None, body)).await;
        let (got_code, message) = answer.error();
        assert_eq!((answer.status, got_code), (status, code), "case {case}: {}", answer.body);
        assert!(message.starts_with(prefix), "case {case}: message {message:?} should start with {prefix:?}");
    }
}

#[tokio::test]
async fn a_login_with_a_malformed_email_is_wrong_credentials_and_counts_against_no_limit() {
    // One failure per address and per (email, address) locks them (`config`).
    let api = api().await;
    for attempt in 0..3 {
        let body = json_body(&json!({"email": "not-an-email", "password": "whatever1"}));
        let answer = api.send(request(Method::POST, "/api/auth/login", None, body)).await;
        assert_eq!(
            (answer.status, answer.error()),
            (StatusCode::UNAUTHORIZED, ("invalid_credentials", "email or password is wrong")),
            "attempt {attempt}"
        );
    }
    let answer = api.send(request(Method::POST, "/api/auth/login", None, Some(b"email=a".to_vec()))).await;
    assert_eq!((answer.status, answer.error().0), (StatusCode::BAD_REQUEST, "invalid_request"));
}

#[tokio::test]
async fn site_fields_are_refused_naming_the_field_on_create_and_on_change() {
    let api = api().await;
    let token = api.token_for("u1");
    let cases = [
        (json!({"domain": "example.com"}), "name: "),
        (json!({"name": "", "domain": "example.com"}), "name: "),
        (json!({"name": "   ", "domain": "example.com"}), "name: "),
        (json!({"name": "n".repeat(101), "domain": "example.com"}), "name: "),
        (json!({"name": "A\u{7}B", "domain": "example.com"}), "name: "),
        (json!({"name": "A"}), "domain: "),
        (json!({"name": "A", "domain": "https://example.com/"}), "domain: "),
        (json!({"name": "A", "domain": "example.com:8080"}), "domain: "),
        (json!({"name": "A", "domain": "*.example.com"}), "domain: "),
        (json!({"name": "A", "domain": "example.com", "timezone": "Mars/Olympus"}), "timezone: "),
    ];
    for (body, field) in &cases {
        let answer = api.send(request(Method::POST, "/api/sites", bearer(&token), json_body(body))).await;
        let (code, message) = answer.error();
        assert_eq!((answer.status, code), (StatusCode::BAD_REQUEST, "invalid_site"), "create {body}: {}", answer.body);
        assert!(message.starts_with(field), "create {body}: message {message:?} should name {field:?}");
    }
    let changes = [
        (json!({"name": ""}), "name: "),
        (json!({"domain": "example.com/path"}), "domain: "),
        (json!({"timezone": "Nowhere/City"}), "timezone: "),
    ];
    for (body, field) in &changes {
        let answer = api.send(request(Method::PATCH, "/api/sites/s1", bearer(&token), json_body(body))).await;
        let (code, message) = answer.error();
        assert_eq!((answer.status, code), (StatusCode::BAD_REQUEST, "invalid_site"), "change {body}: {}", answer.body);
        assert!(message.starts_with(field), "change {body}: message {message:?} should name {field:?}");
    }
    for (method, path) in
        [(Method::POST, "/api/sites"), (Method::PATCH, "/api/sites/s1"), (Method::POST, "/api/sites/s1/goals")]
    {
        let answer = api.send(request(method.clone(), path, bearer(&token), Some(b"{\"name\": ".to_vec()))).await;
        let (code, message) = answer.error();
        assert_eq!(
            (answer.status, code),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{method} {path} with malformed JSON"
        );
        assert!(message.starts_with("body: "), "{method} {path}: {message:?}");
    }
}

#[tokio::test]
async fn alert_fields_are_refused_naming_the_field_before_the_site_is_looked_up() {
    let api = api().await;
    let token = api.token_for("u1");
    let good = json!({"metric": "visitors", "change": "drop", "percent": 50, "window_hours": 24});
    let with = |field: &str, v: Value| {
        let mut b = good.clone();
        b[field] = v;
        b
    };
    // (body, message): the unit test of `shared::team::AlertSpec` has every rule.
    let cases = [
        (with("metric", json!("bounces")), "metric: must be visitors, conversions or conversion_rate"),
        (with("change", json!(null)), "change: must be drop or spike"),
        (with("percent", json!(1001)), "percent: must be a whole number from 10 to 1000"),
        (with("window_hours", json!(0)), "window_hours: must be a whole number from 1 to 168"),
    ];
    for (body, message) in &cases {
        let answer = api.send(request(Method::POST, "/api/sites/s1/alerts", bearer(&token), json_body(body))).await;
        assert_eq!((answer.status, answer.error()), (StatusCode::BAD_REQUEST, ("invalid_alert", *message)), "{body}");
    }
    let answer = api.send(request(Method::POST, "/api/sites/s1/alerts", bearer(&token), Some(b"{".to_vec()))).await;
    assert_eq!((answer.status, answer.error().0), (StatusCode::BAD_REQUEST, "invalid_request"), "malformed JSON");
}

#[tokio::test]
async fn a_body_over_16_kib_is_413_and_one_of_exactly_16_kib_is_read() {
    let api = api().await;
    let token = api.token_for("u1");
    let sized = |len: usize| {
        let bare = serde_json::to_vec(&json!({"email": "not-an-email", "padding": ""})).expect("json").len();
        let body = serde_json::to_vec(&json!({"email": "not-an-email", "padding": "x".repeat(len - bare)})).expect("json");
        assert_eq!(body.len(), len);
        Some(body)
    };
    let at_limit = api.send(request(Method::POST, "/api/auth/register", None, sized(MAX_BODY_BYTES))).await;
    assert_eq!((at_limit.status, at_limit.error().0), (StatusCode::BAD_REQUEST, "invalid_email"), "read, then refused");
    for (path, auth) in [("/api/auth/register", None), ("/api/sites", bearer(&token))] {
        let answer = api.send(request(Method::POST, path, auth, sized(MAX_BODY_BYTES + 1))).await;
        assert_eq!(
            (answer.status, answer.error()),
            (StatusCode::PAYLOAD_TOO_LARGE, ("payload_too_large", "body is larger than 16 KiB")),
            "{path}"
        );
        assert_eq!(answer.header(header::CONNECTION), Some("close"), "{path}");
    }
}

#[tokio::test]
async fn the_v2_query_answers_in_plausibles_words_before_it_looks_the_site_up() {
    let api = api().await;
    let token = api.token_for("u1");
    let query = json!({"site_id": "example.com", "metrics": ["visitors"], "date_range": "7d"});
    let missing_key = "Missing API key. Please use a valid Plausible API key as a Bearer Token.";
    let invalid_key = "Invalid API key or site ID. Please make sure you're using a valid API key with access to the site you've requested.";
    let missing_site = "Missing site ID. Please provide the required site_id parameter with your request.";
    let raw = |auth: Option<HeaderValue>, content_type: &str, body: &[u8]| {
        let mut r = request(Method::POST, "/api/v2/query", auth, Some(body.to_vec()));
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_str(content_type).expect("content type"));
        r
    };
    // (case, request, status, Plausible's message)
    let cases = [
        ("no key", request(Method::POST, "/api/v2/query", None, json_body(&query)), StatusCode::UNAUTHORIZED, missing_key),
        (
            "another scheme",
            request(Method::POST, "/api/v2/query", Some(HeaderValue::from_static("Basic dTE6cA==")), json_body(&query)),
            StatusCode::UNAUTHORIZED,
            missing_key,
        ),
        (
            "a forged token",
            request(Method::POST, "/api/v2/query", bearer("garbage"), json_body(&query)),
            StatusCode::UNAUTHORIZED,
            invalid_key,
        ),
        (
            "a body not JSON",
            raw(bearer(&token), "application/json", b"{\"site_id\":"),
            StatusCode::BAD_REQUEST,
            "Invalid JSON body: EOF while parsing a value at line 1 column 11",
        ),
        (
            "no site",
            request(Method::POST, "/api/v2/query", bearer(&token), json_body(&json!({"metrics": ["visitors"]}))),
            StatusCode::BAD_REQUEST,
            missing_site,
        ),
        (
            "a site id not a string",
            request(Method::POST, "/api/v2/query", bearer(&token), json_body(&json!({"site_id": 7}))),
            StatusCode::BAD_REQUEST,
            missing_site,
        ),
        (
            "a body not an object",
            request(Method::POST, "/api/v2/query", bearer(&token), json_body(&json!([query]))),
            StatusCode::BAD_REQUEST,
            missing_site,
        ),
        (
            "a body not sent as JSON",
            raw(bearer(&token), "text/plain", query.to_string().as_bytes()),
            StatusCode::BAD_REQUEST,
            missing_site,
        ),
        (
            "a site id that is no domain",
            request(Method::POST, "/api/v2/query", bearer(&token), json_body(&json!({"site_id": "https://example.com/"}))),
            StatusCode::UNAUTHORIZED,
            invalid_key,
        ),
    ];
    for (case, req, status, message) in cases {
        let answer = api.send(req).await;
        assert_eq!((answer.status, &answer.body), (status, &json!({"error": message})), "case {case}");
    }
    // What every route answers keeps the envelope.
    let big = json!({"site_id": "example.com", "padding": "x".repeat(MAX_BODY_BYTES)});
    let too_big = api.send(request(Method::POST, "/api/v2/query", bearer(&token), json_body(&big))).await;
    assert_eq!((too_big.status, too_big.error().0), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));
    let get = api.send(request(Method::GET, "/api/v2/query", bearer(&token), None)).await;
    assert_eq!(
        (get.status, get.error().0, get.header(header::ALLOW)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", Some("POST"))
    );
}

#[tokio::test]
async fn shared_link_stats_are_limited_per_address_before_the_link_is_looked_up() {
    // Two a minute per address (`config`); the first two reach the lookup, which fails here
    // without MongoDB: 503 says the limit let them through.
    let api = api().await;
    let stats = || request(Method::GET, "/api/public/some-token/stats", None, None);
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(api.send(stats()).await);
    }
    let got: Vec<(StatusCode, &str)> = answers.iter().map(|a| (a.status, a.error().0)).collect();
    assert_eq!(
        got,
        [
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
        ]
    );
    assert_eq!(answers[2].header(header::RETRY_AFTER), Some("60"));

    api.clock.advance(59_000);
    let answer = api.send(stats()).await;
    assert_eq!((answer.status, answer.header(header::RETRY_AFTER)), (StatusCode::TOO_MANY_REQUESTS, Some("1")));
    api.clock.advance(1000);
    let answer = api.send(stats()).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "a new window: through to the lookup again");
}

#[tokio::test]
async fn unknown_routes_and_methods_get_the_envelope_and_readiness_names_what_is_down() {
    let api = api().await;
    let answer = api.send(request(Method::GET, "/api/nope", None, None)).await;
    assert_eq!((answer.status, answer.error().0), (StatusCode::NOT_FOUND, "not_found"));
    let answer = api.send(request(Method::PUT, "/api/sites", None, json_body(&json!({})))).await;
    assert_eq!((answer.status, answer.error().0), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));
    assert_eq!(answer.header(header::ALLOW), Some("GET,HEAD,POST"));

    let answer = api.send(request(Method::GET, "/healthz", None, None)).await;
    assert_eq!(answer.status, StatusCode::OK);
    let answer = api.send(request(Method::GET, "/readyz", None, None)).await;
    assert_eq!((answer.status, &answer.body["failing"]), (StatusCode::SERVICE_UNAVAILABLE, &json!(["mongodb", "nats"])));
}

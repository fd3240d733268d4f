//! Ingest's real router, in-process (`tower::ServiceExt::oneshot`): every refusal row of the
//! contract, the rate limits under a clock the test moves, bots, stream failures, and exactly
//! what an accepted batch puts on the stream. A [`MemoryStream`] stands in for JetStream and
//! the site keys are filled in directly, so nothing here needs NATS; the cross-process suite
//! (`tests/tests/errors.rs`, `pipeline.rs`) keeps the real stream and the whole pipeline.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    body::{Body, to_bytes},
    extract::ConnectInfo,
    http::{HeaderMap, Method, Request, StatusCode, header},
};
use ingest::{
    audience::UserAgents,
    geo::Countries,
    limiter::RateLimiter,
    metrics::Metrics,
    publisher::{MemoryStream, PublishFailure, Publisher},
    router::{AppState, Shared, router},
    salt::SaltCache,
    sites::SiteDirectory,
};
use serde_json::{Value, json};
use shared::{client_ip::TrustedProxies, clock::ManualClock, message::BatchMessage, site::SiteEntry, visitor};
use tower::ServiceExt;

const KEY: &str = "cp_router_test_key_000000000001";
const SITE: &str = "site_router_1";
const OTHER_KEY: &str = "cp_router_test_key_000000000002";
const OTHER_SITE: &str = "site_router_2";
/// 2026-11-25T12:00:00Z.
const T0: i64 = 1_795_608_000_000;
/// 2026-11-26T00:00:00Z.
const MIDNIGHT: i64 = 1_795_651_200_000;
const FIREFOX: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0";
const PEER: &str = "203.0.113.7:40000";

/// What a test may change about ingest's state; the rest is as in production.
struct Options {
    key_rate: f64,
    key_burst: f64,
    ip_rate: f64,
    ip_burst: f64,
    trusted: &'static str,
    /// Messages the stream stores before it refuses as a full stream.
    capacity: usize,
    /// Whether the site keys are loaded (`/readyz`).
    synced: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            key_rate: 1000.0,
            key_burst: 1000.0,
            ip_rate: 1000.0,
            ip_burst: 1000.0,
            trusted: "",
            capacity: 1000,
            synced: true,
        }
    }
}

/// The router over a state made without NATS, and the handles the test looks through.
struct Ingest {
    app: Router,
    state: AppState,
    stream: MemoryStream,
    clock: ManualClock,
}

fn site(site_id: &str) -> SiteEntry {
    SiteEntry {
        site_id: site_id.into(),
        domain: "example.com".into(),
        timezone: "Europe/Berlin".into(),
        currency: "USD".into(),
        plausible: false,
    }
}

fn ingest(options: Options) -> Ingest {
    let stream = MemoryStream::with_capacity(options.capacity);
    let clock = ManualClock::at(T0);
    let metrics = Metrics::new().expect("metrics");
    let entries = [(KEY.to_string(), site(SITE)), (OTHER_KEY.to_string(), site(OTHER_SITE))];
    let sites = if options.synced {
        SiteDirectory::from_entries(entries)
    } else {
        let sites = SiteDirectory::default();
        for (key, entry) in entries {
            sites.put(key, entry);
        }
        sites
    };
    let state = AppState(Arc::new(Shared {
        sites,
        salts: SaltCache::in_memory(),
        publisher: Publisher::in_memory(
            stream.clone(),
            Duration::from_millis(1500),
            ingest::publisher::DEFAULT_IN_FLIGHT,
            ingest::publisher::DEFAULT_GROUP_MAX,
            metrics.publish_group.clone(),
        ),
        key_limiter: Arc::new(RateLimiter::new(options.key_rate, options.key_burst)),
        ip_limiter: Arc::new(RateLimiter::new(options.ip_rate, options.ip_burst)),
        trusted: Arc::new(TrustedProxies::parse(options.trusted).expect("trusted proxies")),
        user_agents: UserAgents::new(),
        countries: Countries::none(),
        metrics,
        clock: Arc::new(clock.clone()),
    }));
    Ingest { app: router(state.clone()), state, stream, clock }
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

impl Ingest {
    async fn send(&self, request: Request<Body>) -> Answer {
        let res = self.app.clone().oneshot(request).await.expect("the router answers");
        let (status, headers) = (res.status(), res.headers().clone());
        let bytes = to_bytes(res.into_body(), usize::MAX).await.expect("the body");
        Answer { status, headers, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
    }

    /// `POST /api/events/batch` from [`PEER`] with Firefox's User-Agent, then `headers`
    /// (which may replace either).
    async fn post(&self, body: impl Into<Vec<u8>>, headers: &[(&str, &str)]) -> Answer {
        self.post_from(PEER, body, headers).await
    }

    /// [`Self::post`] from the address `peer`.
    async fn post_from(&self, peer: &str, body: impl Into<Vec<u8>>, headers: &[(&str, &str)]) -> Answer {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri("/api/events/batch")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, FIREFOX)
            .body(Body::from(body.into()))
            .expect("request");
        for (name, value) in headers {
            let name = header::HeaderName::from_bytes(name.as_bytes()).expect("header name");
            request.headers_mut().insert(name, value.parse().expect("header value"));
        }
        request.extensions_mut().insert(ConnectInfo(peer.parse::<SocketAddr>().expect("peer")));
        self.send(request).await
    }

    async fn post_json(&self, batch: &Value) -> Answer {
        self.post(serde_json::to_vec(batch).expect("json"), &[]).await
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(Request::builder().uri(path).body(Body::empty()).expect("request")).await
    }

    fn rejected(&self, code: &str) -> u64 {
        self.state.metrics.batches_rejected.with_label_values(&[code]).get()
    }
}

/// A batch of `events` for `key`, with the batch id `batch_id`.
fn batch_of(key: &str, batch_id: &str, events: Value) -> Value {
    json!({"key": key, "batch_id": batch_id, "session_id": "session_0001", "events": events})
}

fn pageview() -> Value {
    json!({"type": "pageview", "ts": 1_795_607_999_000_i64, "page_id": "page_0001", "url": "https://example.com/pricing",
           "referrer": "https://www.google.com/", "title": "Pricing", "new_session": true})
}

/// One event of each type, valid: the table of field refusals breaks one field of one of them.
fn every_type() -> Value {
    let url = "https://example.com/pricing";
    json!([
        pageview(),
        {"type": "scroll", "ts": 1, "page_id": "page_0001", "url": url, "depth": 50, "prev": 25},
        {"type": "click", "ts": 2, "page_id": "page_0001", "url": url, "selector": "a#buy", "text": "Buy",
         "href": "https://example.com/buy", "x": 0.5, "y": 0.25, "rage": true},
        {"type": "time", "ts": 3, "page_id": "page_0001", "url": url, "seconds": 12.5},
        {"type": "event", "ts": 4, "page_id": "page_0001", "url": url, "name": "Signup", "props": {"plan": "pro"}},
        {"type": "view", "ts": 5, "page_id": "page_0001", "url": url, "kind": "section", "name": "pricing", "order": 2,
         "seen": true, "ms": 1200}
    ])
}

/// (case, body, headers, status, code, the message's start).
type Refusal = (&'static str, Vec<u8>, Vec<(&'static str, &'static str)>, StatusCode, &'static str, &'static str);
/// (the field, how to break it).
type Breakage = (&'static str, Box<dyn Fn(&mut Value)>);

fn good() -> Value {
    batch_of(KEY, "batch_0001", json!([pageview()]))
}

#[tokio::test]
async fn an_accepted_batch_is_on_the_stream_exactly_as_sent_and_enriched() {
    let ingest = ingest(Options::default());
    let mut events = every_type();
    events[0]["url"] = json!("https://example.com/pricing#plans");
    let answer = ingest.post_json(&batch_of(KEY, "batch_0001", events)).await;

    assert_eq!((answer.status, &answer.body), (StatusCode::ACCEPTED, &json!({"accepted": 6})));
    assert_eq!(answer.header(header::ACCESS_CONTROL_ALLOW_ORIGIN), Some("*"));
    let messages = ingest.stream.messages();
    assert_eq!(messages.len(), 1, "one stream message: {messages:?}");
    assert_eq!(
        (messages[0].subject.as_str(), messages[0].msg_id.as_str()),
        ("cp.events.site_router_1", "site_router_1:batch_0001")
    );
    let salt = ingest.state.salts.salt_at(T0).await.expect("the day's salt");
    let peer: SocketAddr = PEER.parse().expect("peer");
    let want: BatchMessage = serde_json::from_value(json!({
        "site_id": SITE, "batch_id": "batch_0001", "session_id": "session_0001", "received_at": T0,
        "visitor": visitor::visitor_id(&salt, SITE, peer.ip(), FIREFOX).as_str(),
        "timezone": "Europe/Berlin", "domain": "example.com",
        "device": "desktop", "browser": "Firefox", "os": "Windows", "country": "(unknown)",
        "events": every_type(),
    }))
    .expect("the expected message");
    assert_eq!(ingest.stream.batches().expect("batch messages"), vec![want], "the fragment is dropped, the rest kept");
    let by_type: Vec<u64> = ingest.state.metrics.events_accepted.iter().map(|c| c.get()).collect();
    assert_eq!((ingest.state.metrics.batches_accepted.get(), by_type), (1, vec![1, 1, 1, 1, 1, 1]));
}

#[tokio::test]
async fn send_beacons_text_plain_and_a_subdomain_origin_are_accepted() {
    let ingest = ingest(Options::default());
    let cases = [
        ("sendBeacon's text/plain", vec![("content-type", "text/plain;charset=UTF-8")]),
        ("a subdomain's origin", vec![("origin", "https://shop.example.com")]),
        ("the domain itself, with a port", vec![("origin", "http://example.com:8080")]),
    ];
    for (i, (case, headers)) in cases.iter().enumerate() {
        let body = serde_json::to_vec(&batch_of(KEY, &format!("batch_000{i}"), json!([pageview()]))).expect("json");
        let answer = ingest.post(body, headers).await;
        assert_eq!((answer.status, &answer.body), (StatusCode::ACCEPTED, &json!({"accepted": 1})), "case {case}");
    }
    assert_eq!(ingest.stream.messages().len(), cases.len());
}

#[tokio::test]
async fn every_refusal_row_answers_its_status_and_code_and_names_the_field() {
    let ingest = ingest(Options::default());
    let with = |f: &dyn Fn(&mut Value)| {
        let mut b = good();
        f(&mut b);
        serde_json::to_vec(&b).expect("json")
    };
    let over_64_kib = with(&|b| b["padding"] = json!("x".repeat(64 * 1024)));
    let cases: Vec<Refusal> = vec![
        ("malformed JSON", b"{\"key\": ".to_vec(), vec![], StatusCode::BAD_REQUEST, "invalid_batch", "body: malformed JSON"),
        ("not an object", b"[]".to_vec(), vec![], StatusCode::BAD_REQUEST, "invalid_batch", "body: must be a JSON object"),
        ("empty body", Vec::new(), vec![], StatusCode::BAD_REQUEST, "invalid_batch", "body: malformed JSON"),
        ("no key", with(&|b| b["key"] = Value::Null), vec![], StatusCode::BAD_REQUEST, "invalid_batch", "key: "),
        ("key not a string", with(&|b| b["key"] = json!(7)), vec![], StatusCode::BAD_REQUEST, "invalid_batch", "key: "),
        ("no events", with(&|b| b["events"] = Value::Null), vec![], StatusCode::BAD_REQUEST, "invalid_batch", "events: "),
        (
            "events not a list",
            with(&|b| b["events"] = json!({})),
            vec![],
            StatusCode::BAD_REQUEST,
            "invalid_batch",
            "events: ",
        ),
        ("zero events", with(&|b| b["events"] = json!([])), vec![], StatusCode::BAD_REQUEST, "invalid_batch", "events: "),
        (
            "51 events",
            with(&|b| b["events"] = json!(vec![pageview(); 51])),
            vec![],
            StatusCode::BAD_REQUEST,
            "invalid_batch",
            "events: must hold 1 to 50 events",
        ),
        (
            "unknown key",
            with(&|b| b["key"] = json!("cp_no_such_key_0000000000000000")),
            vec![],
            StatusCode::UNAUTHORIZED,
            "invalid_key",
            "key: ",
        ),
        (
            "foreign origin",
            with(&|_| {}),
            vec![("origin", "https://notexample.com")],
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "origin: ",
        ),
        (
            "lookalike origin",
            with(&|_| {}),
            vec![("origin", "https://example.com.evil.io")],
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "origin: ",
        ),
        (
            "origin not a URL",
            with(&|_| {}),
            vec![("origin", "null")],
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "origin: ",
        ),
        ("over 64 KiB", over_64_kib, vec![], StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "body: "),
        (
            "a Content-Length over 1 MiB, refused unread",
            with(&|_| {}),
            vec![("content-length", "2000000")],
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "body: ",
        ),
    ];
    for (case, body, headers, status, code, prefix) in &cases {
        let answer = ingest.post(body.clone(), headers).await;
        let (got_code, message) = answer.error();
        assert_eq!((answer.status, got_code), (*status, *code), "case {case}: {}", answer.body);
        assert!(message.starts_with(prefix), "case {case}: message {message:?} should start with {prefix:?}");
        assert_eq!(answer.header(header::RETRY_AFTER), None, "case {case}");
        assert_eq!(answer.header(header::ACCESS_CONTROL_ALLOW_ORIGIN), Some("*"), "case {case}");
    }
    assert!(ingest.stream.messages().is_empty(), "a refused batch is published nowhere");
    let counted = ["invalid_batch", "invalid_key", "origin_not_allowed", "payload_too_large"].map(|c| ingest.rejected(c));
    assert_eq!(counted, [9, 1, 3, 2], "refusals by reason");
}

#[tokio::test]
async fn each_invalid_field_is_named_first_in_the_message() {
    let ingest = ingest(Options::default());
    // Each in a batch of one event of every type.
    let cases: Vec<Breakage> = vec![
        ("batch_id", Box::new(|b| b["batch_id"] = json!("short"))),
        ("session_id", Box::new(|b| b["session_id"] = json!("not an id!"))),
        ("events[2]", Box::new(|b| b["events"][2] = json!("click"))),
        ("events[0].type", Box::new(|b| b["events"][0]["type"] = json!("hover"))),
        ("events[1].ts", Box::new(|b| b["events"][1]["ts"] = json!(-1))),
        ("events[3].page_id", Box::new(|b| b["events"][3]["page_id"] = json!("p"))),
        ("events[0].url", Box::new(|b| b["events"][0]["url"] = json!("ftp://example.com/"))),
        ("events[4].url", Box::new(|b| b["events"][4]["url"] = json!("javascript:alert(1)"))),
        ("events[0].referrer", Box::new(|b| b["events"][0]["referrer"] = json!(5))),
        ("events[0].title", Box::new(|b| b["events"][0]["title"] = json!("t".repeat(513)))),
        ("events[0].new_session", Box::new(|b| b["events"][0]["new_session"] = json!("yes"))),
        ("events[0].variant", Box::new(|b| b["events"][0]["variant"] = json!("<b>B</b>"))),
        ("events[1].depth", Box::new(|b| b["events"][1]["depth"] = json!(101))),
        ("events[1].prev", Box::new(|b| b["events"][1]["prev"] = json!(50))),
        ("events[2].selector", Box::new(|b| b["events"][2]["selector"] = json!("s".repeat(257)))),
        ("events[2].text", Box::new(|b| b["events"][2]["text"] = json!("t".repeat(129)))),
        ("events[2].href", Box::new(|b| b["events"][2]["href"] = json!(false))),
        ("events[3].seconds", Box::new(|b| b["events"][3]["seconds"] = json!(1800.5))),
        ("events[4].name", Box::new(|b| b["events"][4]["name"] = json!(""))),
        ("events[4].props", Box::new(|b| b["events"][4]["props"] = json!(["plan"]))),
        ("events[4].props.plan", Box::new(|b| b["events"][4]["props"]["plan"] = json!({"tier": "pro"}))),
    ];
    for (field, break_it) in &cases {
        let mut batch = batch_of(KEY, "batch_0001", every_type());
        break_it(&mut batch);
        let answer = ingest.post_json(&batch).await;
        let (code, message) = answer.error();
        assert_eq!((answer.status, code), (StatusCode::BAD_REQUEST, "invalid_batch"), "field {field}: {}", answer.body);
        assert!(message.starts_with(&format!("{field}: ")), "field {field}: message {message:?}");
    }
    assert_eq!(ingest.rejected("invalid_batch"), cases.len() as u64);
    assert!(ingest.stream.messages().is_empty());
    // The unbroken batch passes: each row failed for its own field only.
    let answer = ingest.post_json(&batch_of(KEY, "batch_0001", every_type())).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
}

#[tokio::test]
async fn a_body_of_exactly_64_kib_is_taken_and_one_byte_more_is_refused() {
    let ingest = ingest(Options::default());
    let sized = |len: usize| {
        let mut b = good();
        b["padding"] = json!("");
        let bare = serde_json::to_vec(&b).expect("json").len();
        b["padding"] = json!("x".repeat(len - bare));
        let body = serde_json::to_vec(&b).expect("json");
        assert_eq!(body.len(), len);
        body
    };
    let answer = ingest.post(sized(64 * 1024), &[]).await;
    assert_eq!((answer.status, &answer.body), (StatusCode::ACCEPTED, &json!({"accepted": 1})));
    let answer = ingest.post(sized(64 * 1024 + 1), &[]).await;
    assert_eq!((answer.status, answer.error().0), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));
    assert_eq!(answer.header(header::CONNECTION), Some("close"), "the rest of the body may still be on its way");
}

#[tokio::test]
async fn a_key_over_its_rate_gets_429_with_retry_after_until_the_clock_refills_it() {
    let ingest = ingest(Options { key_rate: 0.5, key_burst: 2.0, ..Options::default() });
    let statuses = |answers: &[Answer]| answers.iter().map(|a| a.status).collect::<Vec<_>>();
    let mut answers = Vec::new();
    for i in 0..3 {
        answers.push(ingest.post_json(&batch_of(KEY, &format!("batch_000{i}"), json!([pageview()]))).await);
    }
    assert_eq!(statuses(&answers), [StatusCode::ACCEPTED, StatusCode::ACCEPTED, StatusCode::TOO_MANY_REQUESTS]);
    assert_eq!((answers[2].error().0, answers[2].header(header::RETRY_AFTER)), ("rate_limited", Some("2")));

    let other = ingest.post_json(&batch_of(OTHER_KEY, "batch_0100", json!([pageview()]))).await;
    assert_eq!(other.status, StatusCode::ACCEPTED, "another site's key has its own bucket");

    // One token refills in 2 s at 0.5 a second: half of it is not enough.
    ingest.clock.advance(1000);
    let early = ingest.post_json(&batch_of(KEY, "batch_0004", json!([pageview()]))).await;
    assert_eq!((early.status, early.header(header::RETRY_AFTER)), (StatusCode::TOO_MANY_REQUESTS, Some("1")));
    ingest.clock.advance(1000);
    let refilled = ingest.post_json(&batch_of(KEY, "batch_0005", json!([pageview()]))).await;
    assert_eq!(refilled.status, StatusCode::ACCEPTED);
    assert_eq!(ingest.stream.messages().len(), 4, "only the accepted batches were published");
    assert_eq!(ingest.rejected("rate_limited"), 2);
}

#[tokio::test]
async fn an_address_over_its_rate_is_refused_before_parsing_and_its_own_forwarded_for_is_not_believed() {
    let ingest = ingest(Options { ip_rate: 0.01, ip_burst: 2.0, trusted: "10.0.0.1", ..Options::default() });
    // A malformed batch spends a token too: the address is limited before the body is read.
    let first = ingest.post(b"{".to_vec(), &[("x-forwarded-for", "198.51.100.1")]).await;
    let second = ingest.post_json(&good()).await;
    let third = ingest.post(serde_json::to_vec(&good()).expect("json"), &[("x-forwarded-for", "198.51.100.2")]).await;
    assert_eq!(
        [first.status, second.status, third.status],
        [StatusCode::BAD_REQUEST, StatusCode::ACCEPTED, StatusCode::TOO_MANY_REQUESTS],
        "an untrusted peer is the client whatever it forwards"
    );
    assert_eq!((third.error().0, third.header(header::RETRY_AFTER)), ("rate_limited", Some("100")));

    let elsewhere = ingest.post_from("203.0.113.8:40000", serde_json::to_vec(&good()).expect("json"), &[]).await;
    assert_eq!(elsewhere.status, StatusCode::ACCEPTED, "another address has its own bucket");

    // Behind the trusted proxy, each forwarded client has its own bucket.
    let mut statuses = Vec::new();
    for client in ["198.51.100.1", "198.51.100.1", "198.51.100.1", "198.51.100.2"] {
        let body = serde_json::to_vec(&good()).expect("json");
        statuses.push(ingest.post_from("10.0.0.1:5000", body, &[("x-forwarded-for", client)]).await.status);
    }
    assert_eq!(statuses, [StatusCode::ACCEPTED, StatusCode::ACCEPTED, StatusCode::TOO_MANY_REQUESTS, StatusCode::ACCEPTED]);

    ingest.clock.advance(100_000);
    assert_eq!(ingest.post_json(&good()).await.status, StatusCode::ACCEPTED, "a token back after 100 s at 0.01 a second");
}

#[tokio::test]
async fn bots_are_answered_202_and_published_and_limited_nowhere() {
    let ingest = ingest(Options { key_burst: 1.0, key_rate: 0.001, ..Options::default() });
    let bots = [
        (
            "headless",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.6099.224 Safari/537.36",
        ),
        ("http_client", "curl/8.5.0"),
        ("crawler", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
    ];
    for (reason, user_agent) in bots {
        let answer = ingest.post(serde_json::to_vec(&good()).expect("json"), &[("user-agent", user_agent)]).await;
        assert_eq!((answer.status, &answer.body), (StatusCode::ACCEPTED, &json!({"accepted": 1})), "bot {reason}");
    }
    assert!(ingest.stream.messages().is_empty(), "counted nowhere");
    let by_reason: Vec<u64> = ingest.state.metrics.bot_batches.iter().map(|c| c.get()).collect();
    assert_eq!(by_reason, [1, 0, 1, 1], "headless, monitor, http_client, crawler");
    // The site's one token is still there for a person.
    assert_eq!(ingest.post_json(&good()).await.status, StatusCode::ACCEPTED);
    assert_eq!(ingest.stream.messages().len(), 1);
}

#[tokio::test]
async fn a_stream_that_cannot_take_a_batch_answers_the_contract_status_with_retry_after() {
    let ingest = ingest(Options::default());
    let cases = [
        ("site over its share", Some(PublishFailure::SiteShareFull), StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        (
            "no ack in time",
            Some(PublishFailure::Timeout(Duration::from_millis(1500))),
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
        ),
        (
            "stream full",
            Some(PublishFailure::Refused("maximum bytes exceeded".into())),
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
        ),
        ("queue full", Some(PublishFailure::Backlog(8192)), StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        ("stream back", None, StatusCode::ACCEPTED, ""),
    ];
    for (case, failure, status, code) in cases {
        ingest.stream.fail_with(failure);
        let answer = ingest.post_json(&good()).await;
        assert_eq!((answer.status, answer.error().0), (status, code), "case {case}: {}", answer.body);
        let retry_after = (status != StatusCode::ACCEPTED).then_some("2");
        assert_eq!(answer.header(header::RETRY_AFTER), retry_after, "case {case}");
    }
    ingest.stream.set_connected(false);
    let answer = ingest.post_json(&good()).await;
    assert_eq!((answer.status, answer.error().0), (StatusCode::SERVICE_UNAVAILABLE, "unavailable"), "NATS down");
    assert_eq!(ingest.stream.messages().len(), 1, "only the batch the stream took");
    let metrics = &ingest.state.metrics;
    assert_eq!(
        (metrics.publish_failures.get(), metrics.site_share_full.get(), metrics.batches_accepted.get()),
        (4, 1, 1),
        "a site over its share is not a publish failure"
    );
}

#[tokio::test]
async fn a_full_stream_refuses_with_503_and_nothing_is_stored_past_it() {
    let ingest = ingest(Options { capacity: 1, ..Options::default() });
    let first = ingest.post_json(&batch_of(KEY, "batch_0001", json!([pageview()]))).await;
    let second = ingest.post_json(&batch_of(KEY, "batch_0002", json!([pageview()]))).await;
    assert_eq!((first.status, second.status), (StatusCode::ACCEPTED, StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(second.error().0, "unavailable");
    let ids: Vec<String> = ingest.stream.messages().into_iter().map(|m| m.msg_id).collect();
    assert_eq!(ids, ["site_router_1:batch_0001"]);
}

#[tokio::test]
async fn a_removed_key_is_refused_at_once_and_a_new_one_works() {
    let ingest = ingest(Options::default());
    assert_eq!(ingest.post_json(&good()).await.status, StatusCode::ACCEPTED);
    ingest.state.sites.remove(KEY);
    let answer = ingest.post_json(&good()).await;
    assert_eq!((answer.status, answer.error().0), (StatusCode::UNAUTHORIZED, "invalid_key"));
    ingest.state.sites.put("cp_rotated_key_00000000000000000".into(), site(SITE));
    let answer = ingest.post_json(&batch_of("cp_rotated_key_00000000000000000", "batch_0002", json!([pageview()]))).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_retried_batch_goes_out_again_under_the_same_message_id() {
    let ingest = ingest(Options::default());
    for attempt in 0..2 {
        let answer = ingest.post_json(&good()).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "attempt {attempt}");
    }
    // The stream de-duplicates by this id (the memory stream keeps both, to show it).
    let ids: Vec<String> = ingest.stream.messages().into_iter().map(|m| m.msg_id).collect();
    assert_eq!(ids, ["site_router_1:batch_0001", "site_router_1:batch_0001"]);
}

#[tokio::test]
async fn the_visitor_hash_takes_the_salt_of_the_utc_day_the_batch_arrived() {
    let ingest = ingest(Options::default());
    let peer: SocketAddr = PEER.parse().expect("peer");
    ingest.clock.advance(MIDNIGHT - 1 - T0);
    for (i, when) in ["just before midnight", "at midnight"].iter().enumerate() {
        let answer = ingest.post_json(&batch_of(KEY, &format!("batch_000{i}"), json!([pageview()]))).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{when}");
        ingest.clock.advance(1);
    }
    let batches = ingest.stream.batches().expect("batch messages");
    let received: Vec<i64> = batches.iter().map(|b| b.received_at).collect();
    assert_eq!(received, [MIDNIGHT - 1, MIDNIGHT], "received at the clock's time");
    for b in &batches {
        let salt = ingest.state.salts.salt_at(b.received_at).await.expect("salt");
        assert_eq!(b.visitor, visitor::visitor_id(&salt, SITE, peer.ip(), FIREFOX).as_str(), "at {}", b.received_at);
    }
    assert_ne!(batches[0].visitor, batches[1].visitor, "a new day, a new salt: yesterday's visitor is not followed");
}

#[tokio::test]
async fn readiness_names_what_is_missing() {
    let ready = ingest(Options::default());
    let answer = ready.get("/readyz").await;
    assert_eq!((answer.status, &answer.body), (StatusCode::OK, &json!({"status": "ready"})));
    ready.stream.set_connected(false);
    let answer = ready.get("/readyz").await;
    assert_eq!((answer.status, &answer.body["failing"]), (StatusCode::SERVICE_UNAVAILABLE, &json!(["nats"])));

    let loading = ingest(Options { synced: false, ..Options::default() });
    let answer = loading.get("/readyz").await;
    assert_eq!((answer.status, &answer.body["failing"]), (StatusCode::SERVICE_UNAVAILABLE, &json!(["site_keys"])));
    assert_eq!(loading.get("/healthz").await.status, StatusCode::OK, "alive all the same");
}

#[tokio::test]
async fn unknown_routes_and_methods_get_the_envelope_and_any_origin_may_preflight() {
    let ingest = ingest(Options::default());
    let answer = ingest.get("/nope").await;
    assert_eq!((answer.status, answer.error().0), (StatusCode::NOT_FOUND, "not_found"));
    let answer = ingest.get("/api/events/batch").await;
    assert_eq!((answer.status, answer.error().0), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));
    assert_eq!(answer.header(header::X_CONTENT_TYPE_OPTIONS), Some("nosniff"));

    let preflight = Request::builder()
        .method(Method::OPTIONS)
        .uri("/api/events/batch")
        .header(header::ORIGIN, "https://anything.example.org")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .body(Body::empty())
        .expect("request");
    let answer = ingest.send(preflight).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    let allowed = [
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::ACCESS_CONTROL_ALLOW_METHODS,
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        header::ACCESS_CONTROL_MAX_AGE,
    ]
    .map(|h| answer.header(h).map(str::to_string));
    assert_eq!(
        allowed,
        [Some("*"), Some("POST, OPTIONS"), Some("Content-Type"), Some("86400")].map(|v| v.map(str::to_string))
    );
    assert_eq!(answer.header(header::ACCESS_CONTROL_ALLOW_CREDENTIALS), None, "no credentials, ever");
}

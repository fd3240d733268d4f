//! The abuse the public edge must survive, tried against the real binaries: parallel password
//! guessing, oversized bodies, registration floods, slow and idle sockets, connection floods.

use std::time::{Duration, Instant};

use cp_tests::{
    batch::id,
    client::Api,
    stack::{Proc, Stack},
    wait,
};
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

fn count(statuses: &[StatusCode], want: StatusCode) -> usize {
    statuses.iter().filter(|s| **s == want).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_parallel_wrong_passwords_get_at_most_the_limit_of_401s() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let email = format!("{}@example.com", id("victim"));
    api.register(&email).await;

    let attempts =
        (0..300).map(|i| {
            let api = api.clone();
            let email = email.clone();
            async move {
                api.post("/api/auth/login", None, &json!({"email": email, "password": format!("guess number {i}")})).await
            }
        });
    let answers = join_all(attempts).await;
    let statuses: Vec<StatusCode> = answers.iter().map(|(s, _)| *s).collect();

    let (unauthorized, limited) =
        (count(&statuses, StatusCode::UNAUTHORIZED), count(&statuses, StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(unauthorized + limited, 300, "only 401 and 429: {statuses:?}");
    assert!((1..=5).contains(&unauthorized), "at most the limit (5) reach bcrypt, got {unauthorized}");
    assert!(answers.iter().filter(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS).all(|(_, b)| b["error"] == "rate_limited"));
    // The right password is refused too until the window ends.
    let (status, _) = api.post("/api/auth/login", None, &json!({"email": email, "password": "correct horse 1"})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_auth_bodies_and_emails_are_refused_before_they_cost_anything() {
    let stack = Stack::start_with(&[("CP_LOGIN_MAX_FAILURES", "3")]).await;
    let api = Api::new(&stack);
    let huge_email = format!("{}@example.com", "a".repeat(2 * 1024 * 1024));
    for path in ["/api/auth/login", "/api/auth/register"] {
        // The api answers 413 from the declared length and closes the connection without
        // reading the 2 MiB: the client sees the answer, or, when the close reaches it while it
        // is still writing, a broken pipe. Either way nothing was read.
        let body = json!({"email": huge_email, "password": "whatever123"});
        match api.http.post(format!("{}{path}", api.api)).json(&body).send().await {
            Ok(res) => {
                let (status, body) = Api::json(res).await;
                assert_eq!(
                    (status, body["error"].as_str()),
                    (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")),
                    "{path}: {body}"
                );
            }
            Err(e) => assert!(e.is_request() && !e.is_timeout(), "{path}: refused by closing, not {e}"),
        }
    }
    // 16 KiB is the bound: just under passes the size check.
    let (status, body) =
        api.post("/api/auth/register", None, &json!({"email": "x", "password": "p".repeat(15 * 1024)})).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_email")), "{body}");

    // Emails over 254 characters are never a limiter key: the login fails at once (counted
    // against the IP only), and registration refuses them.
    let long_email = format!("{}@example.com", "b".repeat(250));
    let (status, body) = api.post("/api/auth/login", None, &json!({"email": long_email, "password": "whatever123"})).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_credentials")));
    let (status, body) =
        api.post("/api/auth/register", None, &json!({"email": long_email, "password": "whatever123"})).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_email")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_is_limited_per_client_ip() {
    let stack = Stack::start_with(&[("CP_REGISTER_MAX_PER_IP", "3")]).await;
    let api = Api::new(&stack);
    let register = |email: String| {
        let api = api.clone();
        async move { api.post("/api/auth/register", None, &json!({"email": email, "password": "long enough 1"})).await }
    };
    // Refused input costs nothing and counts nothing.
    let (status, _) = register("not-an-email".into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for i in 0..3 {
        let (status, body) = register(format!("{}@example.com", id(&format!("r{i}")))).await;
        assert_eq!(status, StatusCode::CREATED, "registration {i}: {body}");
    }
    let res = api
        .http
        .post(format!("{}/api/auth/register", api.api))
        .json(&json!({"email": format!("{}@example.com", id("r4")), "password": "long enough 1"}))
        .send()
        .await
        .expect("api");
    let retry_after = res.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let (status, body) = Api::json(res).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")), "{body}");
    assert!(retry_after.is_some_and(|s| s > 3000), "about an hour: {retry_after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_parallel_registrations_do_not_starve_logins() {
    // A real cost, and two bcrypt slots for logins (one for registrations).
    let stack = Stack::start_with(&[("CP_BCRYPT_COST", "10"), ("CP_BCRYPT_CONCURRENCY", "2")]).await;
    let api = Api::new(&stack);
    let email = format!("{}@example.com", id("user"));
    api.register(&email).await;

    let flood = (0..1000).map(|i| {
        let api = api.clone();
        async move {
            let res = api
                .http
                .post(format!("{}/api/auth/register", api.api))
                .json(&json!({"email": format!("flood{i}-{}@example.com", id("f")), "password": "long enough 1"}))
                .send()
                .await;
            match res {
                Ok(res) => {
                    let retry_after = res.headers().contains_key("retry-after");
                    let (status, body) = Api::json(res).await;
                    (Some(status), body, retry_after)
                }
                Err(_) => (None, Value::Null, false),
            }
        }
    });
    let flood = tokio::spawn(join_all(flood));
    // Logins during the flood: each answers, and fast.
    let mut login_times = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let (status, body) =
            api.post("/api/auth/login", None, &json!({"email": email, "password": "correct horse 1"})).await;
        assert_eq!(status, StatusCode::OK, "login during the flood: {body}");
        login_times.push(started.elapsed());
    }
    let answers = flood.await.expect("flood");
    let statuses: Vec<Option<StatusCode>> = answers.iter().map(|(s, _, _)| *s).collect();
    let created = statuses.iter().filter(|s| **s == Some(StatusCode::CREATED)).count();
    let busy: Vec<_> = answers.iter().filter(|(s, _, _)| *s == Some(StatusCode::SERVICE_UNAVAILABLE)).collect();
    assert_eq!(
        created + busy.len(),
        1000,
        "every registration answered 201 or 503: {:?}",
        statuses
            .iter()
            .filter(|s| !matches!(s, Some(StatusCode::CREATED | StatusCode::SERVICE_UNAVAILABLE)))
            .take(5)
            .collect::<Vec<_>>()
    );
    assert!(!busy.is_empty(), "the flood was bounded: {created} created");
    assert!(busy.iter().all(|(_, b, retry)| b["error"] == "unavailable" && *retry), "503 unavailable with Retry-After");
    assert!(login_times.iter().all(|t| *t < Duration::from_secs(5)), "logins stay fast: {login_times:?}");
    eprintln!("flood: {created} created, {} busy; logins took {login_times:?}", busy.len());
}

/// Sends a request head one byte a second and returns how long the server took to close the
/// connection (`None`: still open after `limit`).
async fn drip_until_closed(port: u16, limit: Duration) -> Option<Duration> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let started = Instant::now();
    let head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    let mut sent = 0;
    let mut buf = [0u8; 256];
    while started.elapsed() < limit {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return Some(started.elapsed()),
                Ok(n) => panic!("the server answered an incomplete head: {:?}", String::from_utf8_lossy(&buf[..n])),
            },
            _ = ticks.tick() => {
                if sent < head.len() && stream.write_all(&head[sent..=sent]).await.is_ok() {
                    sent += 1;
                }
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_connection_is_closed_after_the_header_timeout_on_every_listener() {
    let stack = Stack::start().await;
    let ports: Vec<(String, u16)> = [Proc::Api, Proc::Ingest, Proc::Aggregator]
        .into_iter()
        .flat_map(|p| {
            let public = stack.url(p).rsplit(':').next().and_then(|s| s.parse().ok()).expect("port");
            let metrics = stack
                .metrics_url(p)
                .trim_end_matches("/metrics")
                .rsplit(':')
                .next()
                .and_then(|s| s.parse().ok())
                .expect("port");
            [(format!("{p:?} public"), public), (format!("{p:?} metrics"), metrics)]
        })
        .collect();
    let closed = join_all(ports.iter().map(|(_, port)| drip_until_closed(*port, Duration::from_secs(20)))).await;
    for ((listener, _), took) in ports.iter().zip(closed) {
        let took = took.unwrap_or_else(|| panic!("{listener}: a slow head was still open after 20 s"));
        // The default header-read timeout is 10 s; the drip keeps the socket busy all along.
        assert!(took >= Duration::from_secs(9) && took < Duration::from_secs(13), "{listener}: closed after {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_closed_at_once_and_service_resumes() {
    let stack = Stack::start_with(&[("CP_HTTP_MAX_CONNECTIONS", "8")]).await;
    let api = Api::new(&stack);
    for p in [Proc::Api, Proc::Ingest] {
        let url = stack.url(p);
        let port: u16 = url.rsplit(':').next().and_then(|s| s.parse().ok()).expect("port");
        // Sixteen silent sockets: at most eight can be held; the rest see the close at once.
        let mut sockets = Vec::new();
        for _ in 0..16 {
            sockets.push(TcpStream::connect(("127.0.0.1", port)).await.expect("connect"));
        }
        let closed_at_once = join_all(sockets.iter_mut().map(|s| async move {
            let mut buf = [0u8; 16];
            matches!(tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await, Ok(Ok(0) | Err(_)))
        }))
        .await
        .into_iter()
        .filter(|closed| *closed)
        .count();
        assert!(closed_at_once >= 8, "{p:?}: {closed_at_once} of 16 were refused");
        drop(sockets);
        // Closing them frees the slots: requests are served again.
        let http = api.http.clone();
        wait::until(&format!("{p:?} to serve again"), Duration::from_secs(5), || {
            let (http, url) = (http.clone(), format!("{url}/healthz"));
            async move { http.get(&url).send().await.ok().filter(|r| r.status() == StatusCode::OK).map(|_| ()) }
        })
        .await;
    }
    let metrics = stack.metrics(Proc::Api).await;
    let refused = metrics
        .lines()
        .find_map(|l| l.strip_prefix("convertpulse_http_connections_refused_total "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(refused.is_some_and(|n| n >= 8), "refusals are counted: {refused:?}");
}

/// `GET /healthz` on a fresh connection from `local`; the status line's code.
async fn healthz_from(local: &str, port: u16) -> Option<u16> {
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket.bind(format!("{local}:0").parse().ok()?).ok()?;
    let mut stream = socket.connect(([127, 0, 0, 1], port).into()).await.ok()?;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await.ok()?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await.ok()?.ok()?;
    String::from_utf8_lossy(&answer).split(' ').nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_host_cannot_take_every_connection() {
    let stack = Stack::start_with(&[("CP_HTTP_MAX_CONNECTIONS_PER_IP", "4")]).await;
    for p in [Proc::Api, Proc::Ingest] {
        let port: u16 = stack.url(p).rsplit(':').next().and_then(|s| s.parse().ok()).expect("port");
        let mut sockets = Vec::new();
        for _ in 0..8 {
            sockets.push(TcpStream::connect(("127.0.0.1", port)).await.expect("connect"));
        }
        let closed_at_once = join_all(sockets.iter_mut().map(|s| async move {
            let mut buf = [0u8; 16];
            matches!(tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await, Ok(Ok(0) | Err(_)))
        }))
        .await
        .into_iter()
        .filter(|closed| *closed)
        .count();
        assert!(closed_at_once >= 4, "{p:?}: {closed_at_once} of 8 from one address were refused");
        // Another address is served while the first one's sockets are still held.
        assert_eq!(healthz_from("127.0.0.2", port).await, Some(200), "{p:?}: another client");
        drop(sockets);
    }
}

//! Account security (contract v3, "Changes to v2") over real processes: the api reads every
//! `X-Forwarded-For` line as ingest does, so a client behind a trusted proxy cannot pick its
//! address; failed logins count per (email, client address or IPv6 /64) and per address, so
//! nobody can lock the owner out from elsewhere; a lock outlives a flood of new keys; logging
//! out and changing the password end every token the user held, within 5 s.

use std::time::{Duration, Instant};

use cp_tests::{batch::id, client::Api, stack::Stack, wait};
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse 1";

/// `POST path` with `body`, as a client behind the trusted proxy: `lines` are the
/// `X-Forwarded-For` lines in order (the last one is the proxy's own).
async fn post_via(api: &Api, path: &str, lines: &[&str], token: Option<&str>, body: &Value) -> (StatusCode, Value) {
    let mut req = api.http.post(format!("{}{path}", api.api)).json(body);
    for line in lines {
        req = req.header("x-forwarded-for", *line);
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    Api::json(req.send().await.expect("api reachable")).await
}

async fn login_via(api: &Api, lines: &[&str], email: &str, password: &str) -> (StatusCode, Value) {
    post_via(api, "/api/auth/login", lines, None, &json!({"email": email, "password": password})).await
}

fn code(body: &Value) -> Option<&str> {
    body["error"].as_str()
}

fn count(statuses: &[StatusCode], want: StatusCode) -> usize {
    statuses.iter().filter(|s| **s == want).count()
}

/// Whether `token` is refused with 401 `unauthorized` on `/api/auth/me` and `/api/sites`.
async fn token_ended(api: &Api, token: &str) -> bool {
    let (me, body) = api.get("/api/auth/me", Some(token)).await;
    let (sites, _) = api.get("/api/sites", Some(token)).await;
    me == StatusCode::UNAUTHORIZED && code(&body) == Some("unauthorized") && sites == StatusCode::UNAUTHORIZED
}

/// Polls until every token of `tokens` is refused ([`token_ended`]), all of them each round,
/// and panics unless that happened within 5 s of `acked`, when the api acknowledged the
/// change that ends them.
async fn tokens_ended_within_five_seconds(api: &Api, acked: Instant, tokens: &[&str], what: &str) {
    wait::until_within(what, acked, Duration::from_secs(5), || async move {
        let ended = join_all(tokens.iter().map(|t| token_ended(api, t))).await;
        ended.iter().all(|e| *e).then_some(())
    })
    .await;
}

async fn assert_token_works(api: &Api, token: &str, what: &str) {
    let (status, body) = api.get("/api/auth/me", Some(token)).await;
    assert_eq!(status, StatusCode::OK, "{what}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_writing_its_own_forwarded_for_line_cannot_choose_its_address() {
    let stack = Stack::start_with(&[
        ("CP_TRUSTED_PROXIES", "127.0.0.1"),
        ("CP_LOGIN_MAX_FAILURES", "3"),
        ("CP_REGISTER_MAX_PER_IP", "2"),
        ("CP_PUBLIC_STATS_PER_MIN", "2"),
    ])
    .await;
    let api = Api::new(&stack);
    // The balancer appends the address it saw in a line of its own; the client wrote a new
    // first line for every request.
    let client = "203.0.113.50";

    // Registration: two an hour from this client, whatever its first line says.
    let mut statuses = Vec::new();
    for i in 0..3 {
        let forged = format!("198.18.0.{i}");
        let email = format!("{}@example.com", id("xff"));
        let (status, body) =
            post_via(&api, "/api/auth/register", &[&forged, client], None, &json!({"email": email, "password": PASSWORD}))
                .await;
        statuses.push((status, code(&body).map(str::to_string)));
    }
    let created = (StatusCode::CREATED, None);
    assert_eq!(statuses, [created.clone(), created, (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited".into()))]);

    // Logins: three failures of one email from this client, then 429, the right password too.
    let email = format!("{}@example.com", id("victim"));
    let token = api.register(&email).await;
    let mut statuses = Vec::new();
    for i in 0..5 {
        let forged = format!("198.18.1.{i}, 198.18.2.{i}");
        statuses.push(login_via(&api, &[&forged, client], &email, "wrong password").await.0);
    }
    statuses.push(login_via(&api, &["198.18.3.1", client], &email, PASSWORD).await.0);
    let (u, l) = (StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(statuses, [u, u, u, l, l, l], "the forged first lines are one client");
    // The proxy's own line is what names the client: another one is not held back.
    assert_eq!(login_via(&api, &["198.18.3.1", "203.0.113.51"], &email, PASSWORD).await.0, StatusCode::OK);

    // Share-link stats: two a minute from this client.
    let (site_id, _) = api.create_site(&token, "example.com", "UTC").await;
    let (status, link) = api.post(&format!("/api/sites/{site_id}/share"), Some(&token), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{link}");
    let path = format!("{}/api/public/{}/stats", api.api, link["token"].as_str().expect("token"));
    let mut statuses = Vec::new();
    for i in 0..3 {
        let forged = format!("198.18.4.{i}");
        let res = api
            .http
            .get(&path)
            .header("x-forwarded-for", forged)
            .header("x-forwarded-for", client)
            .send()
            .await
            .expect("api");
        statuses.push(res.status());
    }
    assert_eq!(statuses, [StatusCode::OK, StatusCode::OK, StatusCode::TOO_MANY_REQUESTS]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_from_another_address_never_lock_the_owner_out() {
    let stack = Stack::start_with(&[("CP_TRUSTED_PROXIES", "127.0.0.1"), ("CP_LOGIN_MAX_FAILURES_PER_IP", "6")]).await;
    let api = Api::new(&stack);
    let email = format!("{}@example.com", id("owner"));
    api.register(&email).await;

    // An attacker's address uses up the five failures of the owner's email.
    let attacker = "198.51.100.66";
    let mut statuses = Vec::new();
    for i in 0..6 {
        statuses.push(login_via(&api, &[attacker], &email, &format!("guess {i}")).await.0);
    }
    let (u, l) = (StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(statuses, [u, u, u, u, u, l]);
    let (status, body) = login_via(&api, &[attacker], &email, PASSWORD).await;
    assert_eq!(
        (status, code(&body)),
        (l, Some("rate_limited")),
        "the attacker's address stays locked, the right password too"
    );

    // The owner logs in from anywhere else: another address, the proxy itself.
    for (case, lines) in [("another address", &["203.0.113.7"][..]), ("no forwarded line", &[][..])] {
        let (status, body) = login_via(&api, lines, &email, PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "{case}: {body}");
        assert!(body["token"].is_string(), "{case}: {body}");
    }

    // IPv6: an attacker rotating through its /64 is one client; another /64 is not.
    for i in 1..=5 {
        assert_eq!(login_via(&api, &[&format!("2001:db8:66:1::{i}")], &email, "guess").await.0, u, "IPv6 failure {i}");
    }
    assert_eq!(login_via(&api, &["2001:db8:66:1:ffff::9"], &email, PASSWORD).await.0, l, "same /64");
    assert_eq!(login_via(&api, &["2001:db8:66:2::1"], &email, PASSWORD).await.0, StatusCode::OK, "another /64");

    // One address trying many emails: 40 racing, distinct emails; exactly six reach bcrypt.
    let racing = (0..40).map(|i| {
        let api = api.clone();
        async move { login_via(&api, &["198.51.100.77"], &format!("{}-{i}@example.com", id("stuffing")), "password1").await }
    });
    let answers = join_all(racing).await;
    let statuses: Vec<StatusCode> = answers.iter().map(|(s, _)| *s).collect();
    assert_eq!((count(&statuses, u), count(&statuses, l)), (6, 34), "{statuses:?}");
    assert!(answers.iter().filter(|(s, _)| *s == l).all(|(_, b)| code(b) == Some("rate_limited")));
    // ... and that address is locked for the owner's email too, while the owner is not.
    assert_eq!(login_via(&api, &["198.51.100.77"], &email, PASSWORD).await.0, l);
    assert_eq!(login_via(&api, &["203.0.113.8"], &email, PASSWORD).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_survives_a_flood_of_new_emails_and_bad_emails_from_many_addresses() {
    // A limiter of 20 keys a map: the flood below is ten times that.
    let stack = Stack::start_with(&[("CP_TRUSTED_PROXIES", "127.0.0.1"), ("CP_LOGIN_THROTTLE_KEYS", "20")]).await;
    let api = Api::new(&stack);
    let email = format!("{}@example.com", id("victim"));
    api.register(&email).await;
    let attacker = "198.51.100.66";
    for i in 0..5 {
        assert_eq!(
            login_via(&api, &[attacker], &email, &format!("guess {i}")).await.0,
            StatusCode::UNAUTHORIZED,
            "failure {i}"
        );
    }
    assert_eq!(login_via(&api, &[attacker], &email, PASSWORD).await.0, StatusCode::TOO_MANY_REQUESTS, "locked");

    // The flood: 200 addresses each failing once with an email of its own, 200 more sending
    // emails that are not addresses. Every one is an ordinary failure.
    let flood = (0..400).map(|i| {
        let api = api.clone();
        async move {
            let from = format!("203.0.{}.{}", i / 200, i % 200 + 1);
            let email = if i < 200 { format!("{}@example.com", id("flood")) } else { format!("not-an-email-{i}") };
            login_via(&api, &[&from], &email, "wrong password").await
        }
    });
    let answers = join_all(flood).await;
    let odd: Vec<_> = answers
        .iter()
        .filter(|(s, b)| *s != StatusCode::UNAUTHORIZED || code(b) != Some("invalid_credentials"))
        .take(5)
        .collect();
    assert!(odd.is_empty(), "every flood request is a plain 401: {odd:?}");

    let (status, body) = login_via(&api, &[attacker], &email, PASSWORD).await;
    assert_eq!((status, code(&body)), (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")), "the lock outlived the flood");
    assert_eq!(login_via(&api, &["203.0.113.250"], &email, PASSWORD).await.0, StatusCode::OK, "the owner from elsewhere");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_every_token_of_the_user_within_five_seconds() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let email = format!("{}@example.com", id("leaving"));
    let laptop = api.register(&email).await;
    let (status, body) = api.post("/api/auth/login", None, &json!({"email": email, "password": PASSWORD})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let phone = body["token"].as_str().expect("token").to_string();
    let someone_else = api.register(&format!("{}@example.com", id("other"))).await;
    assert_token_works(&api, &phone, "a second token").await;

    let (status, body) = api.send(Method::POST, "/api/auth/logout", None, None).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, Some("unauthorized")), "logout needs a token");
    let (status, body) = api.send(Method::POST, "/api/auth/logout", Some(&laptop), None).await;
    let acked = Instant::now();
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(body, Value::String(String::new()), "no body");

    tokens_ended_within_five_seconds(&api, acked, &[&laptop, &phone], "the token that logged out and the user's other")
        .await;
    let (status, _) = api.send(Method::POST, "/api/auth/logout", Some(&laptop), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "an ended token cannot log out again");
    assert_token_works(&api, &someone_else, "another user's token").await;

    // Logging in again gives a token that works.
    let (status, body) = api.post("/api/auth/login", None, &json!({"email": email, "password": PASSWORD})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_token_works(&api, body["token"].as_str().expect("token"), "a token issued after the logout").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_ends_every_token_and_only_the_new_password_logs_in() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let email = format!("{}@example.com", id("changer"));
    let token = api.register(&email).await;
    let (_, body) = api.post("/api/auth/login", None, &json!({"email": email, "password": PASSWORD})).await;
    let other = body["token"].as_str().expect("token").to_string();
    let change = |body: Value, token: Option<String>| {
        let api = api.clone();
        async move { api.post("/api/auth/password", token.as_deref(), &body).await }
    };
    let t = || Some(token.clone());

    // Refusals, each exact; none of them ends a token.
    let long = "é".repeat(37); // 37 characters, 74 bytes
    let cases = [
        (
            "no token",
            json!({"current_password": PASSWORD, "new_password": "brand new pass"}),
            None,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "wrong current",
            json!({"current_password": "nope nope", "new_password": "brand new pass"}),
            t(),
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        ),
        (
            "current password missing",
            json!({"new_password": "brand new pass"}),
            t(),
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        ),
        (
            "new password too short",
            json!({"current_password": PASSWORD, "new_password": "short"}),
            t(),
            StatusCode::BAD_REQUEST,
            "invalid_password",
        ),
        (
            "new password over 72 bytes",
            json!({"current_password": PASSWORD, "new_password": long}),
            t(),
            StatusCode::BAD_REQUEST,
            "invalid_password",
        ),
        ("new password missing", json!({"current_password": PASSWORD}), t(), StatusCode::BAD_REQUEST, "invalid_password"),
        ("not an object", json!(["x"]), t(), StatusCode::BAD_REQUEST, "invalid_request"),
    ];
    for (case, body, token, want, want_code) in cases {
        let (status, err) = change(body, token).await;
        assert_eq!((status, code(&err)), (want, Some(want_code)), "{case}: {err}");
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()), "{case}: a message");
    }
    assert_token_works(&api, &token, "after the refusals").await;

    let (status, body) = change(json!({"current_password": PASSWORD, "new_password": "brand new pass"}), t()).await;
    let acked = Instant::now();
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    tokens_ended_within_five_seconds(&api, acked, &[&token, &other], "the token that changed the password and the other")
        .await;

    let (status, body) = api.post("/api/auth/login", None, &json!({"email": email, "password": PASSWORD})).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, Some("invalid_credentials")), "the old password");
    let (status, body) = api.post("/api/auth/login", None, &json!({"email": email, "password": "brand new pass"})).await;
    assert_eq!(status, StatusCode::OK, "the new password: {body}");
    assert_token_works(&api, body["token"].as_str().expect("token"), "a token issued with the new password").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_racing_password_changes_change_it_once() {
    let stack = Stack::start_with(&[("CP_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let api = Api::new(&stack);
    let email = format!("{}@example.com", id("racer"));
    let token = api.register(&email).await;
    // Each from an address of its own, so the login limit does not decide the race.
    let racing = (0..40).map(|i| {
        let (api, token) = (api.clone(), token.clone());
        async move {
            let from = format!("198.51.100.{}", i + 1);
            let body = json!({"current_password": PASSWORD, "new_password": format!("new password {i}")});
            post_via(&api, "/api/auth/password", &[&from], Some(&token), &body).await.0
        }
    });
    let statuses = join_all(racing).await;
    let winners: Vec<usize> =
        statuses.iter().enumerate().filter(|(_, s)| **s == StatusCode::NO_CONTENT).map(|(i, _)| i).collect();
    assert_eq!(winners.len(), 1, "exactly one change: {statuses:?}");
    assert!(
        statuses.iter().all(|s| matches!(*s, StatusCode::NO_CONTENT | StatusCode::UNAUTHORIZED)),
        "the others: 401 {statuses:?}"
    );

    let (status, body) = login_via(&api, &["203.0.113.1"], &email, &format!("new password {}", winners[0])).await;
    assert_eq!(status, StatusCode::OK, "the winner's password: {body}");
    let (status, _) = login_via(&api, &["203.0.113.2"], &email, PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old password");
}

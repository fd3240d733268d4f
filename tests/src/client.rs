//! Typed HTTP helpers against a [`Stack`].

use std::time::Duration;

use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

use crate::stack::{Proc, Stack};

/// An HTTP client bound to one stack.
#[derive(Clone)]
pub struct Api {
    pub http: Client,
    pub api: String,
    pub ingest: String,
}

/// A registered user with one site.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub token: String,
    pub site_id: String,
    pub key: String,
}

impl Api {
    pub fn new(stack: &Stack) -> Self {
        Self {
            http: Client::builder().timeout(Duration::from_secs(10)).build().expect("client"),
            api: stack.url(Proc::Api),
            ingest: stack.url(Proc::Ingest),
        }
    }

    /// A client for an api and an ingest at these base URLs (a cluster's balancer).
    pub fn at(api: &str, ingest: &str) -> Self {
        Self {
            http: Client::builder().timeout(Duration::from_secs(10)).build().expect("client"),
            api: api.to_string(),
            ingest: ingest.to_string(),
        }
    }

    /// `(status, body)`; a non-JSON body comes back as a string value.
    pub async fn json(res: Response) -> (StatusCode, Value) {
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
        let mut req = self.http.post(format!("{}{path}", self.api)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Self::json(req.send().await.expect("api reachable")).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut req = self.http.get(format!("{}{path}", self.api));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Self::json(req.send().await.expect("api reachable")).await
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.api));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        Self::json(req.send().await.expect("api reachable")).await
    }

    /// Registers `email` and returns the token.
    pub async fn register(&self, email: &str) -> String {
        let (status, body) = self
            .post("/api/auth/register", None, &json!({"email": email, "password": "correct horse 1", "name": "Tester"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "register {email}: {body}");
        body["token"].as_str().expect("token").to_string()
    }

    /// Creates a site and returns `(id, key)` once ingest knows the key.
    pub async fn create_site(&self, token: &str, domain: &str, timezone: &str) -> (String, String) {
        let (status, body) =
            self.post("/api/sites", Some(token), &json!({"name": "Landing", "domain": domain, "timezone": timezone})).await;
        assert_eq!(status, StatusCode::CREATED, "create site: {body}");
        let key = body["api_key"].as_str().expect("key").to_string();
        self.wait_key_live(&key).await;
        (body["id"].as_str().expect("id").to_string(), key)
    }

    /// Waits until ingest knows `key`: a new key travels through the key-value watch, which
    /// takes a few milliseconds ([`Self::key_known`]).
    pub async fn wait_key_live(&self, key: &str) {
        crate::wait::until("ingest to know the new key", Duration::from_secs(5), || async {
            (self.key_known(key).await == Some(true)).then_some(())
        })
        .await;
    }

    /// Whether ingest knows `key` now. The probe is a batch from a foreign origin: ingest
    /// checks the origin after the key, so 403 means the key is live and 401 that it is not,
    /// and neither answer counts anything. `None` for any other answer.
    pub async fn key_known(&self, key: &str) -> Option<bool> {
        let probe = crate::batch::batch(
            key,
            "session_probe",
            vec![crate::batch::pageview(&crate::batch::id("page"), "https://example.com/", "", false)],
        );
        let body = serde_json::to_vec(&probe).expect("json");
        match self.post_batch_raw(body, "application/json", Some("https://key-probe.invalid")).await.0 {
            StatusCode::FORBIDDEN => Some(true),
            StatusCode::UNAUTHORIZED => Some(false),
            _ => None,
        }
    }

    /// A new user with one site on `domain`.
    pub async fn tenant(&self, domain: &str, timezone: &str) -> Tenant {
        let token = self.register(&format!("{}@example.com", crate::batch::id("user"))).await;
        let (site_id, key) = self.create_site(&token, domain, timezone).await;
        Tenant { token, site_id, key }
    }

    /// Creates a goal of `t`'s site and returns its id.
    pub async fn create_goal(&self, t: &Tenant, name: &str, kind: &str, matcher: &str) -> String {
        let body = json!({"name": name, "kind": kind, "match": matcher});
        let (status, g) = self.post(&format!("/api/sites/{}/goals", t.site_id), Some(&t.token), &body).await;
        assert_eq!(status, StatusCode::CREATED, "goal {name}: {g}");
        g["id"].as_str().expect("goal id").to_string()
    }

    /// Posts a batch to ingest with optional Origin; returns status, body and headers.
    pub async fn post_batch_raw(
        &self,
        body: Vec<u8>,
        content_type: &str,
        origin: Option<&str>,
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        let mut req =
            self.http.post(format!("{}/api/events/batch", self.ingest)).header("content-type", content_type).body(body);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        let res = req.send().await.expect("ingest reachable");
        let headers = res.headers().clone();
        let (status, body) = Self::json(res).await;
        (status, body, headers)
    }

    pub async fn post_batch(&self, batch: &Value) -> (StatusCode, Value) {
        let (s, b, _) = self.post_batch_raw(serde_json::to_vec(batch).expect("json"), "application/json", None).await;
        (s, b)
    }

    /// Stats with a query string such as `timeframe=24h`.
    pub async fn stats(&self, token: &str, site_id: &str, query: &str) -> Value {
        let (status, body) = self.get(&format!("/api/stats/{site_id}?{query}"), Some(token)).await;
        assert_eq!(status, StatusCode::OK, "stats: {body}");
        body
    }

    /// Waits until the stats for `query` satisfy `pred`, then returns them. 30 s: a browser's
    /// beacons and a flush take a second or two alone, and a loaded CI machine (two tests, each
    /// with a stack and perhaps a browser) has been seen to take past 15.
    pub async fn stats_when(&self, token: &str, site_id: &str, query: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let this = self.clone();
        let pred = &pred;
        crate::wait::until("stats to reflect the accepted batches", Duration::from_secs(30), || {
            let this = this.clone();
            async move {
                let s = this.stats(token, site_id, query).await;
                pred(&s).then_some(s)
            }
        })
        .await
    }
}

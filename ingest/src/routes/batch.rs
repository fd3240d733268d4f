//! `POST /api/events/batch`: the tracker's only call, and its CORS preflight.
//!
//! Checks run cheapest first: body size, the client's rate limit, the batch's shape, the key,
//! the origin, whether the sender is a bot, the key's rate limit. Only then does the batch cost
//! a publish, which the stream may refuse for the site's share of it (429, like a rate limit).
//!
//! This is the hot path, measured with `make bench-wrk` (docs/benchmarks.md). An accepted batch
//! formats no string beyond the stream message id: the body is parsed in place (strings borrow
//! from it), the stream message is serialized straight from the borrowed events, the site's
//! subject is worked out when the key arrives, the visitor id is hashed on the stack, the day's
//! salt is found by day number, and the 202 bodies are made once.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::LazyLock,
    time::Instant,
};

use axum::{
    body::{Body, Bytes},
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::StreamExt;
use shared::telemetry::Chain;
use shared::{
    client_ip::{client_ip_from_headers, client_net},
    event::{Batch, EVENT_TYPES, MAX_EVENTS},
    message::BatchMessageRef,
    visitor,
};

use crate::{
    audience::Verdict,
    error::{IngestError, UNAVAILABLE_RETRY_SECS},
    origin,
    publisher::PublishFailure,
    state::AppState,
};

pub use shared::event::MAX_BODY;
/// An oversized body up to this size is read and dropped before the 413, so the client is done
/// sending and sees the answer; a larger one is refused at once and the connection closed.
const DRAIN_LIMIT: usize = 1024 * 1024;

/// `{"accepted": N}` for every N a batch can hold, made once.
static ACCEPTED_BODIES: LazyLock<Vec<Bytes>> =
    LazyLock::new(|| (0..=MAX_EVENTS).map(|n| Bytes::from(format!("{{\"accepted\":{n}}}"))).collect());

/// Answers a batch: 202 `{"accepted": N}` once the stream has it (or at once for a bot), or the
/// contract's error.
pub async fn post_batch(State(state): State<AppState>, request: Request) -> Response {
    // The headers are read in place: the `HeaderMap` extractor would copy every one of them.
    let (parts, body) = request.into_parts();
    // Always present under `axum::serve`; absent only when a test drives the router directly.
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    match accept(&state, peer, &parts.headers, body).await {
        Ok(n) => accepted(n),
        Err(e) => {
            state.metrics.batches_rejected.with_label_values(&[e.code().as_str()]).inc();
            e.into_response()
        }
    }
}

fn accepted(n: usize) -> Response {
    let body = ACCEPTED_BODIES.get(n).cloned().unwrap_or_else(|| Bytes::from(format!("{{\"accepted\":{n}}}")));
    let mut res = (StatusCode::ACCEPTED, body).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

pub(crate) async fn accept(state: &AppState, peer: IpAddr, headers: &HeaderMap, body: Body) -> Result<usize, IngestError> {
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > DRAIN_LIMIT) {
        return Err(IngestError::PayloadTooLarge);
    }

    let ip = client_ip_from_headers(peer, headers, &state.trusted);
    let now = state.clock.instant();
    state.ip_limiter.check(&client_net(ip), now).map_err(|retry_after| IngestError::RateLimited { retry_after })?;

    let bytes = read_limited(body).await?;
    let batch = Batch::parse(&bytes)?;
    accept_parsed(state, ip, headers, &batch, bytes.len()).await
}

/// [`accept`] once the body is a batch: the key, the origin, the bot filter, the key's limit,
/// then the publish. Plausible's Events API (`routes::plausible`) goes through here too.
pub(crate) async fn accept_parsed(
    state: &AppState,
    ip: IpAddr,
    headers: &HeaderMap,
    batch: &Batch<'_>,
    body_len: usize,
) -> Result<usize, IngestError> {
    let now = state.clock.instant();
    shared::http::record_events(batch.events.len());
    let site = state.sites.lookup(&batch.key).ok_or(IngestError::InvalidKey)?;
    shared::http::record_site(&site.entry.site_id);

    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        if !origin::allowed(origin, &site.entry.domain) {
            return Err(IngestError::OriginNotAllowed(origin.chars().take(200).collect()));
        }
    }

    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let audience = match state.user_agents.classify(user_agent) {
        Verdict::Human(audience) => audience,
        Verdict::Bot(reason) => {
            // Answered like any batch, so a bot learns nothing; counted nowhere but here.
            state.metrics.bot_batches[reason.index()].inc();
            return Ok(batch.events.len());
        }
    };

    state.key_limiter.check(&site.entry.site_id, now).map_err(|retry_after| IngestError::RateLimited { retry_after })?;

    let received_at = state.clock.now_ms();
    let salt = state.salts.salt_at(received_at).await.map_err(|e| {
        tracing::warn!(error = %Chain(&*e), "visitor salt unavailable");
        IngestError::Unavailable { retry_after: UNAVAILABLE_RETRY_SECS }
    })?;
    let visitor = visitor::visitor_id(&salt, &site.entry.site_id, ip, user_agent);
    let msg = BatchMessageRef {
        site_id: &site.entry.site_id,
        batch_id: &batch.batch_id,
        session_id: &batch.session_id,
        received_at,
        visitor: visitor.as_str(),
        timezone: &site.entry.timezone,
        domain: &site.entry.domain,
        currency: &site.entry.currency,
        device: audience.device,
        browser: audience.browser,
        os: audience.os,
        country: state.countries.lookup(ip),
        events: &batch.events,
    };
    // The message is the body's events plus about 400 bytes of envelope.
    let mut payload = Vec::with_capacity(body_len + 512);
    serde_json::to_writer(&mut payload, &msg).map_err(|e| {
        tracing::error!(error = %Chain(&e), "encoding a batch message");
        IngestError::Unavailable { retry_after: UNAVAILABLE_RETRY_SECS }
    })?;

    let started = Instant::now();
    match state.publisher.submit(&site.lane, msg.msg_id(), Bytes::from(payload)).await {
        Ok(()) => {}
        Err(PublishFailure::SiteShareFull) => {
            // The site's own backlog, not a fault: no publish failure, no warning per batch.
            state.metrics.site_share_full.inc();
            tracing::debug!(site_id = %site.entry.site_id, "site holds its whole share of the event stream");
            return Err(PublishFailure::SiteShareFull.into());
        }
        Err(e) => {
            state.metrics.publish_failures.inc();
            tracing::warn!(error = %Chain(&e), "publish failed");
            return Err(e.into());
        }
    }
    state.metrics.publish_latency.observe(started.elapsed().as_secs_f64());
    state.metrics.batches_accepted.inc();
    let mut by_type = [0u64; EVENT_TYPES.len()];
    for ev in &batch.events {
        by_type[ev.kind.index()] += 1;
    }
    for (counter, n) in state.metrics.events_accepted.iter().zip(by_type) {
        if n > 0 {
            counter.inc_by(n);
        }
    }
    Ok(batch.events.len())
}

/// Reads the body, keeping at most [`MAX_BODY`]; past that it reads on without keeping
/// (up to [`DRAIN_LIMIT`]) and refuses the batch (a chunked body has no Content-Length to
/// check up front). A body that arrives in one chunk, as a batch almost always does, is kept
/// without a copy.
pub(crate) async fn read_limited(body: Body) -> Result<Bytes, IngestError> {
    let mut first: Option<Bytes> = None;
    let mut rest: Vec<u8> = Vec::new();
    let mut total = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| IngestError::InvalidBatch("body: could not be read".to_string()))?;
        total += chunk.len();
        if total > DRAIN_LIMIT {
            break;
        }
        if total > MAX_BODY {
            continue;
        }
        match &first {
            None => first = Some(chunk),
            Some(head) => {
                if rest.is_empty() {
                    rest.extend_from_slice(head);
                }
                rest.extend_from_slice(&chunk);
            }
        }
    }
    if total > MAX_BODY {
        return Err(IngestError::PayloadTooLarge);
    }
    Ok(if rest.is_empty() { first.unwrap_or_default() } else { Bytes::from(rest) })
}

/// CORS preflight: any origin may post batches, without credentials.
pub async fn preflight() -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    let h = res.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST, OPTIONS"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("Content-Type"));
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    res
}

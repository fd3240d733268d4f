//! `POST /api/events/batch`: the tracker's only call, and its CORS preflight.
//!
//! Checks run cheapest first: body size, the client's rate limit, the batch's shape, the key,
//! the origin, the key's rate limit. Only then does the batch cost a publish.

use std::{net::SocketAddr, time::Instant};

use axum::{
    Json,
    body::Body,
    extract::{ConnectInfo, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::StreamExt;
use shared::{
    event::{Batch, EventKind},
    message::BatchMessage,
    urls, visitor,
};

use shared::client_ip::client_ip;

use crate::{error::IngestError, router::AppState};

/// Largest accepted body.
pub const MAX_BODY: usize = 64 * 1024;
/// An oversized body up to this size is read and dropped before the 413, so the client is done
/// sending and sees the answer; a larger one is refused at once and the connection closed.
const DRAIN_LIMIT: usize = 1024 * 1024;
/// `Retry-After` for a 503: long enough for NATS to come back, short enough to lose no visitor.
const UNAVAILABLE_RETRY_SECS: u64 = 2;

/// Answers a batch: 202 `{"accepted": N}` once the stream has it, or the contract's error.
#[tracing::instrument(skip_all, fields(site_id, batch_size))]
pub async fn post_batch(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match accept(&state, peer, &headers, body).await {
        Ok(n) => (StatusCode::ACCEPTED, Json(serde_json::json!({"accepted": n}))).into_response(),
        Err(e) => {
            state.metrics.batches_rejected.with_label_values(&[e.code().as_str()]).inc();
            e.into_response()
        }
    }
}

async fn accept(state: &AppState, peer: SocketAddr, headers: &HeaderMap, body: Body) -> Result<usize, IngestError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > DRAIN_LIMIT) {
        return Err(IngestError::PayloadTooLarge);
    }

    let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let ip = client_ip(peer.ip(), forwarded, &state.trusted);
    let now = Instant::now();
    state.ip_limiter.check(&ip, now).map_err(|retry_after| IngestError::RateLimited { retry_after })?;

    let bytes = read_limited(body).await?;
    let batch = Batch::parse(&bytes)?;
    let site = state.sites.lookup(&batch.key).ok_or(IngestError::InvalidKey)?;
    tracing::Span::current().record("site_id", site.site_id.as_str()).record("batch_size", batch.events.len());

    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        let allowed = urls::origin_host(origin).is_some_and(|host| urls::host_matches_domain(&host, &site.domain));
        if !allowed {
            return Err(IngestError::OriginNotAllowed(origin.chars().take(200).collect()));
        }
    }
    state
        .key_limiter
        .check(&site.site_id, now)
        .map_err(|retry_after| IngestError::RateLimited { retry_after })?;

    let received_at = now_ms();
    let salt = state.salts.salt_for(&shared::time::utc_day(received_at)).await.map_err(|e| {
        tracing::warn!(error = %e, "visitor salt unavailable");
        IngestError::Unavailable { retry_after: UNAVAILABLE_RETRY_SECS }
    })?;
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let msg = BatchMessage {
        site_id: site.site_id.clone(),
        batch_id: batch.batch_id.as_str().to_string(),
        session_id: batch.session_id.as_str().to_string(),
        received_at,
        visitor: visitor::visitor_hash(&salt, &site.site_id, &ip.to_string(), user_agent),
        timezone: site.timezone.clone(),
        domain: site.domain.clone(),
        events: batch.events,
    };

    let started = Instant::now();
    if let Err(e) = state.publisher.publish(&msg).await {
        state.metrics.publish_failures.inc();
        tracing::warn!(error = %e, "publish failed");
        return Err(IngestError::Unavailable { retry_after: UNAVAILABLE_RETRY_SECS });
    }
    state.metrics.publish_latency.observe(started.elapsed().as_secs_f64());
    state.metrics.batches_accepted.inc();
    let mut by_type = [0u64; 4];
    for ev in &msg.events {
        by_type[match ev.kind {
            EventKind::Pageview { .. } => 0,
            EventKind::Scroll { .. } => 1,
            EventKind::Click { .. } => 2,
            EventKind::Time { .. } => 3,
        }] += 1;
    }
    for (counter, n) in state.metrics.events_accepted.iter().zip(by_type) {
        counter.inc_by(n);
    }
    Ok(msg.events.len())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Reads the body, keeping at most [`MAX_BODY`]; past that it reads on without keeping
/// (up to [`DRAIN_LIMIT`]) and refuses the batch (a chunked body has no Content-Length to
/// check up front).
async fn read_limited(body: Body) -> Result<Vec<u8>, IngestError> {
    let mut out = Vec::new();
    let mut total = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| IngestError::InvalidBatch("body: could not be read".to_string()))?;
        total += chunk.len();
        if total > DRAIN_LIMIT {
            break;
        }
        if total <= MAX_BODY {
            out.extend_from_slice(&chunk);
        }
    }
    if total > MAX_BODY {
        return Err(IngestError::PayloadTooLarge);
    }
    Ok(out)
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

//! The JetStream side: pull messages from the shared durable consumer in chunks, hand the
//! batches of each chunk to the [`Flusher`], and ack a message only once MongoDB has every
//! batch it carries (one, or a group from ingest's group commit: [`split_batches`]).

use std::{collections::HashMap, time::Duration};

use async_nats::jetstream::{AckKind, Message, consumer::PullConsumer};
use futures::StreamExt;
use shared::message::{BATCHES_HEADER, BatchMessage, ENCODING_HEADER, count_batches, decode_payload, split_batches};
use shared::telemetry::Chain;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;

use crate::{
    flush::{FlushError, Flusher, Verdict},
    metrics::Metrics,
};

/// How chunks are formed.
#[derive(Debug, Clone)]
pub struct ChunkSettings {
    /// Most batches in one flush (a chunk stops at the first message that reaches it).
    pub max_batches: usize,
    /// Longest wait for a chunk to fill after its first message: bounds freshness.
    pub max_wait: Duration,
}

/// Redelivery delay after a failed flush: doubles with each delivery, up to 30 s.
fn backoff(delivered: i64) -> Duration {
    let exp = delivered.clamp(1, 8) as u32 - 1;
    Duration::from_millis(250 * 2_u64.pow(exp)).min(Duration::from_secs(30))
}

/// How long one pull request stays open. Short, so that after NATS restarts a fresh request
/// goes out within seconds, whatever the client library noticed.
const PULL_EXPIRES: Duration = Duration::from_secs(5);

/// Bytes one pull request asks for, per batch of a chunk (a tracker batch is 0.5-2 KB as a
/// message), so that a pull of grouped messages holds about two chunks, as one of single
/// batches does.
const PULL_BYTES_PER_BATCH: usize = 1024;
/// Bytes one pull request asks for at least: twice the largest message the stream takes.
const PULL_MIN_BYTES: usize = 2 * shared::bus::MAX_MESSAGE_BYTES;

/// Consumes until `cancel` fires; the chunk in hand is finished and acked first.
///
/// Each pull request asks for two chunks' worth, so the next chunk is already arriving while
/// the current one is written; its byte limit bounds what a pull of group messages holds.
pub async fn run(
    consumer: PullConsumer,
    flusher: Flusher,
    metrics: Metrics,
    settings: ChunkSettings,
    cancel: CancellationToken,
) {
    let max_bytes = (settings.max_batches * 2 * PULL_BYTES_PER_BATCH).max(PULL_MIN_BYTES);
    while !cancel.is_cancelled() {
        let pull = consumer
            .batch()
            .max_messages(settings.max_batches * 2)
            .max_bytes(max_bytes)
            .expires(PULL_EXPIRES)
            .messages()
            .await;
        let mut messages = match pull {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %Chain(&e), "cannot pull from the stream, retrying");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(500)) => continue,
                }
            }
        };
        let mut pull_done = false;
        while !pull_done {
            let first = tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                next = messages.next() => next,
            };
            let first = match first {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    tracing::debug!(error = %Chain(&*e), "pull ended");
                    break;
                }
                None => break,
            };
            let mut batches = batches_in(&first);
            let mut chunk = vec![first];
            let deadline = Instant::now() + settings.max_wait;
            while batches < settings.max_batches {
                match timeout_at(deadline, messages.next()).await {
                    Ok(Some(Ok(m))) => {
                        batches += batches_in(&m);
                        chunk.push(m);
                    }
                    Ok(Some(Err(_)) | None) => {
                        pull_done = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            process(chunk, &flusher, &metrics, &cancel).await;
        }
    }
}

/// How many batches a message carries: a grouped message says so in a header (its payload is
/// compressed); otherwise its lines are counted.
fn batches_in(msg: &Message) -> usize {
    msg.headers
        .as_ref()
        .and_then(|h| h.get(BATCHES_HEADER))
        .and_then(|v| v.as_str().parse::<usize>().ok())
        .unwrap_or_else(|| count_batches(&msg.payload))
}

/// Flushes one chunk and acks, naks or terminates each of its messages.
async fn process(chunk: Vec<Message>, flusher: &Flusher, metrics: &Metrics, cancel: &CancellationToken) {
    let started = std::time::Instant::now();
    let mut batches: Vec<BatchMessage> = Vec::new();
    // Per message, the indexes into `batches` of what it carries (the same batch twice in a
    // chunk is written once); none when nothing in it could be read.
    let mut slots_of: Vec<Vec<usize>> = Vec::with_capacity(chunk.len());
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for msg in &chunk {
        let mut slots = Vec::new();
        let encoding = msg.headers.as_ref().and_then(|h| h.get(ENCODING_HEADER)).map(|v| v.as_str());
        let payload = decode_payload(encoding, &msg.payload).unwrap_or_else(|e| {
            tracing::error!(error = %e, "unreadable stream message, dropping it");
            metrics.messages.with_label_values(&["invalid"]).inc();
            std::borrow::Cow::Borrowed(&[])
        });
        for encoded in split_batches(&payload) {
            match serde_json::from_slice::<BatchMessage>(encoded) {
                Ok(b) => {
                    let slot = *by_id.entry(b.msg_id()).or_insert_with(|| {
                        batches.push(b);
                        batches.len() - 1
                    });
                    slots.push(slot);
                }
                Err(e) => {
                    tracing::error!(error = %Chain(&e), "unreadable batch in a stream message, dropping it");
                    metrics.messages.with_label_values(&["invalid"]).inc();
                }
            }
        }
        slots_of.push(slots);
    }

    let outcome = if batches.is_empty() { Ok((Vec::new(), Default::default())) } else { flusher.flush(&batches).await };
    match outcome {
        Ok((verdicts, report)) => {
            metrics.flush_seconds.observe(started.elapsed().as_secs_f64());
            metrics.flush_batches.observe(batches.len() as f64);
            metrics.messages.with_label_values(&["new"]).inc_by(report.new_batches as u64);
            metrics.messages.with_label_values(&["duplicate"]).inc_by(report.duplicates as u64);
            metrics.recoveries.inc_by(report.recovered_flushes as u64);
            metrics.events.inc_by(report.events);
            metrics.round_trips.inc_by(report.cost.round_trips);
            metrics.docs_written.inc_by(report.cost.docs_written);
            metrics.conflicts.inc_by(report.conflicts);
            for (msg, slots) in chunk.iter().zip(&slots_of) {
                let kind = ack_kind(slots.iter().map(|&s| verdicts[s]));
                if let AckKind::Nak(_) = kind {
                    metrics.messages.with_label_values(&["retry"]).inc();
                }
                if let Err(e) = msg.ack_with(kind).await {
                    tracing::warn!(error = %Chain(&*e), "ack failed; the message will be redelivered");
                }
            }
        }
        Err(e) => {
            metrics.mongo_write_errors.inc();
            tracing::error!(error = %Chain(&e), batches = batches.len(), "flush failed; nothing acked");
            let mut delay = None;
            if let FlushError::Claimed { flush, .. } = &e {
                // This instance starts no other flush before this one is done (see flush.rs).
                finish(flusher, flush, metrics, cancel).await;
                // Redelivered now, each message finds its batches counted or not stored.
                delay = Some(Duration::ZERO);
            }
            for (msg, slots) in chunk.iter().zip(&slots_of) {
                let delivered = msg.info().map(|i| i.delivered).unwrap_or(1);
                let kind = if slots.is_empty() {
                    AckKind::Term
                } else {
                    AckKind::Nak(Some(delay.unwrap_or_else(|| backoff(delivered))))
                };
                let _ = msg.ack_with(kind).await;
            }
        }
    }
}

/// What to answer for a message from the verdicts on its batches: ack once every one is
/// stored, redeliver (after the longest asked delay) while any is not, and drop a message with
/// nothing readable in it.
fn ack_kind(verdicts: impl Iterator<Item = Verdict>) -> AckKind {
    let mut any = false;
    let mut retry: Option<Duration> = None;
    for v in verdicts {
        any = true;
        if let Verdict::Retry(after) = v {
            retry = Some(retry.map_or(after, |r| r.max(after)));
        }
    }
    match (any, retry) {
        (false, _) => AckKind::Term,
        (true, Some(after)) => AckKind::Nak(Some(after)),
        (true, None) => AckKind::Ack,
    }
}

/// Finishes a failed flush of this instance, retrying with backoff until it is done or the
/// process stops (then another aggregator finishes it once the lease has passed).
async fn finish(flusher: &Flusher, flush: &crate::flush::FlushId, metrics: &Metrics, cancel: &CancellationToken) {
    let mut attempt = 1;
    loop {
        match flusher.recover(flush).await {
            Ok(true) => return,
            Ok(false) => tracing::info!(%flush, "another aggregator is finishing this flush"),
            Err(e) => {
                metrics.mongo_write_errors.inc();
                tracing::warn!(%flush, error = %Chain(&e), "finishing the failed flush, will retry");
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(backoff(attempt)) => {}
        }
        attempt += 1;
    }
}

/// Publishes the consumer's lag to the `pending` gauge every two seconds.
pub async fn watch_lag(consumer: PullConsumer, metrics: Metrics, cancel: CancellationToken) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
        if let Ok(info) = consumer.get_info().await {
            metrics.pending.set((info.num_pending + info.num_ack_pending as u64) as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_acked_once_all_its_batches_are() {
        let later = Duration::from_millis(300);
        assert!(matches!(ack_kind([Verdict::Ack, Verdict::Ack].into_iter()), AckKind::Ack));
        assert!(matches!(
            ack_kind([Verdict::Ack, Verdict::Retry(Duration::from_millis(100)), Verdict::Retry(later)].into_iter()),
            AckKind::Nak(Some(d)) if d == later
        ));
        assert!(matches!(ack_kind(std::iter::empty()), AckKind::Term));
    }

    #[test]
    fn backoff_doubles_up_to_thirty_seconds() {
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(2), Duration::from_millis(500));
        assert_eq!(backoff(4), Duration::from_secs(2));
        assert_eq!(backoff(100), Duration::from_secs(30));
    }
}

//! Publishing an enriched batch to the event stream, and waiting for the stream's ack.

use std::time::Duration;

use async_nats::{
    HeaderMap, Subject,
    header::NATS_MESSAGE_ID,
    jetstream::{self, context::PublishErrorKind},
};
use bytes::Bytes;

/// Pause between two attempts at the same batch.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// Longest wait for one attempt's ack. An ack takes milliseconds (p99 26 ms on a busy 2-core
/// cluster); one that has not come by now was most likely sent on a connection that died with
/// its NATS node, and will never come: send the batch again on the new connection.
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(500);

/// Why a batch did not make it into the stream.
#[derive(Debug, thiserror::Error)]
pub enum PublishFailure {
    #[error("no ack from the stream within {0:?}")]
    Timeout(Duration),
    #[error("stream refused the batch: {0}")]
    Refused(String),
}

/// Publishes batches with a deadline on the ack.
#[derive(Clone)]
pub struct Publisher {
    client: async_nats::Client,
    js: jetstream::Context,
    timeout: Duration,
}

impl Publisher {
    pub fn new(client: async_nats::Client, timeout: Duration) -> Self {
        Self { js: jetstream::new(client.clone()), client, timeout }
    }

    /// Publishes an encoded [`shared::message::BatchMessage`] on `subject` and returns once the
    /// stream acked it. `msg_id` (the `Nats-Msg-Id`) is derived from (site, batch id), so a
    /// retried batch is stored once; a duplicate ack is still a success.
    ///
    /// Within the deadline, a failed attempt, or one without an ack after [`ATTEMPT_TIMEOUT`],
    /// is tried again: in a cluster the client reconnects to another node within milliseconds
    /// of losing one, and a stream whose leader died has a new one within a few seconds.
    /// Sending the same `Nats-Msg-Id` again is what makes that safe: an attempt whose ack was
    /// lost is stored once, and the retry gets the duplicate ack.
    pub async fn publish(&self, subject: Subject, msg_id: &str, payload: Bytes) -> Result<(), PublishFailure> {
        let mut headers = HeaderMap::new();
        headers.insert(NATS_MESSAGE_ID, msg_id);
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            // While disconnected the client would buffer the publish and send it after
            // reconnecting, whenever that is: wait for the connection instead, and answer 503
            // at the deadline so the tracker retries the same batch.
            let last = if self.client.connection_state() == async_nats::connection::State::Connected {
                let attempt = async {
                    let ack = self
                        .js
                        .publish_with_headers(subject.clone(), headers.clone(), payload.clone())
                        .await
                        .map_err(|e| PublishFailure::Refused(e.to_string()))?;
                    ack.await.map_err(|e| match e.kind() {
                        PublishErrorKind::TimedOut => PublishFailure::Timeout(self.timeout),
                        _ => PublishFailure::Refused(e.to_string()),
                    })
                };
                let attempt_deadline = deadline.min(tokio::time::Instant::now() + ATTEMPT_TIMEOUT);
                match tokio::time::timeout_at(attempt_deadline, attempt).await {
                    Ok(Ok(_ack)) => return Ok(()),
                    Ok(Err(e)) => e,
                    Err(_) if attempt_deadline < deadline => continue,
                    Err(_) => return Err(PublishFailure::Timeout(self.timeout)),
                }
            } else {
                PublishFailure::Refused("not connected to NATS".to_string())
            };
            if tokio::time::Instant::now() + RETRY_PAUSE >= deadline {
                return Err(last);
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }
}

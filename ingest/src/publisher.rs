//! Publishing an enriched batch to the event stream, and waiting for the stream's ack.

use std::time::Duration;

use async_nats::{
    HeaderMap, Subject,
    header::NATS_MESSAGE_ID,
    jetstream::{self, context::PublishErrorKind},
};
use bytes::Bytes;

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
    pub async fn publish(&self, subject: Subject, msg_id: &str, payload: Bytes) -> Result<(), PublishFailure> {
        // While disconnected the client would buffer the publish and send it after reconnecting:
        // answer 503 now instead, and let the tracker retry the same batch.
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err(PublishFailure::Refused("not connected to NATS".to_string()));
        }
        let mut headers = HeaderMap::new();
        headers.insert(NATS_MESSAGE_ID, msg_id);
        let attempt = async {
            let ack = self
                .js
                .publish_with_headers(subject, headers, payload)
                .await
                .map_err(|e| PublishFailure::Refused(e.to_string()))?;
            ack.await.map_err(|e| match e.kind() {
                PublishErrorKind::TimedOut => PublishFailure::Timeout(self.timeout),
                _ => PublishFailure::Refused(e.to_string()),
            })
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(_ack)) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(PublishFailure::Timeout(self.timeout)),
        }
    }
}

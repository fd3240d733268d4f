//! An event stream in memory, so that ingest's router can be driven in-process (tests) without
//! NATS. It stores the messages ingest publishes, up to a capacity past which it refuses them
//! as a full stream does; it can be told to fail every publish the way the real stream fails,
//! and to report its connection down. It does not de-duplicate by message id, as JetStream
//! does: a test sees each message ingest sent.

use std::sync::{Arc, Mutex};

use async_nats::Subject;
use bytes::Bytes;
use shared::message::{self, BatchMessage};

use super::PublishFailure;

/// A stream in memory; clones share it.
#[derive(Clone)]
pub struct MemoryStream {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    capacity: usize,
    messages: Vec<StoredMessage>,
    failure: Option<PublishFailure>,
    connected: bool,
}

/// One message as the stream stored it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMessage {
    pub subject: String,
    /// Its `Nats-Msg-Id`.
    pub msg_id: String,
    /// The encoded batches it carries, decompressed: one, unless ingest grouped several.
    pub batches: Vec<Bytes>,
}

impl MemoryStream {
    /// An empty, connected stream that stores at most `capacity` messages.
    pub fn with_capacity(capacity: usize) -> Self {
        let inner = Inner { capacity, messages: Vec::new(), failure: None, connected: true };
        Self { inner: Arc::new(Mutex::new(inner)) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every publish from now on fails with `failure`; `None` lets them through again.
    pub fn fail_with(&self, failure: Option<PublishFailure>) {
        self.lock().failure = failure;
    }

    /// Takes the connection down or up: while down, `/readyz` names NATS and every publish
    /// fails as the real one does once its deadline passes.
    pub fn set_connected(&self, connected: bool) {
        self.lock().connected = connected;
    }

    pub fn is_connected(&self) -> bool {
        self.lock().connected
    }

    /// The messages stored, oldest first.
    pub fn messages(&self) -> Vec<StoredMessage> {
        self.lock().messages.clone()
    }

    /// Every batch of every stored message, in order, read as the aggregator reads them.
    pub fn batches(&self) -> Result<Vec<BatchMessage>, serde_json::Error> {
        self.lock().messages.iter().flat_map(|m| &m.batches).map(|b| serde_json::from_slice(b)).collect()
    }

    /// Stores one message as [`super::Publisher`] sends it: `grouped` is the batch count of an
    /// encoded group ([`message::encode_group`]).
    pub(super) fn publish(
        &self,
        subject: &Subject,
        msg_id: &str,
        payload: &Bytes,
        grouped: Option<usize>,
    ) -> Result<(), PublishFailure> {
        let mut inner = self.lock();
        if !inner.connected {
            return Err(PublishFailure::Refused("not connected to NATS".to_string()));
        }
        if let Some(failure) = &inner.failure {
            return Err(failure.clone());
        }
        if inner.messages.len() >= inner.capacity {
            return Err(PublishFailure::Refused("maximum messages exceeded".to_string()));
        }
        let encoding = grouped.map(|_| message::LZ4);
        let lines = message::decode_payload(encoding, payload).map_err(PublishFailure::Refused)?;
        let batches: Vec<Bytes> = message::split_batches(&lines).map(Bytes::copy_from_slice).collect();
        if grouped.is_some_and(|n| n != batches.len()) {
            return Err(PublishFailure::Refused(format!("{grouped:?} batches announced, {} sent", batches.len())));
        }
        inner.messages.push(StoredMessage { subject: subject.to_string(), msg_id: msg_id.to_string(), batches });
        Ok(())
    }
}

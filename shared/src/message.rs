//! The enriched batch ingest publishes on the event stream and the aggregator consumes.

use serde::{Deserialize, Serialize};

use crate::event::Event;

/// One accepted tracker batch plus what ingest knows and the client does not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchMessage {
    pub site_id: String,
    pub batch_id: String,
    pub session_id: String,
    /// Server receive time, ms since the epoch: what the batch is bucketed by.
    pub received_at: i64,
    /// Cookie-free visitor hash (see [`crate::visitor`]).
    pub visitor: String,
    /// The site's IANA time zone at receive time.
    pub timezone: String,
    /// The site's domain at receive time, for telling direct traffic from referrals.
    pub domain: String,
    pub events: Vec<Event>,
}

impl BatchMessage {
    /// The JetStream message id: a retry of the same batch is stored once.
    pub fn msg_id(&self) -> String {
        raw_batch_id(&self.site_id, &self.batch_id)
    }
}

/// The id shared by the stream's `Nats-Msg-Id` and the raw batch document's `_id`.
pub fn raw_batch_id(site_id: &str, batch_id: &str) -> String {
    format!("{site_id}:{batch_id}")
}

//! The mail outbox as stored: one document per mail to send, `_id` chosen by whoever queues it
//! so that the same report or alert window for the same recipient is one document, however
//! often and by however many api processes it is queued (`api/src/mail/outbox.rs` has the
//! protocol).

use std::time::Duration;

use mongodb::bson::DateTime;
use serde::{Deserialize, Serialize};

/// How long a mail's document is kept after it was queued, sent or not: longer than any
/// window that could queue it again (an alert's is at most 168 hours, a weekly report's a
/// week), so a second queueing of the same window always finds it. Removed by the
/// aggregator's expiry job (`crate::indexes::expiries`).
pub const OUTBOX_KEEP: Duration = Duration::from_secs(8 * 24 * 3600);

/// Where a mail stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    /// To be sent at `due_at` (or being sent by whoever pushed `due_at` forward).
    Pending,
    /// The SMTP server accepted it.
    Sent,
    /// Refused for good, or out of attempts.
    Failed,
}

/// One mail of [`crate::names::collections::OUTBOX`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxDoc {
    /// What the mail is for and to whom (`report:<site>:<week>:<user>`): its dedup key.
    #[serde(rename = "_id")]
    pub id: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub state: OutboxState,
    /// When a sender may next take it (ms since the epoch).
    pub due_at: i64,
    /// Sends tried so far.
    pub attempts: u32,
    pub queued_at: i64,
    /// Why the last attempt failed.
    #[serde(default)]
    pub last_error: Option<String>,
    pub expire_at: DateTime,
}

/// Field names of [`OutboxDoc`] used in filters and updates.
pub mod outbox_fields {
    pub const STATE: &str = "state";
    pub const DUE_AT: &str = "due_at";
    pub const ATTEMPTS: &str = "attempts";
    pub const LAST_ERROR: &str = "last_error";
    pub const EXPIRE_AT: &str = "expire_at";
}

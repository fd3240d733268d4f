//! The outbox: mail waits in MongoDB ([`c::OUTBOX`]) until an SMTP server took it, so a mail
//! queued while the server is down, or while the api restarts, is sent later, and a report or
//! alert queued by several api processes is sent once.
//!
//! 1. Queue: insert the mail with its `_id` chosen by what it is for and to whom (a report's
//!    week, an alert's window, and the recipient), `state: pending`, `due_at: now`. An insert
//!    that collides on `_id` means that mail was queued already (here or by another process,
//!    sent or not): nothing more is done. So one window is one mail, whoever queues it.
//! 2. Claim: a sender takes one pending mail whose `due_at` has come by pushing `due_at`
//!    [`CLAIM`] ahead and counting the attempt, in one find-and-modify: of several senders one
//!    gets it. A sender that dies while sending leaves it to be claimed again after [`CLAIM`].
//! 3. Send, bounded by [`SEND_LIMIT`] (well within [`CLAIM`], so no second sender takes a mail
//!    the first is still sending).
//! 4. Record: accepted → `sent`. Refused for good (an SMTP 5xx), or after [`MAX_ATTEMPTS`] →
//!    `failed`, logged. Otherwise `due_at` = now + a backoff doubling from the base
//!    (`CP_MAIL_RETRY_BASE_MS`) up to [`MAX_BACKOFF`]: a server down for a while gets the mail
//!    once it is back.
//!
//! A send whose acceptance was not recorded (the process died between 3 and 4) is sent again
//! after [`CLAIM`]: SMTP gives no way to ask whether a server has a mail. Its `Message-ID` is
//! the outbox id, so the receiving side can tell it is the same mail.
//!
//! Every document expires [`OUTBOX_KEEP`] after it was queued, sent or not (the aggregator's
//! expiry job removes it), which is longer than any window that could queue it again.

use std::{sync::Arc, time::Duration};

use mongodb::{
    Collection, Database,
    bson::{DateTime, doc},
    options::ReturnDocument,
};
use shared::{
    clock::Clock,
    mail::{OUTBOX_KEEP, OutboxDoc, OutboxState, outbox_fields as f},
    names::collections as c,
    store::is_duplicate_key,
};

/// How far a claim pushes `due_at`: how long a sender has a mail to itself.
pub const CLAIM: Duration = Duration::from_secs(300);
/// Longest one send may take, connection included.
pub const SEND_LIMIT: Duration = Duration::from_secs(60);
/// Attempts before a mail is given up: with the default base of 5 s, about two and a half
/// hours of an unreachable server.
pub const MAX_ATTEMPTS: u32 = 20;
/// Longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// Longest `last_error` kept.
const MAX_ERROR_CHARS: usize = 500;

/// A mail to queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Mail {
    /// What it is for and to whom: its dedup key (step 1).
    pub id: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The outbox collection with the clock its times are read from.
#[derive(Clone)]
pub struct Outbox {
    docs: Collection<OutboxDoc>,
    clock: Arc<dyn Clock>,
    retry_base: Duration,
}

/// What the send of a claimed mail came to.
#[derive(Debug)]
pub enum Outcome {
    Sent,
    /// `permanent`: the server refused it for good.
    Failed {
        permanent: bool,
        error: String,
    },
}

impl Outbox {
    pub fn new(db: &Database, clock: Arc<dyn Clock>, retry_base: Duration) -> Self {
        Self { docs: db.collection(c::OUTBOX), clock, retry_base }
    }

    /// Step 1: true when this call queued it, false when it was queued before.
    pub async fn queue(&self, mail: Mail) -> Result<bool, mongodb::error::Error> {
        let now = self.clock.now_ms();
        let doc = OutboxDoc {
            id: mail.id,
            to: mail.to,
            subject: mail.subject,
            text: mail.text,
            html: mail.html,
            state: OutboxState::Pending,
            due_at: now,
            attempts: 0,
            queued_at: now,
            last_error: None,
            expire_at: DateTime::from_millis(now + OUTBOX_KEEP.as_millis() as i64),
        };
        match self.docs.insert_one(doc).await {
            Ok(_) => Ok(true),
            Err(e) if is_duplicate_key(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Step 2: one mail due now, taken for [`CLAIM`]; `None` when none is due.
    pub async fn claim(&self) -> Result<Option<OutboxDoc>, mongodb::error::Error> {
        let now = self.clock.now_ms();
        let pending = mongodb::bson::to_bson(&OutboxState::Pending).unwrap_or_default();
        self.docs
            .find_one_and_update(
                doc! {f::STATE: pending, f::DUE_AT: {"$lte": now}},
                doc! {"$set": {f::DUE_AT: now + CLAIM.as_millis() as i64}, "$inc": {f::ATTEMPTS: 1}},
            )
            .return_document(ReturnDocument::After)
            .await
    }

    /// Step 4.
    pub async fn record(&self, mail: &OutboxDoc, outcome: &Outcome) -> Result<OutboxState, mongodb::error::Error> {
        let (state, set) = match outcome {
            Outcome::Sent => (OutboxState::Sent, doc! {}),
            Outcome::Failed { permanent, error } => {
                let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
                if *permanent || mail.attempts >= MAX_ATTEMPTS {
                    (OutboxState::Failed, doc! {f::LAST_ERROR: error})
                } else {
                    let due = self.clock.now_ms() + self.backoff(mail.attempts).as_millis() as i64;
                    (OutboxState::Pending, doc! {f::LAST_ERROR: error, f::DUE_AT: due})
                }
            }
        };
        let mut set = set;
        set.insert(f::STATE, mongodb::bson::to_bson(&state).unwrap_or_default());
        self.docs.update_one(doc! {"_id": &mail.id}, doc! {"$set": set}).await?;
        Ok(state)
    }

    /// The wait after the `attempts`-th failed attempt: the base, doubled each time, at most
    /// [`MAX_BACKOFF`].
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1u32.checked_shl(attempts.saturating_sub(1)).unwrap_or(u32::MAX);
        self.retry_base.saturating_mul(factor).min(MAX_BACKOFF)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_backoff_doubles_up_to_its_cap() {
        let db = mongodb::Client::with_uri_str("mongodb://127.0.0.1:1").await.expect("client").database("x");
        let outbox = Outbox::new(&db, shared::clock::system(), Duration::from_secs(5));
        let waits: Vec<u64> = (1..=10).map(|a| outbox.backoff(a).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 320, 600, 600, 600]);
        assert_eq!(outbox.backoff(64), MAX_BACKOFF, "no overflow");
    }
}
